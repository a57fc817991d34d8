"""A story as an operator gives it (``Draft``), before any check, and the parsing of its values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters import PLATFORMS
from adapters.base import Media, Post
from scheduler.core.errors import UserError, shown

MAX_STORY_CHARS = 100_000


AUTHOR_LIMIT = 255


# A queued time this far in the past is a typo, not a wish to publish now.
PAST_TOLERANCE = timedelta(minutes=5)


@dataclass
class Draft:
    """A story as an operator gave it, before any check."""

    text: str
    targets: list[str]
    link: str | None = None
    variants: dict[str, str] = field(default_factory=dict)
    at: datetime | None = None
    author: str | None = None
    media: list[Media] = field(default_factory=list)
    thread: bool = False
    # Each account's first free slot after ``not_before`` (or now) instead of one instant for all.
    next_slot: bool = False
    not_before: datetime | None = None

    def post_for(self, platform: str) -> Post:
        return Post(text=self.variants.get(platform) or self.text, link=self.link, media=tuple(self.media),
                    thread=self.thread)


def parse_time(value: str, field_name: str = "at") -> datetime:
    """An ISO-8601 instant with an offset (``2026-12-01T09:00+01:00`` or ``...Z``)."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"{field_name}: {shown(value)} is not an ISO-8601 time such as "
                        "2026-12-01T09:00+01:00") from None
    if when.tzinfo is None:
        if len(text) <= 10:  # a date alone: "add Z" would not make it a valid time
            raise UserError(f"{field_name}: {shown(value)} has no time and no UTC offset; write it as "
                            "2026-12-01T09:00Z or with +HH:MM")
        hint = f"{text}Z" if len(text) <= 40 else "...Z"
        raise UserError(f"{field_name}: {shown(value)} has no UTC offset; write it as {hint} or with +HH:MM")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00 is before the earliest time a datetime can hold
        raise UserError(f"{field_name}: {shown(value)} is out of range") from None


def parse_variant(value: str) -> tuple[str, str]:
    platform, sep, text = value.partition("=")
    if not sep:
        raise UserError(f"variant: {shown(value, 40)} must be PLATFORM=TEXT")
    platform = platform.strip()
    if platform not in PLATFORMS:
        raise UserError(f"variant: unknown platform {shown(platform)}; known: {', '.join(PLATFORMS)}")
    return platform, text
