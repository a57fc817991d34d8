"""Story files (YAML or JSON): read with limits, coerced field by field into a ``Draft``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import yaml

from scheduler.core.errors import UserError, read_text_file, shown, shown_path
from scheduler.stories import media
from scheduler.stories.drafts import Draft, parse_time

# Far above any valid story (a text and a variant per platform at the character limit), far below
# what would make loading the file a problem.
MAX_FILE_BYTES = 16 * 1024 * 1024


# PyYAML's C loader reads a multi-megabyte file in a fraction of a second; the pure-Python one
# takes seconds per megabyte.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_file(path: str) -> dict[str, Any]:
    """A story file (YAML or JSON): text, link, variants, to, at."""
    name = shown_path(path)
    raw = read_text_file(path, "file", MAX_FILE_BYTES)
    try:
        data = yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"file: {name} is not valid YAML{where}") from None
    except Exception:
        # AttributeError (a malformed !!timestamp), RecursionError...: all mean a broken file.
        raise UserError(f"file: {name} is not valid YAML (a value cannot be read)") from None
    if not isinstance(data, dict):
        raise UserError(f"file: {name} must hold a mapping with at least 'text' and 'to'")
    unknown = set(data) - FILE_FIELDS
    if unknown:
        # Keys may be anything YAML can write (numbers, "\n"): show them quoted, on one line.
        names = sorted(shown(str(k), 30) for k in unknown)
        raise UserError(f"file: {name} has unknown field(s) {', '.join(names)}")
    return data


FILE_FIELDS = {"text", "link", "variants", "to", "at", "author", "images", "video", "thread", "next_slot",
               "not_before"}


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0", ""):
        return value.strip().lower() in ("true", "yes", "1")
    if not isinstance(value, bool):
        raise UserError(f"{name}: must be true or false, not {_kind(value)}")
    return value


def _time_field(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, date):
        raise UserError(f"{name}: {value.isoformat()} is a date; give a time with an offset such as "
                        "2026-12-01T09:00Z")
    elif value is not None and not isinstance(value, str):
        raise UserError(f"{name}: must be an ISO-8601 time such as 2026-12-01T09:00Z, not {_kind(value)}")
    return parse_time(value, name) if value else None


def media_sources(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, alt) pairs from a story file: ``images`` as paths/URLs or {src, alt}; ``video``."""
    images = data.get("images") or []
    if not isinstance(images, list):
        images = [images]
    found = []
    for item in images:
        if isinstance(item, str):
            found.append((item, ""))
        elif isinstance(item, dict) and isinstance(item.get("src"), str):
            alt = item.get("alt") or ""
            if not isinstance(alt, str):
                raise UserError(f"images: the alt text of {shown(item['src'])} must be text")
            found.append((item["src"], alt))
        else:
            raise UserError("images: each image is a path or URL, or {src: ..., alt: ...}")
    video = data.get("video")
    if video is not None:
        if not isinstance(video, str):
            raise UserError(f"video: must be a path or URL, not {_kind(video)}")
        found.append((video, ""))
    return found


def _string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    # YAML reads `text: 12:30` as the number 750 and `text: yes` as true: never guess what was meant.
    raise UserError(f"{name}: must be text in the story file, not {_kind(value)}; put it in quotes")


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "a mapping",
            datetime: "a time", date: "a date"}.get(type(value), type(value).__name__)


def _target(value: Any) -> str:
    # An account id may be written as a bare number; anything else must be a name.
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise UserError(f"to: each target must be an account or a tag, not {_kind(value)}")


def draft_from_file(data: dict[str, Any]) -> Draft:
    to = data.get("to") or []
    variants = data.get("variants") or {}
    if not isinstance(variants, dict):
        raise UserError(f"variants: must be a mapping of platform to text in the story file, not "
                        f"{_kind(variants)}")
    for platform, body in variants.items():
        if not isinstance(platform, str) or not isinstance(body, str):
            raise UserError(f"variant: {shown(str(platform))} must map a platform name to text; put the "
                            "text in quotes")
    draft = Draft(
        text=_string(data, "text") or "",
        link=_string(data, "link"),
        variants=dict(variants),
        targets=[_target(t) for t in (to if isinstance(to, list) else [to])],
        at=_time_field(data, "at"),
        author=_string(data, "author"),
        thread=_flag(data, "thread"),
        next_slot=_flag(data, "next_slot"),
        not_before=_time_field(data, "not_before"),
    )
    draft.media = [media.ingest(src, alt) for src, alt in media_sources(data)]
    return draft
