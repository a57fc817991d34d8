"""Pure text rules: how each platform counts, where links sit, byte offsets for facets.

No I/O here, so every rule can be tested on its own with arbitrary Unicode.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import regex

# Conservative URL pattern: scheme, then anything up to white space; trailing punctuation that
# normally closes a sentence is not part of the link.
URL_RE = re.compile("https?://[^\\s<>\"]+[^\\s<>\".,;:!?)\\]}'\u2019\u201d]")
_REMOTE_MENTION_RE = re.compile(r"(@[\w.]+)@[\w.-]+\w")


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters)."""
    return len(regex.findall(r"\X", text))


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def mastodon_length(text: str, url_length: int = 23) -> int:
    """Mastodon's StatusLengthValidator: graphemes, every URL counts ``url_length``, and a remote
    mention ``@user@domain`` counts as ``@user``."""
    text = URL_RE.sub("x" * url_length, text)
    text = _REMOTE_MENTION_RE.sub(r"\1", text)
    return graphemes(text)


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


def link_spans(text: str) -> list[Span]:
    """Every URL in ``text`` with its UTF-8 byte range."""
    spans = []
    for m in URL_RE.finditer(text):
        start = utf8_bytes(text[: m.start()])
        spans.append(Span(start, start + utf8_bytes(m.group()), m.group()))
    return spans


_SENTENCE_END = regex.compile(r"[.!?\u3002\uff01\uff1f\u2026]+[\"'\u201d\u2019)\]]*\s+")
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
