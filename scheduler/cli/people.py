"""``crosspost users``, ``tokens``, ``policies``, ``webhooks`` and ``audit``: the desk's people, its
approval policies, its webhooks and its record, through the desk's service functions (as the API)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from scheduler.cli.common import JsonOpt, db, done, emit, group
from scheduler.core.errors import MAX_ID, UserError
from scheduler.core.models import utcnow
from scheduler.desk import approval, audit, events, tokens, users, webhooks
from scheduler.desk.access import Actor
from scheduler.stories.drafts import parse_time

users_app = group("People of the desk and their roles.")
tokens_app = group("API tokens: shown once, stored hashed.")
policies_app = group("Approval policies: stories to these accounts or tags wait for an approver.")


def _password(ask: bool) -> str | None:
    """Read from standard input (one line) or a prompt: never an option, which `ps` would show."""
    if not ask:
        return None
    if sys.stdin.isatty():
        return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


EmailOpt = Annotated[str | None, typer.Option(help="Where their e-mail notifications go.")]
NotifyOpt = Annotated[list[str] | None, typer.Option(help="An event kind to e-mail them (repeatable): "
                                                     + ", ".join(events.KINDS) + ".")]
# A row id: beyond MAX_ID it cannot exist (and the database driver would overflow).
RowId = Annotated[int, typer.Argument(min=1, max=MAX_ID)]
DigestOpt = Annotated[bool, typer.Option("--digest", help="A daily digest of their desk by e-mail.")]


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[list[str] | None, typer.Option(help="ROLE, ROLE@tag:TAG or ROLE@account:ID; roles: "
                                                   "viewer, editor, approver, admin. Repeatable.")] = None,
    password: Annotated[bool, typer.Option("--password", help="Set a password (prompted, or one line on "
                                           "standard input); without it the user signs in with tokens.")]
    = False,
    email: EmailOpt = None,
    notify: NotifyOpt = None,
    digest: DigestOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a user with roles (and, with --email, the e-mails they want)."""
    secret = _password(password)
    with db() as s:
        roles = [users.parse_role(s, r) for r in role or []]
        user = users.add(s, Actor.cli(), name, utcnow(), password=secret, roles=roles, email=email,
                         notify=notify, digest=digest)
        row = users.describe(s, user)
    done(as_json, f"user {name} added ({', '.join(row['roles']) or 'no roles'})", **row)


@users_app.command("notify")
def users_notify(name: str, email: EmailOpt = None, notify: NotifyOpt = None, digest: DigestOpt = False,
                 as_json: JsonOpt = False) -> None:
    """Replace what a user is told by e-mail (no --notify and no --digest: nothing)."""
    with db() as s:
        user = users.find(s, name)
        users.set_notifications(s, Actor.cli(), user, utcnow(), email=email, notify=notify or [],
                                digest=digest)
        row = users.describe(s, user)
    done(as_json, f"user {name}: e-mails {', '.join(row['notify']) or 'none'}"
         + ("; daily digest" if digest else ""), **row)


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Every user with their roles."""
    with db() as s:
        rows = users.listing(s, Actor.cli())
    emit(rows, as_json, ["id", "name", "roles", "disabled", "has_password", "created_at"])


@users_app.command("disable")
def users_disable(name: str, as_json: JsonOpt = False) -> None:
    """Disable a user: their tokens stop working at once."""
    with db() as s:
        user = users.find(s, name)
        users.disable(s, Actor.cli(), user, utcnow())
    done(as_json, f"user {name} disabled", name=name, disabled=True)


@tokens_app.command("create")
def tokens_create(
    user: str,
    name: Annotated[str, typer.Option(help="What the token is for (e.g. cms).")],
    days: Annotated[float | None, typer.Option(min=0.001, max=3660, help="Days until it expires.")] = 90,
    as_json: JsonOpt = False,
) -> None:
    """Create a token for a user; the token is printed this once and never stored."""
    with db() as s:
        found = users.find(s, user)
        token, secret = tokens.create(s, Actor.cli(), found, name, utcnow(), days=days)
        row = tokens.describe(token, found.name)
    if as_json:
        done(True, "", **row, token=secret)
        return
    done(False, f"token {token.id} ({name}) for {found.name}, expires {row['expires_at'] or 'never'}:\n"
         f"{secret}\nIt is not shown again.")


@tokens_app.command("list")
def tokens_list(user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
                as_json: JsonOpt = False) -> None:
    """Every token (never its secret)."""
    with db() as s:
        rows = tokens.listing(s, Actor.cli(), users.find(s, user) if user else None)
    emit(rows, as_json, ["id", "user", "name", "created_at", "expires_at", "revoked_at", "last_used_at"])


@tokens_app.command("revoke")
def tokens_revoke(token: RowId, as_json: JsonOpt = False) -> None:
    """Revoke a token by its id: requests with it fail at once."""
    with db() as s:
        tokens.revoke(s, Actor.cli(), token, utcnow())
    done(as_json, f"token {token} revoked", id=token, revoked=True)


@policies_app.command("add")
def policies_add(scope: Annotated[str, typer.Argument(help="tag:TAG or account:ID")],
                 as_json: JsonOpt = False) -> None:
    """Stories to this tag's accounts (or this account) wait for an approver."""
    with db() as s:
        policy = approval.add_policy(s, Actor.cli(), approval.parse_scope(s, scope), utcnow())
        row = {"id": policy.id, "scope": f"{policy.scope_kind}:{policy.scope_value}"}
    done(as_json, f"policy {row['id']}: stories to {row['scope']} wait for approval", **row)


