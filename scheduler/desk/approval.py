"""Approval, enforced: a stored policy per account or tag holds a story's deliveries in
``awaiting_approval`` (the claim never picks them) until an approver who is not its author approves it,
or rejects it with a reason. Every decision is a compare-and-set, so two approvers, or an approver and an
edit, never both win."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.core.errors import shown
from scheduler.core.models import Account, Delivery, Story
from scheduler.desk import audit, events
from scheduler.desk.access import Actor, Scope, require_accounts, require_everywhere
from scheduler.desk.errors import Conflict, Forbidden, NotFound, UserError
from scheduler.desk.models import ApprovalPolicy, AuditEntry
from scheduler.matrix import accounts as matrix
from scheduler.stories.checks import check_horizon
from scheduler.stories.drafts import PAST_TOLERANCE

MAX_REASON = 1000


# -- policies -----------------------------------------------------------------------------------
def parse_scope(s: Session, text: str) -> Scope:
    """``tag:TAG`` or ``account:ID`` (or ``account:platform:handle``)."""
    kind, _, value = text.strip().partition(":")
    if kind == "tag" and value.strip():
        return Scope("tag", value.strip().lower().removeprefix("#"))
    if kind == "account" and value.strip():
        return Scope("account", str(matrix.find(s, value).id))
    raise UserError(f"scope: {shown(text)} is not tag:TAG or account:ID")


def add_policy(s: Session, actor: Actor, scope: Scope, now: datetime) -> ApprovalPolicy:
    require_everywhere(actor, "admin", "approval policy")
    if scope.kind not in ("tag", "account"):
        raise UserError("scope: an approval policy covers a tag or an account")
    existing = s.scalar(select(ApprovalPolicy).where(ApprovalPolicy.scope_kind == scope.kind,
                                                     ApprovalPolicy.scope_value == scope.value))
    if existing is not None:
        return existing
    policy = ApprovalPolicy(scope_kind=scope.kind, scope_value=scope.value, created_at=now)
    s.add(policy)
    s.flush()
    audit.record(s, actor, "policy.add", "policy", policy.id, now, scope=str(scope))
    return policy


def remove_policy(s: Session, actor: Actor, policy_id: int, now: datetime) -> None:
    require_everywhere(actor, "admin", "approval policy")
    policy = s.get(ApprovalPolicy, policy_id)
    if policy is None:
        raise NotFound(f"policy: no approval policy {policy_id}")
    audit.record(s, actor, "policy.remove", "policy", policy.id, now,
                 scope=str(Scope(policy.scope_kind, policy.scope_value)))
    s.delete(policy)


def policies(s: Session) -> list[dict[str, Any]]:
    return [{"id": p.id, "scope": f"{p.scope_kind}:{p.scope_value}", "created_at": p.created_at.isoformat()}
            for p in s.scalars(select(ApprovalPolicy).order_by(ApprovalPolicy.id))]


def needed(s: Session, targets: Iterable[Account]) -> bool:
    """True if any stored policy covers any of ``targets``."""
    rows = s.execute(select(ApprovalPolicy.scope_kind, ApprovalPolicy.scope_value))
    scopes = [Scope(kind, value) for kind, value in rows]
    return any(scope.covers(a) for a in targets for scope in scopes)


# -- decisions ----------------------------------------------------------------------------------
def _waiting(s: Session, story: Story) -> list[Delivery]:
    return list(s.scalars(select(Delivery).where(Delivery.story_id == story.id,
                                                 Delivery.state == "awaiting_approval")))


def _take(s: Session, story: Story, status: str, fingerprint: str | None) -> None:
    """The compare-and-set on the story: still awaiting approval and (if the approver said what they
    read) still that text; otherwise someone decided or edited it meanwhile."""
    where = [Story.id == story.id, Story.status == "awaiting_approval"]
    if fingerprint is not None:
        where.append(Story.fingerprint == fingerprint)
    changed = s.execute(update(Story).where(*where).values(status=status)
                        .execution_options(synchronize_session=False)).rowcount
    if not changed:
        s.refresh(story)
        if story.status != "awaiting_approval":
            raise Conflict(f"story: {story.id} is {story.status}, not awaiting approval")
        raise Conflict(f"story: {story.id} was edited since you read it; read it again before approving")
    s.refresh(story)


def _decider(s: Session, actor: Actor, story: Story, what: str) -> list[Delivery]:
    if story.status != "awaiting_approval":
        raise Conflict(f"story: {story.id} is {story.status}, not awaiting approval")
    waiting = _waiting(s, story)
    require_accounts(actor, "approver", [d.account for d in waiting], what)
    return waiting


def writers(s: Session, story: Story) -> set[str]:
    """Who queued or edited the story (the audit log says, whatever its author field claims), and its
    author: none of them may approve it."""
    found = set(s.scalars(select(AuditEntry.actor).where(
        AuditEntry.object_type == "story", AuditEntry.object_id == str(story.id),
        AuditEntry.action.in_(("story.queue", "story.edit")))))
    return found | ({story.author} if story.author else set())


def approve(s: Session, actor: Actor, story: Story, now: datetime, *, at: datetime | None = None,
            publish_now: bool = False, fingerprint: str | None = None) -> int:
    """Release the story's waiting deliveries to the claim; return how many. A story whose time has
    passed is not published late by surprise: the approver says ``publish_now`` or gives ``at``."""
    waiting = _decider(s, actor, story, "approve")
    if actor.name in writers(s, story):
        raise Forbidden(f"approve: {actor.name} wrote story {story.id}; another approver must approve it")
    if at is not None and publish_now:
        raise UserError("approve: give a new time or publish now, not both")
    if at is not None and at < now - PAST_TOLERANCE:
        raise UserError(f"at: {at.isoformat()} is in the past")
    if at is not None and (problem := check_horizon(at, "at", now)):
        raise UserError(problem)
    earliest = min((d.due_at for d in waiting), default=now)
    if story.timing != "now" and earliest < now and at is None and not publish_now:
        raise Conflict(f"approve: story {story.id} was due at {earliest.isoformat()}, which has passed; "
                       "approve it to publish now, or with a new time")
    _take(s, story, "approved", fingerprint)
    values: dict[str, Any] = {"state": "scheduled", "updated_at": now}
    if publish_now or at is not None:
        values.update(due_at=at or now, slot_at=None)
        story.due_at, story.timing = at or now, "at" if at else "now"
    moved = s.execute(update(Delivery).where(Delivery.story_id == story.id,
                                             Delivery.state == "awaiting_approval")
                      .values(**values).execution_options(synchronize_session=False)).rowcount or 0
    audit.record(s, actor, "story.approve", "story", story.id, now, deliveries=moved,
                 at=at.isoformat() if at else None, publish_now=publish_now)
    events.emit(s, "approval.decided", f"approval.decided:{story.id}:{story.fingerprint}", now,
                story=story.id, decision="approved", by=actor.name, account_ids=_account_ids(s, story))
    return moved


def reject(s: Session, actor: Actor, story: Story, reason: str, now: datetime) -> int:
    """Cancel the story's waiting deliveries, with the reason in the audit log; return how many."""
    reason = " ".join(reason.split())
    if not reason:
        raise UserError("reason: say why the story is rejected")
    if len(reason) > MAX_REASON:
        raise UserError(f"reason: at most {MAX_REASON} characters (got {len(reason)})")
    _decider(s, actor, story, "reject")
    _take(s, story, "rejected", None)
    cancelled = s.execute(update(Delivery).where(Delivery.story_id == story.id,
                                                 Delivery.state == "awaiting_approval")
                          .values(state="cancelled", updated_at=now, slot_at=None)
                          .execution_options(synchronize_session=False)).rowcount or 0
    audit.record(s, actor, "story.reject", "story", story.id, now, deliveries=cancelled, reason=reason)
    events.emit(s, "approval.decided", f"approval.decided:{story.id}:{story.fingerprint}", now,
                story=story.id, decision="rejected", by=actor.name, reason=reason,
                account_ids=_account_ids(s, story))
    return cancelled


def requested(s: Session, story: Story, now: datetime) -> None:
    """Tell the webhooks and the users who chose it that a story (this text of it) waits for an approver."""
    events.emit(s, "approval.requested", f"approval.requested:{story.id}:{story.fingerprint}", now,
                story=story.id, author=story.author or ", ".join(sorted(writers(s, story))),
                text=story.text[:280], account_ids=_account_ids(s, story))


def _account_ids(s: Session, story: Story) -> list[int]:
    return list(s.scalars(select(Delivery.account_id).where(Delivery.story_id == story.id)))


def send_back(s: Session, story: Story, now: datetime) -> int:
    """After an edit: the story waits for approval again, and so does every delivery not yet started
    (a queued one's message then finds it no longer queued and does nothing)."""
    story.status = "awaiting_approval"
    return s.execute(update(Delivery).where(Delivery.story_id == story.id,
                                            Delivery.state.in_(("scheduled", "queued")))
                     .values(state="awaiting_approval", queued_at=None, updated_at=now)
                     .execution_options(synchronize_session=False)).rowcount or 0
