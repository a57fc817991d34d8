"""What the desk does to stories, for the CLI and the API alike: queue (with the approval policy),
list, show, cancel, re-time and edit, each checked against the actor's roles and scopes and written to
the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from scheduler.core.errors import StoryRejected, parse_id, shown
from scheduler.core.models import Account, Delivery, Story
from scheduler.desk import approval, audit
from scheduler.desk.access import Actor, require_accounts
from scheduler.desk.errors import Conflict, Forbidden, NotFound, UserError
from scheduler.desk.models import AuditEntry
from scheduler.desk.pages import Page, page_of
from scheduler.matrix import accounts as matrix
from scheduler.stories import bulk, files, queueing
from scheduler.stories.checks import check_draft, check_targets, fingerprint
from scheduler.stories.drafts import Draft

EDITABLE = ("awaiting_approval", "scheduled", "queued")


def queue(s: Session, actor: Actor, draft: Draft, now: datetime, *, allow_duplicate: bool = False,
          require_approval: bool = False) -> Story:
    """Queue ``draft`` as ``actor``: an editor of every target account; the story waits for approval
    if asked to or if a stored policy covers any target."""
    targets = matrix.select_targets(s, draft.targets)
    require_accounts(actor, "editor", targets, "queue")
    # ``author`` stays what the draft says (a byline, kept through export and import); who queued it is
    # the audit log's, and that is what the approval rule reads (see ``approval.writers``).
    needs = require_approval or approval.needed(s, targets)
    story = queueing.queue(s, draft, now, allow_duplicate=allow_duplicate, require_approval=needs)
    audit.record(s, actor, "story.queue", "story", story.id, now, targets=draft.targets,
                 awaiting_approval=needs, deliveries=len(targets))
    if needs:
        approval.requested(s, story, now)
    return story


def find(s: Session, actor: Actor, ref: str | int, role: str = "viewer") -> Story:
    """The story ``ref`` if ``actor`` holds ``role`` for every account it goes to (a viewer: for
    one of them, and sees only those)."""
    number = ref if isinstance(ref, int) else parse_id(ref)
    story = s.get(Story, number) if number else None
    if story is None:
        raise NotFound(f"story: no story {shown(str(ref))}")
    targets = _accounts(s, story)
    if role == "viewer":
        if targets and not any(actor.may("viewer", a) for a in targets):
            raise Forbidden(f"story: {story.id} goes to no account {actor.name} may see")
    else:
        require_accounts(actor, role, targets, f"story {story.id}")
    return story


def _accounts(s: Session, story: Story) -> list[Account]:
    return list(s.scalars(select(Account).join(Delivery, Delivery.account_id == Account.id)
                          .where(Delivery.story_id == story.id).order_by(Account.id)))


def in_scope_ids(s: Session, actor: Actor, role: str = "viewer") -> list[int] | None:
    """The account ids ``actor`` holds ``role`` for; None when that is every account."""
    if actor.everywhere(role):
        return None
    return [a.id for a in s.scalars(select(Account)) if actor.may(role, a)]


def listing(s: Session, actor: Actor, *, status: str | None = None, cursor: str | None = None,
            limit: int = 50, order: str = "newest") -> Page:
    query = select(Story)
    if status is not None:
        query = query.where(Story.status == status)
    ids = in_scope_ids(s, actor)
    if ids is not None:
        query = query.where(exists().where(Delivery.story_id == Story.id, Delivery.account_id.in_(ids)))
    return page_of(s, query, Story.id, cursor, limit, lambda st: describe(s, st), order=order)


def describe(s: Session, story: Story) -> dict[str, Any]:
    return {**queueing.describe(s, story), "author": story.author, "fingerprint": story.fingerprint}


def show(s: Session, actor: Actor, story: Story) -> dict[str, Any]:
    """The story with the deliveries the actor may see."""
    seen = [d for d in story.deliveries if actor.may("viewer", d.account)]
    return {**describe(s, story), "delivery_list": bulk.describe_deliveries(s, seen)}


def cancel(s: Session, actor: Actor, ref: str | int, now: datetime) -> int:
    story = find(s, actor, ref, "editor")
    cancelled = queueing.cancel(s, story, now)
    audit.record(s, actor, "story.cancel", "story", story.id, now, deliveries=cancelled)
    return cancelled


def retime(s: Session, actor: Actor, ref: str | int, now: datetime, *, at: datetime | None = None,
           next_slot: bool = False) -> int:
    """Re-timing keeps a waiting delivery waiting (queueing.retime never changes awaiting_approval)."""
    story = find(s, actor, ref, "editor")
    moved = queueing.retime(s, story, now, at=at, next_slot=next_slot)
    audit.record(s, actor, "story.retime", "story", story.id, now, deliveries=moved,
                 at=at.isoformat() if at else None, next_slot=next_slot)
    return moved


def edit(s: Session, actor: Actor, ref: str | int, now: datetime, *, text: str | None = None,
         link: str | None = None, variants: dict[str, str] | None = None) -> Story:
    """Change the text, link or variants of a story none of whose deliveries has started. Every check
    of queueing runs again; a story under an approval policy, or approved before, waits again."""
    story = find(s, actor, ref, "editor")
    if story.status in ("cancelled", "rejected"):
        raise Conflict(f"story: {story.id} is {story.status}")
    started = [d for d in story.deliveries if d.state not in EDITABLE or d.attempts]
    if started:
        raise Conflict(f"story: {story.id} has deliveries that started ({started[0].state}); "
                       "only a story none of whose deliveries started can be edited")
    targets = _accounts(s, story)
    draft = Draft(text=story.text if text is None else text, targets=story.targets,
                  link=story.link if link is None else (link or None),
                  variants=dict(story.variants if variants is None else variants), thread=story.thread)
    # Media stay as stored; the checks below see the text, link and variants that change.
    problems = check_draft(draft, now) or check_targets(draft, targets)
    if problems:
        raise StoryRejected(problems, f"story {story.id} not changed")
    before = {"text": story.text, "link": story.link, "variants": story.variants}
    story.text, story.link, story.variants = draft.text, draft.link, draft.variants
    draft.at = story.due_at if story.timing == "at" else None
    story.fingerprint = fingerprint(draft, targets)
    back = back_to_approval(s, story, targets, now)
    audit.record(s, actor, "story.edit", "story", story.id, now, before=before,
                 after={"text": story.text, "link": story.link, "variants": story.variants},
                 sent_back=back)
    s.flush()
    return story


def back_to_approval(s: Session, story: Story, targets: list[Account], now: datetime) -> int:
    """After an edit of what goes out: a story that was approved, waits, or falls under a policy
    (re)waits for an approver, with every delivery not yet started; how many went back."""
    was_approved = s.scalar(select(AuditEntry.id).where(
        AuditEntry.object_type == "story", AuditEntry.object_id == str(story.id),
        AuditEntry.action == "story.approve").limit(1)) is not None
    if not (story.status == "awaiting_approval" or was_approved or approval.needed(s, targets)):
        return 0
    back = approval.send_back(s, story, now)
    approval.requested(s, story, now)
    return back


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise UserError(f"status: {shown(status)} is not one of {', '.join(STATUSES)}")
    return status


STATUSES = ("awaiting_approval", "approved", "rejected", "cancelled")


def import_prepared(s: Session, actor: Actor, prepared: bulk.Prepared, now: datetime, *,
                    skip_invalid: bool = False, allow_duplicate: bool = False) -> bulk.ImportResult:
    """``stories import`` as ``actor``: each row queued through :func:`queue` (roles, approval policy,
    audit), all in the caller's transaction, so a row outside the actor's scopes stores nothing."""
    return bulk.store(s, prepared, now, skip_invalid=skip_invalid, allow_duplicate=allow_duplicate,
                      queue=lambda draft: queue(s, actor, draft, now, allow_duplicate=allow_duplicate))


def check_remote_media(path: str) -> None:
    """A file uploaded through the API names its media by URL only: a path would make the server read
    its own files (its key, its database) into a story."""
    local = []
    for number, row in bulk.read_rows(path):
        if isinstance(row, dict):
            try:
                sources = files.media_sources(row)
            except UserError:
                continue  # the row's own problem; prepare() reports it
            local += [f"row {number}: {shown(src)}" for src, _ in sources
                      if not src.startswith(("http://", "https://"))]
    if local:
        raise UserError(f"media: files uploaded through the API name images and video by URL only "
                        f"({'; '.join(local[:5])})")
