"""Compose's preview: each target platform's post as it will go out and roughly as its apps show it.
The text is what the adapter sends (``Post.body``: the platform's variant or the story's text, the link
on its own paragraph), split into the reply chain publishing posts (``split_thread``, numbered as it
numbers them), with the links, hashtags and mentions that platform turns into links highlighted (on
Bluesky by the adapter's own facet rules), the images with their alt text, and the account's handle."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import accumulate

from twitter_text import extract_urls_with_indices

from adapters import adapter_class
from adapters.bluesky import mention_spans, tag_spans
from adapters.text import URL_RE, link_spans, split_thread, utf8_bytes
from scheduler.core.models import Account
from scheduler.stories.drafts import Draft

# What each platform's apps make of a post's text: which kinds become links. Instagram, TikTok and
# YouTube show a link in a caption as plain text; Facebook and LinkedIn do not link @names typed as text.
_ALL = frozenset({"link", "hashtag", "mention"})
RENDERS: dict[str, frozenset[str]] = {
    "x": _ALL, "mastodon": _ALL, "bluesky": _ALL, "telegram": _ALL, "threads": _ALL,
    "facebook": frozenset({"link", "hashtag"}),
    "linkedin": frozenset({"link", "hashtag"}), "instagram": frozenset({"hashtag", "mention"}),
    "tiktok": frozenset({"hashtag", "mention"}), "youtube": frozenset({"link", "hashtag"}),
}
# A hashtag: '#' not inside a word, then letters, digits or '_' with at least one that is not a digit.
_HASHTAG = re.compile(r"(?<![\w#&])[#\uff03](?!\d+\b)\w+")
# A mention: '@' not inside a word (so not an e-mail address); Mastodon's may name the instance.
_MENTION = re.compile(r"(?<![\w@])@\w+")
_FEDIVERSE_MENTION = re.compile(r"(?<![\w@])@\w+(?:@[\w-]+(?:\.[\w-]+)+)?")


@dataclass(frozen=True)
class Piece:
    kind: str  # text | link | hashtag | mention
    text: str


@dataclass(frozen=True)
class Image:
    name: str
    alt: str


@dataclass
class Card:
    """One post of a platform's preview; ``number`` is None for a post that is not part of a thread."""

    pieces: list[Piece]
    number: int | None = None
    images: list[Image] = field(default_factory=list)


@dataclass
class Preview:
    platform: str
    handle: str  # the first target account of the platform
    others: int  # more accounts of the platform get the same post
    variant: bool  # the platform's own variant is used
    cards: list[Card]
    over: bool  # too long for one post and not split: the counters say why


def _links(platform: str, text: str) -> list[tuple[int, int]]:
    if platform == "bluesky":
        return _chars(text, [(s.byte_start, s.byte_end) for s in link_spans(text)])
    if platform in ("x", "telegram", "mastodon"):
        # twitter-text's extractor, as X links; Mastodon asks it for scheme URLs only.
        found = extract_urls_with_indices(text, extract_urls_without_protocol=platform != "mastodon")
        return [tuple(u["indices"]) for u in found]  # type: ignore[misc]
    return [m.span() for m in URL_RE.finditer(text)]


def _chars(text: str, byte_ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """UTF-8 byte ranges (Bluesky's facets) as character ranges of ``text``."""
    ends = [0, *accumulate(utf8_bytes(c) for c in text)]
    index = {b: i for i, b in enumerate(ends)}
    return [(index[a], index[b]) for a, b in byte_ranges if a in index and b in index]


def spans(platform: str, text: str) -> list[tuple[int, int, str]]:
    """The highlighted ranges of ``text`` on ``platform``, in order and never overlapping (a tag or a
    mention inside a link is part of the link)."""
    kinds = RENDERS.get(platform, frozenset({"link"}))
    found: list[tuple[int, int, str]] = []
    if "link" in kinds:
        found += [(a, b, "link") for a, b in _links(platform, text)]
    if platform == "bluesky":
        # The adapter's own facet rules (a mention becomes a link once its handle resolves).
        for kind, facets in (("hashtag", tag_spans(text)), ("mention", mention_spans(text))):
            found += [(a, b, kind) for a, b in _chars(text, [(f.byte_start, f.byte_end) for f in facets])]
    else:
        found += [(*m.span(), "hashtag") for m in _HASHTAG.finditer(text) if "hashtag" in kinds]
        mention = _FEDIVERSE_MENTION if platform == "mastodon" else _MENTION
        found += [(*m.span(), "mention") for m in mention.finditer(text) if "mention" in kinds]
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda f: (f[0], -f[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, kind))
    return kept


def pieces(platform: str, text: str) -> list[Piece]:
    out, pos = [], 0
    for start, end, kind in spans(platform, text):
        if start > pos:
            out.append(Piece("text", text[pos:start]))
        out.append(Piece(kind, text[start:end]))
        pos = end
    if pos < len(text):
        out.append(Piece("text", text[pos:]))
    return out


def previews(draft: Draft, targets: list[Account], images: list[Image]) -> list[Preview]:
    """One preview per target platform, in the order of the counters (by platform)."""
    by_platform: dict[str, list[Account]] = {}
    for account in targets:
        by_platform.setdefault(account.platform, []).append(account)
    found = []
    for platform, accounts in sorted(by_platform.items()):
        caps = adapter_class(platform).caps
        body = draft.post_for(platform).body
        parts, over = [body], caps.count(body) > caps.text_limit
        if over and draft.thread and caps.threads:
            with suppress(ValueError):  # the counters say why it cannot be split
                parts, over = split_thread(body, caps.text_limit, caps.count), False
        shown = images[:caps.max_images]
        cards = [Card(pieces(platform, part), n + 1 if len(parts) > 1 else None, shown if n == 0 else [])
                 for n, part in enumerate(parts)]
        found.append(Preview(platform, accounts[0].handle, len(accounts) - 1, platform in draft.variants,
                             cards, over))
    return found
