"""/auth/login, /users, /tokens, /approval-policies, /webhooks and /audit: the desk's people, its rules
and its record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request

from scheduler.api.auth import Admin, AnyUser, address
from scheduler.api.schemas import (
    Changed,
    Notifications,
    ObjectId,
    Order,
    Page,
    PolicyIn,
    SecretOut,
    TokenIn,
    TokenOut,
    UserIn,
    WebhookIn,
)
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import approval, audit, logins, tokens, users, webhooks
from scheduler.desk.access import Actor
from scheduler.stories.drafts import parse_time

router = APIRouter(tags=["people"])


@router.post("/auth/login", response_model=TokenOut)
def login(request: Request, username: Annotated[str, Form(max_length=256)],
          password: Annotated[str, Form(max_length=1024)]) -> dict[str, Any]:
    """A token valid for 12 hours for a name and password; 429 after repeated failures."""
    secret, actor = logins.sign_in(username, password, utcnow(), address(request))
    return {"token": secret, "user": actor.name, "expires_in": logins.LOGIN_HOURS * 3600}


@router.get("/me", response_model=Changed)
def whoami(actor: AnyUser) -> dict[str, Any]:
    """The caller: name, how they came (``token:NAME``), roles and where each holds."""
    return {"name": actor.name, "via": actor.via,
            "roles": [{"role": r.role, "scope": str(r.scope)} for r in actor.roles]}


@router.get("/users", response_model=list[Changed])
def list_users(actor: Admin) -> list[dict[str, Any]]:
    with session_scope() as s:
        return users.listing(s, actor)


@router.post("/users", status_code=201, response_model=Changed)
def add_user(body: UserIn, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        roles = [users.parse_role(s, r) for r in body.roles]
        user = users.add(s, actor, body.name, utcnow(), password=body.password, roles=roles, email=body.email,
                         notify=body.notify, digest=body.digest)
        return users.describe(s, user)


@router.put("/users/{name}/notifications", response_model=Changed)
def set_notifications(name: str, body: Notifications, actor: Admin) -> dict[str, Any]:
    """What a user is told by e-mail (event kinds, a daily digest)."""
    return _notifications(name, body, actor)


@router.put("/me/notifications", response_model=Changed)
def set_my_notifications(body: Notifications, actor: AnyUser) -> dict[str, Any]:
    """What the caller is told by e-mail."""
    return _notifications(actor.name, body, actor)


def _notifications(name: str, body: Notifications, actor: Actor) -> dict[str, Any]:
    with session_scope() as s:
        user = users.find(s, name)
        users.set_notifications(s, actor, user, utcnow(), email=body.email, notify=body.notify,
                                digest=body.digest)
        return users.describe(s, user)


@router.post("/users/{name}/disable", response_model=Changed)
def disable_user(name: str, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        user = users.find(s, name)
        users.disable(s, actor, user, utcnow())
        return users.describe(s, user)


@router.get("/tokens", response_model=list[Changed])
def list_tokens(actor: AnyUser) -> list[dict[str, Any]]:
    """Every token (admins) or the caller's own; never a secret."""
    with session_scope() as s:
        return tokens.listing(s, actor)


@router.post("/tokens", status_code=201, response_model=TokenOut)
def create_token(body: TokenIn, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        user = users.find(s, body.user)
        token, secret = tokens.create(s, actor, user, body.name, utcnow(), days=body.days)
        return {**tokens.describe(token, user.name), "token": secret}


@router.post("/tokens/{token_id}/revoke", response_model=Changed)
def revoke_token(token_id: ObjectId, actor: AnyUser) -> dict[str, Any]:
    with session_scope() as s:
        token = tokens.revoke(s, actor, token_id, utcnow())
        return {"id": token.id, "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None}


@router.get("/approval-policies", response_model=list[Changed])
def list_policies(actor: Admin) -> list[dict[str, Any]]:
    with session_scope() as s:
        return approval.policies(s)


@router.post("/approval-policies", status_code=201, response_model=Changed)
def add_policy(body: PolicyIn, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        policy = approval.add_policy(s, actor, approval.parse_scope(s, body.scope), utcnow())
        return {"id": policy.id, "scope": f"{policy.scope_kind}:{policy.scope_value}"}


@router.delete("/approval-policies/{policy_id}", response_model=Changed)
def remove_policy(policy_id: ObjectId, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        approval.remove_policy(s, actor, policy_id, utcnow())
    return {"id": policy_id, "removed": True}


@router.get("/audit", response_model=Page)
def audit_log(actor: Admin, since: str | None = None,
              object: Annotated[str | None, Query(description="story:12, or story")] = None,
              cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              order: Order = "newest") -> dict[str, Any]:
    kind, ident = audit.parse_object(object) if object else (None, None)
    with session_scope() as s:
        page = audit.entries(s, actor, since=parse_time(since, "since") if since else None,
                             object_type=kind, object_id=ident, cursor=cursor, limit=limit, order=order)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/webhooks", response_model=list[Changed], tags=["webhooks"])
def list_webhooks(actor: Admin) -> list[dict[str, Any]]:
    with session_scope() as s:
        return webhooks.listing(s, actor)


@router.post("/webhooks", status_code=201, response_model=SecretOut, tags=["webhooks"])
def add_webhook(body: WebhookIn, actor: Admin) -> dict[str, Any]:
    """A hook and its signing secret, shown this once: each POST carries
    ``X-Crosspost-Signature: t=TIMESTAMP,v1=HMAC-SHA256(secret, "TIMESTAMP." + body)``."""
    with session_scope() as s:
        hook, secret = webhooks.create(s, actor, body.url, utcnow(), body.events)
        return {**webhooks.describe(hook), "secret": secret}


@router.delete("/webhooks/{webhook_id}", response_model=Changed, tags=["webhooks"])
def remove_webhook(webhook_id: ObjectId, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        webhooks.remove(s, actor, webhook_id, utcnow())
    return {"id": webhook_id, "removed": True}


@router.get("/webhooks/{webhook_id}/log", response_model=list[Changed], tags=["webhooks"])
def webhook_log(webhook_id: ObjectId, actor: Admin,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    """Each event sent (or being retried) to the hook: tries, last answer, next try."""
    with session_scope() as s:
        return webhooks.log(s, actor, webhook_id, limit)
