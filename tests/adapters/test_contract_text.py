"""Text as the platforms count and mark it, each case published through the adapter to its stand-in:
links with balanced parentheses, bare domains (Bluesky's official client makes link facets for them),
Mastodon's URL allowance only for URLs twitter-text recognises, CJK sentence ends as thread split
points, and Bluesky's ``langs``. The stand-ins count with their own rules (test_contract_oracles.py),
so an adapter that counts wrongly is refused here. The same Bluesky cases against Bluesky's own servers
are in tests/peer/test_bluesky_peer.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from adapters import adapter_class
from adapters.base import AccountRef, Adapter, Post
from adapters.errors import Rejected
from adapters.standins.base import StandIn
from tests.adapters.helpers import account_on, finish, unique

WIKI = "https://en.wikipedia.org/wiki/Hangzhou_(disambiguation)"
# Sentences that end in U+3002, U+FF01 and U+FF1F with no space after them, as CJK text is written.
CJK = "".join(["杭州市は新しい地下鉄の路線を発表しました。", "開業は二〇二八年の予定です\uff01",
               "運賃はいくらになるのでしょうか\uff1f", "市は来月に説明会を開きます。"] * 12)
CJK_ENDS = ("\u3002", "\uff01", "\uff1f")


def post(text: str, **kwargs: Any) -> Post:
    return Post(text=text, created_at=datetime.now(UTC), **kwargs)


def on(standins: Callable[[str], StandIn], platform: str, handle: str) -> tuple[StandIn, Adapter, AccountRef]:
    standin = standins(platform)
    standin.reset()
    return standin, adapter_class(platform)(timeout=5), account_on(standin, platform, handle)


# -- Bluesky: facets and langs, as the PDS stores the record ---------------------------------------------
@pytest.fixture
def bluesky(standins: Callable[[str], StandIn]) -> tuple[StandIn, Adapter, AccountRef]:
    return on(standins, "bluesky", f"{unique()}.test")


def records(standin: StandIn) -> list[dict[str, Any]]:
    return [c.data["record"] for c in standin.posts("post")]


def link_facets(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(covered text, uri) of each link facet in a stored record."""
    data = record["text"].encode("utf-8")
    return [(data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode("utf-8"), f["features"][0]["uri"])
            for f in record.get("facets", []) if f["features"][0]["$type"].endswith("#link")]


@pytest.mark.parametrize("text, expected", [
    (f"Hangzhou, the other meanings: {WIKI}", [(WIKI, WIKI)]),
    (f"Other meanings ({WIKI}).", [(WIKI, WIKI)]),
    ("Official site: en.hangzhou.com.cn", [("en.hangzhou.com.cn", "https://en.hangzhou.com.cn")]),
    ("Details at example.org/path today", [("example.org/path", "https://example.org/path")]),
    ("Not a link: v2.0 or file.notatld", []),
], ids=["balanced-parentheses", "in-parentheses", "bare-domain", "bare-domain-path", "no-known-tld"])
def test_bluesky_link_facets(bluesky: tuple[StandIn, Adapter, AccountRef], text: str,
                             expected: list[tuple[str, str]]) -> None:
    standin, adapter, account = bluesky
    finish(adapter, account, post(text))
    [record] = records(standin)
    assert record["text"] == text and link_facets(record) == expected


@pytest.mark.parametrize("end, accepted", [(len(WIKI), True), (len(WIKI) - 1, False)],
                         ids=["whole", "cut-before-its-parenthesis"])
def test_the_bluesky_standin_refuses_a_link_cut_inside_its_parentheses(
        bluesky: tuple[StandIn, Adapter, AccountRef], end: int, accepted: bool) -> None:
    """The stand-in's own rule (the PDS stores such a record; readers then get a dead link)."""
    standin, _, account = bluesky
    creds = account.credentials
    text = f"See {WIKI} today"
    facet = {"index": {"byteStart": 4, "byteEnd": 4 + end},
             "features": [{"$type": "app.bsky.richtext.facet#link", "uri": WIKI[:end]}]}
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-28T12:00:00.000Z",
              "facets": [facet]}
    answer = requests.post(f"{standin.url}/xrpc/com.atproto.repo.createRecord", timeout=5,
                           headers={"Authorization": f"Bearer {creds.get('accessJwt')}"},
                           json={"repo": creds.get("did"), "collection": "app.bsky.feed.post",
                                 "record": record})
    assert (answer.status_code == 200) is accepted, answer.text
    if not accepted:
        assert "parentheses" in answer.text


