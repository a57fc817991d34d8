"""The delivery state machine.

Every transition is one conditional UPDATE on the delivery's state (and, once a worker owns it, on
its attempt number, which acts as the lease token), so two workers, a late worker and the reaper can
never both win. Nothing here talks to the network; callers commit.

    awaiting_approval -> scheduled -> queued -> publishing -> published
                            ^   ^        |          |-> retry_wait -> (queued again when due)
                            |   '--------'          |-> failed
                            |  (reaper: lost msg)   |-> blocked_auth
                            |                       '-> unknown
       any state before publishing -> cancelled
       scheduled, queued -> awaiting_approval (the story was edited after its approval)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, String, bindparam, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from scheduler.core import ratelimit
from scheduler.core.db import is_postgres
from scheduler.core.models import Account, Attempt, Delivery, RateGate, UTCDateTime
from scheduler.core.retry_policy import Decision, Next

# (platform, saved progress, first attempt time, now) -> what may happen next; see retry_policy.
Policy = Callable[[str, "dict[str, Any] | None", "datetime | None", datetime], Decision]

STATES = ("awaiting_approval", "scheduled", "queued", "publishing", "retry_wait", "published", "failed",
          "blocked_auth", "unknown", "cancelled")
DUE = ("scheduled", "retry_wait")
CANCELLABLE = ("awaiting_approval", "scheduled", "queued", "retry_wait", "blocked_auth")
# A success reported by the attempt that still holds this attempt number is recorded even if the reaper
# or an operator moved the delivery on meanwhile (gave up, or asked for it again): the post exists, and
# saying so prevents a second one. A success after a cancel, or after a newer attempt began, is kept on
# its attempt row as a possible duplicate (see ``possible_duplicates``).
LATE_SUCCESS = ("publishing", "retry_wait", "queued", "unknown", "failed", "scheduled")
TERMINAL = ("published", "failed", "cancelled")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "awaiting_approval": ("scheduled", "cancelled"),
    # An edit after approval sends a story's deliveries that have not started back to wait for it.
    "scheduled": ("queued", "cancelled", "published", "awaiting_approval"),
    "queued": ("publishing", "scheduled", "retry_wait", "cancelled", "published", "awaiting_approval"),
    "publishing": ("published", "retry_wait", "failed", "blocked_auth", "unknown"),
    "retry_wait": ("queued", "cancelled", "published"),
    "blocked_auth": ("scheduled", "cancelled"),
    "unknown": ("published", "scheduled"),
    "failed": ("scheduled", "published"),
    "published": (),
    "cancelled": (),
}


class IllegalTransition(Exception):
    """An operator asked for something the delivery's state does not allow."""


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it publishes: the delivery and the attempt number that is its token
    (and, for the attempt's row, when it began and which task ran it)."""

    delivery_id: int
    attempt: int
    started_at: datetime | None = field(default=None, compare=False)
    celery_id: str | None = field(default=None, compare=False)


def backoff(failures: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``failures`` transient failures: exponential, capped, with
    full jitter in the upper half so a burst of failures does not come back in step."""
    delay = min(cap, base * (2 ** max(0, failures - 1)))
    return delay / 2 + rng() * delay / 2


# -- tick ---------------------------------------------------------------------------------------
def claim_due(s: Session, now: datetime, limit: int) -> list[int]:
    """Mark up to ``limit`` due deliveries of active accounts ``queued``; return their ids."""
    return [delivery_id for delivery_id, _ in claim_due_by(s, now, limit)]


# Claims are serialised on PostgreSQL (SQLite's writes are already): two ticks reserving send times from
# the same gates at once would give two deliveries of one account the same time.
CLAIM_LOCK = 0x63726F7373  # "cross"


def claim_due_by(s: Session, now: datetime, limit: int, ahead: timedelta = timedelta(0),
                 spacing: float = 0.0) -> list[tuple[int, datetime]]:
    """Mark up to ``limit`` deliveries of active accounts due by ``now + ahead`` ``queued``; return
    each id with the time it may be sent.

    The tick claims one interval ahead and hands each delivery to the broker with that time as
    ``eta``, so a publish starts on time instead of up to a tick late; a cancel or retime meanwhile
    still wins, since the worker's start is a compare-and-set on ``queued``. With ``spacing`` (the
    least seconds between two posts of one account) the claim also takes the accounts' rate gates:
    each delivery gets a send time no earlier than its gate and ``spacing`` after the account's previous
    one (:func:`ratelimit.reserve`), only those that can go within the interval are claimed, and the
    gates move past them, so a waiting delivery is never handed out only to be deferred.
    """
    until = now + ahead
    if is_postgres(s):
        s.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
    gate, app = aliased(RateGate), aliased(RateGate)
    open_gates = (
        select(Delivery.id, Delivery.account_id, Delivery.due_at, gate.next_at, app.next_at.label("app_at"))
        .join(Account, Account.id == Delivery.account_id)
        .outerjoin(gate, gate.scope == literal("account:") + cast(Account.id, String))
        .outerjoin(app, app.scope == literal("app:") + Account.platform)
        .where(Delivery.state.in_(DUE), Delivery.due_at <= until, Account.status == "active",
               or_(gate.next_at.is_(None), gate.next_at <= until),
               or_(app.next_at.is_(None), app.next_at <= until))
    )
    if spacing > 0:
        # At most as many per account as its gate lets through within the interval; the window
        # function keeps one account's backlog from filling the batch while others wait.
        per_account = int(ahead.total_seconds() // spacing) + 1
        rank = func.row_number().over(partition_by=Delivery.account_id,
                                      order_by=(Delivery.due_at, Delivery.id))
        ranked = open_gates.add_columns(rank.label("rank")).subquery()
        candidates = s.execute(select(ranked.c.id, ranked.c.account_id, ranked.c.due_at, ranked.c.next_at,
                                      ranked.c.app_at)
                               .where(ranked.c.rank <= per_account)
                               .order_by(ranked.c.account_id, ranked.c.due_at, ranked.c.id)).all()
    else:
        candidates = s.execute(open_gates.order_by(Delivery.due_at).limit(limit)).all()
    # An account's deliveries wait for its own gate and for a block on its platform's app, whichever
    # opens later.
    gates = {account_id: max(at for at in (next_at, app_at) if at is not None)
             for _, account_id, _, next_at, app_at in candidates if next_at is not None or app_at is not None}
    # Spaced from now, not from due times already past: two overdue deliveries of one account would
    # otherwise both get a time gone by, and go together.
    times, _ = ratelimit.reserve([(d, a, max(due, now)) for d, a, due, *_ in candidates], gates, spacing,
                                 until)
    chosen = sorted(times, key=lambda d: times[d])[:limit]
    if not chosen:
        return []
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(chosen), Delivery.state.in_(DUE))
        .values(state="queued", queued_at=now, updated_at=now)
        .returning(Delivery.id, Delivery.account_id)
        .execution_options(synchronize_session=False)
    )
    claimed = s.execute(stmt).all()
    if spacing > 0:
        step = timedelta(seconds=spacing)
        last: dict[int, datetime] = {}
        for delivery_id, account_id in claimed:
            last[account_id] = max(last.get(account_id, times[delivery_id]), times[delivery_id])
        ratelimit.advance(s, {account_id: at + step for account_id, at in last.items()})
    return sorted(((delivery_id, times[delivery_id]) for delivery_id, _ in claimed), key=lambda r: r[1])


@dataclass
class Reaped:
    requeued: int = 0
    retried: int = 0
    unknown: int = 0
    failed: int = 0


def reap(s: Session, now: datetime, *, queued_timeout: float, max_attempts: int, policy: Policy) -> Reaped:
    """Recover what crashed workers and lost broker messages left behind.

    A live worker's heartbeat keeps its leases ahead of ``now``, so an expired lease means the worker
    died; ``policy`` (:func:`scheduler.core.retry_policy.decide` for the platform) says whether the next
    try may simply continue, must first look the post up (and from when), or cannot be made safely.
    """
    result = Reaped()
    lost = s.execute(
        update(Delivery)
        .where(Delivery.state == "queued", Delivery.queued_at < now - timedelta(seconds=queued_timeout))
        .values(state="scheduled", queued_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result.requeued = lost.rowcount or 0
    expired = s.execute(
        select(Delivery.id, Delivery.attempts, Delivery.failures, Delivery.first_attempt_at, Account.platform,
               Delivery.remote_state, Delivery.updated_at)
        .join(Account, Account.id == Delivery.account_id)
        .where(Delivery.state == "publishing", Delivery.lease_until < now)
        .limit(1000)
    ).all()
    for delivery_id, attempt, failures, first_at, platform, state, started_at in expired:
        # ``start`` set updated_at and nothing but an outcome changes it while publishing.
        lease = Lease(delivery_id, attempt, started_at=started_at)
        reason = "lease expired: the worker stopped while publishing"
        decision = policy(platform, state, first_at, now)
        spent = {"failures": Delivery.failures + 1}
        if decision.next is Next.UNKNOWN or (decision.next is Next.LOOKUP and failures + 1 >= max_attempts):
            why = decision.why if decision.next is Next.UNKNOWN else "attempts used up; " + decision.why
            if _finish(s, lease, now, "unknown", reason=f"{reason}; {why}", outcome="lease_expired"):
                result.unknown += 1
            continue
        if failures + 1 >= max_attempts:
            if _finish(s, lease, now, "failed", reason=f"{reason}; attempts used up ({decision.why})",
                       outcome="lease_expired", extra=spent):
                result.failed += 1
            continue
        if _finish(s, lease, now, "retry_wait", reason=f"{reason}; {decision.why}", outcome="lease_expired",
                   extra={"due_at": decision.not_before or now, **spent}):
            result.retried += 1
    return result


# -- a worker's attempt -------------------------------------------------------------------------
@dataclass(frozen=True)
class Started(Lease):
    """The lease of a started attempt, with all the worker needs of the delivery: what the statement
    that starts it returns."""

    story_id: int = field(default=0, compare=False)
    account_id: int = field(default=0, compare=False)
    key: str = field(default="", compare=False)
    first_attempt_at: datetime | None = field(default=None, compare=False)
    remote_state: dict[str, Any] | None = field(default=None, compare=False)
    text: str | None = field(default=None, compare=False)


def _start_statement() -> Any:
    # Built once with bound parameters and run on the Core table: a publish pays neither the statement's
    # construction nor the ORM's bulk-update machinery (a fifth of its CPU, bench/RESULTS.md).
    d, a, g = Delivery.__table__.c, Account.__table__.c, RateGate.__table__.c
    now = bindparam("now", type_=UTCDateTime())
    blocked = (select(g.scope)
               .where(g.scope.in_((literal(ratelimit.BLOCKED + "account:") + cast(a.id, String),
                                   literal("app:") + a.platform)), g.next_at > now))
    return (
        update(Delivery.__table__)
        .where(d.id == bindparam("delivery_id"), d.state == "queued", d.due_at <= now,
               d.account_id.in_(select(a.id).where(a.status == "active", ~blocked.exists())))
        .values(state="publishing", attempts=d.attempts + 1,
                lease_until=bindparam("lease_until", type_=UTCDateTime()),
                first_attempt_at=func.coalesce(d.first_attempt_at, now), updated_at=now)
        .returning(d.attempts, d.story_id, d.account_id, d.key, d.first_attempt_at, d.remote_state, d.text)
    )


_START = _start_statement()


def _connection(s: Session | Connection) -> Connection:
    return s.connection() if isinstance(s, Session) else s


def start(s: Session | Connection, delivery_id: int, now: datetime, lease_seconds: float,
          celery_id: str | None = None) -> Started | None:
    """``queued -> publishing`` in one statement; None if the delivery is not queued (a duplicate
    message, or cancelled), not yet due, its account stopped being active since the claim (see
    ``hold_for_account``), or a Retry-After came for the account or its platform since the claim
    (see ``why_not_started``). The attempt's row is written with its outcome, not here."""
    row = _connection(s).execute(_START, {"delivery_id": delivery_id, "now": now,
                                          "lease_until": now + timedelta(seconds=lease_seconds)}).first()
    if row is None:
        return None
    attempt, story_id, account_id, key, first_at, state, text = row
    return Started(delivery_id, attempt, now, celery_id, story_id, account_id, key, first_at, state, text)


def why_not_started(s: Session, delivery_id: int, now: datetime) -> str:
    """After ``start`` refused a delivery: put it where it belongs and say what happened. Paid only
    off the fast path, so ``start`` can stay one statement."""
    row = s.execute(select(Delivery.state, Delivery.due_at, Account.id, Account.platform, Account.status)
                    .join(Account, Account.id == Delivery.account_id)
                    .where(Delivery.id == delivery_id)).first()
    if row is None or row[0] != "queued":
        return "skipped"  # a duplicate message, or the delivery was cancelled or retimed
    _, due_at, account_id, platform, status = row
    if status != "active":
        return hold_for_account(s, delivery_id, now) or "skipped"
    if due_at > now:
        # Handed out ahead with an eta, and this worker's clock is behind the beat's: never early.
        defer(s, delivery_id, now, due_at, "handed out before its time")
        return "deferred"
    until = s.scalar(select(func.max(RateGate.next_at)).where(
        RateGate.scope.in_((ratelimit.blocked_scope(account_id), ratelimit.app_scope(platform))),
        RateGate.next_at > now))
    if until is not None:
        defer(s, delivery_id, now, until, "the platform asked to wait (Retry-After)")
        return "deferred"
    return "skipped"  # the row changed between the two statements; whoever changed it owns it


def interval_left(s: Session, delivery_id: int, now: datetime, spacing: float) -> float:
    """Seconds until ``spacing`` has passed since the newest attempt on the delivery's account began."""
    last = s.scalar(select(Account.last_started_at).join(Delivery, Delivery.account_id == Account.id)
                    .where(Delivery.id == delivery_id))
    return 0.0 if last is None else max(0.0, (last - now).total_seconds() + spacing)


def space_out(s: Session, delivery_id: int, now: datetime, left: float, spacing: float) -> str:
    """After starts found the account's previous attempt less than ``spacing`` seconds old (messages of
    one account that came late together): wait in ``retry_wait`` the ``left`` seconds of the interval
    (:func:`interval_left`)."""
    until = now + timedelta(seconds=left)
    if defer(s, delivery_id, now, until, f"the account's previous publish started less than "
                                         f"ACCOUNT_MIN_INTERVAL ({spacing:g} s) before"):
        return "deferred"
    return "skipped"  # cancelled or retimed meanwhile


def hold_for_account(s: Session, delivery_id: int, now: datetime) -> str | None:
    """A queued delivery whose account is no longer active goes back to wait for it: ``blocked_auth``
    until a re-authorisation, ``scheduled`` while paused (the claim skips paused accounts). Returns
    the new state, or None if the delivery was not queued or its account is active."""
    status = s.scalar(select(Account.status).join(Delivery, Delivery.account_id == Account.id)
                      .where(Delivery.id == delivery_id, Delivery.state == "queued"))
    if status is None or status == "active":
        return None
    state = "blocked_auth" if status == "auth_broken" else "scheduled"
    changed = s.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == "queued")
        .values(state=state, queued_at=None, updated_at=now, last_error=f"the account is {status}")
        .execution_options(synchronize_session=False)
    ).rowcount
    return state if changed else None


