"""The desk's refusals. Each is a UserError (one line for the CLI); the API maps each class to its status."""

from __future__ import annotations

from scheduler.core.errors import UserError


class Unauthenticated(UserError):
    """No credentials, or ones that do not name a live user (401)."""


class Forbidden(UserError):
    """The actor's roles or scopes do not allow this (403)."""


class NotFound(UserError):
    """No such object (404)."""


class Conflict(UserError):
    """The object's state does not allow this now (409); re-read it and decide again."""


class TooManyAttempts(UserError):
    """Too many failed logins lately (429); ``retry_after`` seconds until the next try counts."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
