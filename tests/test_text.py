"""Text rules on arbitrary Unicode: counting never crashes, thread splits fit and re-join to the
original text, facets point at exactly their substring."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bluesky import facets
from adapters.text import (
    URL_RE,
    graphemes,
    link_spans,
    mastodon_length,
    split_thread,
    thread_chunks,
    utf8_bytes,
    utf16_units,
)
from adapters.x import x_weighted_length

# Words, emoji sequences, CJK, combining marks, right-to-left script, links, tags, white space.
PIECES = st.sampled_from([
    "news", "Élysée", "日本語のニュース", "👨‍👩‍👧‍👦", "🇪🇸", "👍🏽", "é", "שלום", "مرحبا", "#culture",
    "https://example.org/a?b=1", " ", "  ", "\n", ". ", "! ", "\u200d", "x" * 40,
])
TEXT = st.lists(PIECES | st.text(max_size=4), max_size=200).map("".join)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(st.text(max_size=2000))
def test_counters_never_crash(text: str) -> None:
    for counter in (graphemes, utf8_bytes, utf16_units, mastodon_length):
        assert counter(text) >= 0
    assert x_weighted_length(text[:300]) >= 0


@PROPS
@given(TEXT, st.sampled_from([(300, graphemes), (500, mastodon_length), (280, x_weighted_length)]))
def test_thread_parts_fit_and_rejoin(text: str, rule: tuple) -> None:
    limit, count = rule
    try:
        chunks = thread_chunks(text, limit, count)
    except ValueError:  # a single cluster over the budget: reported as a problem, never a bad split
        return
    assert "".join(chunks) == text
    for part in split_thread(text, limit, count):
        assert count(part) <= limit


@PROPS
@given(TEXT)
def test_facets_point_at_their_substring(text: str) -> None:
    data = text.encode("utf-8")
    for facet in facets(text):
        piece = data[facet["index"]["byteStart"]:facet["index"]["byteEnd"]].decode("utf-8")
        feature = facet["features"][0]
        if feature["$type"].endswith("#link"):
            assert feature["uri"] in (piece, f"https://{piece}")  # a bare domain gets a scheme
        else:
            assert piece in (f"#{feature['tag']}", f"\uff03{feature['tag']}")
    for span in link_spans(text):
        assert span.value in (piece := data[span.byte_start:span.byte_end].decode("utf-8"), f"https://{piece}")


# -- links, as each platform finds them ----------------------------------------------------------------
WIKI = "https://en.wikipedia.org/wiki/Hangzhou_(disambiguation)"


@pytest.mark.parametrize("text, links", [
    (f"See {WIKI} for more", [WIKI]),
    (f"See {WIKI}.", [WIKI]),
    (f"(see {WIKI})", [WIKI]),  # the outer closing parenthesis is the sentence's
    ("(see https://example.org/a)", ["https://example.org/a"]),
    ("broken https://example.org/a(b", ["https://example.org/a"]),
    ("two: https://a.example/x, https://b.example/y!", ["https://a.example/x", "https://b.example/y"]),
])
def test_a_link_keeps_its_balanced_parentheses(text: str, links: list[str]) -> None:
    assert URL_RE.findall(text) == links


def link_facets(text: str) -> list[tuple[str, str]]:
    """(covered text, uri) of every Bluesky link facet of ``text``."""
    data = text.encode("utf-8")
    return [(data[s.byte_start:s.byte_end].decode("utf-8"), s.value) for s in link_spans(text)]


# Each row as Bluesky's official client (detectFacets in @atproto/api) makes the facet.
@pytest.mark.parametrize("text, expected", [
    (f"Read {WIKI} now", [(WIKI, WIKI)]),
    (f"Read {WIKI}.", [(WIKI, WIKI)]),
    ("(https://example.org/a)", [("https://example.org/a", "https://example.org/a")]),
    # The client would keep the outer ")" here (it drops one only from a link without "("): a dead link.
    (f"(see {WIKI}).", [(WIKI, WIKI)]),
    ("Read en.hangzhou.com.cn today", [("en.hangzhou.com.cn", "https://en.hangzhou.com.cn")]),
    ("at example.org/path, then", [("example.org/path", "https://example.org/path")]),
    ("杭州 en.hangzhou.com.cn。", [("en.hangzhou.com.cn\u3002", "https://en.hangzhou.com.cn\u3002")]),
    ("(example.org)", [("example.org", "https://example.org")]),
    ("an unknown tld: foo.notatld and v1.2 and e.g. this", []),
    ("my-site.com has a hyphen the client's pattern does not take", []),
    ("Example.ORG is compared case-sensitively", []),
    ("glued,example.org is not after white space", []),
    ("🇪🇸 https://example.es/ñ 日本", [("https://example.es/ñ", "https://example.es/ñ")]),
])
def test_bluesky_link_facets_as_the_official_client_makes_them(text: str, expected: list) -> None:
    assert link_facets(text) == expected


# -- Mastodon's count: the 23-character allowance only for what twitter-text recognises as a URL ------
@pytest.mark.parametrize("text, length", [
    ("https://example.org/" + "a" * 80, 23),
    ("see https://example.org/x and https://example.com/y", 4 + 23 + 5 + 23),
    ("https://news.notatld/" + "a" * 20, 41),  # unknown top-level domain: its own 41 characters
    ("http://localhost:8000/health", 28),  # no top-level domain at all
    ("example.org/path", 16),  # no scheme: Mastodon does not extract it
    (f"{WIKI} x", 25),
    ("@editor@social.example.org hello", 13),  # a remote mention counts as @editor
])
def test_mastodon_length_gives_the_allowance_only_to_recognised_urls(text: str, length: int) -> None:
    assert mastodon_length(text) == length


# -- CJK sentence ends are split points ----------------------------------------------------------------
def test_cjk_threads_split_after_sentence_ends_without_spaces() -> None:
    # Ends: U+3002 (full stop), U+FF01 (exclamation), U+FF1F (question), a full stop in quotes.
    sentences = ["今日は市議会が新しい予算を可決しました。", "路面電車の延伸が決まりました\uff01",
                 "工事はいつ始まるのでしょうか\uff1f", "「来年の春です。」と市長は述べた。"] * 3
    text = "".join(sentences)
    chunks = thread_chunks(text, 50, graphemes)
    assert len(chunks) > 1 and "".join(chunks) == text
    for chunk in chunks:  # every cut falls after a sentence (closing quote included), none mid-word
        assert chunk.endswith(("\u3002", "\uff01", "\uff1f")), chunk


def test_a_latin_full_stop_still_needs_white_space() -> None:
    # "3.5" or "example.org" is no sentence end; without spaces the text is cut between words instead.
    text = "Version 3.5 ships today. " * 12
    for chunk in thread_chunks(text, 60, graphemes):
        assert chunk.endswith("today. ")
