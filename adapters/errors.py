"""The few kinds of failure an adapter may report; the scheduler handles each in one place."""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every error an adapter raises. ``status`` is the HTTP status when there was one."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RateLimited(AdapterError):
    """The platform asked us to wait ``retry_after`` seconds. ``scope`` is ``account`` or ``app``."""

    def __init__(self, reason: str, retry_after: float, *, status: int | None = None,
                 scope: str = "account") -> None:
        super().__init__(reason, status=status)
        self.retry_after = max(0.0, float(retry_after))
        self.scope = scope


class AuthExpired(AdapterError):
    """The credentials no longer work; a refresh may fix it."""


class Rejected(AdapterError):
    """The platform refused the content or the account; retrying unchanged will not help."""


class Transient(AdapterError):
    """A fault that may pass (5xx, timeout, dropped connection).

    ``maybe_sent`` is true when the request may have reached the platform (a timeout or a dropped
    connection after sending), so a non-idempotent create must not be blindly repeated.
    """

    def __init__(self, reason: str, *, status: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(reason, status=status)
        self.maybe_sent = maybe_sent


class InProgress(AdapterError):
    """A multi-step publish is waiting on the platform (media processing, a container not ready);
    the scheduler comes back after ``after`` seconds. Save what is needed to continue with
    ``progress.save(...)`` before raising: adapters never sleep."""

    def __init__(self, reason: str, after: float) -> None:
        super().__init__(reason)
        self.after = after
