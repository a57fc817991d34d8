"""Users of the desk: added with roles, listed, disabled; passwords hashed with argon2id."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import shown
from scheduler.core.models import Account
from scheduler.desk import audit, mail
from scheduler.desk.access import ROLES, Actor, Role, Scope, require_everywhere
from scheduler.desk.errors import Conflict, NotFound, UserError
from scheduler.desk.models import Grant, User
from scheduler.matrix import accounts

NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
_hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
    Made at the first sign-in, not at import: an argon2 hash is a sixth of a second, and every
    command, worker and tick imports this module."""
    return _hasher.hash("not a password of anyone")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UserError(f"name: {shown(name)} must be 1-64 lower-case letters, digits, '.', '_', '@' or '-'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters (got {len(password)})")
    if len(password) > 1024:
        raise UserError("password: at most 1024 characters")
    return password


def parse_role(s: Session, text: str) -> Role:
    """``editor`` (everywhere), ``editor@tag:en`` or ``editor@account:3`` (an id or platform:handle)."""
    role, _, where = text.strip().partition("@")
    if role not in ROLES:
        raise UserError(f"role: {shown(role)} is not one of {', '.join(ROLES)}")
    if not where:
        return Role(role, Scope("all"))
    kind, _, value = where.partition(":")
    if kind == "tag" and value.strip():
        return Role(role, Scope("tag", value.strip().lower().removeprefix("#")))
    if kind == "account" and value.strip():
        return Role(role, Scope("account", str(accounts.find(s, value).id)))
    raise UserError(f"role: {shown(text)}: the scope is tag:TAG or account:ID (or nothing, for everywhere)")


def add(s: Session, actor: Actor, name: str, now: datetime, *, password: str | None = None,
        roles: list[Role] | None = None, email: str | None = None, notify: list[str] | None = None,
        digest: bool = False) -> User:
    require_everywhere(actor, "admin", "users")
    check_name(name)
    if s.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user: {name} already exists")
    user = User(name=name, created_at=now,
                password_hash=_hasher.hash(check_password(password)) if password is not None else None)
    _notifications(user, email, notify, digest)
    s.add(user)
    s.flush()
    for role in roles or []:
        s.add(Grant(user_id=user.id, role=role.role, scope_kind=role.scope.kind,
                    scope_value=role.scope.value))
    audit.record(s, actor, "user.add", "user", user.id, now, name=name,
                 roles=[f"{r.role} {r.scope}" for r in roles or []], password=password is not None)
    s.flush()
    return user


def _notifications(user: User, email: str | None, notify: list[str] | None, digest: bool) -> None:
    from scheduler.desk.events import KINDS  # events reads users' choices: imported here, not above

    unknown = [k for k in notify or [] if k not in KINDS]
    if unknown:
        raise UserError(f"notify: {', '.join(map(shown, unknown))} not among {', '.join(KINDS)}")
    if (notify or digest) and not email:
        raise UserError("email: needed for e-mail notifications or a digest")
    user.email = mail.check_address(email) if email else None
    user.notify, user.digest = list(notify or []), digest


def set_notifications(s: Session, actor: Actor, user: User, now: datetime, *, email: str | None,
                      notify: list[str], digest: bool) -> None:
    """What the user is told by e-mail: admins set anyone's, a user their own."""
    if actor.user_id != user.id:
        require_everywhere(actor, "admin", "users")
    _notifications(user, email, notify, digest)
    audit.record(s, actor, "user.notifications", "user", user.id, now, email=user.email, notify=user.notify,
                 digest=digest)


def find(s: Session, ref: str) -> User:
    user = s.scalar(select(User).where(User.name == ref.strip()))
    if user is None and ref.strip().isdigit():
        user = s.get(User, int(ref.strip()))
    if user is None:
        raise NotFound(f"user: no user {shown(ref)}")
    return user


def roles_of(s: Session, user_id: int) -> tuple[Role, ...]:
    grants = s.scalars(select(Grant).where(Grant.user_id == user_id).order_by(Grant.id))
    return tuple(Role(g.role, Scope(g.scope_kind, g.scope_value)) for g in grants)


def describe(s: Session, user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "disabled": user.disabled, "email": user.email,
            "notify": user.notify or [], "digest": user.digest,
            "has_password": user.password_hash is not None, "created_at": user.created_at.isoformat(),
            "roles": [r.role if r.scope.kind == "all" else f"{r.role}@{r.scope.kind}:{r.scope.value}"
                      for r in roles_of(s, user.id)]}


def listing(s: Session, actor: Actor) -> list[dict[str, Any]]:
    require_everywhere(actor, "admin", "users")
    return [describe(s, u) for u in s.scalars(select(User).order_by(User.id))]


def disable(s: Session, actor: Actor, user: User, now: datetime) -> None:
    """A disabled user's tokens stop working at once (every request checks the user)."""
    require_everywhere(actor, "admin", "users")
    user.disabled = True
    audit.record(s, actor, "user.disable", "user", user.id, now, name=user.name)


def verify_password(user: User | None, password: str) -> bool:
    """True if ``password`` is the user's; as slow for an unknown user as for a known one."""
    stored = user.password_hash if user is not None and user.password_hash else _dummy()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.password_hash is not None


def accounts_in_scope(s: Session, roles: tuple[Role, ...]) -> list[Account]:
    return [a for a in s.scalars(select(Account).where(Account.status != "removed"))
            if any(r.scope.covers(a) for r in roles)]
