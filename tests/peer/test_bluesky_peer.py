"""The Bluesky adapter against Bluesky's own servers (PDS 0.5.35, AppView, DID directory from
``@atproto/dev-env`` 0.6.7 on loopback), driven as an operator would: ``crosspost accounts add``,
``crosspost stories queue``, a real ``crosspost run`` worker, ``crosspost followers sample``. Every
check reads back from the servers: ``getRecord``/``listRecords`` on the PDS, ``getPosts``,
``getPostThread`` and ``getProfile`` on the AppView.

What the real servers did that the stand-in did not (the stand-in now does the same, or is stricter
on purpose where the PDS stores what clients then show wrong):
- uploadBlob sniffs the type from the bytes: PNG bytes declared image/jpeg come back image/png; an
  unrecognised body keeps the declared type (text/plain is accepted). A blob's CID is CIDv1 raw
  SHA-256 ("bafkrei..."), the same for the same bytes. Bodies over 5 MiB: 413 PayloadTooLarge.
- A record may use only its own account's blobs (400 BlobNotFound "Could not find blob: <cid>");
  while a blob is unused, the record's mimeType and size must match (InvalidMimeType, InvalidSize).
- app.bsky.embed.images allows blobs up to 2,000,000 bytes in this PDS (not the 1,000,000 older
  lexicons say); alt is required but may be ""; aspectRatio is optional, integers >= 1; a float is
  refused before lexicon checks with a different message.
- App-password sessions carry scope com.atproto.appPass, not com.atproto.access.
- The PDS stores replies whose root or parent does not exist, mention facets with an unknown DID
  and embeds of unknown $type (the stand-in refuses the first and last on purpose).
- resolveHandle: an unknown handle on the server's domain is 400 HandleNotFound, another domain
  400 InvalidRequest, both "Unable to resolve handle".
- dev-env signs tokens with "jwt-secret" (start.sh's PDS-only mode with "dev-jwt-secret").
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from adapters.base import Credentials
from adapters.bluesky import POST, tid
from adapters.standins.bluesky import BlueskyStandIn, blob_cid
from adapters.text import graphemes, utf8_bytes
from scheduler.core.db import session_scope
from scheduler.matrix import accounts
from tests.peer.conftest import HoldingProxy, Network, Operator, PeerAccount, expired_copy

# One xdist worker runs them all (--dist loadgroup): the network is started once, not per worker.
pytestmark = [pytest.mark.peer, pytest.mark.timeout(1500), pytest.mark.xdist_group("peer")]

# CJK, a ZWJ family, flags, skin tones, combining marks (Latin and Arabic harakat), right-to-left
# Arabic and Hebrew, with tags, a link and mentions in among them.
MIXED = ("東京で速報 👨‍👩‍👧‍👦 🇯🇵🇪🇸🏳️‍🌈 👍🏽👩🏿‍🚀 e\u0301 a\u0308\u0304 مَرْحَبًا بالعالم #選挙 "
         "שָׁלוֹם #עברית https://news.example/a?b=ü&c=日本 {mention} @nobody{tag}.test #vote2026 ok.")


def decode(text: str, facet: dict) -> str:
    index = facet["index"]
    return text.encode("utf-8")[index["byteStart"]:index["byteEnd"]].decode("utf-8")


def feature_text(facet: dict) -> str:
    """What a facet's byte range must read, from its feature."""
    feature = facet["features"][0]
    kind = feature["$type"].rsplit("#", 1)[1]
    return {"link": lambda: feature["uri"], "tag": lambda: "#" + feature["tag"],
            "mention": lambda: "@" + feature["did"]}[kind]()


@pytest.fixture
def account(peer_network: Network, operator: Operator) -> PeerAccount:
    made = peer_network.create_account()
    operator.add_account(made, peer_network.pds)
    return made


