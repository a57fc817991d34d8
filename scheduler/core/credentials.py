"""An account's credentials in use: unsealed into the ``AccountRef`` an adapter is given, and
refreshed once under a per-account lease, for publishing, follower samples and the token refresh alike."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, update

from adapters.base import AccountRef, Adapter, Credentials
from adapters.errors import AdapterError
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.core.models import Account, utcnow

log = logging.getLogger("crosspost.credentials")
# How long one worker may hold an account's refresh before another may try.
REFRESH_LEASE = timedelta(seconds=60)


def to_ref(account: Account | Row[Any]) -> AccountRef:
    """What an adapter needs of a stored account (the object, or a row with its columns), its
    credentials unsealed."""
    return AccountRef(id=account.id, platform=account.platform, handle=account.handle,
                      base_url=account.base_url, credentials=vault.unseal(account.credentials),
                      language=account.language)


class RefreshBusy(AdapterError):
    """Another worker is refreshing this account's credentials right now."""


def refresh_credentials(adapter: Adapter, account: AccountRef, seen_version: int) -> Credentials:
    """Refresh ``account``'s credentials once, under a per-account lease so that two workers never
    rotate one refresh token; save the result in the same UPDATE that releases the lease."""
    now = utcnow()
    with session_scope() as s:
        got = s.execute(
            update(Account)
            .where(Account.id == account.id,
                   (Account.refresh_lease_until.is_(None)) | (Account.refresh_lease_until < now))
            .values(refresh_lease_until=now + REFRESH_LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not got:
            raise RefreshBusy(f"{account.platform}: another worker is refreshing the credentials")
        row = s.get(Account, account.id)
        assert row is not None
        if row.credentials_version != seen_version:
            # Someone refreshed since this attempt began: use theirs.
            row.refresh_lease_until = None
            return vault.unseal(row.credentials)
    try:
        fresh = adapter.refresh(account)
    except Exception:
        with session_scope() as s:
            s.execute(update(Account).where(Account.id == account.id).values(refresh_lease_until=None))
        raise
    merged = account.credentials.merged(**fresh.reveal())
    with session_scope() as s:
        # One UPDATE: the rotated refresh token, its version and the expiry land together or not at all.
        s.execute(
            update(Account)
            .where(Account.id == account.id)
            .values(credentials=vault.seal(merged), credentials_version=Account.credentials_version + 1,
                    refresh_lease_until=None, token_expires_at=merged.expires_at())
            .execution_options(synchronize_session=False)
        )
    log.info("account %s:%s: credentials refreshed", account.platform, account.handle)
    return merged
