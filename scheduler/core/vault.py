"""Credentials at rest: Fernet-encrypted JSON, with the key from settings or the key file.

Key rotation (``crosspost keys rotate``) never leaves a credential sealed under a key that is not on
disk: the new key is written first to ``secret.key.next``; while that file exists, credentials are sealed
with it and opened with either key; the database is re-encrypted in one transaction; only then does the
new key replace ``secret.key`` (one atomic rename). A crash at any point leaves every credential
readable, and running ``keys rotate`` again finishes the job with the same new key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import Credentials
from config.settings import Settings, get_settings
from scheduler.core.models import Account

KEY_FILE_MODE = 0o600


class VaultError(Exception):
    pass


def next_key_file(settings: Settings) -> Path:
    """Where a rotation in progress keeps the new key until the database is re-encrypted under it."""
    return settings.key_file.with_name(settings.key_file.name + ".next")


def has_key(settings: Settings) -> bool:
    return settings.secret_key is not None or settings.key_file.exists()


def write_key_file(path: Path, key: bytes) -> None:
    """Create ``path`` (0600, never over an existing file) holding ``key``, flushed to disk with its
    directory entry, so a crash right after cannot lose a key that credentials are sealed under."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_key(settings: Settings) -> bool:
    """Write a new key file (mode 0600) when there is no key; True if one was written."""
    if has_key(settings):
        return False
    write_key_file(settings.key_file, Fernet.generate_key())
    return True


# -- the key ring -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ring:
    sealer: Fernet
    opener: MultiFernet


_rings: dict[tuple[object, ...], _Ring] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    # Rotation replaces the key file under running workers: a changed inode or time makes them read it
    # again, so no worker keeps sealing with a key that is no longer on disk.
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VaultError(f"cannot read the credentials key {path}: {exc.strerror}") from None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _load(text: str, where: str) -> Fernet:
    try:
        return Fernet(text.strip().encode())
    except ValueError:
        raise VaultError(f"the credentials key {where} is not a valid Fernet key "
                         "(32 url-safe base64 bytes)") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise VaultError(f"cannot read the credentials key {path}: {reason}") from None


def _ring() -> _Ring:
    s = get_settings()
    secret = s.secret_key.get_secret_value() if s.secret_key else None
    key_file, pending_file = s.key_file, next_key_file(s)
    stamp = (secret, str(key_file), _stamp(key_file) if secret is None else None, _stamp(pending_file))
    ring = _rings.get(stamp)
    if ring is not None:
        return ring
    if secret is not None:
        primary = _load(secret, "in CROSSPOST_SECRET_KEY")
    elif stamp[2] is None:
        raise VaultError(f"no credentials key: run `crosspost init` or set CROSSPOST_SECRET_KEY "
                         f"(looked for {key_file})")
    else:
        primary = _load(_read(key_file), f"in {key_file}")
    keys = [primary]
    if stamp[3] is not None:
        # A rotation is under way (or crashed): seal with the new key, open with both.
        keys.insert(0, _load(_read(pending_file), f"in {pending_file}"))
    ring = _Ring(sealer=keys[0], opener=MultiFernet(keys))
    _rings.clear()
    _rings[stamp] = ring
    return ring


def seal(credentials: Credentials) -> bytes:
    return _ring().sealer.encrypt(credentials.to_json().encode())


def unseal(token: bytes) -> Credentials:
    try:
        return Credentials.from_json(_ring().opener.decrypt(token).decode())
    except InvalidToken:
        raise VaultError("stored credentials cannot be decrypted with this key") from None


def opens(token: bytes) -> bool:
    try:
        _ring().opener.decrypt(token)
    except InvalidToken:
        return False
    return True


def unreadable_accounts(s: Session) -> list[str]:
    """Labels of the live accounts whose credentials this key cannot open (all of them with no key)."""
    rows = s.execute(select(Account.platform, Account.handle, Account.credentials)
                     .where(Account.status != "removed").order_by(Account.id)).all()
    if not rows:
        return []
    if not has_key(get_settings()):
        return [f"{p}:{h}" for p, h, _ in rows]
    return [f"{p}:{h}" for p, h, token in rows if not opens(token)]


def _listed(labels: list[str]) -> str:
    return ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")


def check_before_new_key(s: Session) -> None:
    """Refuse to make a new key while the database holds credentials that only another key opens:
    they would become undecryptable for good."""
    if has_key(get_settings()):
        return
    held = unreadable_accounts(s)
    if held:
        raise VaultError(
            f"the database holds credentials of {len(held)} account(s) ({_listed(held)}) sealed under a key "
            f"that is not here; restore {get_settings().key_file} or set CROSSPOST_SECRET_KEY. No new key "
            "was written (it would make them undecryptable)")


# -- rotation -----------------------------------------------------------------------------------
def begin_rotation(settings: Settings) -> bool:
    """Write the new key beside the old one (``secret.key.next``), unless a crashed rotation left one:
    then that key is kept, since credentials may already be sealed under it. True if one was written."""
    if settings.secret_key is not None:
        raise VaultError("keys rotate: the key comes from CROSSPOST_SECRET_KEY; rotate it where it is "
                         "set (this command rotates the key file)")
    if not settings.key_file.exists():
        raise VaultError(f"keys rotate: there is no key file {settings.key_file}; run `crosspost init`")
    pending = next_key_file(settings)
    if pending.exists():
        _ring()  # a damaged leftover is reported here, before anything is re-encrypted
        return False
    write_key_file(pending, Fernet.generate_key())
    return True


def reseal_all(s: Session) -> int:
    """Re-encrypt every account's credentials (removed ones too) under the newest key, in the caller's
    transaction; refuses, changing nothing, if a live account's cannot be opened. (A removed account's
    that cannot be opened are left as they are: nothing will ever use them.)"""
    ring = _ring()
    rows = list(s.scalars(select(Account).order_by(Account.id).with_for_update()).all())
    openable = [a for a in rows if opens(a.credentials)]
    bad = [a.label for a in rows if a.status != "removed" and a not in openable]
    if bad:
        raise VaultError(f"keys rotate: the credentials of {len(bad)} account(s) ({_listed(bad)}) cannot "
                         "be decrypted with the current key; no credential was changed (re-authorise or "
                         "remove those accounts, then run `crosspost keys rotate` again)")
    for account in openable:
        # MultiFernet.rotate keeps each token's original timestamp; the version is not bumped, so a
        # token refresh racing with the rotation still lands (it seals with the new key already).
        account.credentials = ring.opener.rotate(account.credentials)
    s.flush()
    return len(openable)


def finish_rotation(settings: Settings) -> None:
    """Make the new key the only key: one atomic rename over the old key file."""
    pending = next_key_file(settings)
    os.chmod(pending, KEY_FILE_MODE)
    os.replace(pending, settings.key_file)
    _fsync_dir(settings.key_file.parent)


def rotate() -> int:
    """Re-encrypt every account's credentials under a new key; the number of accounts re-encrypted."""
    from scheduler.core.db import session_scope

    settings = get_settings()
    # The new key is on disk before anything is sealed under it. If the re-encryption is refused or
    # dies, it stays beside the old key (both open; the next run reuses it): deleting it could lose
    # a token that a worker sealed under it meanwhile.
    begin_rotation(settings)
    with session_scope() as s:
        count = reseal_all(s)
    # Only now, with every credential committed under the new key, does it replace the old one.
    finish_rotation(settings)
    return count