def test_text_and_facets_arrive_identical(peer_network: Network, operator: Operator,
                                          account: PeerAccount) -> None:
    other = peer_network.create_account("friend")
    text = MIXED.format(mention=f"@{other.handle}", tag=other.handle[6:12])
    link = "https://news.example/x"
    delivery = operator.wait_published(operator.queue(text, account, link=link))
    sent = f"{text}\n\n{link}"
    stored = peer_network.record(delivery["remote_id"])["value"]
    # Not NFC on purpose: "identical" then also means that nothing on the way normalised it.
    assert not unicodedata.is_normalized("NFC", sent)
    assert stored["text"] == sent
    handles = {other.did: f"@{other.handle}"}
    read = [(f["features"][0]["$type"].rsplit("#", 1)[1], decode(sent, f)) for f in stored["facets"]]
    assert read == [("tag", "#選挙"), ("tag", "#עברית"), ("link", "https://news.example/a?b=ü&c=日本"),
                    ("mention", f"@{other.handle}"), ("tag", "#vote2026"), ("link", link)]
    for facet in stored["facets"]:
        expected = feature_text(facet)
        assert decode(sent, facet) == handles.get(expected[1:], expected)
    [viewed] = peer_network.appview_posts([delivery["remote_id"]])
    assert viewed["record"]["text"] == sent and viewed["record"]["facets"] == stored["facets"]
    assert viewed["author"]["did"] == account.did
    assert delivery["published_url"].startswith(f"https://bsky.app/profile/{account.handle}/post/")


WIKI = "https://en.wikipedia.org/wiki/Hangzhou_(disambiguation)"


def test_links_get_facets_as_the_official_client_makes_them(peer_network: Network, operator: Operator,
                                                           account: PeerAccount) -> None:
    """A link keeps its balanced parentheses; bare domains with a known top-level domain are links
    (the official client's detectFacets), a dotted word with an unknown one is not."""
    text = (f"Hangzhou: {WIKI} (see also {WIKI}). Official site en.hangzhou.com.cn, "
            "details at example.org/path; not a link: v2.0 file.notatld")
    delivery = operator.wait_published(operator.queue(text, account))
    stored = peer_network.record(delivery["remote_id"])["value"]
    links = [(decode(text, f), f["features"][0]["uri"]) for f in stored["facets"]
             if f["features"][0]["$type"].endswith("#link")]
    assert links == [(WIKI, WIKI), (WIKI, WIKI), ("en.hangzhou.com.cn", "https://en.hangzhou.com.cn"),
                     ("example.org/path", "https://example.org/path")]
    [viewed] = peer_network.appview_posts([delivery["remote_id"]])
    assert viewed["record"]["facets"] == stored["facets"]


def test_posts_carry_the_account_language(peer_network: Network, operator: Operator,
                                          account: PeerAccount) -> None:
    operator.cli("accounts", "edit", f"bluesky:{account.handle}", "--language", "pt-BR")
    delivery = operator.wait_published(operator.queue("A Câmara aprovou a nova linha de elétrico", account))
    assert peer_network.record(delivery["remote_id"])["value"]["langs"] == ["pt-BR"]
    [viewed] = peer_network.appview_posts([delivery["remote_id"]])
    assert viewed["record"]["langs"] == ["pt-BR"]


def test_a_cjk_thread_splits_at_sentence_ends(peer_network: Network, operator: Operator,
                                              account: PeerAccount) -> None:
    """CJK sentences end in U+3002, U+FF01 or U+FF1F with no space after them: still split points."""
    text = "".join(["杭州市は新しい地下鉄の路線を発表しました。", "開業は二〇二八年の予定です\uff01",
                    "運賃はいくらになるのでしょうか\uff1f", "市は来月に説明会を開きます。"] * 12)
    operator.wait_published(operator.queue(text, account, thread=True))
    parts = [r["value"]["text"] for r in peer_network.records(account)]
    assert len(parts) > 1
    for i, part in enumerate(parts, 1):
        body, numbering = part.rsplit(" ", 1)
        assert numbering == f"{i}/{len(parts)}" and body.endswith(("\u3002", "\uff01", "\uff1f")), part
    assert "".join(p.rsplit(" ", 1)[0] for p in parts) == text


