"""The account matrix: adding, finding, pausing, re-authorising accounts; selecting targets."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters import PLATFORMS
from adapters.base import AccountRef, Credentials
from scheduler import deliveries, vault
from scheduler.errors import UserError, parse_id, shown
from scheduler.models import Account, Delivery

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


def find(s: Session, ref: str) -> Account:
    """An account by id or ``platform:handle``."""
    ref = ref.strip()
    number = parse_id(ref)
    if number is not None:
        account = s.get(Account, number)
    elif ":" in ref:
        platform, handle = ref.split(":", 1)
        account = s.scalar(select(Account).where(Account.platform == platform, Account.handle == handle))
    else:
        raise UserError(f"account: {shown(ref)} is neither an id nor platform:handle")
    if account is None or account.status == "removed":
        raise UserError(f"account: no account {shown(ref)}")
    return account


def add(s: Session, platform: str, handle: str, credentials: Credentials, *, name: str | None = None,
        tags: list[str] | None = None, tz: str = "UTC", base_url: str | None = None) -> Account:
    check_platform(platform)
    handle = handle.strip()
    if not handle or len(handle) > 255 or not printable(handle) or " " in handle:
        raise UserError(f"handle: {shown(handle)} must be 1-255 printable characters without spaces")
    if name is not None and len(name) > 255:
        raise UserError(f"name: is {len(name)} characters; the limit is 255")
    if name is not None and not printable(name):
        raise UserError(f"name: {shown(name)} has control characters")
    check_tz(tz)
    if base_url:
        check_url(base_url, "base-url")
    if not credentials:
        raise UserError("credentials: empty; give --credentials-file FILE (or - for standard input)")
    existing = s.scalar(select(Account).where(Account.platform == platform, Account.handle == handle))
    if existing is not None and existing.status != "removed":
        raise UserError(f"account: {platform}:{handle} already exists (id {existing.id})")
    account = existing or Account(platform=platform, handle=handle)
    account.name, account.tags, account.tz, account.base_url = name, check_tags(tags or []), tz, base_url
    account.credentials = vault.seal(credentials)
    account.token_expires_at = credentials.expires_at()
    account.credentials_version = (account.credentials_version or 0) + 1
    account.status, account.status_reason = "active", None
    s.add(account)
    s.flush()
    return account


def to_ref(account: Account) -> AccountRef:
    return AccountRef(id=account.id, platform=account.platform, handle=account.handle,
                      base_url=account.base_url, credentials=vault.unseal(account.credentials),
                      language=account.language)


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


def reauth(s: Session, account: Account, credentials: Credentials, now: datetime) -> int:
    if not credentials:
        raise UserError("credentials: empty")
    account.credentials = vault.seal(credentials)
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
        "name": account.name, "tags": account.tags or [], "tz": account.tz, "base_url": account.base_url,
        "status": account.status, "status_reason": account.status_reason,
        "token_expires_at": account.token_expires_at.isoformat() if account.token_expires_at else None,
        "created_at": account.created_at.isoformat(),
    }