def defer(s: Session, delivery_id: int, now: datetime, due_at: datetime, reason: str) -> bool:
    """``queued -> retry_wait`` before any attempt: a rate gate is closed, so come back at ``due_at``."""
    return bool(s.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == "queued")
        .values(state="retry_wait", due_at=due_at, last_error=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount)


ATTEMPT_FIELDS = ("outcome", "http_status", "error", "remote_id", "url")


@lru_cache(maxsize=4)
def _attempt_statement(dialect: str, answer: bool) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Attempt.__table__)
    keys = ["delivery_id", "number"]
    if not answer:
        return stmt.on_conflict_do_nothing(index_elements=keys)
    c = Attempt.__table__.c
    # An answer keeps what the first close wrote (its end, its error) and adds the post it created.
    return stmt.on_conflict_do_update(index_elements=keys, set_={
        "outcome": stmt.excluded.outcome, "remote_id": stmt.excluded.remote_id, "url": stmt.excluded.url,
        "http_status": stmt.excluded.http_status,
        "celery_id": func.coalesce(c.celery_id, stmt.excluded.celery_id)})


def _attempt_row(s: Session | Connection, lease: Lease, now: datetime, values: dict[str, Any],
                 answer: bool = False) -> None:
    """Write the attempt's row, once it has an outcome. The first outcome written stays (the reaper's
    ``lease_expired`` is not overwritten by the dead worker's late failure), except that an answer
    from the platform (``answer``: a post it created) is always kept on it."""
    row = {"delivery_id": lease.delivery_id, "number": lease.attempt, "started_at": lease.started_at or now,
           "celery_id": lease.celery_id, "ended_at": now, **dict.fromkeys(ATTEMPT_FIELDS), **values}
    conn = _connection(s)
    conn.execute(_attempt_statement(conn.dialect.name, answer), row)


