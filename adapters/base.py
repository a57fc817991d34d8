"""What every adapter shares: declared capabilities, the post it is given, what it returns.

An adapter never touches the database or Celery, never sleeps and never retries: it returns a value
or raises one of the errors in :mod:`adapters.errors`; the scheduler owns time.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

import requests
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    StringConstraints,
    ValidationError,
)

from adapters import http
from adapters.text import compose, graphemes, split_thread


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
    # Media: what one post may carry. A platform that publishes only with media sets requires_media.
    requires_media: bool = False
    max_images: int = 0
    image_types: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
    max_image_bytes: int = 5 * 1024 * 1024
    max_videos: int = 0
    video_types: frozenset[str] = frozenset({"video/mp4"})
    max_video_bytes: int = 512 * 1024 * 1024
    images_with_video: bool = False
    # A story too long for one post may go out as a reply chain (``--thread``).
    threads: bool = False
    # How long after a create's answer the post may take to show up in ``find_published`` (search
    # indexes, feeds). A create that died behind its fence is looked up only after the HTTP timeout
    # plus this much, so an in-flight request has landed and become visible first.
    visible_after: timedelta = timedelta(seconds=5)
    # Self-hosted platforms (Mastodon) have no default API address: the account must name its own.
    requires_base_url: bool = False


@dataclass(frozen=True)
class Handles:
    """How a platform spells a handle, declared once per adapter for :meth:`Adapter.normalize_handle`:
    what a name looks like (matched without a leading ``@``, ignoring case), the prefix of its one
    spelling, whether case matters, and other forms (numeric or stable ids) kept exactly as given."""

    name: str
    what: str
    prefix: str = ""
    lower: bool = True
    ids: str | None = None


@dataclass(frozen=True)
class TokenRefresh:
    """How a platform renews an OAuth 2 token (the ``refresh_token`` grant), declared once per adapter
    for :meth:`Adapter.refresh`. ``url`` is the public token endpoint (None: on the API host); an
    account with its own base URL (a stand-in) is served at ``path`` there."""

    path: str
    url: str | None = None
    # The form names of the app's id and secret (TikTok says client_key).
    client: tuple[str, str] = ("client_id", "client_secret")
    # A confidential app authenticates with HTTP Basic instead of form fields (X).
    basic_auth: bool = False
    # Seconds an access token lives when the answer does not say: a stale stored expiry must not survive.
    life: float = 3600.0
    # Answer fields stored as they are (TikTok's open_id), and lifetimes in seconds stored as times.
    keep: tuple[str, ...] = ()
    lifetimes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Problem:
    """One reason a story cannot go to one platform, found before anything is stored."""

    platform: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.platform}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Media:
    """One image or video, already in the local media store (``path``), with what was read from it."""

    kind: str  # "image" | "video"
    path: str
    mime: str
    size: int
    width: int | None = None
    height: int | None = None
    alt: str = ""
    sha256: str = ""
    # Where the platform can fetch it, for APIs that pull media by URL (Instagram, Threads, Facebook,
    # TikTok PULL_FROM_URL); None when the media store is not published.
    url: str | None = None


@dataclass(frozen=True)
class Post:
    """What one delivery publishes. ``created_at`` is fixed at the first attempt and never changes,
    so a retried record is identical to the first try. ``title`` is for platforms that want one
    (YouTube); ``thread`` allows a reply chain when the text is too long for one post."""

    text: str
    link: str | None = None
    created_at: datetime | None = None
    media: tuple[Media, ...] = ()
    title: str | None = None
    thread: bool = False
    # BCP-47 tag of the text (the story's, else the account's), for platforms that label posts.
    language: str | None = None

    @property
    def images(self) -> tuple[Media, ...]:
        return tuple(m for m in self.media if m.kind == "image")

    @property
    def videos(self) -> tuple[Media, ...]:
        return tuple(m for m in self.media if m.kind == "video")

    @property
    def body(self) -> str:
        return compose(self.text, self.link)


FENCE = "fence"


class Progress:
    """What a multi-step publish has done so far (uploaded media ids, thread parts posted, a
    container id). ``save`` persists it on the delivery at once, so a retry after a crash continues
    from there instead of starting again; adapters call it after every step that created something.

    ``fence(step)`` goes right before a request that may make something *visible* that the platform
    cannot de-duplicate (the post, a thread part, a video that publishes on upload). It saves a marker
    (and the saver checks the lease, so a reaped attempt stops here); the next ``save`` clears it. An
    attempt that died with the marker set may have created ``step``: the retry policy then looks it up
    once an in-flight request could have landed, or hands it to an operator. An attempt that died
    without it created nothing visible and is simply tried again.
    """

    def __init__(self, state: Mapping[str, Any] | None = None,
                 saver: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.state: dict[str, Any] = dict(state or {})
        self._saver = saver

    def get(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    def fence(self, step: str) -> None:
        self.save(**{FENCE: {"step": step, "at": datetime.now(UTC).isoformat()}})

    @contextmanager
    def sending(self, step: str) -> Iterator[None]:
        """``fence(step)`` around the request in the block. A definite answer to it (any adapter error
        but a Transient that may have been sent) takes the fence down again, so a later retry never
        suspects a create the platform refused; silence, or a crash, leaves it up."""
        from adapters.errors import AdapterError, Transient

        self.fence(step)
        try:
            yield
        except AdapterError as exc:
            if not (isinstance(exc, Transient) and exc.maybe_sent):
                self.save()
            raise

    @property
    def fenced(self) -> dict[str, Any] | None:
        """The marker of a create that was sent and has no saved answer yet, if any."""
        marker = self.state.get(FENCE)
        return marker if isinstance(marker, dict) else None

    @property
    def fenced_part(self) -> int | None:
        """The index of the thread part a fence names (see :func:`part_step`), 0 for a single post;
        None without a fence or for another kind of step."""
        step = str((self.fenced or {}).get("step") or "")
        if step == "post":
            return 0
        found = re.fullmatch(r"part (\d+) of \d+", step)
        return int(found.group(1)) - 1 if found else None

    def save(self, **changes: Any) -> None:
        # Any save after a fence records the fenced request's answer (or the next step), so the
        # marker goes unless this save sets it.
        merged = {**{k: v for k, v in self.state.items() if k != FENCE}, **changes}
        if self._saver is not None:
            self._saver(dict(merged))
        # Only what was saved counts: a failed save must not make the caller believe a retry can
        # resume (Telegram's saved message), or the retry, which sees only the saved state, posts again.
        self.state = merged


def part_step(index: int, count: int) -> str:
    """The fence step of part ``index`` (0-based) of a ``count``-part post: ``post`` for a single one."""
    return "post" if count == 1 else f"part {index + 1} of {count}"


@dataclass(frozen=True)
class Published:
    remote_id: str
    url: str | None = None
    published_at: datetime | None = None


class Credentials:
    """Secret values for one account. Never printed: ``repr`` and ``str`` show only the names."""

    def __init__(self, values: Mapping[str, Any] | None = None,
                 model: type[CredentialsModel] | None = None) -> None:
        self._values: dict[str, SecretStr] = {
            k: SecretStr(str(v)) for k, v in (values or {}).items() if v is not None and v != ""
        }
        # The platform's model, when known, says which values are secret (see ``secrets``).
        self.model = model

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
        return Credentials(values, self.model)

    def reveal(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self._values.items()}

    def secrets(self, model: type[CredentialsModel] | None = None) -> list[str]:
        """The values to scrub from error texts. With the platform's model (given, or attached by
        :meth:`CredentialsModel.validate`), only what it declares public (ids, a login kind, an expiry
        time) is left alone; a value it does not know is scrubbed, to be safe. Without a model, every
        value. Short values are skipped (they would scrub ordinary words)."""
        model = model or self.model
        public = model.public_fields() if model is not None else frozenset()
        return [v for k, v in self.reveal().items() if k not in public and len(v) >= 6]

    def expires_at(self) -> datetime | None:
        """When the access token expires, from the ``expires_at`` value adapters store (ISO-8601)."""
        return parse_time(self.get("expires_at"))

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


class CredentialsModel(BaseModel):
    """The shape of one platform's credentials. Each adapter declares a subclass (required fields,
    formats, ``SecretStr`` for secrets); ``accounts add`` and ``reauth`` validate against it before
    anything is stored, and scrubbing takes its secret fields from it. Unknown keys are refused, so a
    misspelt key is found when the account is added, not at its first publish."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """The fields typed ``SecretStr`` (or ``SecretStr | None``): what scrubbing hides."""
        return _secret_fields(cls)

    @classmethod
    def public_fields(cls) -> frozenset[str]:
        return frozenset(cls.model_fields) - _secret_fields(cls)

    @classmethod
    def validate(cls, platform: str, data: object) -> Credentials:
        """``data`` as this platform's credentials, or ValueError with one line per problem, each
        naming the platform and the field; a value is never quoted (it may be a secret)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{platform}: credentials: must be an object of names to values")
        try:
            parsed = cls.model_validate(dict(data))
        except ValidationError as exc:
            lines = [f"{platform}: credentials: {_where(e['loc'])}{cls._problem(e)}"
                     for e in exc.errors(include_input=False, include_url=False)]
            raise ValueError("\n".join(lines)) from None
        values: dict[str, str] = {}
        for name, value in parsed:
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, datetime):
                value = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
            if value is not None and value != "":
                values[name] = str(value)
        return Credentials(values, cls)

    @classmethod
    def _problem(cls, error: Mapping[str, Any]) -> str:
        kind, ctx = error["type"], error.get("ctx") or {}
        if kind == "missing":
            return "is required"
        if kind == "extra_forbidden":
            return f"is not a field of these credentials (expected: {', '.join(cls.model_fields)})"
        if kind in ("too_short", "string_too_short"):
            return f"is too short (at least {ctx.get('min_length')} characters)"
        if kind == "string_pattern_mismatch":
            return "is not in the expected format"
        if kind.startswith(("datetime_", "date_")):
            return "is not an ISO-8601 time such as 2026-12-01T10:00:00Z"
        return str(error["msg"]).removeprefix("Value error, ")