@policies_app.command("list")
def policies_list(as_json: JsonOpt = False) -> None:
    """Every approval policy."""
    with db() as s:
        rows = approval.policies(s)
    emit(rows, as_json, ["id", "scope", "created_at"])


@policies_app.command("remove")
def policies_remove(policy: RowId, as_json: JsonOpt = False) -> None:
    """Remove a policy (stories already waiting still wait)."""
    with db() as s:
        approval.remove_policy(s, Actor.cli(), policy, utcnow())
    done(as_json, f"policy {policy} removed", id=policy, removed=True)


def audit_command(
    since: Annotated[str | None, typer.Option(help="ISO-8601 time with offset.")] = None,
    object: Annotated[str | None, typer.Option("--object", help="story:12, or story (every story).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who did what to which object, when and from where; newest first."""
    kind, ident = audit.parse_object(object) if object else (None, None)
    if object is not None and not kind:
        raise UserError("object: give KIND or KIND:ID, e.g. story:12")
    with db() as s:
        page = audit.entries(s, Actor.cli(), since=parse_time(since, "since") if since else None,
                             object_type=kind, object_id=ident, limit=limit)
    emit(page.items, as_json, ["id", "at", "actor", "via", "address", "action", "object_type", "object_id",
                               "change"])


webhooks_app = group("Webhooks: signed POSTs on events, retried with backoff, each try logged.")


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    event: Annotated[list[str] | None, typer.Option(help="An event kind it wants (repeatable; none: all): "
                                                    + ", ".join(events.KINDS) + ".")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a webhook; its signing secret is printed this once."""
    with db() as s:
        hook, secret = webhooks.create(s, Actor.cli(), url, utcnow(), event or [])
        row = webhooks.describe(hook)
    if as_json:
        done(True, "", **row, secret=secret)
        return
    done(False, f"webhook {hook.id} for {url}; its signing secret (not shown again):\n{secret}")


@webhooks_app.command("list")
def webhooks_list(as_json: JsonOpt = False) -> None:
    """Every webhook (never its secret)."""
    with db() as s:
        rows = webhooks.listing(s, Actor.cli())
    emit(rows, as_json, ["id", "url", "events", "active", "created_at"])


@webhooks_app.command("remove")
def webhooks_remove(hook: RowId, as_json: JsonOpt = False) -> None:
    """Stop a webhook (its log stays)."""
    with db() as s:
        webhooks.remove(s, Actor.cli(), hook, utcnow())
    done(as_json, f"webhook {hook} removed", id=hook, removed=True)


@webhooks_app.command("log")
def webhooks_log(hook: RowId,
                 limit: Annotated[int, typer.Option(min=1, max=500)] = 100, as_json: JsonOpt = False) -> None:
    """What was sent to a webhook: each event's tries, last answer and next try."""
    with db() as s:
        rows = webhooks.log(s, Actor.cli(), hook, limit)
    emit(rows, as_json, ["id", "kind", "state", "tries", "last_status", "last_error", "next_at", "sent_at"])
