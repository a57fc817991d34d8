"""The retry-safety policy as a table: every combination of what the platform can do, what the saved
progress says, whether the try is in doubt, and the time, with the one answer each gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import PLATFORMS, adapter_class
from adapters.base import FENCE, Capabilities
from scheduler.core.retry_policy import Next, decide, fence_of, lookup_first

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TIMEOUT = 30.0
VISIBLE = timedelta(seconds=5)

KEYED = Capabilities(text_limit=500, idempotent=True, idempotent_for=timedelta(hours=1), can_find=True,
                     visible_after=VISIBLE)
KEYED_BLIND = Capabilities(text_limit=500, idempotent=True, idempotent_for=timedelta(hours=1))
FINDABLE = Capabilities(text_limit=500, can_find=True, visible_after=VISIBLE)
BLIND = Capabilities(text_limit=500)

FENCE_AT = NOW - timedelta(seconds=10)
FENCED = {FENCE: {"step": "post", "at": FENCE_AT.isoformat()}, "media": ["m1"]}
UNFENCED = {"media": ["m1"]}
IN_WINDOW = NOW - timedelta(minutes=10)
PAST_WINDOW = NOW - timedelta(hours=2)
LANDED = FENCE_AT + timedelta(seconds=TIMEOUT) + VISIBLE

# caps, progress, in doubt, first attempt, resumable -> answer, not_before
TABLE: list[tuple[str, Capabilities, dict[str, Any] | None, bool, datetime, bool, Next, datetime | None]] = [
    # A key the platform still honours settles everything.
    ("keyed, in window, in doubt", KEYED, None, True, IN_WINDOW, False, Next.RETRY, None),
    ("keyed, in window, fenced", KEYED, FENCED, True, IN_WINDOW, False, Next.RETRY, None),
    ("keyed blind, in window", KEYED_BLIND, None, True, IN_WINDOW, False, Next.RETRY, None),
    # A definite answer: nothing was created, whatever the platform.
    ("blind, answered", BLIND, FENCED, False, PAST_WINDOW, False, Next.RETRY, None),
    ("findable, answered", FINDABLE, FENCED, False, PAST_WINDOW, False, Next.RETRY, None),
    ("keyed, past window, answered", KEYED, None, False, PAST_WINDOW, False, Next.RETRY, None),
    # No fence on a platform without a key: no create that could post was in flight.
    ("blind, no fence", BLIND, UNFENCED, True, PAST_WINDOW, False, Next.RETRY, None),
    ("blind, no progress", BLIND, None, True, PAST_WINDOW, False, Next.RETRY, None),
    ("findable, no fence", FINDABLE, UNFENCED, True, PAST_WINDOW, False, Next.RETRY, None),
    # A fence: look it up once the request must have landed, or hand it to an operator.
    ("findable, fenced", FINDABLE, FENCED, True, PAST_WINDOW, False, Next.LOOKUP, LANDED),
    ("blind, fenced", BLIND, FENCED, True, PAST_WINDOW, False, Next.UNKNOWN, None),
    ("blind, fenced, progress settles it", BLIND, FENCED, True, PAST_WINDOW, True, Next.RETRY, None),
    # Past the key's window a keyed platform (which does not fence) is in doubt whenever the try is.
    ("keyed, past window, in doubt", KEYED, None, True, PAST_WINDOW, False, Next.LOOKUP,
     NOW + timedelta(seconds=TIMEOUT) + VISIBLE),
    ("keyed blind, past window, in doubt", KEYED_BLIND, None, True, PAST_WINDOW, False, Next.UNKNOWN, None),
    ("keyed blind, past window, resumable", KEYED_BLIND, None, True, PAST_WINDOW, True, Next.RETRY, None),
]


@pytest.mark.parametrize(("caps", "state", "in_doubt", "first_at", "resumable", "answer", "not_before"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_every_combination_has_one_answer(caps: Capabilities, state: dict[str, Any] | None, in_doubt: bool,
                                          first_at: datetime, resumable: bool, answer: Next,
                                          not_before: datetime | None) -> None:
    decision = decide(caps, state, in_doubt=in_doubt, first_attempt_at=first_at, now=NOW,
                      http_timeout=TIMEOUT, resumable=resumable)
    assert decision.next is answer, decision.why
    assert decision.not_before == not_before
    assert decision.why


def test_a_lookup_is_never_earlier_than_now() -> None:
    long_ago = {FENCE: {"step": "post", "at": (NOW - timedelta(hours=3)).isoformat()}}
    decision = decide(FINDABLE, long_ago, in_doubt=True, first_attempt_at=PAST_WINDOW, now=NOW,
                      http_timeout=TIMEOUT)
    assert decision.next is Next.LOOKUP and decision.not_before == NOW


def test_unknown_names_the_fenced_step() -> None:
    state = {FENCE: {"step": "thread part 3", "at": FENCE_AT.isoformat()}}
    decision = decide(BLIND, state, in_doubt=True, first_attempt_at=PAST_WINDOW, now=NOW,
                      http_timeout=TIMEOUT)
    assert decision.next is Next.UNKNOWN and "thread part 3" in decision.why


@pytest.mark.parametrize(("caps", "state", "earlier", "first_at", "expected"), [
    (FINDABLE, FENCED, False, PAST_WINDOW, True),
    (FINDABLE, UNFENCED, True, PAST_WINDOW, False),  # no fence: the earlier doubt created nothing
    (BLIND, FENCED, True, PAST_WINDOW, False),  # cannot look
    (KEYED, None, True, IN_WINDOW, False),  # the key settles it
    (KEYED, None, True, PAST_WINDOW, True),
    (KEYED, None, False, PAST_WINDOW, False),
])
def test_lookup_before_publishing(caps: Capabilities, state: dict[str, Any] | None, earlier: bool,
                                  first_at: datetime, expected: bool) -> None:
    assert lookup_first(caps, state, earlier_in_doubt=earlier, first_attempt_at=first_at, now=NOW) is expected


def test_a_malformed_fence_is_no_fence() -> None:
    assert fence_of({FENCE: {"step": "post", "at": "yesterday"}}) is None
    assert fence_of({FENCE: None}) is None
    assert fence_of(FENCED) == ("post", FENCE_AT)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_has_an_answer_for_a_dead_fenced_create(platform: str) -> None:
    """Each real platform's capabilities give a defined answer; none retries a fenced create blindly
    once its key (if any) has expired."""
    caps = adapter_class(platform).caps
    decision = decide(caps, FENCED, in_doubt=True, first_attempt_at=PAST_WINDOW, now=NOW,
                      http_timeout=TIMEOUT)
    if caps.idempotent and caps.idempotent_for is None:
        expected = Next.RETRY  # a key honoured forever (Bluesky's record key)
    else:
        expected = Next.LOOKUP if caps.can_find else Next.UNKNOWN
    assert decision.next is expected
