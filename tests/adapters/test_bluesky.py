"""Bluesky adapter against the Bluesky stand-in (a strict local PDS), plus its pure text rules.

Set CROSSPOST_BLUESKY_PEER_URL (e.g. http://127.0.0.1:2583, from /work/shared/peers/bluesky/start.sh)
to also run the last test against the reference PDS.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from adapters.base import AccountRef, Credentials, Post
from adapters.bluesky import TID_ALPHABET, BlueskyAdapter, created_at_iso, facets, tag_spans, tid
from adapters.errors import AuthExpired, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.bluesky import BlueskyStandIn

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
HANDLE = "newsroom.test"
TID_RE = r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$"


@pytest.fixture(scope="module")
def standin() -> Iterator[BlueskyStandIn]:
    server = BlueskyStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def creds(standin: BlueskyStandIn) -> dict[str, str]:
    standin.reset()
    return standin.add_account(HANDLE, followers=10)


@pytest.fixture
def account(standin: BlueskyStandIn, creds: dict[str, str]) -> AccountRef:
    return AccountRef(id=1, platform="bluesky", handle=HANDLE, base_url=standin.url,
                      credentials=Credentials(creds))


@pytest.fixture
def adapter() -> BlueskyAdapter:
    return BlueskyAdapter(timeout=5)


def post(text: str = "Budget passes", link: str | None = "https://news.example/budget",
         at: datetime = WHEN) -> Post:
    return Post(text=text, link=link, created_at=at)


def decode(text: str, facet: dict) -> str:
    index = facet["index"]
    return text.encode("utf-8")[index["byteStart"]:index["byteEnd"]].decode("utf-8")


def seen(standin: BlueskyStandIn, name: str) -> list[dict]:
    return [r for r in standin.requests if r["path"].endswith(name)]


# -- pure rules -----------------------------------------------------------------------------------
def test_tid_is_a_valid_deterministic_record_key() -> None:
    key = tid(WHEN, "d42-6f1c")
    assert key == tid(WHEN, "d42-6f1c")
    assert len(key) == 13 and set(key) <= set(TID_ALPHABET)
    assert re.match(TID_RE, key)
    value = 0
    for char in key:
        value = value * 32 + TID_ALPHABET.index(char)
    assert value >> 63 == 0
    assert value >> 10 == int((WHEN - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
    assert value & 1023 == int.from_bytes(hashlib.sha256(b"d42-6f1c").digest(), "big") % 1024


def test_tid_sorts_by_time_and_separates_deliveries() -> None:
    assert tid(WHEN, "a") < tid(WHEN + timedelta(milliseconds=1), "a") < tid(WHEN + timedelta(days=1), "a")
    # Microseconds lost in storage between attempts change neither the key nor createdAt.
    assert tid(WHEN + timedelta(microseconds=999), "a") == tid(WHEN, "a")
    assert created_at_iso(WHEN + timedelta(microseconds=999)) == created_at_iso(WHEN)
    keys = {tid(WHEN, f"d{i}") for i in range(50)}
    assert len(keys) > 45  # clock ids differ (10 bits: a rare collision is allowed)
    # Same instant in another zone: same key.
    assert tid(WHEN.astimezone(ZoneInfo("Asia/Tokyo")), "a") == tid(WHEN, "a")


def test_tid_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError):
        tid(datetime(2026, 11, 28, 12), "a")


def test_created_at_has_milliseconds_and_z() -> None:
    assert created_at_iso(WHEN) == "2026-11-28T12:00:00.000Z"
    assert created_at_iso(datetime(2026, 11, 28, 13, 0, 0, 123456, tzinfo=UTC)) == "2026-11-28T13:00:00.123Z"


@pytest.mark.parametrize(("text", "tags"), [
    ("#news today", ["news"]),
    ("today #news, #sport!", ["news", "sport"]),
    ("#123 is not a tag, #a1 is", ["a1"]),
    ("mail@x.com#frag and x#y are not tags", []),
    ("\uff03日本語 fullwidth", ["日本語"]),
    ("#\ufe0f\u20e3 keycap is not a tag", []),
    ("#" + "a" * 65 + " too long", []),
    ("# lonely hash", []),
    ("line\n#second line", ["second"]),
    ("#café #naïve", ["café", "naïve"]),
])
def test_tag_spans(text: str, tags: list[str]) -> None:
    spans = tag_spans(text)
    assert [s.value for s in spans] == tags
    for span in spans:
        assert text.encode()[span.byte_start:span.byte_end].decode()[1:] == span.value


# Text mixing CJK, emoji ZWJ sequences, flags, skin tones and combining marks before the facets.
MIXED = ("東京で速報 👨‍👩‍👧‍👦 🇯🇵🇪🇸 👍🏽 e\u0301 a\u0308\u0304 #選挙 https://news.example/a?b=ü "
         "👩🏿‍🚀 #vote2026 ok\n\nhttps://news.example/x")


def test_facets_decode_to_exactly_the_link_or_tag() -> None:
    found = facets(MIXED)
    kinds = [(f["features"][0]["$type"].rsplit("#", 1)[1], decode(MIXED, f)) for f in found]
    assert kinds == [("tag", "#選挙"), ("link", "https://news.example/a?b=ü"), ("tag", "#vote2026"),
                     ("link", "https://news.example/x")]
    assert found[0]["features"][0]["tag"] == "選挙"
    assert found[1]["features"][0]["uri"] == "https://news.example/a?b=ü"
    assert [f["index"]["byteStart"] for f in found] == sorted(f["index"]["byteStart"] for f in found)


def test_a_hash_inside_a_link_is_not_a_tag() -> None:
    text = "see https://news.example/page #live\nhttps://news.example/#anchor"
    assert [decode(text, f) for f in facets(text)] == [
        "https://news.example/page", "#live", "https://news.example/#anchor"]


def test_no_facets_for_plain_text() -> None:
    assert facets("nothing to link here") == []


@pytest.mark.parametrize(("text", "problems"), [
    ("fine", []),
    ("", ["bluesky: text: is empty"]),
    ("a" * 301, ["bluesky: text: is 301 graphemes long; the limit is 300"]),
    # 300 graphemes of a 25-byte family emoji: within the grapheme limit, over the byte limit.
    ("👨‍👩‍👧‍👦" * 300, ["bluesky: text: is 7500 UTF-8 bytes long; the limit is 3000"]),
    ("👨‍👩‍👧‍👦" * 120, []),
])
def test_check(adapter: BlueskyAdapter, text: str, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(Post(text=text))] == problems


# -- publish --------------------------------------------------------------------------------------
def test_publish_writes_a_post_record_under_the_delivery_tid(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    story = post("Budget passes #politics")
    published = adapter.publish(account, story, "d42-6f1c")
    rkey = tid(WHEN, "d42-6f1c")
    assert published.remote_id == f"at://{creds['did']}/app.bsky.feed.post/{rkey}"
    assert published.url == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"
    [created] = standin.posts("post")
    assert created.key == rkey and created.id == published.remote_id
    record = created.data["record"]
    assert record["$type"] == "app.bsky.feed.post"
    assert record["text"] == "Budget passes #politics\n\nhttps://news.example/budget"
    assert record["createdAt"] == "2026-11-28T12:00:00.000Z"
    assert [decode(record["text"], f) for f in record["facets"]] == ["#politics", "https://news.example/budget"]
    [put] = seen(standin, "com.atproto.repo.putRecord")
    assert put["method"] == "POST" and put["scope"] == creds["did"]  # the access token of this account


def test_publish_without_facets_omits_them(adapter: BlueskyAdapter, account: AccountRef,
                                           standin: BlueskyStandIn) -> None:
    adapter.publish(account, post("Plain words", link=None), "d1")
    assert "facets" not in standin.posts("post")[0].data["record"]


def test_retry_after_a_dropped_answer_leaves_one_post(adapter: BlueskyAdapter, account: AccountRef,
                                                      standin: BlueskyStandIn) -> None:
    story = post("Dropped answer story")
    standin.inject(Fault(commit=True, drop=True, path="putRecord"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, story, "d7")
    assert err.value.maybe_sent is True
    assert len(standin.posts("post")) == 1  # it went out
    again = adapter.publish(account, story, "d7")  # the scheduler's retry: same key, same created_at
    assert again.remote_id == standin.posts("post")[0].id
    assert len(standin.posts()) == 1 and standin.duplicates() == 0
    assert adapter.find_published(account, story, "d7") == again


def test_same_key_with_a_changed_record_is_an_edit_not_a_post(adapter: BlueskyAdapter, account: AccountRef,
                                                              standin: BlueskyStandIn) -> None:
    adapter.publish(account, post("First wording"), "d8")
    adapter.publish(account, post("Second wording"), "d8")
    assert [c.kind for c in standin.posts()] == ["post", "edit"]
    assert standin.duplicates() == 0


def test_publish_needs_a_fixed_created_at(adapter: BlueskyAdapter, account: AccountRef) -> None:
    with pytest.raises(ValueError):
        adapter.publish(account, Post(text="no time"), "d9")


# -- sessions -------------------------------------------------------------------------------------
def test_expired_access_token_is_refreshed_not_relogged(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired) as err:
        adapter.publish(account, post("After expiry"), "d10")
    assert "ExpiredToken" in str(err.value)
    fresh = adapter.refresh(account)
    assert standin.refresh_calls == 1 and standin.login_calls == 0
    values = fresh.reveal()
    assert values["accessJwt"] != creds["accessJwt"] and values["refreshJwt"] != creds["refreshJwt"]
    assert {k: values[k] for k in ("identifier", "password", "did")} == {
        k: creds[k] for k in ("identifier", "password", "did")}
    account.credentials = fresh
    adapter.publish(account, post("After expiry"), "d10")
    assert len(standin.posts("post")) == 1
    [call] = seen(standin, "refreshSession")
    assert call["scope"] == creds["did"]


def test_no_session_yet_logs_in_with_the_app_password(adapter: BlueskyAdapter, account: AccountRef,
                                                      standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    account.credentials = Credentials({"identifier": creds["identifier"], "password": creds["password"]})
    with pytest.raises(AuthExpired, match="no session yet"):
        adapter.publish(account, post("First login"), "d11")
    with pytest.raises(AuthExpired, match="no session yet"):
        adapter.followers(account)
    account.credentials = adapter.refresh(account)
    assert standin.login_calls == 1 and standin.refresh_calls == 0
    assert account.credentials.get("did") == creds["did"]
    assert adapter.publish(account, post("First login"), "d11").remote_id.startswith(f"at://{creds['did']}/")


def test_a_revoked_refresh_token_falls_back_to_login(adapter: BlueskyAdapter, account: AccountRef,
                                                     standin: BlueskyStandIn) -> None:
    adapter.refresh(account)  # rotates: the stored (old) refresh token is now revoked
    fresh = adapter.refresh(account)
    assert standin.refresh_calls == 2 and standin.login_calls == 1
    account.credentials = fresh
    adapter.publish(account, post("After relogin"), "d12")


def test_refresh_fails_when_both_token_and_password_are_refused(adapter: BlueskyAdapter, account: AccountRef,
                                                                standin: BlueskyStandIn,
                                                                creds: dict[str, str]) -> None:
    standin.expire_refresh_tokens()
    account.credentials = account.credentials.merged(password="wrong-password")
    with pytest.raises(AuthExpired, match="re-authorise") as err:
        adapter.refresh(account)
    assert "wrong-password" not in str(err.value)
    account.credentials = Credentials({"accessJwt": creds["accessJwt"], "did": creds["did"]})
    with pytest.raises(AuthExpired, match="no app password"):
        adapter.refresh(account)


def test_refresh_on_a_server_fault_does_not_log_in(adapter: BlueskyAdapter, account: AccountRef,
                                                   standin: BlueskyStandIn) -> None:
    standin.inject(Fault(status=502, path="refreshSession"))
    with pytest.raises(Transient):
        adapter.refresh(account)
    assert standin.login_calls == 0


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, retry_after=30, path="putRecord"), RateLimited, lambda e: 25 < e.retry_after <= 31),
    (Fault(status=500, body={"error": "InternalServerError", "message": "Internal Server Error"},
           path="putRecord"), Transient, lambda e: e.maybe_sent and e.status == 500),
    (Fault(status=503, path="putRecord"), Transient, lambda e: e.maybe_sent),
    (Fault(status=413, body={"error": "PayloadTooLarge", "message": "request entity too large"},
           path="putRecord"), Rejected, lambda e: e.status == 413),
    (Fault(drop=True, path="putRecord"), Transient, lambda e: e.maybe_sent),
    (Fault(status=401, body={"error": "AuthenticationRequired", "message": "Authentication Required"},
           path="putRecord"), AuthExpired, lambda e: e.status == 401),
    (Fault(status=400, body={"error": "AccountTakedown", "message": "Account has been taken down"},
           path="putRecord"), Rejected, lambda e: "AccountTakedown" in e.reason),
])
def test_faults_map_to_typed_errors(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                    fault: Fault, error: type, check) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, post("Fault story"), "d20")
    assert check(err.value), err.value
    assert err.value.reason.startswith("bluesky: ")


def test_rate_limit_wait_falls_back_to_retry_after(adapter: BlueskyAdapter) -> None:
    # No ratelimit-* headers (another PDS operator's proxy): Retry-After decides.
    response = requests.Response()
    response.status_code, response._content = 429, b'{"error":"RateLimitExceeded","message":"slow down"}'
    response.headers["Retry-After"] = "42"
    error = adapter.classify(response)
    assert isinstance(error, RateLimited) and error.retry_after == 42


@pytest.mark.parametrize(("change", "error", "fragment"), [
    (lambda c, other: {**c, "accessJwt": "not-a-token"}, AuthExpired, "InvalidToken"),
    (lambda c, other: {**c, "accessJwt": c["refreshJwt"]}, AuthExpired, "InvalidToken"),
    (lambda c, other: {**c, "did": other["did"]}, AuthExpired, "AuthenticationRequired"),
    (lambda c, other: {**c, "did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, Rejected, "AccountNotFound"),
])
def test_credentials_the_pds_refuses(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                     creds: dict[str, str], change, error: type, fragment: str) -> None:
    other = standin.add_account("other.test")
    account.credentials = Credentials(change(creds, other))
    with pytest.raises(error, match=fragment):
        adapter.publish(account, post("Refused"), "d21")
    assert standin.posts() == []


@pytest.mark.parametrize(("text", "fragment"), [
    ("a" * 301, "grapheme too big (maximum 300, got 301)"),
    ("👨‍👩‍👧‍👦" * 299, "string too big (maximum 3000"),
])
def test_content_the_pds_rejects(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                 text: str, fragment: str) -> None:
    with pytest.raises(Rejected) as err:
        adapter.publish(account, post(text, link=None), "d22")
    assert fragment in err.value.reason and err.value.status == 400
    assert standin.posts() == []


def test_connection_refused_was_not_sent(adapter: BlueskyAdapter, account: AccountRef) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    account.base_url = f"http://127.0.0.1:{port}"
    with pytest.raises(Transient) as err:
        adapter.publish(account, post(), "d23")
    assert err.value.maybe_sent is False


def test_credentials_never_appear_in_errors(adapter: BlueskyAdapter, account: AccountRef,
                                            standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    echo = f"bad {creds['accessJwt']} / {creds['refreshJwt']} / {creds['password']}"
    standin.inject(
        Fault(status=400, body={"error": "InvalidRequest", "message": echo}, path="putRecord"),
        Fault(status=500, body={"error": "InternalServerError", "message": echo}, path="refreshSession"))
    errors = []
    for call in (lambda: adapter.publish(account, post(), "d24"), lambda: adapter.refresh(account)):
        with pytest.raises((Rejected, Transient)) as err:
            call()
        errors.append(err.value)
    for error in errors:
        for secret in (creds["accessJwt"], creds["refreshJwt"], creds["password"]):
            assert secret not in str(error) and secret not in repr(error)
        assert "***" in str(error)
    assert creds["password"] not in repr(account.credentials) + repr(account)


# -- followers and find_published -----------------------------------------------------------------
def test_followers(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                   creds: dict[str, str]) -> None:
    assert adapter.followers(account) == 10
    [call] = seen(standin, "app.bsky.actor.getProfile")
    assert call["scope"] == creds["did"]
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_find_published(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn) -> None:
    story = post("Was it published?")
    assert adapter.find_published(account, story, "d30") is None
    published = adapter.publish(account, story, "d30")
    standin.expire_access_tokens()  # getRecord is public: an expired session does not matter
    assert adapter.find_published(account, story, "d30") == published
    assert adapter.find_published(account, story, "d31") is None
    assert adapter.find_published(account, Post(text="never sent"), "d30") is None
    account.credentials = Credentials({"identifier": HANDLE, "password": "x-y-z-w"})
    with pytest.raises(AuthExpired):
        adapter.find_published(account, story, "d30")


# -- the stand-in is as strict as the PDS ---------------------------------------------------------
def _record(**changes: object) -> dict:
    return {"$type": "app.bsky.feed.post", "text": "日本 #tag", "createdAt": "2026-11-28T12:00:00.000Z",
            **changes}


def _facet(start: int, end: int, feature: dict | None = None) -> dict:
    return {"index": {"byteStart": start, "byteEnd": end},
            "features": [feature or {"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}]}


@pytest.mark.parametrize(("change", "status", "name", "fragment"), [
    ({}, 200, None, None),
    ({"rkey": "hello"}, 400, "InvalidRequest", "Invalid TID string"),
    ({"rkey": "z" * 13}, 400, "InvalidRequest", "Invalid TID string"),
    ({"auth": None}, 401, "AuthMissing", "Authentication Required"),
    ({"auth": "Basic eDp5"}, 400, "InvalidToken", "Unexpected authorization type"),
    ({"auth": "refresh"}, 400, "InvalidToken", "Token could not be verified"),
    ({"repo": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, 403, "AccountNotFound", "Account not found"),
    ({"repo": "other"}, 401, "AuthenticationRequired", "Authentication Required"),
    ({"collection": "app.bsky.feed.like"}, 400, "InvalidRequest", "Invalid $type"),
    ({"record": _record(text="x" * 301)}, 400, "InvalidRequest", "grapheme too big (maximum 300, got 301)"),
    ({"record": _record(text="€" * 1001)}, 400, "InvalidRequest", "string too big (maximum 3000, got 3003)"),
    ({"record": _record(createdAt="2026-11-28T12:00:00")}, 400, "InvalidRequest", "Invalid datetime"),
    ({"record": {"$type": "app.bsky.feed.post", "text": "x"}}, 400, "InvalidRequest",
     'Missing required key "createdAt"'),
    ({"record": _record(facets=[_facet(7, 11)])}, 200, None, None),
    ({"record": _record(facets=[_facet(1, 11)])}, 400, "InvalidRequest", "inside a UTF-8 character"),
    ({"record": _record(facets=[_facet(7, 12)])}, 400, "InvalidRequest", "past the end of the text"),
    ({"record": _record(facets=[_facet(7, 7)])}, 400, "InvalidRequest", "byteStart must be before byteEnd"),
    ({"record": _record(facets=[_facet(-1, 7)])}, 400, "InvalidRequest", "integer too small"),
    ({"record": _record(facets=[_facet(7, 11, {"$type": "app.bsky.richtext.facet#bogus"})])}, 400,
     "InvalidRequest", "Unknown facet feature type"),
    ({"record": _record(facets=[_facet(7, 11, {"$type": "app.bsky.richtext.facet#link", "uri": "no"})])},
     400, "InvalidRequest", "Invalid uri"),
    ({"json": False}, 400, "InvalidRequest", "Wrong request encoding"),
    ({"method": "GET"}, 400, "InvalidRequest", "Incorrect HTTP method (GET) expected POST"),
])
def test_standin_checks_put_record_like_the_pds(standin: BlueskyStandIn, creds: dict[str, str],
                                                change: dict, status: int, name: str | None,
                                                fragment: str | None) -> None:
    other = standin.add_account("other.test")
    body = {"repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s1"),
            "record": _record()}
    body.update({k: v for k, v in change.items() if k in body})
    if body["repo"] == "other":
        body["repo"] = other["did"]
    auth = change.get("auth", "access")
    tokens = {"access": f"Bearer {creds['accessJwt']}", "refresh": f"Bearer {creds['refreshJwt']}"}
    headers = {} if auth is None else {"Authorization": tokens.get(auth, auth)}
    url = f"{standin.url}/xrpc/com.atproto.repo.putRecord"
    if change.get("json", True):
        answer = requests.request(change.get("method", "POST"), url, json=body, headers=headers, timeout=5)
    else:
        answer = requests.post(url, data={"repo": creds["did"]}, headers=headers, timeout=5)
    assert answer.status_code == status, answer.text
    if name:
        assert answer.json()["error"] == name and fragment in answer.json()["message"]
        assert standin.posts() == []


def test_standin_create_record_on_an_existing_key_is_a_500(standin: BlueskyStandIn,
                                                           creds: dict[str, str]) -> None:
    body = {"repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s2"),
            "record": _record()}
    headers = {"Authorization": f"Bearer {creds['accessJwt']}"}
    url = f"{standin.url}/xrpc/com.atproto.repo."
    first = requests.post(url + "createRecord", json=body, headers=headers, timeout=5)
    again = requests.post(url + "createRecord", json=body, headers=headers, timeout=5)
    put = requests.post(url + "putRecord", json=body, headers=headers, timeout=5)
    assert first.status_code == 200 and "commit" in first.json()
    assert again.status_code == 500 and again.json()["error"] == "InternalServerError"
    assert put.status_code == 200 and put.json()["cid"] == first.json()["cid"] and "commit" not in put.json()
    assert len(standin.posts()) == 1
    listed = requests.get(f"{url}listRecords", params={"repo": HANDLE, "collection": "app.bsky.feed.post"},
                          timeout=5).json()
    assert [r["uri"] for r in listed["records"]] == [first.json()["uri"]]


def test_standin_refresh_rotation_and_rate_limit_shape(standin: BlueskyStandIn,
                                                       creds: dict[str, str]) -> None:
    url = f"{standin.url}/xrpc/com.atproto.server.refreshSession"
    old = {"Authorization": f"Bearer {creds['refreshJwt']}"}
    first = requests.post(url, headers=old, timeout=5)
    reuse = requests.post(url, headers=old, timeout=5)
    assert first.status_code == 200 and set(first.json()) >= {"accessJwt", "refreshJwt", "did", "handle"}
    assert (reuse.status_code, reuse.json()["error"]) == (400, "ExpiredToken")
    standin.inject(Fault(status=429, retry_after=5, path="getProfile"))
    limited = requests.get(f"{standin.url}/xrpc/app.bsky.actor.getProfile", params={"actor": creds["did"]},
                           headers={"Authorization": f"Bearer {creds['accessJwt']}"}, timeout=5)
    assert limited.status_code == 429 and limited.json()["error"] == "RateLimitExceeded"
    assert limited.headers["ratelimit-remaining"] == "0" and limited.headers["Retry-After"] == "5"
    assert {"ratelimit-limit", "ratelimit-reset", "ratelimit-policy"} <= set(limited.headers)


# -- the reference PDS (optional) -----------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get("CROSSPOST_BLUESKY_PEER_URL"),
                    reason="set CROSSPOST_BLUESKY_PEER_URL to a reference PDS (peers/bluesky/start.sh)")
def test_against_the_reference_pds(adapter: BlueskyAdapter) -> None:
    base = os.environ["CROSSPOST_BLUESKY_PEER_URL"].rstrip("/")
    handle, password = f"cp{uuid.uuid4().hex[:10]}.test", uuid.uuid4().hex
    made = requests.post(f"{base}/xrpc/com.atproto.server.createAccount", timeout=10,
                         json={"handle": handle, "email": f"{handle}@example.com", "password": password})
    assert made.status_code == 200, made.text
    account = AccountRef(id=9, platform="bluesky", handle=handle, base_url=base,
                         credentials=Credentials({"identifier": handle, "password": password}))
    with pytest.raises(AuthExpired):
        adapter.publish(account, post(MIXED, link=None), "peer-1")
    account.credentials = adapter.refresh(account)
    story = post(MIXED, link=None, at=datetime.now(UTC))
    first = adapter.publish(account, story, "peer-1")
    assert adapter.publish(account, story, "peer-1") == first
    assert adapter.find_published(account, story, "peer-1") == first
    assert adapter.find_published(account, story, "peer-2") is None
    account.credentials = adapter.refresh(account)  # refreshSession rotation
    listed = requests.get(f"{base}/xrpc/com.atproto.repo.listRecords", timeout=10,
                          params={"repo": handle, "collection": "app.bsky.feed.post"}).json()["records"]
    assert [r["uri"] for r in listed] == [first.remote_id]
    record = listed[0]["value"]
    assert [decode(record["text"], f) for f in record["facets"]] == [
        "#選挙", "https://news.example/a?b=ü", "#vote2026", "https://news.example/x"]
    with pytest.raises(Rejected, match="grapheme too big"):
        adapter.publish(account, post("a" * 301, link=None), "peer-3")
