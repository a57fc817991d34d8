"""Pure text rules: how each platform counts, where links sit, byte offsets for facets.

No I/O here, so every rule can be tested on its own with arbitrary Unicode.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex

from adapters.tlds import TLDS

# A scheme, then anything up to white space. A parenthesised part belongs to the link (Wikipedia's
# ``Hangzhou_(disambiguation)``); an unmatched closing bracket, and punctuation that normally closes a
# sentence, do not.
_URL_CHAR = "[^\\s<>\"()]"
_URL_PARENS = "\\([^\\s<>\"()]*\\)"
_URL_LAST = "[^\\s<>\"().,;:!?\\]}'\u2019\u201d]"
URL_RE = re.compile(f"https?://(?:{_URL_CHAR}|{_URL_PARENS})*(?:{_URL_LAST}|{_URL_PARENS})")
_REMOTE_MENTION_RE = re.compile(r"(@[\w.]+)@[\w.-]+\w")


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters)."""
    return len(regex.findall(r"\X", text))


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@lru_cache(maxsize=4096)
def mastodon_length(text: str, url_length: int = 23) -> int:
    """Mastodon's StatusLengthValidator: graphemes, where a URL counts ``url_length`` only if
    twitter-text's extractor recognises it (with a scheme, a known top-level domain; Mastodon calls it
    with ``extract_url_without_protocol: false``) and otherwise its own characters, and a remote
    mention ``@user@domain`` counts as ``@user``. Cached: thread splitting asks about the same pieces."""
    pieces, pos = [], 0
    # Without a scheme the extractor (asked for scheme URLs only) finds nothing: skip its cost. Imported
    # here: twitter-text's emoji tables take a third of a second, which every command and tick paid.
    urls: list[dict[str, Any]] = []
    if "://" in text:
        from twitter_text import extract_urls_with_indices

        urls = extract_urls_with_indices(text, extract_urls_without_protocol=False)
    for url in urls:
        start, end = url["indices"]
        pieces += [_REMOTE_MENTION_RE.sub(r"\1", text[pos:start]), "x" * url_length]
        pos = end
    return graphemes("".join([*pieces, _REMOTE_MENTION_RE.sub(r"\1", text[pos:])]))


def compose(text: str, link: str | None) -> str:
    """The text a platform receives: the story text, then the link on its own paragraph unless the
    text already carries it."""
    text = text.strip()
    if not link or link in text:
        return text
    return f"{text}\n\n{link}" if text else link


@dataclass(frozen=True)
class Span:
    """A substring located in UTF-8 bytes (start inclusive, end exclusive), as Bluesky facets want."""

    byte_start: int
    byte_end: int
    value: str


# Bluesky's official client (``detectFacets`` in @atproto/api, rich-text/util.ts): a link starts at the
# start of a line, after white space or after "("; it is a scheme URL, or a bare domain of ASCII
# letters and digits whose top-level domain is known.
_BSKY_URL_RE = re.compile(
    r"(?:^|(?<=[\s(]))(?:https?://\S+|(?P<domain>[a-z][a-z0-9]*(?:\.[a-z0-9]+)+)\S*)",
    re.IGNORECASE | re.MULTILINE,
)


def _known_domain(domain: str) -> bool:
    # The client compares case-sensitively with its lower-case list: "Example.ORG" is no link there.
    return "." in domain and domain.rsplit(".", 1)[1] in TLDS


def link_spans(text: str) -> list[Span]:
    """Every link in ``text`` as Bluesky's official client finds it, with its UTF-8 byte range;
    ``value`` is the link's URI (``https://`` added to a bare domain). One final ``.,;:!?`` is not
    part of it, nor then a final ``)`` that no ``(`` in the link opened. The client drops one ``)``
    only when the link has no ``(`` at all, so for ``(see .../Hangzhou_(disambiguation))`` it links
    a page that does not exist; here the unmatched one is dropped too, the matched one kept."""
    spans = []
    for m in _BSKY_URL_RE.finditer(text):
        if m["domain"] is not None and not _known_domain(m["domain"]):
            continue
        found = m.group()
        if found[-1] in ".,;:!?":
            found = found[:-1]
        while found.endswith(")") and found.count(")") > found.count("("):
            found = found[:-1]
        start = utf8_bytes(text[: m.start()])
        uri = found if m["domain"] is None else f"https://{found}"
        spans.append(Span(start, start + utf8_bytes(found), uri))
    return spans