def test_images_arrive_with_alt_text_and_aspect_ratio(peer_network: Network, operator: Operator,
                                                      account: PeerAccount, tmp_path: Path) -> None:
    wide, tall = tmp_path / "wide.png", tmp_path / "tall.jpg"
    Image.new("RGB", (64, 32), (200, 30, 30)).save(wide, "PNG")
    Image.new("RGB", (30, 60), (30, 30, 200)).save(tall, "JPEG")
    alts = ("Ein rotes Rechteck — 赤い長方形 🟥 مستطيل", "")
    story = operator.queue("Two pictures #photo", account, images=(wide, tall), alts=alts)
    delivery = operator.wait_published(story)
    embed = peer_network.record(delivery["remote_id"])["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [(i["alt"], i["aspectRatio"]) for i in embed["images"]] == [
        (alts[0], {"width": 64, "height": 32}), ("", {"width": 30, "height": 60})]
    for path, image in zip((wide, tall), embed["images"], strict=True):
        blob = image["image"]
        assert blob["size"] == path.stat().st_size
        data = peer_network.http.get(f"{peer_network.pds}/xrpc/com.atproto.sync.getBlob", timeout=30,
                                     params={"did": account.did, "cid": blob["ref"]["$link"]}).content
        assert hashlib.sha256(data).digest() == hashlib.sha256(path.read_bytes()).digest()
    assert [i["image"]["mimeType"] for i in embed["images"]] == ["image/png", "image/jpeg"]
    [viewed] = peer_network.appview_posts([delivery["remote_id"]])
    view = viewed["embed"]
    assert view["$type"] == "app.bsky.embed.images#view"
    assert [(i["alt"], i["aspectRatio"]) for i in view["images"]] == [
        (i["alt"], i["aspectRatio"]) for i in embed["images"]]


def test_a_thread_arrives_as_a_reply_chain(peer_network: Network, operator: Operator,
                                           account: PeerAccount) -> None:
    text = " ".join(f"第{i}段: the council met again 👩🏽‍⚖️, and #vote{i} is close; שלום {i}."
                    for i in range(14))
    delivery = operator.wait_published(operator.queue(text, account, link="https://news.example/t",
                                                      thread=True))
    records = peer_network.records(account)
    n = len(records)
    assert n >= 3 and records[0]["uri"] == delivery["remote_id"]
    root = {"uri": records[0]["uri"], "cid": records[0]["cid"]}
    assert "reply" not in records[0]["value"]
    for previous, record in itertools.pairwise(records):
        assert record["value"]["reply"] == {"root": root, "parent": {"uri": previous["uri"],
                                                                      "cid": previous["cid"]}}
    for i, record in enumerate(records, 1):
        part = record["value"]["text"]
        assert part.endswith(f" {i}/{n}") and graphemes(part) <= 300 and utf8_bytes(part) <= 3000
        for facet in record["value"].get("facets", []):
            assert decode(part, facet) == feature_text(facet)
    # Joined without their numbers, the parts give back the story, every word in order.
    words = " ".join(r["value"]["text"].rsplit(" ", 1)[0] for r in records).split()
    assert words == f"{text}\n\n{'https://news.example/t'}".split()
    # The AppView sees the chain: from the last part, parents lead back to the first.
    def chain() -> list[str]:
        params = {"uri": records[-1]["uri"], "parentHeight": n, "depth": 0}
        thread = peer_network.call("GET", peer_network.appview, "app.bsky.feed.getPostThread",
                                   params=params)["thread"]
        uris = []
        while thread and "post" in thread:
            uris.append(thread["post"]["uri"])
            thread = thread.get("parent")
        return uris

    expected = [r["uri"] for r in reversed(records)]
    assert peer_network.until(chain, lambda uris: uris == expected, 30, "the AppView's thread") == expected


