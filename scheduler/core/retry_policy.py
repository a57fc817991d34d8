"""Retry safety: the one place that decides what may happen after a try whose outcome is in doubt.

A try is *in doubt* when a request that creates a post may have reached the platform without an
answer reaching us: the worker died while publishing (its lease ran out), or the adapter reported
``maybe_sent`` (a timeout after sending, a dropped connection, a gateway error). What the next try
may do then depends on four things only:

- the platform's capabilities: does it de-duplicate a create by our key (``idempotent``, for how
  long), can the post be looked up (``can_find``), how long until a created post shows up in reads
  (``visible_after``);
- the saved progress: the *fence* an adapter saves right before a create that the platform cannot
  de-duplicate, cleared by the next save (see :class:`adapters.base.Progress`), and whether the
  adapter says its saved progress settles the question (``resumable``);
- the attempt history: whether an earlier try of this delivery ended in doubt;
- the time: the idempotency window, and when an in-flight request must have landed.

The answers:

=========  ==============================================================================
retry      try again with the same key, continuing from the saved progress
lookup     look the post up first, not before the in-flight request must have landed and
           become visible (fence time + HTTP timeout + ``visible_after``), then continue
unknown    nobody can tell whether it went out: an operator decides
=========  ==============================================================================

``tests/test_retry_policy.py`` lists every combination and its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from adapters.base import FENCE, Capabilities


class Next(StrEnum):
    RETRY = "retry"
    LOOKUP = "lookup"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decision:
    next: Next
    why: str
    # For ``lookup``: the earliest time the lookup can be trusted.
    not_before: datetime | None = None


def fence_of(state: dict[str, Any] | None) -> tuple[str, datetime] | None:
    """The step and time of a create that was sent and has no saved answer, if the progress holds one."""
    marker = (state or {}).get(FENCE)
    if not isinstance(marker, dict):
        return None
    try:
        at = datetime.fromisoformat(str(marker.get("at")))
    except ValueError:
        return None
    return str(marker.get("step") or "post"), at if at.tzinfo else at.replace(tzinfo=UTC)


def within_key_window(caps: Capabilities, first_attempt_at: datetime | None, now: datetime) -> bool:
    """Whether the platform still honours the delivery's idempotency key."""
    if not caps.idempotent:
        return False
    window = caps.idempotent_for
    return window is None or first_attempt_at is None or now - first_attempt_at < window


def decide(caps: Capabilities, state: dict[str, Any] | None, *, in_doubt: bool,
           first_attempt_at: datetime | None, now: datetime, http_timeout: float,
           resumable: bool = False) -> Decision:
    """What the next try of a delivery may do after a try that failed or died."""
    if within_key_window(caps, first_attempt_at, now):
        return Decision(Next.RETRY, "the platform de-duplicates a repeat with the same key")
    if not in_doubt:
        return Decision(Next.RETRY, "the platform answered: nothing was created")
    fence = fence_of(state)
    if not caps.idempotent and fence is None:
        # Adapters of platforms without a key fence every create that can post: no fence, nothing sent.
        return Decision(Next.RETRY, "no create was in flight")
    if resumable:
        return Decision(Next.RETRY, "the saved progress settles what was created")
    if caps.can_find:
        sent_at = fence[1] if fence else now
        landed = sent_at + timedelta(seconds=http_timeout) + caps.visible_after
        return Decision(Next.LOOKUP, "a create may have landed; look it up once it would show",
                        not_before=max(now, landed))
    step = fence[0] if fence else "post"
    return Decision(Next.UNKNOWN, f"the {step} may or may not exist, and {_cannot_ask(caps)}")


def lookup_first(caps: Capabilities, state: dict[str, Any] | None, *, earlier_in_doubt: bool,
                 first_attempt_at: datetime | None, now: datetime) -> bool:
    """Whether a try must look the post up before publishing: an earlier try may have created it."""
    if not caps.can_find or within_key_window(caps, first_attempt_at, now):
        return False
    if fence_of(state) is not None:
        return True
    # Platforms with a key do not fence: past the key's window any earlier doubt needs a look.
    return caps.idempotent and earlier_in_doubt


def _cannot_ask(caps: Capabilities) -> str:
    if caps.idempotent:
        return "the platform's idempotency window has passed"
    return "the platform cannot be asked"
