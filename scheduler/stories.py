"""Queueing a story: every target platform checks it first; then one story row and one delivery per
account, in one transaction, or nothing at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters import PLATFORMS, adapter_class
from adapters.base import Post
from scheduler import accounts, deliveries
from scheduler.errors import StoryRejected, UserError
from scheduler.models import Account, Delivery, Story

MAX_STORY_CHARS = 100_000
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


def parse_time(value: str, field_name: str = "at") -> datetime:
    """An ISO-8601 instant with an offset (``2026-12-01T09:00+01:00`` or ``...Z``)."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"{field_name}: {value!r} is not an ISO-8601 time such as 2026-12-01T09:00+01:00") \
            from None
    if when.tzinfo is None:
        raise UserError(f"{field_name}: {value!r} has no UTC offset; write it as {value}Z or with +HH:MM")
    return when.astimezone(UTC)


def parse_variant(value: str) -> tuple[str, str]:
    platform, sep, text = value.partition("=")
    if not sep:
        raise UserError(f"variant: {value[:40]!r} must be PLATFORM=TEXT")
    return accounts.check_platform(platform.strip()), text


def load_file(path: str) -> dict[str, Any]:
    """A story file (YAML or JSON): text, link, variants, to, at."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"file: {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"file: {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"file: {path} must hold a mapping with at least 'text' and 'to'")
    unknown = set(data) - {"text", "link", "variants", "to", "at", "author"}
    if unknown:
        raise UserError(f"file: {path} has unknown field(s) {', '.join(sorted(unknown))}")
    return data


def draft_from_file(data: dict[str, Any]) -> Draft:
    to = data.get("to") or []
    variants = data.get("variants") or {}
    if not isinstance(to, list | str) or not isinstance(variants, dict):
        raise UserError("file: 'to' must be a list and 'variants' a mapping of platform to text")
    at = data.get("at")
    return Draft(
        text=str(data.get("text") or ""),
        link=data.get("link"),
        variants={str(k): str(v) for k, v in variants.items()},
        targets=[to] if isinstance(to, str) else [str(t) for t in to],
        at=parse_time(at.isoformat() if isinstance(at, datetime) else str(at)) if at else None,
        author=data.get("author"),
    )


def check_draft(draft: Draft, now: datetime) -> list[str]:
    """Problems that do not depend on any platform."""
    problems = []
    if len(draft.text) > MAX_STORY_CHARS:
        problems.append(f"text: is {len(draft.text)} characters; crosspost accepts at most {MAX_STORY_CHARS}")
    if not draft.text.strip() and not draft.link:
        problems.append("text: is empty")
    if draft.link is not None:
        try:
            accounts.check_url(draft.link, "link")
        except UserError as exc:
            problems.append(str(exc))
    for platform, text in draft.variants.items():
        if platform not in PLATFORMS:
            problems.append(f"variant: unknown platform {platform!r}")
        elif not text.strip():
            problems.append(f"variant: the {platform} text is empty")
        elif len(text) > MAX_STORY_CHARS:
            problems.append(f"variant: the {platform} text is {len(text)} characters; "
                            f"crosspost accepts at most {MAX_STORY_CHARS}")
    if draft.at is not None and draft.at < now - PAST_TOLERANCE:
        problems.append(f"at: {draft.at.isoformat()} is in the past; use --now to publish now")
    return problems


def check_targets(draft: Draft, targets: list[Account]) -> list[str]:
    problems = []
    for platform in draft.variants:
        if platform in PLATFORMS and all(a.platform != platform for a in targets):
            problems.append(f"variant: for {platform}, but no target account is on {platform}")
    for account in targets:
        post = Post(text=draft.variants.get(account.platform) or draft.text, link=draft.link)
        problems.extend(f"{account.label}: {p.field}: {p.message}"
                        for p in adapter_class(account.platform)().check(post))
    return problems


def queue(s: Session, draft: Draft, now: datetime) -> Story:
    """Check ``draft`` against every target; store it with its deliveries, or raise StoryRejected."""
    problems = check_draft(draft, now)
    if problems:  # platform checks on a 10 MB text or a bad link would only repeat the problem
        raise StoryRejected(problems)
    targets = accounts.select_targets(s, draft.targets)
    problems = check_targets(draft, targets)
    if problems:
        raise StoryRejected(problems)
    due = draft.at or now
    story = Story(text=draft.text, link=draft.link, variants=draft.variants, targets=draft.targets,
                  status="approved", author=draft.author, due_at=due, created_at=now)
    s.add(story)
    s.flush()
    s.add_all(Delivery(story_id=story.id, account_id=a.id, state="scheduled", due_at=due,
                       created_at=now, updated_at=now) for a in targets)
    s.flush()
    return story


def find(s: Session, story_id: str) -> Story:
    story = s.get(Story, int(story_id)) if story_id.isdigit() else None
    if story is None:
        raise UserError(f"story: no story {story_id!r}")
    return story


def cancel(s: Session, story: Story, now: datetime) -> int:
    """Cancel every delivery of ``story`` that has not started; a publishing one is left to finish."""
    cancelled = s.execute(
        update(Delivery)
        .where(Delivery.story_id == story.id, Delivery.state.in_(deliveries.CANCELLABLE))
        .values(state="cancelled", updated_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    story.status = "cancelled"
    return cancelled


def describe(s: Session, story: Story) -> dict[str, Any]:
    states = [d for (d,) in s.execute(select(Delivery.state).where(Delivery.story_id == story.id))]
    return {
        "id": story.id, "text": story.text, "link": story.link, "variants": story.variants,
        "targets": story.targets, "status": story.status, "due_at": story.due_at.isoformat(),
        "created_at": story.created_at.isoformat(), "deliveries": len(states),
        "states": {state: states.count(state) for state in sorted(set(states))},
    }
