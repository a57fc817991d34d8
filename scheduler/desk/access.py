"""Who may do what where: roles (each includes the ones below it) within scopes (everywhere, a tag, or
one account), and the actor every service function of the desk is called with."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from scheduler.core.models import Account
from scheduler.desk.errors import Forbidden

ROLES = ("viewer", "editor", "approver", "admin")
SCOPE_KINDS = ("all", "tag", "account")


def level(role: str) -> int:
    return ROLES.index(role)


@dataclass(frozen=True)
class Scope:
    kind: str  # "all", "tag" or "account"
    value: str = ""

    def covers(self, account: Account) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "tag":
            return self.value in (account.tags or [])
        return self.value == str(account.id)

    def __str__(self) -> str:
        return "everywhere" if self.kind == "all" else f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Role:
    role: str
    scope: Scope


@dataclass(frozen=True)
class Actor:
    """Who is asking: a user (through a token or a password login) or the CLI on the data's host.
    ``via`` and ``address`` go to the audit log with every change."""

    name: str
    via: str
    roles: tuple[Role, ...] = ()
    user_id: int | None = None
    address: str | None = None
    token_id: int | None = field(default=None, compare=False)

    @classmethod
    def cli(cls) -> Actor:
        """The operator at the machine holding the data: they can read the database anyway, so the
        CLI is an admin everywhere, recorded as the host's user."""
        # "cli:" keeps the namespace apart from users' names, which cannot hold a colon.
        return cls(name=f"cli:{getpass.getuser()}@{socket.gethostname()}", via="cli",
                   roles=(Role("admin", Scope("all")),))

    def at_least(self, role: str) -> bool:
        """Holds ``role`` (or a higher one) somewhere."""
        return any(level(r.role) >= level(role) for r in self.roles)

    def may(self, role: str, account: Account) -> bool:
        return any(level(r.role) >= level(role) and r.scope.covers(account) for r in self.roles)

    def everywhere(self, role: str) -> bool:
        return any(level(r.role) >= level(role) and r.scope.kind == "all" for r in self.roles)


def require_role(actor: Actor, role: str, what: str) -> None:
    if not actor.at_least(role):
        raise Forbidden(f"{what}: needs the {role} role; {actor.name} does not hold it")


def require_everywhere(actor: Actor, role: str, what: str) -> None:
    if not actor.everywhere(role):
        raise Forbidden(f"{what}: needs the {role} role everywhere (not only within a tag or account)")


def require_accounts(actor: Actor, role: str, accounts: Iterable[Account], what: str) -> None:
    """Every account must be within one of the actor's scopes for ``role``: a desk never acts on
    another desk's accounts, even as part of a story it shares."""
    outside = [a.label for a in accounts if not actor.may(role, a)]
    if outside:
        raise Forbidden(f"{what}: {actor.name} is not {_article(role)} {role} for {', '.join(outside[:5])}"
                        + (f" and {len(outside) - 5} more" if len(outside) > 5 else ""))


def _article(role: str) -> str:
    return "an" if role[0] in "aeiou" else "a"