def test_a_worker_killed_mid_publish_leaves_exactly_one_record(peer_network: Network,
                                                               operator: Operator) -> None:
    made = peer_network.create_account()
    proxy = HoldingProxy(peer_network.pds, hold="com.atproto.repo.putRecord")
    try:
        operator.add_account(made, proxy.url)
        story = operator.queue("Killed mid-publish: the PDS has it, the worker never hears", made)
        assert proxy.committed.wait(120), f"no putRecord reached the PDS\n{operator.log_tail()}"
        assert len(peer_network.records(made)) == 1  # committed on the PDS, answer held back
        operator.kill9_worker()
        operator.start_worker()
        delivery = operator.wait_published(story)
    finally:
        proxy.close()
    records = peer_network.records(made)
    assert [r["uri"] for r in records] == [delivery["remote_id"]]
    assert delivery["attempts"] >= 2
    puts = [(path, status) for _, path, status in proxy.seen if path.endswith("putRecord")]
    assert puts == [("/xrpc/com.atproto.repo.putRecord", 200)] * 2  # the held one, then the retry


def test_follower_count_matches_the_appview(peer_network: Network, operator: Operator,
                                            account: PeerAccount) -> None:
    fans = [peer_network.create_account("fan") for _ in range(2)]
    for fan in fans:
        peer_network.follow(fan, account)
    profile = peer_network.until(lambda: peer_network.appview_profile(account),
                                 lambda p: p.get("followersCount") == 2, 30, "the AppView to count 2")
    [row] = operator.cli_json("followers", "sample", "--account", f"bluesky:{account.handle}")
    assert row["outcome"] == "sampled" and row["followers"] == profile["followersCount"] == 2


def test_an_expired_access_token_is_refreshed_not_logged_in_again(peer_network: Network,
                                                                  operator: Operator) -> None:
    made = peer_network.create_account()
    session = peer_network.call("POST", peer_network.pds, "com.atproto.server.createSession",
                                json={"identifier": made.handle, "password": made.app_password})
    expired = expired_copy(session["accessJwt"], peer_network.jwt_secret(made))
    refused = peer_network.http.get(f"{peer_network.pds}/xrpc/app.bsky.actor.getProfile", timeout=30,
                                    params={"actor": made.did},
                                    headers={"Authorization": f"Bearer {expired}"})
    assert (refused.status_code, refused.json()["error"]) == (400, "ExpiredToken")
    # A wrong app password: only the refresh token can make this publish succeed. Stored through the
    # service function, as `accounts add` would after its identity check (which this expired session,
    # on purpose, would not pass).
    with session_scope() as s:
        accounts.add(s, "bluesky", made.handle, Credentials({
            "identifier": made.handle, "password": "zzzz-zzzz-zzzz-zzzz", "did": made.did,
            "accessJwt": expired, "refreshJwt": session["refreshJwt"]}), base_url=peer_network.pds)
    delivery = operator.wait_published(operator.queue("Published after a token refresh", made))
    assert [r["uri"] for r in peer_network.records(made)] == [delivery["remote_id"]]
    [shown] = operator.cli_json("accounts", "show", f"bluesky:{made.handle}")
    assert shown["status"] == "active" and shown["token_expires_at"]  # the new token's exp, stored