def _close_attempt(s: Session, lease: Lease, now: datetime, outcome: str, http_status: int | None,
                   error: str | None) -> None:
    _attempt_row(s, lease, now, {"outcome": outcome, "http_status": http_status, "error": error})


def _record_answer(s: Session | Connection, lease: Lease, now: datetime, outcome: str, remote_id: str,
                   url: str | None, http_status: int | None) -> None:
    # Whatever became of the delivery, and even if the reaper closed this attempt already: a post the
    # platform created must stay findable on the attempt that created it.
    _attempt_row(s, lease, now, {"outcome": outcome, "remote_id": remote_id, "url": url,
                                 "http_status": http_status}, answer=True)


def _finish(s: Session, lease: Lease, now: datetime, state: str, *, reason: str | None, outcome: str,
            http_status: int | None = None, extra: dict[str, Any] | None = None) -> bool:
    changed = s.execute(
        update(Delivery)
        .where(Delivery.id == lease.delivery_id, Delivery.attempts == lease.attempt,
               Delivery.state == "publishing")
        .values(state=state, lease_until=None, last_error=reason, updated_at=now, **(extra or {}))
        .execution_options(synchronize_session=False)
    ).rowcount
    _close_attempt(s, lease, now, outcome, http_status, reason)
    return bool(changed)


