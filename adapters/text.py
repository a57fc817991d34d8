"""Pure text rules: how each platform counts, where links sit, byte offsets for facets.

No I/O here, so every rule can be tested on its own with arbitrary Unicode.
"""

from __future__ import annotations

import re
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