def secret_like(pattern: str, what: str) -> Any:
    """A ``SecretStr`` field type whose value must match ``pattern`` (whole); the error says ``what``
    was expected, never what was given."""
    compiled = re.compile(pattern)

    def check(value: SecretStr) -> SecretStr:
        if not compiled.fullmatch(value.get_secret_value()):
            raise ValueError(f"is not {what}")
        return value

    return Annotated[SecretStr, AfterValidator(check)]


# An opaque bearer token: one word of visible ASCII (it goes into a header, so no spaces or line breaks).
Token = secret_like(r"[\x21-\x7e]{8,}", "a token (at least 8 visible characters, no spaces)")


def _digits_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A public value of one word (a client id, a login name).
Word = Annotated[str, StringConstraints(min_length=1, pattern=r"^\S+$")]
# A platform's numeric id; JSON numbers are taken as their digits.
NumericId = Annotated[str, BeforeValidator(_digits_as_text), StringConstraints(pattern=r"^\d+$")]


class OAuthCredentials(CredentialsModel):
    """An OAuth 2 user token and what refresh writes back (a rotated refresh token, the expiry)."""

    access_token: Token
    refresh_token: Token | None = None
    expires_at: datetime | None = None


@functools.cache
def _secret_fields(model: type[CredentialsModel]) -> frozenset[str]:
    # Asked on every publish (to scrub its errors); a model's fields never change once it is defined.
    return frozenset(name for name, f in model.model_fields.items() if _mentions_secret(f.annotation))