def _published_statement() -> Any:
    d = Delivery.__table__.c
    now = bindparam("now", type_=UTCDateTime())
    return (update(Delivery.__table__)
            .where(d.id == bindparam("delivery_id"), d.attempts == bindparam("attempt"),
                   d.state.in_(LATE_SUCCESS))
            .values(state="published", lease_until=None, last_error=None, updated_at=now,
                    remote_id=bindparam("remote_id"), published_url=bindparam("url"),
                    published_at=bindparam("published_at", type_=UTCDateTime())))


_PUBLISHED = _published_statement()


def published(s: Session | Connection, lease: Lease, now: datetime, *, remote_id: str, url: str | None,
              published_at: datetime | None = None, http_status: int | None = None) -> bool:
    """Record a success. False when the delivery had moved on (cancelled, or a newer attempt began):
    the post is then kept on its attempt as a possible duplicate, with its id and link."""
    changed = bool(_connection(s).execute(_PUBLISHED, {
        "delivery_id": lease.delivery_id, "attempt": lease.attempt, "now": now, "remote_id": remote_id,
        "url": url, "published_at": published_at or now}).rowcount)
    _record_answer(s, lease, now, "published" if changed else "late_success", remote_id, url, http_status)
    return changed


def possible_duplicates(s: Session, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Posts that attempts created besides the delivery's own: successes that came after a cancel or
    after another attempt had begun. Each with its attempt number, remote id and link."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not delivery_ids:
        return found
    rows = s.execute(
        select(Attempt.delivery_id, Attempt.number, Attempt.remote_id, Attempt.url, Attempt.ended_at)
        .where(Attempt.delivery_id.in_(delivery_ids), Attempt.outcome == "late_success")
        .order_by(Attempt.delivery_id, Attempt.number)
    ).all()
    for delivery_id, number, remote_id, url, ended_at in rows:
        found.setdefault(delivery_id, []).append(
            {"attempt": number, "remote_id": remote_id, "url": url, "at": ended_at})
    return found


def retry_later(s: Session, lease: Lease, now: datetime, *, due_at: datetime, reason: str,
                outcome: str, spend: bool, max_attempts: int, http_status: int | None = None) -> str | None:
    """``publishing -> retry_wait`` (or ``failed`` once a spent attempt exhausts the budget).
    ``spend`` is false for waits the platform asked for (rate limits): they cost no attempt."""
    spent = 1 if spend else 0
    row = s.execute(
        update(Delivery)
        .where(Delivery.id == lease.delivery_id, Delivery.attempts == lease.attempt,
               Delivery.state == "publishing")
        .values(
            state=case((Delivery.failures + spent >= max_attempts, "failed"), else_="retry_wait"),
            failures=Delivery.failures + spent,
            due_at=due_at,
            lease_until=None,
            last_error=reason,
            updated_at=now,
        )
        .returning(Delivery.state)
        .execution_options(synchronize_session=False)
    ).first()
    _close_attempt(s, lease, now, outcome, http_status, reason)
    return row[0] if row else None


def fail(s: Session, lease: Lease, now: datetime, reason: str, http_status: int | None = None) -> bool:
    return _finish(s, lease, now, "failed", reason=reason, outcome="rejected", http_status=http_status)


def unknown(s: Session, lease: Lease, now: datetime, reason: str, http_status: int | None = None) -> bool:
    return _finish(s, lease, now, "unknown", reason=reason, outcome="unknown", http_status=http_status)


def block_auth(s: Session, lease: Lease, account_id: int, now: datetime, reason: str,
               http_status: int | None = None) -> bool:
    """``publishing -> blocked_auth`` and the account ``auth_broken`` until an operator re-authorises.
    Only the attempt that still holds the lease may stop the account: a stale one changes nothing."""
    if not _finish(s, lease, now, "blocked_auth", reason=reason, outcome="auth_failed",
                   http_status=http_status):
        return False
    s.execute(update(Account).where(Account.id == account_id, Account.status != "removed")
              .values(status="auth_broken", status_reason=reason))
    return True


# -- operators ------------------------------------------------------------------------------------
def _operator(s: Session, delivery_id: int, now: datetime, allowed: tuple[str, ...], action: str,
              values: dict[str, Any]) -> None:
    changed = s.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state.in_(allowed))
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        return
    state = s.scalar(select(Delivery.state).where(Delivery.id == delivery_id))
    if state is None:
        raise IllegalTransition(f"delivery {delivery_id} does not exist")
    raise IllegalTransition(
        f"delivery {delivery_id} is {state}; {action} needs it to be {' or '.join(allowed)}")


