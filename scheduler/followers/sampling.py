"""One follower sample: through the same rate gates as a publish, a refresh of expired credentials,
and every try stored (the failed ones with their reason, so a gap stays visible); a success also
updates the account's row of the daily roll-up in the same transaction."""


from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters import get_adapter
from adapters.base import AccountRef, Adapter
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.http import scrub
from config.settings import get_settings
from scheduler.core import ratelimit
from scheduler.core.credentials import refresh_credentials, to_ref
from scheduler.core.db import is_postgres, session_scope
from scheduler.core.models import Account, FollowerDaily, FollowerSample, utcnow
from scheduler.followers.schedule import slot_start

log = logging.getLogger("crosspost.followers")

# -- one sample -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampled:
    account_id: int
    outcome: str  # sampled | failed | deferred (a rate gate is closed) | skipped
    followers: int | None = None
    error: str | None = None
    until: datetime | None = None  # when deferred: when the gate opens


def sample_account(account_id: int, at: datetime | None = None, *, scheduled: bool = False) -> Sampled:
    """Ask the platform for ``account_id``'s follower count and store the sample or the failed try.

    ``scheduled``: called by the schedule, so only an active account whose current slot has no sample
    yet is sampled (a duplicate message is harmless). ``at`` records the sample as taken at that
    instant instead of now (for back-filling and tests).
    """
    settings = get_settings()
    now = utcnow()
    with session_scope() as s:
        account = s.get(Account, account_id)
        if account is None or account.status == "removed" or (scheduled and account.status != "active"):
            return Sampled(account_id, "skipped", error="no such active account")
        if scheduled:
            daily = FollowerDaily
            last_ok = s.scalar(select(daily.last_taken_at).where(daily.account_id == account_id)
                               .order_by(daily.day.desc()).limit(1))
            if last_ok is not None and last_ok >= slot_start(account_id, now, settings.follower_interval):
                return Sampled(account_id, "skipped", error="already sampled in this slot")
        wait = ratelimit.take(s, [ratelimit.account_scope(account_id), ratelimit.app_scope(account.platform)],
                              now, settings.account_min_interval)
        if wait is not None:
            return Sampled(account_id, "deferred", error="waiting for a rate gate", until=wait)
        ref = to_ref(account)
        version = account.credentials_version
    adapter = get_adapter(ref.platform, timeout=settings.http_timeout)
    count: int | None = None
    error: AdapterError | None = None
    try:
        count = _followers_with_refresh(adapter, ref, version)
    except AdapterError as exc:
        error = exc
    except Exception as exc:  # a bug in an adapter is a failed try too, with its reason
        log.exception("account %s: adapter %s crashed reading followers", account_id, ref.platform)
        error = Transient(f"{ref.platform}: internal error {type(exc).__name__}: {exc}")
    taken_at = at or utcnow()
    reason = None if error is None else scrub(describe_error(error), ref.credentials.secrets())[:2000]
    with session_scope() as s:
        if isinstance(error, RateLimited):
            scope = (ratelimit.app_scope(ref.platform) if error.scope == "app"
                     else ratelimit.account_scope(account_id))
            ratelimit.block(s, scope, utcnow() + timedelta(seconds=error.retry_after))
        record(s, account_id, taken_at, count, reason)
    log.info("followers of %s:%s: %s", ref.platform, ref.handle, count if reason is None else reason)
    if reason is not None:
        return Sampled(account_id, "failed", error=reason)
    return Sampled(account_id, "sampled", followers=count)


def _followers_with_refresh(adapter: Adapter, ref: AccountRef, version: int) -> int:
    try:
        return adapter.followers(ref)
    except AuthExpired:
        ref.credentials = refresh_credentials(adapter, ref, version)
        return adapter.followers(ref)


def describe_error(error: AdapterError) -> str:
    """The reason stored with a failed try, led by its kind so a report can group them."""
    if isinstance(error, RateLimited):
        kind = f"rate limited for {error.retry_after:g} s"
    elif isinstance(error, AuthExpired):
        kind = "credentials refused"
    elif isinstance(error, Rejected):
        kind = "rejected"
    else:  # Transient, and a refresh another worker holds (tried again next time)
        kind = "transient"
    return f"{kind}: {error.reason}"


def record(s: Session, account_id: int, taken_at: datetime, followers: int | None,
           error: str | None = None) -> None:
    """Store one try; a success also updates the account's daily roll-up row (inserted or updated in
    one statement, so concurrent samples of one account never lose an update)."""
    s.execute(insert(FollowerSample).values(account_id=account_id, taken_at=taken_at, followers=followers,
                                            error=error))
    if followers is None:
        return
    upsert = postgresql.insert if is_postgres(s) else sqlite.insert
    new = upsert(FollowerDaily).values(
        account_id=account_id, day=taken_at.astimezone(UTC).date(), first_followers=followers,
        last_followers=followers, min_followers=followers, max_followers=followers, last_taken_at=taken_at,
        samples=1)
    old, ex = FollowerDaily, new.excluded
    newer = ex.last_taken_at >= old.last_taken_at
    s.execute(new.on_conflict_do_update(index_elements=[old.account_id, old.day], set_={
        # A late sample (taken before the stored last one) counts for min/max, not for "last".
        "last_followers": case((newer, ex.last_followers), else_=old.last_followers),
        "last_taken_at": case((newer, ex.last_taken_at), else_=old.last_taken_at),
        "min_followers": case((ex.min_followers < old.min_followers, ex.min_followers),
                              else_=old.min_followers),
        "max_followers": case((ex.max_followers > old.max_followers, ex.max_followers),
                              else_=old.max_followers),
        "samples": old.samples + 1,
    }))


