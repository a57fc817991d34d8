"""Queueing a story: every target platform checks it first; then one story row and one delivery per
account, in one transaction, or nothing at all."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from adapters import PLATFORMS, adapter_class
from adapters.base import Media, Post, Problem
from adapters.text import split_thread
from config.settings import get_settings
from scheduler import accounts, deliveries, media, slots
from scheduler.errors import StoryRejected, UserError, parse_id, shown, shown_path
from scheduler.models import Account, Delivery, Story

MAX_STORY_CHARS = 100_000
# Far above any valid story (a text and a variant per platform at the character limit), far below
# what would make loading the file a problem.
MAX_FILE_BYTES = 16 * 1024 * 1024
AUTHOR_LIMIT = 255
# PyYAML's C loader reads a multi-megabyte file in a fraction of a second; the pure-Python one
# takes seconds per megabyte.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A queued time this far in the past is a typo, not a wish to publish now.
PAST_TOLERANCE = timedelta(minutes=5)
# Platforms that fetch media from Media.url (the published media store) and which kinds: without
# CROSSPOST_MEDIA_PUBLIC_URL they would accept the story here and refuse it at publish time.
MEDIA_BY_URL = {"instagram": ("image", "video"), "threads": ("image", "video"), "tiktok": ("image",)}
# Line breaks and tabs belong in a story; every other control character is a paste accident that
# platforms refuse or render as boxes.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


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


def load_file(path: str) -> dict[str, Any]:
    """A story file (YAML or JSON): text, link, variants, to, at."""
    name = shown_path(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"file: {name} is {size} bytes; a story file may be at most {MAX_FILE_BYTES}")
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"file: cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"file: {name} is not UTF-8 text") from None
    except ValueError:  # a NUL in the name
        raise UserError(f"file: {name} is not a file name") from None
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


def _text_problem(field_name: str, text: str) -> str | None:
    """Text no database can store: a NUL (PostgreSQL refuses it) or undecodable bytes (lone surrogates,
    which is what invalid UTF-8 on the command line becomes)."""
    if "\x00" in text:
        return f"{field_name}: contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{field_name}: is not valid Unicode at character {exc.start + 1} (undecodable bytes?)"
    for position, char in enumerate(text, 1):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
            return (f"{field_name}: contains the control character U+{ord(char):04X} at character "
                    f"{position}; only line breaks and tabs are allowed")
    return None


def check_horizon(when: datetime, field_name: str, now: datetime) -> str | None:
    """A time further ahead than the horizon is a typo (9999-12-31), not a plan."""
    days = get_settings().schedule_horizon_days
    if when > now + timedelta(days=days):
        return (f"{field_name}: {when.isoformat()} is more than {days} days ahead "
                "(CROSSPOST_SCHEDULE_HORIZON_DAYS)")
    return None


def check_draft(draft: Draft, now: datetime) -> list[str]:
    """Problems that do not depend on any platform."""
    problems = []
    if len(draft.text) > MAX_STORY_CHARS:
        problems.append(f"text: is {len(draft.text)} characters; crosspost accepts at most {MAX_STORY_CHARS}")
    if not draft.text.strip() and not draft.link:
        problems.append("text: is empty")
    if problem := _text_problem("text", draft.text):
        problems.append(problem)
    if draft.link is not None:
        try:
            accounts.check_url(draft.link, "link")
        except UserError as exc:
            problems.append(str(exc))
    for platform, text in draft.variants.items():
        if platform not in PLATFORMS:
            problems.append(f"variant: unknown platform {shown(platform)}")
        elif problem := _text_problem(f"variant: the {platform} text", text):
            problems.append(problem)
        elif not text.strip():
            problems.append(f"variant: the {platform} text is empty")
        elif len(text) > MAX_STORY_CHARS:
            problems.append(f"variant: the {platform} text is {len(text)} characters; "
                            f"crosspost accepts at most {MAX_STORY_CHARS}")
    if draft.at is not None and draft.at < now - PAST_TOLERANCE:
        problems.append(f"at: {draft.at.isoformat()} is in the past; use --now to publish now")
    for name, when in (("at", draft.at), ("not-before", draft.not_before)):
        if when is not None and (problem := check_horizon(when, name, now)):
            problems.append(problem)
    if draft.at is not None and draft.next_slot:
        problems.append("at: give a time or next-slot, not both")
    if draft.not_before is not None and not draft.next_slot:
        problems.append("not-before: only means something with next-slot")
    if draft.author is not None and len(draft.author) > AUTHOR_LIMIT:
        problems.append(f"author: is {len(draft.author)} characters; the limit is {AUTHOR_LIMIT}")
    elif draft.author is not None and (problem := _text_problem("author", draft.author)):
        problems.append(problem)
    return problems


def _platform_check(account: Account, draft: Draft) -> list[Problem]:
    try:
        return adapter_class(account.platform)().check(draft.post_for(account.platform))
    except Exception as exc:
        # An adapter's bug must not crash `stories queue` (nor pass the story): name it, store nothing.
        return [Problem(account.platform, "text", f"cannot be checked ({type(exc).__name__}: "
                                                  f"{' '.join(str(exc).split())[:200]})")]


def _media_url_problem(platform: str, draft: Draft, found: list[Problem]) -> str | None:
    """Media a platform must fetch by URL when the media store is not published. (Done here, not in
    the adapters, so every such platform is covered at queue time; skipped when the adapter's own
    check already said it.)"""
    kinds = MEDIA_BY_URL.get(platform, ())
    missing = [m for m in draft.media if m.kind in kinds and not m.url]
    if not missing or any("MEDIA_PUBLIC_URL" in p.message for p in found):
        return None
    return (f"media: {platform} fetches media by URL and the {missing[0].kind} has none; set "
            "CROSSPOST_MEDIA_PUBLIC_URL to where the media directory is served")


def _thread_parts_problem(platform: str, draft: Draft) -> str | None:
    """A --thread story that would become more replies than max_thread_parts on ``platform``."""
    if not draft.thread:
        return None
    caps = adapter_class(platform).caps
    body = draft.post_for(platform).body
    if not caps.threads or caps.count(body) <= caps.text_limit:
        return None
    try:
        parts = len(split_thread(body, caps.text_limit, caps.count))
    except ValueError:
        return None  # the platform check has already said the text cannot be split
    limit = get_settings().max_thread_parts
    if parts > limit:
        return (f"text: would become a thread of {parts} posts on {platform}; the limit is {limit} "
                "(CROSSPOST_MAX_THREAD_PARTS)")
    return None


def check_targets(draft: Draft, targets: list[Account]) -> list[str]:
    problems = []
    for platform in draft.variants:
        if platform in PLATFORMS and all(a.platform != platform for a in targets):
            problems.append(f"variant: for {platform}, but no target account is on {platform}")
    thread_problems: dict[str, str | None] = {}
    for account in targets:
        found = _platform_check(account, draft)
        problems.extend(f"{account.label}: {p.field}: {p.message}" for p in found)
        if problem := _media_url_problem(account.platform, draft, found):
            problems.append(f"{account.label}: {problem}")
        if account.platform not in thread_problems:  # splitting 100k characters takes a while
            thread_problems[account.platform] = _thread_parts_problem(account.platform, draft)
        if problem := thread_problems[account.platform]:
            problems.append(f"{account.label}: {problem}")
        if draft.next_slot and not account.schedule:
            problems.append(f"{account.label}: schedule: has no posting schedule for --next-slot; "
                            "set one with `crosspost schedule set`")
    return problems


def fingerprint(draft: Draft, targets: list[Account]) -> str:
    """What makes two stories the same: text, link, variants, media (by content and alt text),
    thread, the accounts they go to (however they were named) and their time."""
    if draft.next_slot:
        when = "next_slot:" + (draft.not_before.isoformat() if draft.not_before else "")
    else:
        when = draft.at.isoformat() if draft.at else "now"
    data = {"text": draft.text, "link": draft.link, "variants": dict(sorted(draft.variants.items())),
            "media": [[m.kind, m.sha256, m.alt] for m in draft.media], "thread": draft.thread,
            "accounts": sorted(a.id for a in targets), "when": when}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def duplicate_problem(s: Session, digest: str) -> str | None:
    """The refusal for a story identical to one already queued (a cancelled one does not count)."""
    twin = s.scalars(select(Story.id).where(Story.fingerprint == digest, Story.status != "cancelled")
                     .order_by(Story.id).limit(1)).first()
    if twin is None:
        return None
    return (f"story: identical to story {twin} (same text, link, variants, media, targets and time); "
            "use --allow-duplicate to queue it again")


def queue(s: Session, draft: Draft, now: datetime, *, allow_duplicate: bool = False) -> Story:
    """Check ``draft`` against every target; store it with its deliveries, or raise StoryRejected."""
    problems = check_draft(draft, now)
    if problems:  # platform checks on a 10 MB text or a bad link would only repeat the problem
        raise StoryRejected(problems)
    targets = accounts.select_targets(s, draft.targets)
    problems = check_targets(draft, targets)
    if problems:
        raise StoryRejected(problems)
    digest = fingerprint(draft, targets)
    if not allow_duplicate and (problem := duplicate_problem(s, digest)):
        raise StoryRejected([problem])
    if draft.next_slot:
        slots.lock_accounts(s, [a.id for a in targets])
    due = draft.at or now
    timing = "next_slot" if draft.next_slot else ("at" if draft.at else "now")
    story = Story(text=draft.text, link=draft.link, variants=draft.variants, targets=draft.targets,
                  status="approved", author=draft.author, due_at=draft.not_before or due, created_at=now,
                  timing=timing, thread=draft.thread, media=[media.to_json(m) for m in draft.media],
                  fingerprint=digest)
    s.add(story)
    s.flush()
    after = max(now, draft.not_before or now)
    problems = []
    for account in targets:
        delivery = Delivery(story_id=story.id, account_id=account.id, state="scheduled", due_at=due,
                            created_at=now, updated_at=now)
        s.add(delivery)
        if draft.next_slot:
            try:
                slots.assign(s, delivery, account, after)
            except UserError as exc:
                problems.append(str(exc))
    if problems:
        raise StoryRejected(problems)  # the caller's transaction rolls everything back
    s.flush()
    return story


def find(s: Session, story_id: str) -> Story:
    number = parse_id(story_id)
    story = s.get(Story, number) if number is not None else None
    if story is None:
        raise UserError(f"story: no story {shown(story_id)}")
    return story


def cancel(s: Session, story: Story, now: datetime) -> int:
    """Cancel every delivery of ``story`` that has not started; a publishing one is left to finish."""
    cancelled = s.execute(
        update(Delivery)
        .where(Delivery.story_id == story.id, Delivery.state.in_(deliveries.CANCELLABLE))
        .values(state="cancelled", updated_at=now, lease_until=None, slot_at=None)  # frees the slots
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    story.status = "cancelled"
    return cancelled


# A delivery already handed to a worker (queued) may still be re-timed: its message then finds it
# no longer queued and does nothing. A publishing one is never moved.
RETIMABLE = ("awaiting_approval", "scheduled", "queued", "retry_wait")


def retime(s: Session, story: Story, now: datetime, *, at: datetime | None = None,
           next_slot: bool = False) -> int:
    """Move the story's deliveries that have not started to ``at``, or to each account's next free
    slot (their old slots are freed first); return how many moved. Each move is a conditional UPDATE,
    so a delivery a worker takes meanwhile is left alone."""
    if (at is None) == (not next_slot):
        raise UserError("retime: give exactly one of --at and --next-slot")
    if at is not None and at < now - PAST_TOLERANCE:
        raise UserError(f"at: {at.isoformat()} is in the past")
    if at is not None and (problem := check_horizon(at, "at", now)):
        raise UserError(problem)
    if story.status == "cancelled":
        raise UserError(f"story: {story.id} is cancelled; a cancelled story is not re-timed")
    movable = select(Delivery.id, Delivery.account_id).where(Delivery.story_id == story.id,
                                                             Delivery.state.in_(RETIMABLE))
    rows = s.execute(movable).all()
    if not rows:
        # Published, failed, publishing...: their time is history, not a plan.
        states = [d for (d,) in s.execute(select(Delivery.state).where(Delivery.story_id == story.id))]
        counts = ", ".join(f"{n} {state}" for state, n in sorted(
            {st: states.count(st) for st in states}.items())) or "no deliveries"
        raise UserError(f"story: {story.id} has no delivery that has not started ({counts}); only those "
                        "can be re-timed")
    s.execute(update(Delivery).where(Delivery.id.in_([r[0] for r in rows]), Delivery.state.in_(RETIMABLE))
              .values(slot_at=None).execution_options(synchronize_session=False))
    moved = 0
    for delivery_id, account_id in rows:
        due, slot = at, None
        if next_slot:
            account = s.get(Account, account_id)
            assert account is not None
            slots.lock_accounts(s, [account_id])
            due = slot = slots.next_free_slot(s, account, now, exclude=delivery_id)
        moved += s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(RETIMABLE))
            .values(state=case((Delivery.state == "queued", "scheduled"), else_=Delivery.state),
                    due_at=due, slot_at=slot, queued_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
    story.timing, story.due_at = ("next_slot", now) if next_slot else ("at", at or now)
    s.flush()
    return moved


def describe(s: Session, story: Story) -> dict[str, Any]:
    states = [d for (d,) in s.execute(select(Delivery.state).where(Delivery.story_id == story.id))]
    return {
        "id": story.id, "text": story.text, "link": story.link, "variants": story.variants,
        "targets": story.targets, "status": story.status, "timing": story.timing, "thread": story.thread,
        "media": [m["path"] for m in story.media or []], "due_at": story.due_at.isoformat(),
        "created_at": story.created_at.isoformat(), "deliveries": len(states),
        "states": {state: states.count(state) for state in sorted(set(states))},
    }