def cancel(s: Session, delivery_id: int, now: datetime) -> None:
    _operator(s, delivery_id, now, CANCELLABLE, "cancel", {"state": "cancelled", "lease_until": None})


def retry_failed(s: Session, delivery_id: int, now: datetime) -> None:
    """An operator's ``deliveries retry``: a failed delivery is due again with a fresh budget."""
    _operator(s, delivery_id, now, ("failed",), "retry",
              {"state": "scheduled", "due_at": now, "failures": 0, "last_error": None})


def resolve_published(s: Session, delivery_id: int, now: datetime, url: str) -> None:
    """The operator checked: the post of an ``unknown`` delivery did go out, at ``url``."""
    _operator(s, delivery_id, now, ("unknown",), "resolve --published",
              {"state": "published", "published_url": url, "published_at": now, "last_error": None})


def resolve_republish(s: Session, delivery_id: int, now: datetime) -> None:
    """The operator checked: the post of an ``unknown`` delivery did not go out; publish it again."""
    _operator(s, delivery_id, now, ("unknown",), "resolve --republish",
              {"state": "scheduled", "due_at": now, "last_error": None})


def unblock_account(s: Session, account_id: int, now: datetime) -> int:
    """After re-authorisation: every ``blocked_auth`` delivery of the account is due again."""
    return s.execute(
        update(Delivery)
        .where(Delivery.account_id == account_id, Delivery.state == "blocked_auth")
        .values(state="scheduled", due_at=now, updated_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
