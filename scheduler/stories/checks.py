"""Every problem a story has, found before anything is stored: its own fields, each target
platform's rules, media a platform must fetch by URL, thread length, and duplicates."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters import PLATFORMS, adapter_class
from adapters.base import Problem
from adapters.text import split_thread
from config.settings import get_settings
from scheduler.core.db import is_postgres
from scheduler.core.errors import UserError, shown
from scheduler.core.models import Account, Story
from scheduler.matrix import accounts
from scheduler.stories.drafts import AUTHOR_LIMIT, MAX_STORY_CHARS, PAST_TOLERANCE, Draft

# Platforms that fetch media from Media.url (the published media store) and which kinds: without
# CROSSPOST_MEDIA_PUBLIC_URL they would accept the story here and refuse it at publish time.
MEDIA_BY_URL = {"instagram": ("image", "video"), "threads": ("image", "video"), "tiktok": ("image",)}


# Line breaks and tabs belong in a story; every other control character is a paste accident that
# platforms refuse or render as boxes.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


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


# Transaction locks (PostgreSQL) that make identical stories queued at the same moment take turns: one
# per bucket of fingerprints, a fixed few, because a lock per fingerprint would put one entry per row of
# a large import in PostgreSQL's shared lock table (64 per connection by default).
TWIN_LOCKS = 0x74776E73  # "twns"
TWIN_BUCKETS = 64


def lock_twins(s: Session, digest: str | None = None) -> None:
    """Take the lock of ``digest``'s bucket, or with None every bucket in order (an import, which checks
    many stories in one transaction: ordered, two imports cannot deadlock). SQLite's write lock already
    serialises queueing."""
    if not is_postgres(s):
        return
    for bucket in range(TWIN_BUCKETS) if digest is None else (int(digest[:8], 16) % TWIN_BUCKETS,):
        s.execute(select(func.pg_advisory_xact_lock(TWIN_LOCKS, bucket)))


def duplicate_problem(s: Session, digest: str) -> str | None:
    """The refusal for a story identical to one already queued (a cancelled one does not count).

    It first takes the fingerprint's lock: two identical stories queued at the same moment (a double
    submit, two importers) would otherwise each find no twin and both go out."""
    lock_twins(s, digest)
    twin = s.scalars(select(Story.id).where(Story.fingerprint == digest, Story.status != "cancelled")
                     .order_by(Story.id).limit(1)).first()
    if twin is None:
        return None
    return (f"story: identical to story {twin} (same text, link, variants, media, targets and time); "
            "use --allow-duplicate to queue it again")
