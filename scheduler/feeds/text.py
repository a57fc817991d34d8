"""Pure text rules for feed items: HTML to plain text, hashtags from categories, and shortening at a
word (or, in CJK text, a grapheme) boundary with an ellipsis, never inside a link."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import regex

ELLIPSIS = "…"
_LINK = regex.compile(r"https?://\S+")
# Scripts written without spaces between words: any grapheme boundary next to one is a word boundary.
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\u3000-\u303f\uff00-\uffef]")
_BLOCKS = frozenset({"p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote"})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in _BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def plain(html: str) -> str:
    """The text an HTML fragment shows (tags dropped, entities decoded, white space collapsed)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    # Control characters (a NUL, which PostgreSQL refuses, among them) are paste accidents, not text.
    text = "".join(c for c in "".join(parser.parts) if c.isprintable() or c.isspace())
    return " ".join(text.split())


def hashtags(categories: list[str]) -> str:
    """``#WorldNews #科技`` from categories: words joined, punctuation dropped, each tag once."""
    seen: dict[str, None] = {}
    for category in categories:
        tag = "".join(regex.findall(r"[\p{L}\p{N}_]+", category))
        if tag and tag.lower() not in {t.lower() for t in seen}:
            seen[tag] = None
    return " ".join(f"#{tag}" for tag in seen)


def cut_points(text: str) -> list[int]:
    """Where ``text`` may be cut: before each white-space run after a word, and at every grapheme
    boundary touching a CJK character; never inside a link."""
    links = [(m.start(), m.end()) for m in _LINK.finditer(text)]
    points = {m.start() for m in regex.finditer(r"(?<=\S)\s+", text)}
    position = 0
    previous_cjk = False
    for grapheme in regex.findall(r"\X", text):
        cjk = bool(_CJK.match(grapheme))
        if position and (cjk or previous_cjk):
            points.add(position)
        position += len(grapheme)
        previous_cjk = cjk
    return sorted(p for p in points if 0 < p < len(text) and not any(a < p < b for a, b in links))


def clip(text: str, point: int) -> str:
    """The part of ``text`` before ``point`` with an ellipsis (trailing spaces and commas dropped)."""
    head = text[:point].rstrip(" \t\n,;:-\u2013\u2014\u3001\uff0c")
    words = head.split()
    if words and _LINK.match(words[-1]):
        return f"{head} {ELLIPSIS}"  # glued to a link, the ellipsis would become part of it
    return head + ELLIPSIS


def shorten(text: str, limit: int, count: Callable[[str], int] = len) -> str:
    """``text`` if it counts at most ``limit``, else its longest clipped prefix that does. A link is
    kept whole or dropped whole. When no prefix fits, the ellipsis alone."""
    if count(text) <= limit:
        return text
    points = cut_points(text)
    lo, hi, best = 0, len(points) - 1, ELLIPSIS
    while lo <= hi:  # a longer prefix never counts less
        mid = (lo + hi) // 2
        candidate = clip(text, points[mid])
        if count(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best
