"""API tokens: 256 random bits shown once, stored as their SHA-256; named, expiring, revocable."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import shown
from scheduler.desk import audit, users
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.errors import Conflict, NotFound, Unauthenticated, UserError
from scheduler.desk.models import ApiToken, User

PREFIX = "cpt_"  # so a leaked token is recognisable by secret scanners
NAME = re.compile(r"^[\w.@ -]{1,64}$")
MAX_DAYS = 3660


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(s: Session, actor: Actor, user: User, name: str, now: datetime, *,
           days: float | None = 90) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the secret, which is never stored or shown again.
    Admins create tokens for anyone; a user for themselves (their roles come with it)."""
    if actor.user_id != user.id:
        require_everywhere(actor, "admin", "tokens")
    if not NAME.match(name):
        raise UserError(f"name: {shown(name)} must be 1-64 letters, digits, spaces or '._@-'")
    if days is not None and not 0 < days <= MAX_DAYS:
        raise UserError(f"days: {days:g} is not between 0 and {MAX_DAYS}")
    if user.disabled:
        raise Conflict(f"user: {user.name} is disabled")
    if s.scalar(select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.name == name)) is not None:
        raise Conflict(f"token: {user.name} already has a token named {shown(name)}")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=digest(secret), created_at=now,
                     expires_at=now + timedelta(days=days) if days is not None else None)
    s.add(token)
    s.flush()
    audit.record(s, actor, "token.create", "token", token.id, now, user=user.name, name=name,
                 expires_at=token.expires_at.isoformat() if token.expires_at else None)
    return token, secret


def describe(token: ApiToken, user_name: str) -> dict[str, Any]:
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    return {"id": token.id, "user": user_name, "name": token.name, "created_at": iso(token.created_at),
            "expires_at": iso(token.expires_at), "revoked_at": iso(token.revoked_at),
            "last_used_at": iso(token.last_used_at)}


def listing(s: Session, actor: Actor, user: User | None = None) -> list[dict[str, Any]]:
    """Every token (admins), or the actor's own."""
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if not actor.everywhere("admin"):
        query = query.where(ApiToken.user_id == actor.user_id)
    elif user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return [describe(t, name) for t, name in s.execute(query)]


def revoke(s: Session, actor: Actor, token_id: int, now: datetime) -> ApiToken:
    token = s.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.everywhere("admin")):
        raise NotFound(f"token: no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(s, actor, "token.revoke", "token", token.id, now, name=token.name)
    return token


def authenticate(s: Session, secret: str, now: datetime, address: str | None = None) -> Actor:
    """The actor a bearer token stands for; Unauthenticated, without saying which check failed (an
    unknown, revoked or expired token, a disabled user), so a guess learns nothing."""
    found = s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                      .where(ApiToken.token_hash == digest(secret))).first()
    if found is None:
        raise Unauthenticated("token: not a valid token")
    token, user = found
    if token.revoked_at is not None or user.disabled or (token.expires_at and token.expires_at <= now):
        raise Unauthenticated("token: not a valid token")
    # At most once a minute: a write per request would serialise every reader on SQLite.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return Actor(name=user.name, via=f"token:{token.name}", roles=users.roles_of(s, user.id), user_id=user.id,
                 address=address, token_id=token.id)