def _mentions_secret(annotation: Any) -> bool:
    """Whether a field's type is ``SecretStr``, also inside ``Annotated[...]`` or ``... | None``."""
    if annotation is SecretStr:
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


def _where(loc: Iterable[Any]) -> str:
    """``field: `` for a problem with one field; nothing for one with the whole set."""
    where = ".".join(str(part) for part in loc)
    return f"{where}: " if where else ""


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time from a platform (``Z`` or an offset; a missing zone means UTC), or None for
    anything else. The one parser every adapter uses."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Identity:
    """Who a set of credentials belongs to, in the platform's words: the handle as the account row
    spells it (normalised), and the platform's stable id when it has one."""

    handle: str
    remote_id: str | None = None
    name: str | None = None


@dataclass
class AccountRef:
    """The parts of an account an adapter needs; built by the scheduler from the stored row.
    ``language`` is a BCP-47 tag (``en``, ``zh-Hans``) for platforms that label posts (Bluesky)."""

    id: int
    platform: str
    handle: str
    base_url: str | None = None
    credentials: Credentials = field(default_factory=Credentials)
    language: str | None = None

    def __post_init__(self) -> None:
        # Scrubbing takes the secret fields from the platform's model (a Page id is no secret), also
        # where the caller built the credentials from stored JSON.
        if self.credentials.model is None:
            from adapters import UnknownPlatform, adapter_class

            with suppress(UnknownPlatform):
                self.credentials.model = adapter_class(self.platform).credentials_model

    def __repr__(self) -> str:
        return f"AccountRef({self.platform}:{self.handle}, id={self.id})"


