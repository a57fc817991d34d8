"""One attempt at one delivery: take the lease, pass the rate gate, call the adapter, record the outcome.

No transaction is held open across the platform call: the lease is committed first, and every
outcome is recorded afterwards by a conditional UPDATE on that lease.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, case, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from adapters import adapter_class, get_adapter
from adapters.base import AccountRef, Adapter, Media, Post, Progress, Published
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.http import scrub
from config.settings import Settings, get_settings
from scheduler.core import deliveries, ratelimit, retry_policy
from scheduler.core.credentials import RefreshBusy, refresh_credentials, to_ref
from scheduler.core.db import connection_scope, session_scope
from scheduler.core.deliveries import Lease
from scheduler.core.heartbeat import heartbeat
from scheduler.core.models import Account, Attempt, Delivery, Story, UTCDateTime, utcnow
from scheduler.core.retry_policy import Decision, Next

log = logging.getLogger("crosspost.publish")
# How soon to come back when another worker is refreshing the same account's token.
REFRESH_WAIT = timedelta(seconds=5)


@dataclass
class Job:
    lease: Lease
    account: AccountRef
    version: int
    post: Post
    key: str
    first_attempt_at: datetime
    lookup_first: bool
    progress: Progress


class LeaseLost(Transient):
    """The reaper took the delivery from this attempt; stop before creating anything more."""


def _save_statement() -> Any:
    d = Delivery.__table__.c
    # ``unknown`` with our attempt number: the reaper gave up on this attempt, but only an operator
    # moves the delivery on from there, so what this attempt did is still the truth (a late answer
    # from a slow platform must be recorded, not dropped). A save is also a sign of life: it renews
    # the lease as the heartbeat does.
    return (update(Delivery.__table__)
            .where(d.id == bindparam("delivery_id"), d.attempts == bindparam("attempt"),
                   d.state.in_(("publishing", "unknown")))
            .values(remote_state=bindparam("remote_state", type_=d.remote_state.type),
                    lease_until=case((d.state == "publishing", bindparam("lease_until", type_=UTCDateTime())),
                                     else_=d.lease_until)))


_SAVE = _save_statement()


def _saver(lease: Lease) -> Callable[[dict[str, Any]], None]:
    def save(state: dict[str, Any]) -> None:
        until = utcnow() + timedelta(seconds=get_settings().lease_seconds)
        with connection_scope() as c:
            kept = c.execute(_SAVE, {"delivery_id": lease.delivery_id, "attempt": lease.attempt,
                                     "remote_state": state, "lease_until": until}).rowcount
        if not kept:
            raise LeaseLost(f"delivery {lease.delivery_id}: the lease of attempt {lease.attempt} was lost")
    return save


def post_of(row: Row[Any], created_at: datetime, text: str | None = None) -> Post:
    """What goes to one account (a row of ``_TAKE_ACCOUNT``): the story for its platform, or
    ``text``, the delivery's own."""
    return Post(text=text or (row.variants or {}).get(row.platform) or row.story_text, link=row.link,
                created_at=created_at, media=tuple(Media(**m) for m in row.media or []),
                thread=bool(row.thread), language=row.story_language or row.language)


def policy(platform: str, state: dict[str, Any] | None, first_attempt_at: datetime | None,
           now: datetime, *, in_doubt: bool = True) -> Decision:
    """:func:`retry_policy.decide` for one platform, with this installation's HTTP timeout."""
    adapter = adapter_class(platform)
    return retry_policy.decide(adapter.caps, state, in_doubt=in_doubt, first_attempt_at=first_attempt_at,
                               now=now, http_timeout=get_settings().http_timeout,
                               resumable=adapter.resumable(state or {}))


def _take_account(spaced: bool) -> Any:
    """The start's second statement: note the attempt's start on its account and read what the publish
    needs of the account and its story. With ``spaced``, only if the account's previous attempt began
    at ``spaced_from`` or earlier; otherwise no row. Writing the account row makes two starts on one
    account queue for its row lock, so the second sees the first's time (bench/RESULTS.md, session 6)."""
    # Built once, columns only: a publish pays neither the statement's construction nor the ORM's
    # loading of two whole rows into objects. The story's columns come from subqueries in RETURNING
    # (SQLite's RETURNING cannot name another table), one primary-key lookup each.
    a, st = Account.__table__.c, Story.__table__.c
    story_id = bindparam("story_id")

    def of_story(column: Any, label: str) -> Any:
        return select(column).where(st.id == story_id).scalar_subquery().label(label)

    stmt = update(Account.__table__).where(a.id == bindparam("account_id"))
    if spaced:
        stmt = stmt.where(or_(a.last_started_at.is_(None),
                              a.last_started_at <= bindparam("spaced_from", type_=UTCDateTime())))
    return (stmt.values(last_started_at=bindparam("now", type_=UTCDateTime()))
            .returning(a.id, a.platform, a.handle, a.base_url, a.credentials, a.credentials_version,
                       a.language, of_story(st.text, "story_text"), of_story(st.variants, "variants"),
                       of_story(st.link, "link"), of_story(st.media, "media"), of_story(st.thread, "thread"),
                       of_story(st.language, "story_language")))


