"""Text rules on arbitrary Unicode: counting never crashes, thread splits fit and re-join to the
original text, facets point at exactly their substring."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bluesky import facets
from adapters.text import (
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
            assert piece == feature["uri"]
        else:
            assert piece in (f"#{feature['tag']}", f"\uff03{feature['tag']}")
    for span in link_spans(text):
        assert data[span.byte_start:span.byte_end].decode("utf-8") == span.value