# A sentence ends at ".", "!", "?" or "…" before white space, and at the CJK full stop, exclamation and
# question marks (U+3002, U+FF01, U+FF1F) even without any: CJK text has no spaces between sentences.
# Closing quotes and brackets stay with their sentence.
_CLOSERS = "\"'\u201d\u2019)\\]\u300d\u300f\u3011\u3015\u3009\u300b\uff09\uff02"
_SENTENCE_END = regex.compile(f"[.!?\u2026]+[{_CLOSERS}]*\\s+|[\u3002\uff01\uff1f]+[{_CLOSERS}]*\\s*")
_SPACE = regex.compile(r"\s+")


def _boundaries(text: str) -> tuple[list[int], list[int], list[int]]:
    """Every candidate cut point: after a sentence, after a word, after a grapheme."""
    sentences = [m.end() for m in _SENTENCE_END.finditer(text)]
    words = [m.end() for m in _SPACE.finditer(text)]
    graphs = [m.end() for m in regex.finditer(r"\X", text)]
    return sentences, words, graphs


def _longest(text: str, start: int, cuts: list[int], fits: Callable[[str], bool]) -> int | None:
    """The furthest cut whose piece fits; binary search, since a longer piece never counts less and
    some counters (X's) are slow."""
    lo, hi, best = 0, len(cuts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(text[start:cuts[mid]]):
            best, lo = cuts[mid], mid + 1
        else:
            hi = mid - 1
    return best


def _within(cuts: list[int], start: int, end: int) -> list[int]:
    return cuts[bisect_right(cuts, start):bisect_right(cuts, end)]


def thread_chunks(text: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """Cut ``text`` into consecutive pieces (joined, they give ``text`` back exactly) such that each
    piece, stripped and numbered ``i/n``, counts at most ``limit``. Cuts fall after a sentence where
    one fits, else after a word, else (a single overlong word) between two graphemes."""
    if count(text.strip()) <= limit:
        return [text]
    boundaries = _boundaries(text)
    digits = 1
    while True:
        numbering = count(f" {'9' * digits}/{'9' * digits}")
        budget = limit - numbering
        if budget <= 0:
            raise ValueError(f"a limit of {limit} leaves no room for the part numbers")
        # A piece that fits is rarely longer than 8 characters per counted unit; looking only that far
        # keeps the split linear in the text. A longer piece is only cut shorter (still within the
        # limit); the whole text is the fallback when nothing in the window fits.
        span = (budget + 1) * 8
        chunks: list[str] = []
        start = 0

        def fits(piece: str, budget: int = budget) -> bool:
            return count(piece.strip()) <= budget

        while start < len(text):
            if len(text) - start <= span and fits(text[start:]):
                chunks.append(text[start:])
                break
            cut = None
            for end in (start + span, len(text)):
                cut = next((c for cuts in boundaries
                            if (c := _longest(text, start, _within(cuts, start, end), fits))), None)
                if cut is not None or end >= len(text):
                    break
            if cut is None:
                raise ValueError(f"one character of the text alone exceeds a budget of {budget}")
            chunks.append(text[start:cut])
            start = cut
        if len(str(len(chunks))) <= digits:
            return chunks
        digits += 1


def split_thread(text: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """The posts of a reply chain for ``text``: each within ``limit``, numbered ``1/3`` when there
    is more than one."""
    chunks = thread_chunks(text, limit, count)
    if len(chunks) == 1:
        return [text.strip()]
    n = len(chunks)
    return [f"{chunk.strip()} {i}/{n}" for i, chunk in enumerate(chunks, 1)]


def title_from(text: str, limit: int, count: Callable[[str], int] = len) -> str:
    """The first non-blank line of ``text``, cut after the last whole word that fits ``limit`` with an
    ellipsis (between two graphemes when a single word is too long)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if count(line) <= limit:
        return line
    room, cut = limit - count("…"), ""
    for word in regex.finditer(r"\S+", line):
        if count(line[:word.end()]) > room:
            break
        cut = line[:word.end()]
    if not cut:
        for grapheme in regex.findall(r"\X", line):
            if count(cut + grapheme) > room:
                break
            cut += grapheme
    return cut.rstrip(" ,;:-\u2013\u2014") + "…"