class Adapter:
    """Base of every platform adapter. Subclasses set ``platform``, ``caps`` and ``default_base_url``
    and implement ``publish``, ``followers`` and, where the platform has them, ``refresh`` and
    ``find_published``."""

    platform: ClassVar[str]
    caps: ClassVar[Capabilities]
    default_base_url: ClassVar[str]
    credentials_model: ClassVar[type[CredentialsModel]] = CredentialsModel
    # How this platform words a failed answer (message, rate-limit headers, documented unknown
    # outcomes); read by adapters/http.py, which applies the one "maybe sent" rule.
    rules: ClassVar[http.Rules] = http.DEFAULT_RULES
    # How a handle is spelt (None: any one word, as given).
    handles: ClassVar[Handles | None] = None
    # How an OAuth token is renewed (None: it cannot be; an operator re-authorises).
    token_refresh: ClassVar[TokenRefresh | None] = None

    def __init__(self, session: requests.Session | None = None, timeout: float | None = None) -> None:
        self.session = session or http.new_session()
        self.timeout = timeout

    # -- checks (pure) -------------------------------------------------------------------------
    def check(self, post: Post) -> list[Problem]:
        problems: list[Problem] = []
        body = post.body
        if not body.strip():
            problems.append(Problem(self.platform, "text", "is empty"))
        problems.extend(self.check_media(post))
        length = self.caps.count(body)
        threaded = post.thread and self.caps.threads
        if length > self.caps.text_limit and not threaded:
            hint = "; use --thread for a reply chain" if self.caps.threads else ""
            problems.append(Problem(
                self.platform, "text",
                f"is {length} {self.caps.unit} long; the limit is {self.caps.text_limit}{hint}",
            ))
        elif length > self.caps.text_limit:
            try:
                split_thread(body, self.caps.text_limit, self.caps.count)
            except ValueError as exc:
                problems.append(Problem(self.platform, "text", f"cannot be split into a thread: {exc}"))
                # The platform's own rules still run, on the text as one post.
                post = replace(post, thread=False)
        problems.extend(self.check_platform(post))
        return problems

    def check_media(self, post: Post) -> list[Problem]:
        caps, p = self.caps, self.platform
        images, videos = post.images, post.videos
        problems = []
        if caps.requires_media and not post.media:
            problems.append(Problem(p, "media", "this platform publishes only with an image or a video"))
        if len(images) > caps.max_images:
            problems.append(Problem(p, "media", f"{len(images)} images; the limit is {caps.max_images}"))
        if len(videos) > caps.max_videos:
            problems.append(Problem(p, "media", f"{len(videos)} videos; the limit is {caps.max_videos}"))
        if images and videos and not caps.images_with_video:
            problems.append(Problem(p, "media", "images and a video cannot go in one post"))
        for m in post.media:
            types, limit = ((caps.image_types, caps.max_image_bytes) if m.kind == "image"
                            else (caps.video_types, caps.max_video_bytes))
            if m.mime not in types:
                problems.append(Problem(p, "media", f"{m.kind} type {m.mime} is not one of "
                                                    f"{', '.join(sorted(types))}"))
            if m.size > limit:
                problems.append(Problem(p, "media", f"{m.kind} is {m.size} bytes; the limit is {limit}"))
        return problems

    def check_platform(self, post: Post) -> list[Problem]:
        """Rules only this platform has; the shared ones are in :meth:`check`."""
        return []

    # -- network ------------------------------------------------------------------------------
    def base_url(self, account: AccountRef) -> str:
        return (account.base_url or self.default_base_url).rstrip("/")

    def publish(self, account: AccountRef, post: Post, key: str, progress: Progress | None = None) \
            -> Published:
        """Publish ``post``; ``key`` is the same on every retry of the delivery, and ``progress`` holds
        what earlier attempts of a multi-step publish already did."""
        raise NotImplementedError

    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The delivery's post if it exists, None if it surely does not. ``progress.fenced`` names the
        step a dead attempt may have created; raise Rejected when that step cannot be looked up."""
        return None

    @classmethod
    def normalize_handle(cls, handle: str) -> str:
        """The one spelling of a handle on this platform (``@newsroom`` and ``newsroom`` are one
        Mastodon account), so one account is never stored twice. ValueError for a handle the
        platform could never have."""
        text, rule = handle.strip(), cls.handles
        if rule is None:
            if not text or any(c.isspace() for c in text):
                raise ValueError(f"{cls.platform}: handle {text!r} is empty or has spaces")
            return text
        if rule.ids and re.fullmatch(rule.ids, text):
            return text
        name = text.removeprefix("@")
        if not re.fullmatch(rule.name, name, re.IGNORECASE):
            raise ValueError(f"{cls.platform}: handle {text!r} is not {rule.what}")
        return rule.prefix + (name.lower() if rule.lower else name)

    @classmethod
    def same_account(cls, handle: str, identity: Identity) -> bool:
        """Whether ``identity`` (from :meth:`whoami`) is the account stored as ``handle``: its
        normalised handle or the platform's id."""
        try:
            mine = cls.normalize_handle(handle)
        except ValueError:
            return False
        return mine in (identity.handle, identity.remote_id)

    def whoami(self, account: AccountRef) -> Identity:
        """Ask the platform whose credentials these are, so they are never stored on another account."""
        raise NotImplementedError(f"{self.platform}: whoami")

    @classmethod
    def resumable(cls, state: Mapping[str, Any]) -> bool:
        """Whether the saved progress of an interrupted publish lets a retry continue without risking a
        second post (the platform already holds our post's id and only needs polling, say)."""
        return False

    def followers(self, account: AccountRef) -> int:
        raise NotImplementedError

    def refresh(self, account: AccountRef) -> Credentials:
        """New credentials for ``account`` through the declared ``token_refresh``; without one there is
        no refresh, so the caller's AuthExpired stands. Refresh tokens may rotate: whatever the answer
        carries replaces what was stored."""
        from adapters.errors import AuthExpired, Rejected, Transient

        rule, creds, p = self.token_refresh, account.credentials, self.platform
        if rule is None:
            raise AuthExpired(f"{p}: these credentials cannot be refreshed; re-authorise the account")
        refresh_token = creds.get("refresh_token")
        if not refresh_token:
            raise AuthExpired(f"{p}: no refresh token is stored; re-authorise the account")
        app, secret_name = rule.client
        app_id, secret = creds.require(app, p), creds.get(secret_name)
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        auth = (app_id, secret) if rule.basic_auth and secret else None
        if auth is None:
            form.update({app: app_id, **({secret_name: secret} if secret else {})})
        url = (rule.url if rule.url and not account.base_url else self.base_url(account) + rule.path)
        try:
            response = self.request(account, "POST", url, data=form, auth=auth)
        except (AuthExpired, Rejected) as exc:
            # invalid_grant (used up, revoked, expired) or a refused client: only a person can help.
            hint = "" if "re-authorise" in exc.reason else "; re-authorise the account"
            raise AuthExpired(f"{exc.reason}{hint}", status=exc.status) from None
        data = http.object_of(response)
        if data.get("error"):  # an OAuth error behind a 200 (TikTok)
            raise AuthExpired(f"{p}: token refresh refused ({data['error']}: "
                              f"{data.get('error_description') or ''}); re-authorise the account")
        if not data.get("access_token"):
            raise Transient(f"{p}: the token endpoint answered without an access_token")
        now = datetime.now(UTC)

        def at(seconds: Any) -> str | None:
            number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
            ok = number or str(seconds).isdigit()
            return (now + timedelta(seconds=float(seconds))).isoformat(timespec="seconds") if ok else None

        changes = {"access_token": data["access_token"], "refresh_token": data.get("refresh_token"),
                   "expires_at": at(data.get("expires_in")) or at(rule.life)}
        changes.update({name: data.get(name) for name in rule.keep})
        changes.update({field: at(data.get(seconds)) for seconds, field in rule.lifetimes})
        return creds.merged(**changes)

    def auth(self, account: AccountRef) -> dict[str, str]:
        """The headers that authenticate a call: an OAuth bearer token unless the platform says
        otherwise (Telegram's token travels in the path, Bluesky's session is a JWT pair)."""
        return {"Authorization": f"Bearer {account.credentials.require('access_token', self.platform)}"}

    def request(self, account: AccountRef, method: str, url: str, **kwargs: Any) -> requests.Response:
        return http.send(
            self.session, method, url, platform=self.platform, classify=self.classify,
            timeout=self.timeout, secrets=account.credentials.secrets(self.credentials_model),
            rules=self.rules, **kwargs,
        )

    def json(self, response: requests.Response, kind: type | None = dict) -> Any:
        """The JSON answer of a successful request; see :func:`adapters.http.json_body`."""
        return http.json_body(response, self.platform, kind)

    def classify(self, response: requests.Response) -> Exception | None:
        """Map a platform-specific error response to an adapter error; None means use the defaults."""
        return None
