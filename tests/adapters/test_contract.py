"""The contract every adapter keeps, run against every platform's stand-in from one table
(helpers_platforms.PLATFORMS): authentication, 401 then refresh, 429 with and without Retry-After,
5xx, timeouts, dropped and refused connections, redirects, credentials never in errors, the text limit
at its boundary and the media limits. What is particular to one platform stays in its own module.

"Was it sent?" follows DESIGN.md: a refusal in the platform's own words (4xx, and a 3xx, which is never
followed) is a definite answer; silence and 5xx on the request that creates the post mean maybe sent;
nothing a read does can have created a post.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from adapters import adapter_class
from adapters.base import FENCE, AccountRef, Adapter, Progress, Published
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.standins.base import Fault, Response, StandIn
from tests.adapters.helpers import account_on, fake, finish, unique
from tests.adapters.helpers_platforms import PLATFORMS, Answer, Platform

# Short, so the timeout cases are quick; every stand-in answers well within it.
TIMEOUT = 2.0


@dataclass
class Setup:
    row: Platform
    standin: StandIn
    adapter: Adapter
    account: AccountRef
    tmp: Path

    saved: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, account: AccountRef | None = None) -> Published:
        """Publish to the end, keeping every progress save (``saved``) to check the fence with."""
        return finish(self.adapter, account or self.account, self.row.post(self.tmp),
                      progress=Progress(saver=self.saved.append))

    def fence_up(self) -> bool:
        """Whether the last save left a create fenced: only silence may (DESIGN.md, the fence)."""
        return bool(self.saved) and FENCE in self.saved[-1]

    def secrets(self) -> list[str]:
        """What the platform's credentials model calls secret (ids and handles are not)."""
        return self.account.credentials.secrets(self.adapter.credentials_model)


def setup(row: Platform, standins: Callable[[str], StandIn], tmp: Path) -> Setup:
    standin = standins(row.name)
    standin.reset()
    adapter = adapter_class(row.name)(timeout=TIMEOUT)
    return Setup(row, standin, adapter, account_on(standin, row.name, row.handle(unique())), tmp)


@pytest.fixture(params=PLATFORMS, ids=str)
def case(request: pytest.FixtureRequest, standins: Callable[[str], StandIn],
         tmp_path: Path) -> Iterator[Setup]:
    made = setup(request.param, standins, tmp_path)
    yield made
    made.standin.reset()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the happy path and authentication -----------------------------------------------------------------
def test_publishes_and_reads_followers(case: Setup) -> None:
    published = case.publish()
    assert published.remote_id
    assert len(case.standin.posts()) >= 1
    assert case.adapter.followers(case.account) == 10


def test_requests_without_valid_credentials_are_refused(case: Setup) -> None:
    spoiled = case.account.credentials.merged(**{case.row.token: "spoiled-credential-value"})
    with pytest.raises(AuthExpired):  # a definite answer: the type says nothing was created
        case.publish(replace(case.account, credentials=spoiled))
    assert case.standin.posts() == []


def test_401_then_refresh(case: Setup) -> None:
    case.standin.inject(Fault(status=401, path=case.row.create_path, body=case.row.expired_body))
    with pytest.raises(AuthExpired) as err:
        case.publish()
    assert err.value.status == 401 and case.standin.posts() == []
    if not case.row.refreshable:
        with pytest.raises(AuthExpired):
            case.adapter.refresh(case.account)
        return
    case.row.ready_to_refresh(case.standin, case.account)
    fresh = case.adapter.refresh(case.account)
    assert fresh.get(case.row.token)
    assert finish(case.adapter, replace(case.account, credentials=fresh), case.row.post(case.tmp)).remote_id


