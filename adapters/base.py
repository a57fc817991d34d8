"""What every adapter shares: declared capabilities, the post it is given, what it returns.

An adapter never touches the database or Celery, never sleeps and never retries: it returns a value
or raises one of the errors in :mod:`adapters.errors`; the scheduler owns time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import requests
from pydantic import SecretStr

from adapters import http
from adapters.text import compose, graphemes


@dataclass(frozen=True)
class Capabilities:
    """What a platform allows, declared as data so the shared :meth:`Adapter.check` can enforce it."""

    text_limit: int
    count: Callable[[str], int] = graphemes
    unit: str = "characters"
    # A retry with the same key can never create a second post (for ``idempotent_for``, None = ever).
    idempotent: bool = False
    idempotent_for: timedelta | None = None
    # ``find_published`` can tell whether a delivery already went out.
    can_find: bool = False
    requires_media: bool = False


@dataclass(frozen=True)
class Problem:
    """One reason a story cannot go to one platform, found before anything is stored."""

    platform: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.platform}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Post:
    """What one delivery publishes. ``created_at`` is fixed at the first attempt and never changes,
    so a retried record is identical to the first try."""

    text: str
    link: str | None = None
    created_at: datetime | None = None

    @property
    def body(self) -> str:
        return compose(self.text, self.link)


@dataclass(frozen=True)
class Published:
    remote_id: str
    url: str | None = None
    published_at: datetime | None = None


class Credentials:
    """Secret values for one account. Never printed: ``repr`` and ``str`` show only the names."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, SecretStr] = {
            k: SecretStr(str(v)) for k, v in (values or {}).items() if v is not None and v != ""
        }

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._values.get(name)
        return value.get_secret_value() if value is not None else default

    def require(self, name: str, platform: str) -> str:
        value = self.get(name)
        if value is None:
            from adapters.errors import AuthExpired

            raise AuthExpired(f"{platform}: credentials have no {name!r}")
        return value

    def merged(self, **changes: Any) -> Credentials:
        """A copy with ``changes`` applied; an empty or None value never replaces a stored one."""
        values = self.reveal()
        values.update({k: v for k, v in changes.items() if v not in (None, "")})
        return Credentials(values)

    def reveal(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self._values.items()}

    def secrets(self) -> list[str]:
        """Every value, for scrubbing error texts; short values are skipped (they would scrub words)."""
        return [v for v in self.reveal().values() if len(v) >= 6]

    def to_json(self) -> str:
        return json.dumps(self.reveal(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Credentials:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("credentials must be a JSON object of names to values")
        return cls(data)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and self.reveal() == other.reveal()

    def __repr__(self) -> str:
        return f"Credentials({', '.join(sorted(self._values))}: ***)"

    __str__ = __repr__


@dataclass
class AccountRef:
    """The parts of an account an adapter needs; built by the scheduler from the stored row."""

    id: int
    platform: str
    handle: str
    base_url: str | None = None
    credentials: Credentials = field(default_factory=Credentials)

    def __repr__(self) -> str:
        return f"AccountRef({self.platform}:{self.handle}, id={self.id})"


class Adapter:
    """Base of every platform adapter. Subclasses set ``platform``, ``caps`` and ``default_base_url``
    and implement ``publish``, ``followers`` and, where the platform has them, ``refresh`` and
    ``find_published``."""

    platform: ClassVar[str]
    caps: ClassVar[Capabilities]
    default_base_url: ClassVar[str]

    def __init__(self, session: requests.Session | None = None, timeout: float | None = None) -> None:
        self.session = session or http.new_session()
        self.timeout = timeout

    # -- checks (pure) -------------------------------------------------------------------------
    def check(self, post: Post) -> list[Problem]:
        problems: list[Problem] = []
        body = post.body
        if not body.strip():
            problems.append(Problem(self.platform, "text", "is empty"))
        if self.caps.requires_media:
            problems.append(Problem(self.platform, "media", "this platform publishes only with media"))
        length = self.caps.count(body)
        if length > self.caps.text_limit:
            problems.append(Problem(
                self.platform, "text",
                f"is {length} {self.caps.unit} long; the limit is {self.caps.text_limit}",
            ))
        problems.extend(self.check_platform(post))
        return problems

    def check_platform(self, post: Post) -> list[Problem]:
        """Rules only this platform has; the shared ones are in :meth:`check`."""
        return []

    # -- network ------------------------------------------------------------------------------
    def base_url(self, account: AccountRef) -> str:
        return (account.base_url or self.default_base_url).rstrip("/")

    def publish(self, account: AccountRef, post: Post, key: str) -> Published:
        raise NotImplementedError

    def find_published(self, account: AccountRef, post: Post, key: str) -> Published | None:
        return None

    def followers(self, account: AccountRef) -> int:
        raise NotImplementedError

    def refresh(self, account: AccountRef) -> Credentials:
        """New credentials for ``account``; the default has no refresh, so the caller's AuthExpired
        stands."""
        from adapters.errors import AuthExpired

        raise AuthExpired(f"{self.platform}: these credentials cannot be refreshed; re-authorise the account")

    def request(self, account: AccountRef, method: str, url: str, **kwargs: Any) -> requests.Response:
        return http.send(
            self.session, method, url, platform=self.platform, classify=self.classify,
            timeout=self.timeout, secrets=account.credentials.secrets(), **kwargs,
        )

    def classify(self, response: requests.Response) -> Exception | None:
        """Map a platform-specific error response to an adapter error; None means use the defaults."""
        return None
