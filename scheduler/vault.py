"""Credentials at rest: Fernet-encrypted JSON, with the key from settings or the key file."""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from adapters.base import Credentials
from config.settings import Settings, get_settings


class VaultError(Exception):
    pass


def ensure_key(settings: Settings) -> bool:
    """Write a new key file (mode 0600) when there is no key; True if one was written."""
    if settings.secret_key is not None or settings.key_file.exists():
        return False
    settings.key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key())
    return True


@lru_cache(maxsize=4)
def _fernet(secret: str | None, key_file: str) -> Fernet:
    if secret is None:
        try:
            with open(key_file, "rb") as f:
                secret = f.read().decode().strip()
        except FileNotFoundError:
            raise VaultError(f"no credentials key: run `crosspost init` or set CROSSPOST_SECRET_KEY "
                             f"(looked for {key_file})") from None
    try:
        return Fernet(secret.encode())
    except ValueError:
        raise VaultError("the credentials key is not a valid Fernet key (32 url-safe base64 bytes)") from None


def fernet() -> Fernet:
    s = get_settings()
    return _fernet(s.secret_key.get_secret_value() if s.secret_key else None, str(s.key_file))


def seal(credentials: Credentials) -> bytes:
    return fernet().encrypt(credentials.to_json().encode())


def unseal(token: bytes) -> Credentials:
    try:
        return Credentials.from_json(fernet().decrypt(token).decode())
    except InvalidToken:
        raise VaultError("stored credentials cannot be decrypted with this key") from None