# -- rate limits ---------------------------------------------------------------------------------------
def test_429_with_retry_after(case: Setup) -> None:
    case.standin.inject(Fault(status=429, retry_after=7, path=case.row.create_path))
    with pytest.raises(RateLimited) as err:
        case.publish()
    # A reset time in whole seconds may round up; Meta states its wait in whole minutes.
    unit = case.row.wait_unit
    assert 7 <= err.value.retry_after <= max(9, -(-7 // unit) * unit)
    assert case.standin.posts() == [] and not case.fence_up()


def test_429_without_retry_after(case: Setup) -> None:
    # The platform's own 429, less any Retry-After: the adapter still says "later", never "failed".
    own = case.standin.rate_limited

    def without(fault: Fault) -> Response:
        response = own(fault)
        response.headers = {k: v for k, v in response.headers.items() if k.lower() != "retry-after"}
        return response

    case.standin.rate_limited = without  # type: ignore[method-assign]
    try:
        case.standin.inject(Fault(status=429, path=case.row.create_path))
        with pytest.raises(RateLimited) as err:
            case.publish()
    finally:
        del case.standin.rate_limited
    assert err.value.retry_after > 0 and case.standin.posts() == []


# -- server errors and silence -------------------------------------------------------------------------
@pytest.mark.parametrize("fault", [
    Fault(status=500), Fault(status=503), Fault(delay=TIMEOUT + 1), Fault(drop=True),
], ids=["500", "503", "timeout", "dropped"])
def test_silence_or_5xx_on_the_create_may_have_sent(case: Setup, fault: Fault) -> None:
    case.standin.inject(replace(fault, path=case.row.create_path))
    with pytest.raises(Transient) as err:
        case.publish()
    assert err.value.maybe_sent is True
    # Where the platform cannot de-duplicate (no idempotency key) the fence stays up for the retry.
    assert case.fence_up() is not case.adapter.caps.idempotent


@pytest.mark.parametrize("fault", [
    Fault(status=500), Fault(delay=TIMEOUT + 1), Fault(drop=True),
], ids=["500", "timeout", "dropped"])
def test_silence_or_5xx_on_a_read_sent_nothing(case: Setup, fault: Fault) -> None:
    case.standin.inject(replace(fault, path=case.row.followers_path))
    with pytest.raises(Transient) as err:
        case.adapter.followers(case.account)
    assert err.value.maybe_sent is False


@pytest.mark.parametrize("call", ["publish", "followers"])
def test_connection_refused_was_not_sent(case: Setup, call: str) -> None:
    nowhere = replace(case.account, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Transient) as err:
        case.publish(nowhere) if call == "publish" else case.adapter.followers(nowhere)
    assert err.value.maybe_sent is False and "could not connect" in str(err.value)


# -- refusals: the platform's own words are a definite answer --------------------------------------------
@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_create_is_definite(case: Setup, status: int) -> None:
    case.standin.inject(Fault(status=status, path=case.row.create_path, body=case.row.error_body("refused")))
    with pytest.raises(Rejected) as err:
        case.publish()
    assert "refused" in str(err.value) and not case.fence_up() and case.standin.posts() == []


@pytest.mark.parametrize("fault, error", [
    (Fault(status=400), Rejected), (Fault(status=429, retry_after=7), RateLimited),
    (Fault(status=302, headers={"Location": "https://elsewhere.example/"}), Rejected),
], ids=["400", "429", "302"])
def test_a_refused_read_is_definite(case: Setup, fault: Fault, error: type[Exception]) -> None:
    body = case.row.error_body("refused") if fault.status == 400 else None
    case.standin.inject(replace(fault, path=case.row.followers_path, body=body))
    with pytest.raises(error) as err:
        case.adapter.followers(case.account)
    assert not getattr(err.value, "maybe_sent", False)


# -- redirects: a definite refusal, never followed -----------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(case: Setup, status: int) -> None:
    if status in case.row.not_redirects:
        pytest.skip(f"{status} is part of {case.row.name}'s own protocol there")
    # The Location points at the stand-in itself: following it would create the post.
    target = f"{case.standin.url}/elsewhere{case.row.create_path}"
    case.standin.inject(Fault(status=status, path=case.row.create_path, headers={"Location": target}))
    with pytest.raises(Rejected) as err:
        case.publish()
    assert err.value.status == status and not case.fence_up() and "redirect" in str(err.value)
    assert not any("/elsewhere" in r["path"] for r in case.standin.requests)


# -- credentials never in errors -----------------------------------------------------------------------
@pytest.mark.parametrize("status, call", [
    (400, "publish"), (401, "publish"), (403, "publish"), (429, "publish"), (503, "publish"),
    (403, "followers"), (500, "followers"), (400, "refresh"),
])
def test_credentials_never_appear_in_errors(case: Setup, status: int, call: str) -> None:
    """The platform echoes every secret back in its error text; no error, and nothing that prints the
    account, shows one."""
    if call == "refresh" and not case.row.refreshable:
        pytest.skip(f"{case.row.name} credentials are never refreshed: nothing is asked")
    secrets = case.secrets()
    assert secrets  # the stand-in issued secrets to hide
    path = {"publish": case.row.create_path, "followers": case.row.followers_path, "refresh": ""}[call]
    case.standin.inject(Fault(status=status, retry_after=1, path=path, times=3,
                              body=case.row.error_body(" ".join(secrets))))
    action = {"publish": case.publish, "followers": lambda: case.adapter.followers(case.account),
              "refresh": lambda: case.adapter.refresh(case.account)}[call]
    with pytest.raises(AdapterError) as err:
        action()
    if status == 400:  # the platform's words reach the operator, with the secrets masked
        assert "***" in str(err.value), err.value
    for secret in secrets:
        assert secret not in str(err.value) and secret not in repr(err.value)
        for shown in (repr(case.account), str(case.account), repr(case.account.credentials)):
            assert secret not in shown


# -- limits --------------------------------------------------------------------------------------------
def test_text_limit_at_the_boundary(case: Setup) -> None:
    limit = case.row.text_limit or case.adapter.caps.text_limit
    at, over = case.row.post(case.tmp, "a" * limit), case.row.post(case.tmp, "a" * (limit + 1))
    assert case.adapter.check(at) == []
    assert [p.field for p in case.adapter.check(over)] == ["text"]
    assert finish(case.adapter, case.account, at).remote_id
    # Past the check (as a changed limit would be), the stand-in refuses it on its own count.
    case.standin.reset()
    with pytest.raises(Rejected):
        finish(case.adapter, case.account, over)
    assert case.standin.posts() == []


def test_media_limits(case: Setup) -> None:
    caps = case.adapter.caps
    jpeg = replace(fake("image", "image/jpeg", 100_000, (1080, 1080)), url="https://media.example/a.jpg")
    too_many = (jpeg,) * (caps.max_images + 1)
    big_video = (fake("video", "video/mp4", caps.max_video_bytes + 1, (1080, 1920)),)
    for media in (too_many, big_video):
        problems = case.adapter.check(replace(case.row.post(case.tmp), media=media))
        assert "media" in [p.field for p in problems], (media, problems)
    if caps.max_images:
        assert "media" not in [p.field for p in case.adapter.check(
            replace(case.row.post(case.tmp), media=(jpeg,) * caps.max_images))]


# -- handles: what an operator types, as the account is stored -----------------------------------------
@pytest.mark.parametrize("row, typed, stored", [(row, typed, stored) for row in PLATFORMS
                                                 for typed, stored in row.handles],
                         ids=lambda v: repr(v) if isinstance(v, str) else str(v))
def test_handles_normalise(row: Platform, typed: str, stored: str | None) -> None:
    adapter = adapter_class(row.name)
    if stored is None:
        with pytest.raises(ValueError, match=rf"^{row.name}: handle"):
            adapter.normalize_handle(typed)
    else:
        assert adapter.normalize_handle(typed) == stored


# -- each platform's own words: its row's answers -----------------------------------------------------
def _answer_id(value: object) -> str:
    return value.name if isinstance(value, Platform) else f"{value[0].status}-{value[1].__name__}"  # type: ignore[index]


@pytest.mark.parametrize("row, answer", [(row, answer) for row in PLATFORMS for answer in row.answers],
                         ids=_answer_id)
def test_platform_answers(row: Platform, answer: Answer, standins: Callable[[str], StandIn],
                          tmp_path: Path) -> None:
    fault, error, maybe_sent = answer
    case = setup(row, standins, tmp_path)
    try:
        case.standin.inject(replace(fault, path=row.create_path))
        with pytest.raises(error) as err:
            case.publish()
        assert getattr(err.value, "maybe_sent", None) is maybe_sent
        # Only silence leaves the fence up, and only where the platform cannot de-duplicate.
        assert case.fence_up() is (bool(maybe_sent) and not case.adapter.caps.idempotent)
        case.standin.inject(replace(fault, path=row.followers_path))
        with pytest.raises(error) as err:
            case.adapter.followers(case.account)
        assert getattr(err.value, "maybe_sent", False) is False  # a read never sent anything
    finally:
        case.standin.reset()