# -- the stand-in answers like the PDS --------------------------------------------------------------
@dataclass
class Side:
    """One server and two of its accounts, for the same raw requests to both."""

    base: str
    did: str
    handle: str
    token: str
    other_token: str
    refresh: str

    def xrpc(self, method: str, nsid: str, token: str | None = "own", **kwargs: Any) -> requests.Response:
        bearer = {"own": self.token, "other": self.other_token}.get(token or "", token)
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        return requests.request(method, f"{self.base}/xrpc/{nsid}", headers=headers, timeout=30, **kwargs)

    def upload(self, data: bytes, mime: str | None = "image/png",
               token: str | None = "own") -> requests.Response:
        return self.xrpc("POST", "com.atproto.repo.uploadBlob", token, data=data,
                         headers={"Content-Type": mime} if mime else {})

    def put(self, name: str, **record: Any) -> requests.Response:
        body = {"$type": POST, "text": "contract", "createdAt": "2026-11-28T12:00:00.000Z", **record}
        return self.xrpc("POST", "com.atproto.repo.putRecord", json={
            "repo": self.did, "collection": POST, "rkey": tid(datetime.now(UTC), name), "record": body})


def _png(name: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 4), "red").save(out, "PNG")
    return out.getvalue() + name.encode()  # unique bytes per case: a fresh, unused blob on each server


