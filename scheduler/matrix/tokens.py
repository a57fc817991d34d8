"""Refresh access tokens before they expire, not only after a 401.

Beat runs :func:`refresh_expiring` every few minutes: every active account whose token expires within
``token_refresh_margin`` is refreshed through the same per-account lease as a refresh on 401, so a
rotating refresh token is never used twice. A refused refresh makes the account ``auth_broken``; its
deliveries then wait until an operator runs ``crosspost accounts reauth``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from adapters import get_adapter
from adapters.errors import AdapterError, AuthExpired, Rejected
from config.settings import get_settings
from scheduler.core.credentials import refresh_credentials, to_ref
from scheduler.core.db import session_scope
from scheduler.core.models import Account, utcnow

log = logging.getLogger("crosspost.tokens")


@dataclass
class RefreshRound:
    refreshed: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    postponed: list[int] = field(default_factory=list)


def expiring(now: datetime, margin: timedelta) -> list[int]:
    with session_scope() as s:
        return list(s.scalars(select(Account.id).where(
            Account.status == "active", Account.token_expires_at.is_not(None),
            Account.token_expires_at <= now + margin).order_by(Account.token_expires_at)))


def refresh_expiring(now: datetime | None = None) -> RefreshRound:
    settings = get_settings()
    now = now or utcnow()
    result = RefreshRound()
    for account_id in expiring(now, timedelta(seconds=settings.token_refresh_margin)):
        with session_scope() as s:
            row = s.get(Account, account_id)
            if row is None:
                continue
            ref, version = to_ref(row), row.credentials_version
        adapter = get_adapter(ref.platform, timeout=settings.http_timeout)
        try:
            refresh_credentials(adapter, ref, version)
            result.refreshed.append(account_id)
        except (AuthExpired, Rejected) as exc:
            with session_scope() as s:
                s.execute(update(Account).where(Account.id == account_id, Account.status == "active")
                          .values(status="auth_broken", status_reason=f"token refresh refused: {exc.reason}"))
            log.warning("account %s: token refresh refused; auth_broken", ref)
            result.broken.append(account_id)
        except AdapterError as exc:  # transient, rate limited, busy: the next round tries again
            log.info("account %s: token refresh postponed: %s", ref, exc.reason)
            result.postponed.append(account_id)
    return result
