"""The account matrix: adding, finding, pausing, re-authorising accounts; selecting targets."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters import PLATFORMS, adapter_class, validate_credentials
from adapters.base import AccountRef, Credentials, Identity
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected
from config.settings import get_settings
from scheduler.core import deliveries, vault
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError, parse_id, shown
from scheduler.core.models import Account, Delivery

_TAG_RE = re.compile(r"^[\w-]{1,40}$")
STATUSES = ("active", "paused", "auth_broken", "removed")
URL_LIMIT = 1024
# Longer than any IANA name (and than the column): no need to ask the file system.
TZ_LIMIT = 64


def printable(value: str) -> bool:
    """No control characters, no lone surrogates (undecodable bytes on the command line), no NUL."""
    return value.isprintable()


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise UserError(f"platform: unknown platform {shown(platform)}; known: {', '.join(PLATFORMS)}")
    return platform


def check_tz(tz: str) -> str:
    problem = UserError(f"tz: {shown(tz)} is not an IANA time zone (for example Europe/Madrid)")
    if not tz or len(tz) > TZ_LIMIT or not printable(tz):
        raise problem
    if tz == "localtime":
        # The zone of whichever machine reads it: workers on other machines would disagree.
        raise UserError("tz: 'localtime' is this machine's zone, not an IANA name; give one such as "
                        "Europe/Madrid")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, an unreadable file
        raise problem from None
    return tz


def check_url(url: str, field: str) -> str:
    if len(url) > URL_LIMIT:
        raise UserError(f"{field}: URL is {len(url)} characters; the limit is {URL_LIMIT}")
    problem = UserError(f"{field}: {shown(url)} is not an http(s) URL")
    # isprintable: no white space but the plain space, no control characters; the space is refused too.
    if not printable(url) or " " in url:
        raise problem
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:  # "http://[::1" and other malformed hosts
        raise problem from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem
    return url


# A well-formed BCP-47 language tag: language, optional script, region, variants and private use
# (the grandfathered irregular tags are left out; no platform labels posts with them).
_LANGUAGE_RE = re.compile(
    r"^[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-x(?:-[A-Za-z0-9]{1,8})+)?$")
LANGUAGE_LIMIT = 35  # the column


def check_language(language: str) -> str:
    """A BCP-47 tag in its usual case (``en``, ``zh-Hans``, ``pt-BR``), or UserError."""
    tag = language.strip()
    if not tag or len(tag) > LANGUAGE_LIMIT or not _LANGUAGE_RE.match(tag):
        raise UserError(f"language: {shown(language)} is not a BCP-47 language tag (for example en, "
                        "pt-BR, zh-Hans)")
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if out[-1] == "x" or "x" in out[1:]:
            out.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def check_handle(platform: str, handle: str, *, strict: bool = True) -> str:
    """The handle as the platform spells it (``@Newsroom`` and ``newsroom`` are one Mastodon account).
    Not ``strict``: a handle the platform could never have is kept as given (rows that tests and
    benchmarks insert directly for their stand-ins) instead of refused."""
    handle = handle.strip()
    if not handle or len(handle) > 255 or not printable(handle) or " " in handle:
        raise UserError(f"handle: {shown(handle)} must be 1-255 printable characters without spaces")
    try:
        return adapter_class(check_platform(platform)).normalize_handle(handle)
    except ValueError as exc:
        if not strict:
            return handle
        raise UserError(f"handle: {' '.join(str(exc).split())}") from None


def check_name(name: str | None) -> str | None:
    if name is not None and len(name) > 255:
        raise UserError(f"name: is {len(name)} characters; the limit is 255")
    if name is not None and not printable(name):
        raise UserError(f"name: {shown(name)} has control characters")
    return name


def check_tags(tags: list[str]) -> list[str]:
    out = []
    for tag in tags:
        tag = tag.strip().lower().removeprefix("#")
        if not _TAG_RE.match(tag):
            raise UserError(f"tag: {shown(tag)} must be 1-40 letters, digits, '_' or '-'")
        if tag not in out:
            out.append(tag)
    return out


def parse_credentials(text: str, source: str) -> Credentials:
    # Never echo the content: it is a secret even when it is malformed.
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise UserError(f"credentials: {source} is not JSON; expected an object such as "
                        '{"access_token": "..."}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str | int) for v in data.values()):
        raise UserError(f"credentials: {source} must be a JSON object of names to string values")
    return Credentials(data)


def _spelling(platform: str, handle: str) -> str:
    handle = handle.strip()
    if platform not in PLATFORMS:
        return handle
    try:
        return adapter_class(platform).normalize_handle(handle)
    except ValueError:  # a spelling the platform cannot have: compared as given
        return handle


def by_handle(s: Session, platform: str, handle: str) -> list[Account]:
    """The rows of ``platform`` whose handle is ``handle`` in any spelling the platform treats as one,
    live ones first; rows stored before handles were normalised are found too."""
    wanted = _spelling(platform, handle)
    query = select(Account).where(Account.platform == platform).order_by(Account.status == "removed",
                                                                          Account.id)
    found = s.scalars(query.where(Account.handle.in_({handle.strip(), wanted}))).all()
    if found:
        return list(found)
    # Slow path, only when the quick one found nothing: an older row in another spelling.
    return [a for a in s.scalars(query) if _spelling(platform, a.handle) == wanted]


def find(s: Session, ref: str) -> Account:
    """An account by id or ``platform:handle`` (the handle in any spelling the platform treats as one)."""
    ref = ref.strip()
    number = parse_id(ref)
    if number is not None:
        account = s.get(Account, number)
    elif ":" in ref:
        platform, handle = ref.split(":", 1)
        found = by_handle(s, platform, handle)
        account = found[0] if found else None
    else:
        raise UserError(f"account: {shown(ref)} is neither an id nor platform:handle")
    if account is None or account.status == "removed":
        raise UserError(f"account: no account {shown(ref)}")
    return account


def _existing(s: Session, platform: str, handle: str) -> Account | None:
    """The removed row to reuse for ``handle``, or None; UserError if a live one has it already."""
    found = by_handle(s, platform, handle)
    live = [a for a in found if a.status != "removed"]
    if live:
        raise UserError(f"account: {platform}:{live[0].handle} already exists (id {live[0].id})")
    exact = [a for a in found if a.handle == handle]
    return exact[0] if exact else None


def add(s: Session, platform: str, handle: str, credentials: Credentials, *, name: str | None = None,
        tags: list[str] | None = None, tz: str = "UTC", base_url: str | None = None,
        language: str | None = None, remote_id: str | None = None) -> Account:
    """Store an account row as given (checked, the handle normalised), without asking the platform:
    operators add accounts through :func:`connect`, which checks the handle strictly and the
    credentials with the platform first."""
    handle = check_handle(platform, handle, strict=False)
    check_name(name)
    check_tz(tz)
    if base_url:
        check_url(base_url, "base-url")
    language = check_language(language) if language is not None else None
    if not credentials:
        raise UserError("credentials: empty; give --credentials-file FILE (or - for standard input)")
    existing = _existing(s, platform, handle)
    account = existing or Account(platform=platform, handle=handle)
    account.name, account.tags, account.tz, account.base_url = name, check_tags(tags or []), tz, base_url
    account.language, account.remote_id = language, remote_id
    account.credentials = vault.seal(credentials)
    account.token_expires_at = credentials.expires_at()
    account.credentials_version = (account.credentials_version or 0) + 1
    account.status, account.status_reason = "active", None
    s.add(account)
    s.flush()
    return account


def set_status(s: Session, account: Account, status: str, reason: str | None = None) -> None:
    if status == "active" and account.status == "auth_broken":
        raise UserError(f"account: {account.label} needs `crosspost accounts reauth`, not resume")
    account.status, account.status_reason = status, reason


def remove(s: Session, account: Account, now: datetime) -> int:
    """Cancel the account's pending deliveries and hide it; its history stays."""
    cancelled = s.execute(
        update(Delivery)
        .where(Delivery.account_id == account.id, Delivery.state.in_(deliveries.CANCELLABLE))
        .values(state="cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    account.status = "removed"
    return cancelled


def reauth(s: Session, account: Account, credentials: Credentials, now: datetime,
           remote_id: str | None = None) -> int:
    """Store new credentials as given; operators go through :func:`reauthorise`, which first checks
    they belong to this account."""
    if not credentials:
        raise UserError("credentials: empty")
    account.credentials = vault.seal(credentials)
    if remote_id is not None:
        account.remote_id = remote_id
    account.token_expires_at = credentials.expires_at()
    account.credentials_version += 1
    account.status, account.status_reason = "active", None
    s.flush()
    return deliveries.unblock_account(s, account.id, now)


def select_targets(s: Session, targets: list[str]) -> list[Account]:
    """Accounts named by id / ``platform:handle``, or every account carrying a tag."""
    chosen: dict[int, Account] = {}
    for target in targets:
        target = target.strip()
        if not target:
            raise UserError("to: empty target")
        if parse_id(target) is not None or ":" in target:
            account = find(s, target)
            chosen.setdefault(account.id, account)
            continue
        tag = target.lower().removeprefix("#")
        live = s.scalars(select(Account).where(Account.status != "removed").order_by(Account.id))
        tagged = [a for a in live if tag in (a.tags or [])]
        if not tagged:
            raise UserError(f"to: no account has tag {shown(tag)}")
        for account in tagged:
            chosen.setdefault(account.id, account)
    if not chosen:
        raise UserError("to: give at least one account or tag")
    return list(chosen.values())


def describe(account: Account) -> dict[str, Any]:
    return {
        "id": account.id, "account": account.label, "platform": account.platform, "handle": account.handle,
        "name": account.name, "tags": account.tags or [], "tz": account.tz, "language": account.language,
        "base_url": account.base_url, "remote_id": account.remote_id,
        "status": account.status, "status_reason": account.status_reason,
        "token_expires_at": account.token_expires_at.isoformat() if account.token_expires_at else None,
        "created_at": account.created_at.isoformat(),
    }


# -- what operators call (the CLI, and the HTTP API to come) ----------------------------------------
@dataclass(frozen=True)
class Checked:
    """Credentials that passed their platform's model, and whom the platform says they belong to
    (None where the adapter cannot ask yet)."""

    credentials: Credentials
    identity: Identity | None


def _validated(platform: str, data: Mapping[str, Any]) -> Credentials:
    if not data:
        raise UserError("credentials: empty; give --credentials-file FILE (or - for standard input)")
    try:
        return validate_credentials(platform, dict(data))
    except ValueError as exc:
        problems = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise UserError("; ".join(problems) or f"{platform}: credentials: not valid") from None


def _base_url(platform: str, base_url: str | None) -> str | None:
    if base_url:
        check_url(base_url, "base-url")
        return base_url.rstrip("/")
    if adapter_class(platform).caps.requires_base_url:
        # Without it the token would go to whichever instance the adapter defaults to.
        raise UserError(f"base-url: required for {platform} (the address of the account's own instance, "
                        "for example https://mastodon.example)")
    return None


def _ask(platform: str, handle: str, base_url: str | None, credentials: Credentials) -> Identity | None:
    """Whom the platform says ``credentials`` belong to. No database transaction is open here."""
    adapter = adapter_class(platform)(timeout=min(get_settings().http_timeout, 30.0))
    ref = AccountRef(id=0, platform=platform, handle=handle, base_url=base_url, credentials=credentials)
    where = adapter.base_url(ref)
    try:
        return adapter.whoami(ref)
    except NotImplementedError:
        return None  # an adapter that cannot ask yet: the shape was checked, the owner cannot be
    except (AuthExpired, Rejected) as exc:
        raise UserError(f"credentials: {platform} refused them for {platform}:{handle}: "
                        f"{' '.join(exc.reason.split())}; nothing was stored") from None
    except RateLimited as exc:
        raise UserError(f"{platform}: {where} asks to wait {exc.retry_after:.0f} s before asking whose "
                        "these credentials are; nothing was stored, try again later") from None
    except AdapterError as exc:
        raise UserError(f"{platform}: cannot ask {where} whose these credentials are: "
                        f"{' '.join(exc.reason.split())}; nothing was stored") from None


def check_credentials(platform: str, handle: str, data: Mapping[str, Any], base_url: str | None,
                      remote_id: str | None = None) -> Checked:
    """Shape first (the platform's credentials model), then the platform itself: refuses credentials
    that belong to another account, naming both. ``remote_id``, the platform's id of a stored account,
    decides when both sides know it (a renamed handle is still the same account)."""
    credentials = _validated(platform, data)
    identity = _ask(platform, handle, base_url, credentials)
    if identity is None:
        return Checked(credentials, None)
    if remote_id and identity.remote_id:
        same = identity.remote_id == remote_id
    else:
        same = adapter_class(platform).same_account(handle, identity)
    if not same:
        theirs = f" (id {identity.remote_id})" if remote_id and identity.remote_id else ""
        mine = f" (id {remote_id})" if theirs else ""
        raise UserError(f"credentials: these credentials belong to {platform}:{identity.handle}{theirs}, "
                        f"not {platform}:{handle}{mine}; nothing was stored")
    return Checked(credentials, identity)


def connect(platform: str, handle: str, data: Mapping[str, Any], *, name: str | None = None,
            tags: list[str] | None = None, tz: str = "UTC", base_url: str | None = None,
            language: str | None = None) -> tuple[Account, bool]:
    """Add an account after checking its credentials with the platform; the account, and whether the
    platform could be asked whose they are. Every input is checked before the platform is called, and
    nothing is stored unless all is well."""
    handle = check_handle(platform, handle)
    check_name(name)
    check_tz(tz)
    tags = check_tags(tags or [])
    language = check_language(language) if language is not None else None
    if base_url:
        check_url(base_url, "base-url")
    if not data:
        raise UserError("credentials: empty; give --credentials-file FILE (or - for standard input)")
    with session_scope() as s:
        _existing(s, platform, handle)
    base_url = _base_url(platform, base_url)
    checked = check_credentials(platform, handle, data, base_url)
    with session_scope() as s:  # add checks again for a twin added while the platform answered
        account = add(s, platform, handle, checked.credentials, name=name, tags=tags, tz=tz,
                      base_url=base_url, language=language,
                      remote_id=checked.identity.remote_id if checked.identity else None)
    return account, checked.identity is not None


def reauthorise(ref: str, data: Mapping[str, Any], now: datetime,
                base_url: str | None = None) -> tuple[Account, int, bool]:
    """Store new credentials for an account after the platform confirmed they are this account's (its
    stable id when known, else its handle); the account, how many blocked deliveries are due again,
    and whether the platform could be asked. ``base_url`` moves the account to another address (an
    account stored without the base URL its platform requires must be given one)."""
    with session_scope() as s:
        account = find(s, ref)
        account_id, platform, handle = account.id, account.platform, account.handle
        remote_id, version = account.remote_id, account.credentials_version
        base_url = _base_url(platform, base_url or account.base_url)
    checked = check_credentials(platform, handle, data, base_url, remote_id)
    identity = checked.identity
    with session_scope() as s:
        account = s.get(Account, account_id)
        if account is None or account.status == "removed":
            raise UserError(f"account: {platform}:{handle} was removed meanwhile; nothing was stored")
        if account.credentials_version != version:
            raise UserError(f"account: {platform}:{handle} got new credentials meanwhile; nothing was stored")
        account.base_url = base_url
        released = reauth(s, account, checked.credentials, now,
                          remote_id=identity.remote_id if identity else None)
    return account, released, identity is not None


def edit(s: Session, account: Account, *, name: str | None = None, tags: list[str] | None = None,
         tz: str | None = None, language: str | None = None) -> Account:
    """Change what describes an account (not its credentials: see :func:`reauthorise`). An empty
    name or language clears it; ``tags`` replaces the tags."""
    if name is not None:
        account.name = check_name(name) or None
    if tags is not None:
        account.tags = check_tags(tags)
    if tz is not None:
        account.tz = check_tz(tz)
    if language is not None:
        account.language = check_language(language) if language.strip() else None
    s.flush()
    return account
