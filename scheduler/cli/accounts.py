"""``crosspost accounts``: the matrix, each account added and re-authorised with its identity checked."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from scheduler.cli.common import JsonOpt, db, done, emit, group, require_database
from scheduler.core.errors import UserError, read_text_file, shown_path
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk
from scheduler.desk.access import Actor
from scheduler.matrix import accounts

accounts_app = group("The account matrix.")


def read_credentials(path: str) -> Any:
    if path == "-":
        text, source = sys.stdin.read(), "standard input"
    else:
        text, source = read_text_file(path, "credentials-file"), shown_path(path)
    return accounts.parse_credentials(text, source)


# -- accounts -----------------------------------------------------------------------------------
@accounts_app.command("add")
def accounts_add(
    platform: str, handle: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A group such as en or culture; repeatable.")] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of the audience.")] = "UTC",
    base_url: Annotated[str | None, typer.Option(help="API base URL: required for self-hosted platforms "
                                                 "(Mastodon); a stand-in's address.")] = None,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag of what it posts in (en, pt-BR).")]
    = None,
    credentials_file: Annotated[str | None, typer.Option(help="JSON file of credentials, or - for stdin.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an account. Credentials come from a file or standard input, never the command line; they are
    checked against the platform's model, then the platform is asked whose they are."""
    if credentials_file is None:
        raise UserError("credentials-file: required (a JSON file, or - to read standard input)")
    creds = read_credentials(credentials_file)
    require_database()
    account, verified = desk.connect(Actor.cli(), platform, handle, creds.reveal(), utcnow(), name=name,
                                     tags=tag or [], tz=tz, base_url=base_url, language=language)
    _unverified(account.label, verified)
    emit([accounts.describe(account)], as_json, ["id", "account", "name", "tags", "tz", "language", "status"])


def _unverified(label: str, verified: bool) -> None:
    if not verified:
        print(f"warning: {label}: this platform cannot be asked whose the credentials are yet; their "
              "shape was checked, their owner was not", file=sys.stderr)


@accounts_app.command("list")
def accounts_list(as_json: JsonOpt = False) -> None:
    """Every account with its status and token expiry."""
    with db() as s:
        rows = desk.listing(s, Actor.cli())
    emit(rows, as_json, ["id", "account", "name", "tags", "tz", "status", "token_expires_at"])


@accounts_app.command("show")
def accounts_show(account: str, as_json: JsonOpt = False) -> None:
    """One account: status, tags, zone, language, token expiry, schedule."""
    with db() as s:
        row = accounts.describe(desk.find(s, Actor.cli(), account))
    emit([row], as_json, list(row))


def _set_status(account: str, status: str, as_json: bool) -> None:
    with db() as s:
        row = desk.set_status(s, Actor.cli(), account, status, utcnow())
    emit([row], as_json, ["id", "account", "status"])


@accounts_app.command("pause")
def accounts_pause(account: str, as_json: JsonOpt = False) -> None:
    """Hold the account's deliveries until it is resumed."""
    _set_status(account, "paused", as_json)


@accounts_app.command("resume")
def accounts_resume(account: str, as_json: JsonOpt = False) -> None:
    """Publish to a paused account again (an account that lost its authorisation needs `reauth`)."""
    _set_status(account, "active", as_json)


@accounts_app.command("remove")
def accounts_remove(account: str, as_json: JsonOpt = False) -> None:
    """Remove an account; its pending deliveries are cancelled, its history is kept."""
    with db() as s:
        label = desk.find(s, Actor.cli(), account).label
        cancelled = desk.remove(s, Actor.cli(), account, utcnow())
    done(as_json, f"removed {label}; {cancelled} pending deliveries cancelled", account=label,
         removed=True, cancelled=cancelled)


@accounts_app.command("reauth")
def accounts_reauth(
    account: str, credentials_file: Annotated[str, typer.Option(help="JSON file, or -.")],
    base_url: Annotated[str | None, typer.Option(help="A new API base URL for the account.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store new credentials once the platform confirms they are this account's; the account's
    deliveries waiting in blocked_auth are due again."""
    creds = read_credentials(credentials_file)
    require_database()
    found, released, verified = desk.reauthorise(Actor.cli(), account, creds.reveal(), utcnow(),
                                                 base_url=base_url)
    _unverified(found.label, verified)
    done(as_json, f"{found.label} re-authorised; {released} blocked deliveries are due again",
         account=found.label, verified=verified, released=released)


@accounts_app.command("edit")
def accounts_edit(
    account: str,
    name: Annotated[str | None, typer.Option(help="Display name (empty to clear).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Replaces the tags; repeatable.")] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every tag.")] = False,
    tz: Annotated[str | None, typer.Option(help="IANA time zone of the audience.")] = None,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag (empty to clear).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account's name, tags, time zone or language."""
    if no_tags and tag:
        raise UserError("tag: give --tag or --no-tags, not both")
    if name is None and tag is None and not no_tags and tz is None and language is None:
        raise UserError("edit: nothing to change; give --name, --tag, --no-tags, --tz or --language")
    with db() as s:
        row = desk.edit(s, Actor.cli(), account, utcnow(), name=name, tags=[] if no_tags else tag, tz=tz,
                        language=language)
    emit([row], as_json, ["id", "account", "name", "tags", "tz", "language", "status"])