_TAKE_ACCOUNT = {spaced: _take_account(spaced) for spaced in (False, True)}


class _TooSoon(Exception):
    """The account's previous attempt started less than ACCOUNT_MIN_INTERVAL ago."""


# Starts a publish makes before it gives its delivery back to the tick, when the account's interval has
# not passed. The claim spaced the send times already, so a refusal is most often timer jitter: a
# message a few milliseconds early relative to the previous one's start. Waiting that out on the thread
# costs less than a round trip through the tick (bench/RESULTS.md, session 6).
INTERVAL_TRIES = 3


def _start(delivery_id: int, celery_id: str | None, settings: Settings) -> Job | str:
    """:func:`_begin`, waiting on this thread for the account's interval when what is left of it is
    within one tick; otherwise, or after ``INTERVAL_TRIES``, the delivery waits in ``retry_wait``."""
    spacing, tries = settings.account_min_interval, 1
    while True:
        try:
            return _begin(delivery_id, celery_id, settings, utcnow())
        except _TooSoon:
            with session_scope() as s:
                now = utcnow()
                left = deliveries.interval_left(s, delivery_id, now, spacing)
                if left > settings.tick_interval or tries == INTERVAL_TRIES:
                    return deliveries.space_out(s, delivery_id, now, left, spacing)
        time.sleep(left)
        tries += 1


def _begin(delivery_id: int, celery_id: str | None, settings: Settings, now: datetime) -> Job | str:
    """Start the attempt: two statements in one transaction on the fast path (the compare-and-set
    that starts it, then its account's start time with the account and the story). The rate gate was
    taken at the claim; the account's least interval is kept here too, for messages that came late:
    raises :class:`_TooSoon`, with nothing changed, when it has not passed."""
    spacing = settings.account_min_interval
    with connection_scope() as c:
        lease = deliveries.start(c, delivery_id, now, settings.lease_seconds, celery_id)
        if lease is not None:
            row = c.execute(_TAKE_ACCOUNT[spacing > 0], {
                "account_id": lease.account_id, "story_id": lease.story_id, "now": now,
                "spaced_from": now - timedelta(seconds=spacing)}).first()
            if row is None:
                raise _TooSoon  # and the start is rolled back with its transaction
            caps = adapter_class(row.platform).caps
            first_at = lease.first_attempt_at or now

            def earlier_in_doubt() -> bool:
                # A first attempt has no earlier attempt that could have been lost.
                t = Attempt.__table__.c
                return lease.attempt > 1 and c.scalar(select(t.id).where(
                    t.delivery_id == delivery_id, t.number < lease.attempt,
                    t.outcome.in_(("lease_expired", "maybe_sent"))).limit(1)) is not None

            lookup = retry_policy.lookup_first(
                caps, lease.remote_state, earlier_in_doubt=caps.idempotent and caps.can_find
                and earlier_in_doubt(), first_attempt_at=first_at, now=now)
    if lease is None:
        # Off the fast path: nothing was changed above, so this may be a transaction of its own.
        with session_scope() as s:
            return deliveries.why_not_started(s, delivery_id, now)
    return Job(
        lease=lease,
        account=to_ref(row),
        version=row.credentials_version,
        post=post_of(row, first_at, lease.text),
        key=f"cp{delivery_id}-{lease.key}",
        first_attempt_at=first_at,
        lookup_first=lookup,
        progress=Progress(lease.remote_state, _saver(lease)),
    )


def publish_delivery(delivery_id: int, celery_id: str | None = None) -> str:
    """Make one attempt at ``delivery_id``; return what happened (for logs and tests)."""
    settings = get_settings()
    job = _start(delivery_id, celery_id, settings)
    if isinstance(job, str):
        return job
    adapter = get_adapter(job.account.platform, timeout=settings.http_timeout)
    secrets = job.account.credentials.secrets()
    with heartbeat.holding(job.lease):
        try:
            outcome = _attempt(adapter, job, settings)
        except DBAPIError as exc:
            # A progress save or fence met a database outage: not the adapter's fault. What was saved
            # (a fence up, or none) tells the retry policy whether a create may be in flight.
            log.warning("delivery %s: database error while saving progress: %s", delivery_id,
                        type(exc.orig or exc).__name__)
            error = Transient(f"{job.account.platform}: progress could not be saved (database error)",
                              maybe_sent=True)
            outcome = _record_failure(job, error, settings)
        except Exception as exc:  # a bug in an adapter must not leave the lease to expire silently
            # The traceback quotes arguments and locals' reprs: scrub it like any error text.
            log.error("delivery %s: adapter %s crashed\n%s", delivery_id, job.account.platform,
                      scrub(traceback.format_exc(), secrets))
            error = Transient(f"{job.account.platform}: internal error {type(exc).__name__}: "
                              f"{scrub(str(exc), secrets)}", maybe_sent=True)
            outcome = _record_failure(job, error, settings)
    if outcome not in NEEDS_A_PERSON:  # those were logged with their reason where they were decided
        log.info("delivery %s to %s:%s: %s", delivery_id, job.account.platform, job.account.handle, outcome)
    return outcome


