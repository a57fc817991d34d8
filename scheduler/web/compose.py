"""Compose: the form's values as a Draft, and the live counters and problems per platform, found by
the very checks ``stories queue`` runs (``stories.checks``), so what the page says is what queueing says."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters import PLATFORMS, adapter_class
from adapters.base import Capabilities, Media
from adapters.text import split_thread
from scheduler.core.errors import UserError, shown
from scheduler.core.models import Account
from scheduler.desk.access import Actor
from scheduler.matrix import accounts as matrix
from scheduler.stories import media
from scheduler.stories.checks import check_draft, check_targets
from scheduler.stories.drafts import Draft
from scheduler.stories.slots import next_free_slot
from scheduler.web import preview


@dataclass(frozen=True)
class Slot:
    account: str
    at: datetime
    account_time: str  # in the account's own zone; the page shows ``at`` in the operator's


@dataclass
class Counter:
    platform: str
    count: int
    limit: int
    unit: str
    accounts: list[str]
    problems: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # how a thread splits, when it does
    slots: list[Slot] = field(default_factory=list)  # each account's next free slot (next-slot timing)

    @property
    def over(self) -> bool:
        return self.count > self.limit


@dataclass(frozen=True)
class Upload:
    """A file from the compose form (spooled by Starlette) and its alt text."""

    filename: str
    file: BinaryIO
    alt: str = ""


@dataclass
class Form:
    uploads: list[Upload] = field(default_factory=list)
    text: str = ""
    link: str = ""
    targets: list[str] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    when: str = "now"  # now | at | next_slot
    at_local: str = ""  # a datetime-local value, in the operator's zone
    thread: bool = False
    # The images chosen, for the preview: (file name, alt text). The live check leaves the files out
    # (they are uploaded once, when queueing); static/compose.js sends the names chosen instead.
    images: list[tuple[str, str]] = field(default_factory=list)


def parse_local(value: str, tz: str) -> datetime:
    """``2026-12-01T09:00`` as the browser's datetime-local sends it, read in the operator's zone."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"at: {shown(value)} is not a date and time") from None
    local = naive if naive.tzinfo is not None else naive.replace(tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)  # stored and fingerprinted as drafts.parse_time gives it


def store_uploads(uploads: list[Upload]) -> list[Media]:
    """Each upload into the media store (type sniffed, size and pixels checked by ``media.ingest``),
    before any transaction; errors name the file as the user named it, never the server's paths."""
    found = []
    with tempfile.TemporaryDirectory() as folder:
        for n, upload in enumerate(uploads):
            path = Path(folder) / f"upload-{n}"
            with path.open("wb") as out:
                shutil.copyfileobj(upload.file, out, 1024 * 1024)
            try:
                found.append(media.ingest(str(path), upload.alt))
            except UserError as exc:
                raise UserError(str(exc).replace(str(path), shown(upload.filename, 80))) from None
    return found


def draft_of(form: Form, tz: str) -> Draft:
    variants = {p: v for p, v in form.variants.items() if p in PLATFORMS and v.strip()}
    draft = Draft(text=form.text, targets=list(form.targets), link=form.link.strip() or None,
                  variants=variants, thread=form.thread, next_slot=form.when == "next_slot")
    if form.when == "at":
        draft.at = parse_local(form.at_local, tz) if form.at_local.strip() else None
        if draft.at is None:
            raise UserError("at: choose a date and time, or another option")
    return draft


def editable_targets(s: Session, actor: Actor) -> tuple[list[str], list[Account]]:
    """The tags and accounts this actor may queue to (an editor of every account the tag covers)."""
    live = list(s.scalars(select(Account).where(Account.status != "removed").order_by(Account.id)))
    mine = [a for a in live if actor.may("editor", a)]
    tags = sorted({t for a in live for t in a.tags or []
                   if all(actor.may("editor", b) for b in live if t in (b.tags or []))})
    return tags, mine


def _thread(draft: Draft, body: str, caps: Capabilities) -> list[str]:
    """The posts a --thread story becomes on this platform (the same split publishing uses)."""
    if not (draft.thread and caps.threads) or caps.count(body) <= caps.text_limit:
        return []
    try:
        return split_thread(body, caps.text_limit, caps.count)
    except ValueError:
        return []  # the checks say why it cannot be split


def previews(s: Session, form: Form, tz: str) -> list[preview.Preview]:
    """Each target platform's post as it will go out (see ``preview``); none while the form has a
    problem that belongs to no platform (the counters list it)."""
    try:
        draft = draft_of(form, tz)
        targets = matrix.select_targets(s, draft.targets) if draft.targets else []
    except UserError:
        return []
    return preview.previews(draft, targets, [preview.Image(name, alt) for name, alt in form.images])


def counters(s: Session, form: Form, tz: str, now: datetime) -> tuple[list[Counter], list[str]]:
    """Per target platform: the length as that platform counts it, its limit, and every problem the
    queueing checks find for its accounts; and the problems that belong to no platform."""
    try:
        draft = draft_of(form, tz)
        targets = matrix.select_targets(s, draft.targets) if draft.targets else []
    except UserError as exc:
        return [], [str(exc)]
    general = check_draft(draft, now)
    found = check_targets(draft, targets)
    by_platform: dict[str, Counter] = {}
    for account in targets:
        caps = adapter_class(account.platform).caps
        counter = by_platform.get(account.platform)
        if counter is None:
            body = draft.post_for(account.platform).body
            counter = by_platform[account.platform] = Counter(account.platform, caps.count(body),
                                                              caps.text_limit, caps.unit, [])
            counter.parts = _thread(draft, body, caps)
        counter.accounts.append(account.label)
        if draft.next_slot and account.schedule:
            try:
                slot = next_free_slot(s, account, max(now, draft.not_before or now))
            except UserError as exc:
                counter.problems.append(f"{account.label}: {exc}")
            else:
                local = slot.astimezone(ZoneInfo(account.tz)).strftime("%a %H:%M %Z")
                counter.slots.append(Slot(account.label, slot, local))
        counter.problems += [p for p in found if p.startswith(f"{account.label}: ")]
    general += [p for p in found if not any(p.startswith(f"{a.label}: ") for a in targets)]
    return sorted(by_platform.values(), key=lambda c: c.platform), general