@pytest.mark.parametrize("language", ["en", "pt-BR", "zh-Hans"])
def test_bluesky_posts_carry_langs(bluesky: tuple[StandIn, Adapter, AccountRef], language: str) -> None:
    standin, adapter, account = bluesky
    finish(adapter, account, post("Council approves the new tram line", language=language))
    assert [r.get("langs") for r in records(standin)] == [[language]]


def test_bluesky_without_a_language_sends_no_langs(bluesky: tuple[StandIn, Adapter, AccountRef]) -> None:
    standin, adapter, account = bluesky
    finish(adapter, account, post("Council approves the new tram line"))
    assert "langs" not in records(standin)[0]


def test_the_bluesky_standin_refuses_a_language_that_is_no_bcp47_tag(
        bluesky: tuple[StandIn, Adapter, AccountRef]) -> None:
    standin, adapter, account = bluesky
    with pytest.raises(Rejected, match="langs"):
        finish(adapter, account, post("Council approves the new tram line", language="english_UK"))
    assert standin.posts() == []


def test_bluesky_cjk_thread_splits_at_sentence_ends(bluesky: tuple[StandIn, Adapter, AccountRef]) -> None:
    standin, adapter, account = bluesky
    finish(adapter, account, post(CJK, thread=True))
    texts = [r["text"] for r in records(standin)]
    assert len(texts) > 1
    for i, text in enumerate(texts, 1):
        body, numbering = text.rsplit(" ", 1)
        assert numbering == f"{i}/{len(texts)}" and body.endswith(CJK_ENDS), text
    assert "".join(t.rsplit(" ", 1)[0] for t in texts) == CJK


# -- Mastodon: the 23-character allowance only for URLs twitter-text recognises ---------------------------
@pytest.fixture
def mastodon(standins: Callable[[str], StandIn]) -> tuple[StandIn, Adapter, AccountRef]:
    return on(standins, "mastodon", unique())


def test_mastodon_counts_an_unrecognised_url_as_its_characters(
        mastodon: tuple[StandIn, Adapter, AccountRef]) -> None:
    standin, adapter, account = mastodon
    # 470 + 1 + 41 = 512 as Mastodon counts; 494 if every http(s) URL were 23.
    text = "a" * 470 + " https://news.notatld/" + "b" * 20
    assert [p.field for p in adapter.check(post(text))] == ["text"]
    with pytest.raises(Rejected, match="is 512 characters long"):
        finish(adapter, account, post(text))
    # The stand-in counts on its own (twitter-text's extractor), sent the text directly.
    token = account.credentials.get("access_token")
    answer = requests.post(f"{standin.url}/api/v1/statuses", data={"status": text},
                           headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 422 and "character limit" in answer.text
    assert standin.posts() == []


def test_mastodon_gives_a_recognised_url_23_characters(mastodon: tuple[StandIn, Adapter, AccountRef]) -> None:
    standin, adapter, account = mastodon
    text = "a" * 476 + f" {WIKI}/" + "x" * 100  # 477 + 23 = 500: exactly the limit
    assert adapter.check(post(text)) == []
    finish(adapter, account, post(text))
    assert [c.data["text"] for c in standin.posts("status")] == [text]


# -- Mastodon and X (where CJK weighs 2): threads split at CJK sentence ends ----------------------------
@pytest.mark.parametrize("platform, kind, text", [("mastodon", "status", CJK * 2), ("x", "tweet", CJK)])
def test_cjk_threads_split_at_sentence_ends(standins: Callable[[str], StandIn], platform: str, kind: str,
                                            text: str) -> None:
    standin, adapter, account = on(standins, platform, unique())
    finish(adapter, account, post(text, thread=True))
    parts = [c.data["text"] for c in standin.posts(kind)]
    assert len(parts) > 1
    for part in parts:
        assert part.rsplit(" ", 1)[0].endswith(CJK_ENDS), part


# -- Threads: at most 5 links; the adapter and the stand-in (its own link rule) agree at the limit ------
def test_threads_link_limit(standins: Callable[[str], StandIn]) -> None:
    standin, adapter, account = on(standins, "threads", unique())
    links = " ".join(f"https://example.org/{i}" for i in range(4))
    # The same link twice, once in parentheses: 5 distinct links, the limit.
    five = f"{links} {WIKI} (see {WIKI})"
    assert adapter.check(post(five)) == []
    finish(adapter, account, post(five))
    assert len(standin.posts()) == 1
    assert [p.field for p in adapter.check(post(f"{five} https://example.org/9"))] == ["text"]