def _with_image(side: Side, name: str, **changes: Any) -> requests.Response:
    blob = side.upload(_png(name)).json()["blob"]
    image = {"image": blob, "alt": "x", **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del image[key]
    return side.put(name, embed={"$type": "app.bsky.embed.images", "images": [image]})


def _with_blob(side: Side, name: str, **changes: Any) -> requests.Response:
    blob = side.upload(_png(name)).json()["blob"]
    return side.put(name, embed={"$type": "app.bsky.embed.images",
                                 "images": [{"image": {**blob, **changes}, "alt": ""}]})


def _reply(side: Side, name: str, reply: Any) -> requests.Response:
    return side.put(name, reply=reply)


BAD_REF = {"uri": "notauri", "cid": blob_cid(b"x")}
CONTRACT: dict[str, Callable[[Side], requests.Response]] = {
    "upload": lambda s: s.upload(_png("upload")),
    "upload sniffs the type": lambda s: s.upload(_png("sniff"), "image/jpeg"),
    "upload keeps an unknown type": lambda s: s.upload(b"hello world", "text/plain"),
    "upload without a type": lambda s: s.upload(_png("none"), None),
    "upload without a token": lambda s: s.upload(_png("anon"), token=None),
    "upload over 5 MiB": lambda s: s.upload(b"\xff\xd8\xff" + bytes(5 * 1024 * 1024), "image/jpeg"),
    "image with alt and aspect ratio": lambda s: _with_image(s, "ok", aspectRatio={"width": 8, "height": 4}),
    "image with empty alt, no aspect ratio": lambda s: _with_image(s, "plain", alt=""),
    "five images": lambda s: s.put("five", embed={"$type": "app.bsky.embed.images", "images": [
        {"image": s.upload(_png(f"five{i}")).json()["blob"], "alt": ""} for i in range(5)]}),
    "image without alt": lambda s: _with_image(s, "noalt", alt=None),
    "alt not a string": lambda s: _with_image(s, "altint", alt=5),
    "aspect ratio 0": lambda s: _with_image(s, "zero", aspectRatio={"width": 0, "height": 4}),
    "aspect ratio float": lambda s: _with_image(s, "float", aspectRatio={"width": 1.5, "height": 4}),
    "aspect ratio without height": lambda s: _with_image(s, "noh", aspectRatio={"width": 8}),
    "blob of another type": lambda s: _with_blob(s, "texttype", mimeType="text/plain"),
    "blob over 2,000,000 bytes": lambda s: _with_blob(s, "huge", size=2_000_001),
    "blob with another mime type": lambda s: _with_blob(s, "mime", mimeType="image/jpeg"),
    "blob with another size": lambda s: _with_blob(s, "size", size=3),
    "blob never uploaded": lambda s: _with_blob(s, "ghost", ref={"$link": blob_cid(b"never uploaded")}),
    "blob of another account": lambda s: s.put("theirs", embed={"$type": "app.bsky.embed.images", "images": [
        {"image": s.upload(_png("theirs"), token="other").json()["blob"], "alt": ""}]}),
    "reply without root": lambda s: _reply(s, "noroot", {"parent": {"uri": f"at://{s.did}/{POST}/x",
                                                                    "cid": blob_cid(b"x")}}),
    "reply with a bad uri": lambda s: _reply(s, "baduri", {"root": BAD_REF, "parent": BAD_REF}),
    "reply without cid": lambda s: _reply(s, "nocid", {"root": {"uri": f"at://{s.did}/{POST}/x"},
                                                       "parent": {"uri": f"at://{s.did}/{POST}/x"}}),
    "text of 301 graphemes": lambda s: s.put("long", text="é" * 301),
    "text of 3001 bytes": lambda s: s.put("bytes", text="a" + "€" * 1000),
    "record key not a TID": lambda s: s.xrpc("POST", "com.atproto.repo.putRecord", json={
        "repo": s.did, "collection": POST, "rkey": "hello", "record": {"$type": POST, "text": "x",
                                                                     "createdAt": "2026-11-28T12:00:00Z"}}),
    "write without a token": lambda s: s.xrpc("POST", "com.atproto.repo.putRecord", None, json={}),
    "write with the refresh token": lambda s: s.xrpc("POST", "com.atproto.repo.putRecord", s.refresh,
                                                     json={}),
    "write with GET": lambda s: s.xrpc("GET", "com.atproto.repo.putRecord"),
    "create on a key that exists": lambda s: [s.xrpc("POST", "com.atproto.repo.createRecord", json={
        "repo": s.did, "collection": POST, "rkey": tid(datetime(2026, 1, 1, tzinfo=UTC), "dup"),
        "record": {"$type": POST, "text": "x", "createdAt": "2026-11-28T12:00:00Z"}}) for _ in range(2)][1],
    "get a record that is not there": lambda s: s.xrpc("GET", "com.atproto.repo.getRecord", None, params={
        "repo": s.did, "collection": POST, "rkey": tid(datetime(2026, 1, 2, tzinfo=UTC), "none")}),
    "resolve own handle": lambda s: s.xrpc("GET", "com.atproto.identity.resolveHandle", None,
                                           params={"handle": s.handle.upper()}),
    "resolve unknown handle": lambda s: s.xrpc("GET", "com.atproto.identity.resolveHandle", None,
                                               params={"handle": "nobody-here.test"}),
    "resolve another domain": lambda s: s.xrpc("GET", "com.atproto.identity.resolveHandle", None,
                                               params={"handle": "someone.example.com"}),
    "resolve a bad handle": lambda s: s.xrpc("GET", "com.atproto.identity.resolveHandle", None,
                                             params={"handle": "bad handle"}),
    "resolve nothing": lambda s: s.xrpc("GET", "com.atproto.identity.resolveHandle", None),
}


@pytest.fixture(scope="module")
def sides(peer_network: Network) -> Iterator[tuple[Side, Side]]:
    owner, other = peer_network.create_account(), peer_network.create_account()
    standin = BlueskyStandIn().start()
    mine, theirs = standin.add_account("owner.test"), standin.add_account("other.test")
    yield (Side(peer_network.pds, owner.did, owner.handle, owner.access_jwt, other.access_jwt,
                owner.refresh_jwt),
           Side(standin.url, mine["did"], "owner.test", mine["accessJwt"], theirs["accessJwt"],
                mine["refreshJwt"]))
    standin.stop()


def _shape(answer: requests.Response, side: Side) -> tuple[int, Any]:
    body = answer.json()
    if answer.ok and "uri" in body:  # a written record: its own DID, CID and commit
        return answer.status_code, body["validationStatus"]
    return answer.status_code, json.loads(json.dumps(body).replace(side.did, "<did>"))


@pytest.mark.parametrize("case", CONTRACT)
def test_the_standin_answers_like_the_pds(sides: tuple[Side, Side], case: str) -> None:
    real, standin = sides
    assert _shape(CONTRACT[case](standin), standin) == _shape(CONTRACT[case](real), real)
