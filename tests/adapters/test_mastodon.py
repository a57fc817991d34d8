"""The Mastodon adapter against the Mastodon stand-in (a real local HTTP server), and the stand-in's
own strictness. Each table row: what the stand-in is told or sent, what we expect back."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapters.base import AccountRef, Credentials, Post, Published
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.http import parse_reset
from adapters.mastodon import MastodonAdapter
from adapters.standins.base import Fault
from adapters.standins.mastodon import MastodonStandIn

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
LINK = "https://news.example.com/2026/11/28/a-rather-long-story-slug-for-the-front-page?utm_source=x"
_handles = itertools.count(1)


@pytest.fixture(scope="module")
def standin() -> MastodonStandIn:
    server = MastodonStandIn().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(standin: MastodonStandIn) -> None:
    standin.reset()


@pytest.fixture
def adapter() -> MastodonAdapter:
    return MastodonAdapter()


def make_account(standin: MastodonStandIn, followers: int = 10, **kwargs: Any) -> AccountRef:
    handle = f"newsroom{next(_handles)}"
    return AccountRef(id=1, platform="mastodon", handle=handle, base_url=standin.url,
                      credentials=Credentials(standin.add_account(handle, followers=followers, **kwargs)))


@pytest.fixture
def account(standin: MastodonStandIn) -> AccountRef:
    return make_account(standin)


def token(account: AccountRef) -> str:
    return account.credentials.require("access_token", "mastodon")


def unique_post(text: str = "Council approves the new tram line", link: str | None = LINK,
                created_at: datetime | None = WHEN) -> Post:
    return Post(text=f"{text} ({next(_handles)})", link=link, created_at=created_at)


# -- check ---------------------------------------------------------------------------------------
CHECKS = [
    # (case, text, link, problems)
    ("fits: a link counts 23 whatever its length", "a" * 475, LINK, []),
    ("one over the limit", "a" * 476, LINK, ["mastodon: text: is 501 characters long; the limit is 500"]),
    ("an emoji family is one character", "👨‍👩‍👧" * 500, None, []),
    ("skin-toned emoji counted as graphemes", "👍🏽" * 501, None,
     ["mastodon: text: is 501 characters long; the limit is 500"]),
    ("a remote mention counts as its local part", "@ed@" + "d" * 200 + ".org " + "a" * 495, None, []),
    ("empty story", "   ", None, ["mastodon: text: is empty"]),
]


@pytest.mark.parametrize(("case", "text", "link", "problems"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(adapter: MastodonAdapter, case: str, text: str, link: str | None, problems: list[str]) -> None:
    found = adapter.check(Post(text=text, link=link, created_at=WHEN))
    assert [str(p) for p in found] == problems
    assert all(p.platform == "mastodon" and p.field == "text" for p in found)


def test_caps_declare_idempotency_for_an_hour(adapter: MastodonAdapter) -> None:
    assert adapter.caps.idempotent and adapter.caps.idempotent_for == timedelta(hours=1)
    assert adapter.caps.can_find and adapter.caps.text_limit == 500


# -- publish ---------------------------------------------------------------------------------------
def test_publish_sends_status_with_key(standin: MastodonStandIn, adapter: MastodonAdapter,
                                       account: AccountRef) -> None:
    post = unique_post()
    published = adapter.publish(account, post, "d42-6f1c")

    [created] = standin.posts("status")
    assert created.key == "d42-6f1c"
    assert created.data["account"] == account.handle
    assert created.data["text"] == post.body
    assert created.data["visibility"] == "public"
    assert created.data["format"] == "json"
    assert created.data["user_agent"].startswith("crosspost/")
    assert published == Published(remote_id=created.id, url=f"{standin.url}/@{account.handle}/{created.id}",
                                  published_at=published.published_at)
    assert published.published_at is not None and published.published_at.tzinfo is not None
    assert standin.requests[-1]["method"] == "POST" and standin.requests[-1]["path"] == "/api/v1/statuses"


def test_same_key_returns_the_original_status(standin: MastodonStandIn, adapter: MastodonAdapter,
                                              account: AccountRef) -> None:
    post = unique_post()
    first = adapter.publish(account, post, "d7-a")
    again = adapter.publish(account, post, "d7-a")
    assert again.remote_id == first.remote_id
    assert len(standin.posts("status")) == 1 and standin.duplicates() == 0


def test_key_forgotten_after_the_idempotency_window(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                    account: AccountRef) -> None:
    # Why caps.idempotent_for is one hour: past it, the same key posts again.
    standin.idempotency_ttl = 0
    post = unique_post()
    first = adapter.publish(account, post, "d8-a")
    assert adapter.publish(account, post, "d8-a").remote_id != first.remote_id
    assert standin.duplicates() == 1


def test_dropped_after_commit_then_retry_is_not_a_double_post(standin: MastodonStandIn,
                                                              adapter: MastodonAdapter,
                                                              account: AccountRef) -> None:
    standin.inject(Fault(commit=True, drop=True, path="/api/v1/statuses"))
    post = unique_post()
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d9-a")
    assert err.value.maybe_sent
    [created] = standin.posts("status")
    assert adapter.publish(account, post, "d9-a").remote_id == created.id
    assert standin.duplicates() == 0


# (case, faults, error type, expected attributes, statuses created)
FAULTS: list[tuple[str, list[Fault], type[AdapterError], dict[str, Any], int]] = [
    ("429 with Retry-After", [Fault(status=429, retry_after=7)], RateLimited,
     {"retry_after": 7.0, "scope": "account", "status": 429}, 0),
    ("503", [Fault(status=503, body={"error": "Service Unavailable"})], Transient,
     {"maybe_sent": True, "status": 503}, 0),
    ("502 from the proxy", [Fault(status=502)], Transient, {"maybe_sent": True, "status": 502}, 0),
    ("404 instance path gone", [Fault(status=404, body={"error": "Record not found"})], Rejected,
     {"status": 404}, 0),
    ("410 account gone", [Fault(status=410, body={"error": "Gone"})], Rejected, {"status": 410}, 0),
    ("dropped before an answer", [Fault(drop=True)], Transient, {"maybe_sent": True, "status": None}, 0),
    ("dropped after the post was made", [Fault(drop=True, commit=True)], Transient,
     {"maybe_sent": True}, 1),
]


@pytest.mark.parametrize(("case", "faults", "error", "attrs", "created"), FAULTS, ids=[f[0] for f in FAULTS])
def test_publish_faults(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                        faults: list[Fault], error: type[AdapterError], attrs: dict[str, Any],
                        created: int) -> None:
    standin.inject(*faults)
    with pytest.raises(error) as err:
        adapter.publish(account, unique_post(), "d1-fault")
    assert type(err.value) is error
    assert {k: getattr(err.value, k) for k in attrs} == attrs
    assert str(err.value).startswith("mastodon: ")
    assert len(standin.posts("status")) == created


def test_rate_limit_without_retry_after_uses_iso_reset(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                       account: AccountRef) -> None:
    # Mastodon's own throttle answer carries only X-RateLimit-Reset, an ISO-8601 time.
    standin.retry_after_header = False
    standin.inject(Fault(status=429, retry_after=300))
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, unique_post(), "d2-rl")
    assert 290 <= err.value.retry_after <= 300
    assert "Too many requests" in str(err.value)


def test_timeout_is_transient_maybe_sent(standin: MastodonStandIn, account: AccountRef) -> None:
    standin.inject(Fault(delay=1.0, commit=True))
    with pytest.raises(Transient) as err:
        MastodonAdapter(timeout=0.2).publish(account, unique_post(), "d3-slow")
    assert err.value.maybe_sent and "timed out" in str(err.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("call", ["publish", "followers"])
def test_connection_refused_was_not_sent(adapter: MastodonAdapter, account: AccountRef, call: str) -> None:
    nowhere = replace(account, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Transient) as err:
        if call == "publish":
            adapter.publish(nowhere, unique_post(), "d4-x")
        else:
            adapter.followers(nowhere)
    assert err.value.maybe_sent is False and "could not connect" in str(err.value)


# -- what the instance itself refuses ---------------------------------------------------------------
def _lower_limit(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.max_characters = 100
    return a


def _disabled(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.disable(a.handle)
    return a


def _revoked(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.revoke(token(a))
    return a


# (case, setup, post, error type, status, words in the message)
REFUSALS: list[tuple[str, Callable[[MastodonStandIn, AccountRef], AccountRef], Post, type[AdapterError],
                     int | None, str]] = [
    ("instance limit below 500", _lower_limit, Post(text="b" * 150, created_at=WHEN), Rejected, 422,
     "Text character limit of 100 exceeded"),
    ("blank text", lambda s, a: a, Post(text="  ", created_at=WHEN), Rejected, 422, "Text can't be blank"),
    ("disabled login", _disabled, unique_post(), Rejected, 403, "Your login is currently disabled"),
    ("token without write scope", lambda s, a: make_account(s, scopes=("read",)), unique_post(), Rejected,
     403, "outside the authorized scopes"),
    ("revoked token", _revoked, unique_post(), AuthExpired, 401, "The access token is invalid"),
    ("unknown token", lambda s, a: replace(a, credentials=Credentials({"access_token": "not-a-real-token"})),
     unique_post(), AuthExpired, 401, "re-authorise"),
    ("no token stored", lambda s, a: replace(a, credentials=Credentials()), unique_post(), AuthExpired, None,
     "no 'access_token'"),
]


@pytest.mark.parametrize(("case", "setup", "post", "error", "status", "words"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_publish_refused(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                         setup: Callable[[MastodonStandIn, AccountRef], AccountRef], post: Post,
                         error: type[AdapterError], status: int | None, words: str) -> None:
    target = setup(standin, account)
    with pytest.raises(error) as err:
        adapter.publish(target, post, "d5-no")
    assert type(err.value) is error
    assert err.value.status == status
    assert words in str(err.value)
    assert standin.posts("status") == []


def test_refresh_is_impossible(adapter: MastodonAdapter, account: AccountRef) -> None:
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(account)


# -- followers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 10, 123_456])
def test_followers(standin: MastodonStandIn, adapter: MastodonAdapter, count: int) -> None:
    assert adapter.followers(make_account(standin, followers=count)) == count


def test_followers_with_revoked_token(standin: MastodonStandIn, adapter: MastodonAdapter,
                                      account: AccountRef) -> None:
    standin.revoke(token(account))
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_followers_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter,
                                account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=12, path="verify_credentials"))
    with pytest.raises(RateLimited) as err:
        adapter.followers(account)
    assert err.value.retry_after == 12.0


# -- find_published --------------------------------------------------------------------------------
NOW = datetime.now(UTC)
FINDS = [
    # (case, published text, text looked for, created_at looked for, found)
    ("plain text and link", "Markets close higher", "Markets close higher", NOW, True),
    ("escaped HTML, hashtag and remote mention", "Q&A: <why> it's \"late\" #budget @ed@example.org",
     "Q&A: <why> it's \"late\" #budget @ed@example.org", NOW, True),
    ("line breaks and paragraphs", "line one\nline two\n\nthird paragraph",
     "line one\nline two\n\nthird paragraph", NOW, True),
    ("clock skew under a minute", "Storm warning lifted", "Storm warning lifted", NOW + timedelta(seconds=50),
     True),
    ("posted before the first attempt", "Old news", "Old news", NOW + timedelta(minutes=5), False),
    ("other text", "Rates unchanged", "Rates raised", NOW, False),
    ("no first-attempt time: text only", "Ferry strike ends", "Ferry strike ends", None, True),
]


@pytest.mark.parametrize(("case", "sent", "wanted", "since", "found"), FINDS, ids=[f[0] for f in FINDS])
def test_find_published(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                        sent: str, wanted: str, since: datetime | None, found: bool) -> None:
    published = adapter.publish(account, Post(text=sent, link=LINK, created_at=NOW), "d6-a")
    result = adapter.find_published(account, Post(text=wanted, link=LINK, created_at=since), "d6-a")
    assert result == (published if found else None)


def test_find_published_pages_past_newer_statuses(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                   account: AccountRef) -> None:
    post = Post(text="The one we look for", link=LINK, created_at=NOW)
    published = adapter.publish(account, post, "d10-a")
    for n in range(45):
        adapter.publish(account, Post(text=f"later story {n}", created_at=NOW), f"d10-{n}")
    standin.requests.clear()
    assert adapter.find_published(account, post, "d10-a") == published
    assert [r["path"].rsplit("/", 1)[-1] for r in standin.requests] == ["verify_credentials", "statuses",
                                                                         "statuses"]


def test_find_published_ignores_replies(standin: MastodonStandIn, adapter: MastodonAdapter,
                                        account: AccountRef) -> None:
    post = Post(text="Reply-shaped", created_at=NOW)
    parent = adapter.publish(account, Post(text="parent", created_at=NOW), "d11-p")
    answer = requests.post(f"{standin.url}/api/v1/statuses", json={"status": post.body,
                                                                  "in_reply_to_id": parent.remote_id},
                           headers={"Authorization": f"Bearer {token(account)}"}, timeout=5)
    assert answer.status_code == 200
    assert adapter.find_published(account, post, "d11-a") is None


def test_find_published_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter,
                                     account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=5, path="/statuses"))
    with pytest.raises(RateLimited):
        adapter.find_published(account, unique_post(created_at=NOW), "d12-a")


# -- credentials never leak --------------------------------------------------------------------------
ECHOES = [(429, "publish"), (401, "publish"), (422, "publish"), (503, "publish"), (500, "followers"),
          (403, "followers")]


@pytest.mark.parametrize(("status", "call"), ECHOES)
def test_error_texts_scrub_the_token(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef,
                                     status: int, call: str) -> None:
    secret = token(account)
    standin.inject(Fault(status=status, retry_after=1,
                         body={"error": f"bad token {secret}", "error_description": f"Bearer {secret}"}))
    with pytest.raises(AdapterError) as err:
        if call == "publish":
            adapter.publish(account, unique_post(), "d13-a")
        else:
            adapter.followers(account)
    assert secret not in str(err.value) and secret not in repr(err.value) and "***" in str(err.value)


def test_account_and_credentials_never_print_the_token(account: AccountRef) -> None:
    secret = token(account)
    for shown in (repr(account), str(account), repr(account.credentials), str(account.credentials)):
        assert secret not in shown


# -- the stand-in is as strict as the instance -----------------------------------------------------
# (case, method, path, auth, body kind, body, status, words in the answer)
STRICT: list[tuple[str, str, str, str, str, Any, int, str]] = [
    ("no token", "POST", "/api/v1/statuses", "none", "json", {"status": "hi"}, 401,
     "The access token is invalid"),
    ("unknown token", "POST", "/api/v1/statuses", "bad", "json", {"status": "hi"}, 401,
     "The access token is invalid"),
    ("empty status", "POST", "/api/v1/statuses", "ok", "json", {"status": ""}, 422, "Text can't be blank"),
    ("white space in a form", "POST", "/api/v1/statuses", "ok", "form", {"status": "  \n "}, 422,
     "Text can't be blank"),
    ("status is not text", "POST", "/api/v1/statuses", "ok", "json", {"status": ["a"]}, 422,
     "Text can't be blank"),
    ("501 characters", "POST", "/api/v1/statuses", "ok", "json", {"status": "é" * 501}, 422,
     "Text character limit of 500 exceeded"),
    ("a long URL counts 23", "POST", "/api/v1/statuses", "ok", "json",
     {"status": "a" * 470 + " https://example.com/" + "x" * 300}, 200, '"visibility": "public"'),
    ("unknown visibility", "POST", "/api/v1/statuses", "ok", "json",
     {"status": "hi", "visibility": "everyone"}, 422, "not a valid visibility"),
    ("form body, unlisted", "POST", "/api/v1/statuses", "ok", "form",
     {"status": "hi", "visibility": "unlisted"}, 200, '"visibility": "unlisted"'),
    ("unknown media", "POST", "/api/v1/statuses", "ok", "json", {"media_ids": ["12"]}, 422,
     "Media 12 not found"),
    ("five media", "POST", "/api/v1/statuses", "ok", "json", {"status": "x", "media_ids": list("12345")}, 422,
     "Cannot attach more than 4 files"),
    ("not JSON", "POST", "/api/v1/statuses", "ok", "raw-json", b"{nope", 400, "error"),
    ("instance limits are public", "GET", "/api/v2/instance", "none", "none", None, 200,
     '"max_characters": 500'),
    ("own account", "GET", "/api/v1/accounts/verify_credentials", "ok", "none", None, 200,
     '"followers_count": 10'),
    ("own account without read scope", "GET", "/api/v1/accounts/verify_credentials", "write-only", "none",
     None, 403, "outside the authorized scopes"),
    ("statuses of an unknown account", "GET", "/api/v1/accounts/999/statuses", "ok", "none", None, 404,
     "Record not found"),
]


@pytest.mark.parametrize(("case", "method", "path", "auth", "kind", "body", "status", "words"), STRICT,
                         ids=[s[0] for s in STRICT])
def test_standin_checks_like_the_instance(standin: MastodonStandIn, case: str, method: str, path: str,
                                          auth: str, kind: str, body: Any, status: int, words: str) -> None:
    headers = {}
    if auth == "ok":
        headers["Authorization"] = f"Bearer {token(make_account(standin))}"
    elif auth == "write-only":
        headers["Authorization"] = f"Bearer {token(make_account(standin, scopes=('write',)))}"
    elif auth == "bad":
        headers["Authorization"] = "Bearer nope"
    kwargs: dict[str, Any] = {"json": body} if kind == "json" else {"data": body} if kind == "form" else {}
    if kind == "raw-json":
        kwargs = {"data": body}
        headers["Content-Type"] = "application/json"
    answer = requests.request(method, standin.url + path, headers=headers, timeout=5, **kwargs)
    assert answer.status_code == status
    assert words in answer.text
    if status >= 400:
        assert set(answer.json()) == {"error"}


def test_standin_rate_limit_answer(standin: MastodonStandIn) -> None:
    standin.inject(Fault(status=429, retry_after=3))
    answer = requests.get(f"{standin.url}/api/v2/instance", timeout=5)
    assert answer.status_code == 429 and answer.json() == {"error": "Too many requests"}
    assert answer.headers["Retry-After"] == "3" and answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["X-RateLimit-Limit"] == "300"
    assert 0 < (parse_reset(answer.headers["X-RateLimit-Reset"]) or 0) <= 3


def test_standin_key_is_per_account(standin: MastodonStandIn) -> None:
    # Mastodon keys the memory by account: two tokens of one account share it, two accounts do not.
    first = standin.add_account("desk")["access_token"]
    second = standin.add_account("desk")["access_token"]
    other = standin.add_account("sports")["access_token"]

    def send(tok: str, text: str) -> str:
        answer = requests.post(f"{standin.url}/api/v1/statuses", json={"status": text}, timeout=5,
                               headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": "k1"})
        return answer.json()["id"]

    assert send(first, "one") == send(second, "two, ignored: the key wins") != send(other, "three")
    assert [p.data["text"] for p in standin.posts("status")] == ["one", "three"]


def test_standin_lists_newest_first_and_pages(standin: MastodonStandIn, adapter: MastodonAdapter,
                                               account: AccountRef) -> None:
    ids = [adapter.publish(account, Post(text=f"story {n}", created_at=WHEN), f"d14-{n}").remote_id
           for n in range(5)]
    me = requests.get(f"{standin.url}/api/v1/accounts/verify_credentials", timeout=5,
                      headers={"Authorization": f"Bearer {token(account)}"}).json()
    assert me["statuses_count"] == 5
    url = f"{standin.url}/api/v1/accounts/{me['id']}/statuses"
    page = requests.get(url, params={"limit": 2, "max_id": ids[3]}, timeout=5).json()
    assert [s["id"] for s in page] == [ids[2], ids[1]]
    assert ids == sorted(ids, key=int)
