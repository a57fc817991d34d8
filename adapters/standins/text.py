"""How the stand-ins count text: written here from the platforms' documented rules (platforms.md §12.1),
never imported from the adapters, so a counting bug in an adapter makes its tests fail instead of
agreeing with itself. Where a platform's rule comes from a library (twitter-text for X, and for
Mastodon's URL rule), the stand-in calls that library directly."""

from __future__ import annotations

import regex


def graphemes(text: str) -> int:
    """Extended grapheme clusters (Unicode UAX #29), as Bluesky and Mastodon count."""
    return len(regex.findall(r"\X", text))


def utf16_units(text: str) -> int:
    """UTF-16 code units, as Telegram, LinkedIn, TikTok and YouTube count (an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2