def _attempt(adapter: Adapter, job: Job, settings: Settings) -> str:
    try:
        return _record_success(job, _publish_with_refresh(adapter, job))
    except AdapterError as error:
        return _record_failure(job, error, settings)


def _publish_with_refresh(adapter: Adapter, job: Job) -> Published:
    try:
        return _publish(adapter, job)
    except AuthExpired:
        job.account.credentials = refresh_credentials(adapter, job.account, job.version)
        return _publish(adapter, job)


class Undecidable(AdapterError):
    """An earlier attempt may have posted, and the platform will not let us look: an operator decides."""


def _publish(adapter: Adapter, job: Job) -> Published:
    if job.lookup_first:
        try:
            found = adapter.find_published(job.account, job.post, job.key, job.progress)
        except Rejected as exc:  # e.g. an API tier without timeline reads
            raise Undecidable(f"{exc.reason}; cannot tell whether an earlier attempt posted",
                              status=exc.status) from None
        if found is not None:
            return found
    return adapter.publish(job.account, job.post, job.key, job.progress)


def _record_success(job: Job, result: Published) -> str:
    with connection_scope() as c:
        ok = deliveries.published(c, job.lease, utcnow(), remote_id=result.remote_id, url=result.url,
                                  published_at=result.published_at)
    return "published" if ok else "published-late"


# Outcomes an operator must act on: logged at WARNING with the platform's reason.
NEEDS_A_PERSON = ("failed", "unknown", "blocked_auth")


def _record_failure(job: Job, error: AdapterError, settings: Settings) -> str:
    outcome = _decide_failure(job, error, settings)
    if outcome in NEEDS_A_PERSON:
        log.warning("delivery %s to %s:%s: %s: %s", job.lease.delivery_id, job.account.platform,
                    job.account.handle, outcome, scrub(error.reason, job.account.credentials.secrets())[:500])
    return outcome


def _decide_failure(job: Job, error: AdapterError, settings: Settings) -> str:
    now = utcnow()
    reason = scrub(error.reason, job.account.credentials.secrets())[:2000]
    status = error.status
    lease = job.lease
    with session_scope() as s:
        if isinstance(error, RefreshBusy):
            deliveries.retry_later(s, lease, now, due_at=now + REFRESH_WAIT, reason=reason,
                                   outcome="deferred", spend=False, max_attempts=settings.max_attempts)
            return "deferred"
        if isinstance(error, RateLimited):
            until = now + timedelta(seconds=error.retry_after)
            scope = (ratelimit.app_scope(job.account.platform) if error.scope == "app"
                     else ratelimit.account_scope(job.account.id))
            ratelimit.block(s, scope, until)
            deliveries.retry_later(s, lease, now, due_at=until, reason=reason, outcome="rate_limited",
                                   spend=False, max_attempts=settings.max_attempts, http_status=status)
            return "rate_limited"
        if isinstance(error, InProgress):
            deliveries.retry_later(s, lease, now, due_at=now + timedelta(seconds=error.after), reason=reason,
                                   outcome="in_progress", spend=False, max_attempts=settings.max_attempts)
            return "in_progress"
        if isinstance(error, Undecidable):
            deliveries.unknown(s, lease, now, reason, status)
            return "unknown"
        if isinstance(error, AuthExpired):
            deliveries.block_auth(s, lease, job.account.id, now, reason, status)
            return "blocked_auth"
        if isinstance(error, Rejected):
            deliveries.fail(s, lease, now, reason, status)
            return "failed"
        maybe_sent = isinstance(error, Transient) and error.maybe_sent
        decision = policy(job.account.platform, job.progress.state, job.first_attempt_at, now,
                          in_doubt=maybe_sent)
        failures = _failures(s, lease) + 1
        spent = failures >= settings.max_attempts
        if decision.next is Next.UNKNOWN or (decision.next is Next.LOOKUP and spent):
            # A create may have landed and cannot be checked (or the budget for checking is spent):
            # that is for an operator, never "failed" and never a blind retry.
            deliveries.unknown(s, lease, now, f"{reason}; {decision.why}", status)
            return "unknown"
        delay = deliveries.backoff(failures, settings.backoff_base, settings.backoff_max)
        due = now + timedelta(seconds=delay)
        if decision.not_before is not None:
            due = max(due, decision.not_before)
        state = deliveries.retry_later(s, lease, now, due_at=due, reason=reason,
                                       outcome="maybe_sent" if maybe_sent else "transient", spend=True,
                                       max_attempts=settings.max_attempts, http_status=status)
        return state or "lost-lease"


def _failures(s: Session, lease: Lease) -> int:
    return s.scalar(select(Delivery.failures).where(Delivery.id == lease.delivery_id)) or 0
