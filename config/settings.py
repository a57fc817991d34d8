"""All configuration, read from the environment (prefix ``CROSSPOST_``) or a ``.env`` file.

Code reads settings through :func:`get_settings` only, so tests can point a whole process at another
data directory, database or broker by setting variables before the first call.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crosspost"


class OAuthApp(BaseModel):
    """A platform app that accounts are connected through (authorization code with PKCE): the app's
    id and secret belong to the installation, never to an account."""

    client_id: str = Field("", description="The app's client id; empty: connecting is not offered.")
    client_secret: SecretStr | None = Field(None, description="A confidential app's secret (Basic auth).")
    authorize_url: str = Field("", description="The platform's authorize page.")
    token_url: str = Field("", description="The platform's token endpoint.")
    api_url: str = Field("", description="The API the connected accounts use; empty: the platform's own.")


class XApp(OAuthApp):
    authorize_url: str = Field("https://x.com/i/oauth2/authorize", description="X's authorize page.")
    token_url: str = Field("https://api.x.com/2/oauth2/token", description="X's token endpoint.")


# Meta's Graph version in the Login dialog and token URLs (the adapters' own, adapters/graph.py).
_GRAPH = "v24.0"


class FacebookApp(OAuthApp):
    authorize_url: str = Field(f"https://www.facebook.com/{_GRAPH}/dialog/oauth",
                               description="Facebook Login's dialog.")
    token_url: str = Field(f"https://graph.facebook.com/{_GRAPH}/oauth/access_token",
                           description="Graph's token endpoint (code and fb_exchange_token).")


class InstagramApp(FacebookApp):
    """Instagram professional accounts through Facebook Login (the Page's linked account)."""


class ThreadsApp(OAuthApp):
    authorize_url: str = Field("https://threads.net/oauth/authorize", description="Threads' authorize page.")
    token_url: str = Field("https://graph.threads.net/oauth/access_token",
                           description="Threads' token endpoint (the short-lived token).")


class LinkedInApp(OAuthApp):
    authorize_url: str = Field("https://www.linkedin.com/oauth/v2/authorization",
                               description="LinkedIn's authorize page.")
    token_url: str = Field("https://www.linkedin.com/oauth/v2/accessToken",
                           description="LinkedIn's token endpoint.")


class YouTubeApp(OAuthApp):
    authorize_url: str = Field("https://accounts.google.com/o/oauth2/v2/auth",
                               description="Google's authorize page.")
    token_url: str = Field("https://oauth2.googleapis.com/token", description="Google's token endpoint.")


class TikTokApp(OAuthApp):
    authorize_url: str = Field("https://www.tiktok.com/v2/auth/authorize/",
                               description="TikTok's authorize page.")
    token_url: str = Field("https://open.tiktokapis.com/v2/oauth/token/",
                           description="TikTok's token endpoint.")


class MastodonApps(BaseModel):
    """Mastodon has no installation-wide app: the dashboard registers one on each instance (its id
    and secret are kept per instance, the secret sealed like credentials); this is how it introduces
    itself there."""

    enabled: bool = Field(True, description="Offer connecting Mastodon accounts from the dashboard.")
    client_name: str = Field("crosspost", description="The app's name shown on the instance's consent page.")
    website: str = Field("", description="The app's website shown on the consent page; empty: none.")


class TelegramBots(BaseModel):
    """Telegram has no OAuth: a channel is connected with its bot's token. Only where the Bot API is."""

    api_url: str = Field("", description="The Bot API server channels are connected through; empty: "
                         "api.telegram.org (or a local Bot API server, or the stand-in).")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CROSSPOST_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=_default_data_dir, description="Where the embedded database, "
                           "broker file and credentials key live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means a SQLite file in data_dir.")
    broker_url: str = Field("", description="Celery broker URL; empty means kombu's SQLAlchemy transport "
                            "on a SQLite file in data_dir.")
    secret_key: SecretStr | None = Field(None, description="Fernet key for credentials at rest; empty means "
                                         "the key file in data_dir.")

    db_pool_size: int = Field(8, gt=0, description="PostgreSQL connections each process keeps open.")
    db_max_overflow: int = Field(2, ge=0, description="Extra PostgreSQL connections a busy process may "
                                 "open beyond db_pool_size.")
    tick_interval: float = Field(1.0, gt=0, description="Seconds between two beat ticks (how late a "
                                 "delivery may start; the claim is one indexed query).")
    claim_batch: int = Field(500, gt=0, description="Most deliveries one tick claims.")
    publish_slots: int = Field(0, ge=0, description="Publishes all worker processes run at once; 0 means "
                               "the sum the live workers announce (each its concurrency). When more "
                               "deliveries than this fall due at the same moment, the tick hands them out "
                               "several per message.")
    publish_batch_max: int = Field(8, gt=0, description="Most deliveries in one message to the workers when "
                                   "a burst outnumbers publish_slots; 1 hands out one delivery per message.")
    lease_seconds: int = Field(120, gt=0, description="How long a publishing worker owns a delivery.")
    queued_timeout: int = Field(300, gt=0, description="Seconds a claimed delivery may wait for a worker "
                                "before the reaper assumes the broker lost its message.")
    max_attempts: int = Field(5, gt=0, description="Transient failures a delivery may spend before failing.")
    backoff_base: float = Field(30.0, gt=0, description="First retry delay in seconds; doubles per failure.")
    backoff_max: float = Field(3600.0, gt=0, description="Longest retry delay in seconds.")
    account_min_interval: float = Field(1.0, ge=0, description="Least seconds between two publishes on "
                                        "one account, whatever the platform allows.")
    http_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a platform to answer.")

    media_max_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Largest media file accepted.")
    media_fetch_timeout: float = Field(60.0, gt=0, description="Seconds to fetch one media URL.")
    media_allow_private: bool = Field(False, description="Allow media URLs on loopback or private "
                                      "addresses (for stand-ins and rehearsals only).")
    media_public_url: str = Field("", description="Public base URL where the media directory is served, "
                                  "for platforms that fetch media by URL (Instagram, Threads, TikTok).")
    token_refresh_margin: float = Field(3600.0, gt=0, description="Refresh access tokens that expire "
                                        "within this many seconds.")

    worker_pool: Literal["threads", "prefork", "solo"] = Field(
        "threads", description="Celery pool; publishing waits on the network, so threads overlap it.")
    worker_concurrency: int = Field(32, gt=0, description="Concurrent publishes per worker process.")
    follower_interval: float = Field(3600.0, gt=0, description="Seconds between follower samples.")
    log_level: str = Field("INFO", description="Log level for workers and commands: DEBUG, INFO, WARNING, "
                           "ERROR or CRITICAL.")
    max_thread_parts: int = Field(25, gt=0, description="Most posts one --thread story may become on one "
                                  "platform; a longer story is refused at queue time.")
    schedule_horizon_days: int = Field(5 * 366, gt=0, description="How far ahead a story may be queued "
                                       "(--at, --not-before, retime), in days.")

    smtp_url: str = Field("", description="Where e-mail notifications go out: smtp://[user:password@]host"
                          "[:port] (STARTTLS when offered) or smtps://...; empty means no e-mail.")
    mail_from: str = Field("crosspost@localhost", description="The From address of notification e-mails.")
    x: XApp = Field(default_factory=XApp, description="X's OAuth 2 app for connecting "
                    "accounts from the dashboard (CROSSPOST_X__CLIENT_ID, CROSSPOST_X__CLIENT_SECRET...).")
    # The other platforms' apps, read the same way (CROSSPOST_FACEBOOK__CLIENT_ID, ...__CLIENT_SECRET).
    facebook: FacebookApp = Field(default_factory=FacebookApp, description="The Meta app for Facebook Pages.")
    instagram: InstagramApp = Field(default_factory=InstagramApp, description="The Meta app for Instagram "
                                    "professional accounts (Facebook Login).")
    threads: ThreadsApp = Field(default_factory=ThreadsApp, description="The Threads app.")
    linkedin: LinkedInApp = Field(default_factory=LinkedInApp, description="The LinkedIn app.")
    youtube: YouTubeApp = Field(default_factory=YouTubeApp,
                                description="The Google OAuth client for YouTube.")
    tiktok: TikTokApp = Field(default_factory=TikTokApp, description="The TikTok app (its client key).")
    telegram: TelegramBots = Field(default_factory=TelegramBots, description="Where the dashboard checks "
                                   "a Telegram bot token.")
    mastodon: MastodonApps = Field(default_factory=MastodonApps, description="How the dashboard registers "
                                   "itself on Mastodon instances.")

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        # CROSSPOST_DATA_DIR= (empty) means "the default", as for the URLs, not the current directory.
        return _default_data_dir() if value in ("", None) else value

    @field_validator("data_dir")
    @classmethod
    def _not_a_file(cls, value: Path) -> Path:
        # Found here, once, instead of as a traceback from the first file opened inside it.
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value[:40]!r} is not one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'crosspost.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        return self

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() of the settings land in logs and tracebacks: the URLs' passwords stay out.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name in _URL_FIELDS and isinstance(value, str) else value


_URL_FIELDS = frozenset({"database_url", "broker_url", "smtp_url"})
_SECRET_QUERY = re.compile(r"(?i)((?:^|[?&;])(?:[\w.]*password|passwd|pwd|[\w.]*secret|[\w.]*token)=)[^&;#]*")


def mask_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@host``, or a ``password=`` query value) as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The userinfo ends at the last "@" before the path: a password may itself hold "@" or "/".
    authority_end = len(rest)
    for mark in "?#":
        if mark in rest:
            authority_end = min(authority_end, rest.index(mark))
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        authority = f"{userinfo}@{host}"
    tail = _SECRET_QUERY.sub(r"\1***", tail)
    return f"{scheme}://{authority}{tail}"


# The settings read last, with the generation they were read in. A plain lru_cache could store, after a
# reset, settings another thread had begun reading before it (a worker's heartbeat reads them every
# half second): a reset would then be undone by an old environment, even an empty one.
_cached: tuple[int, Settings] | None = None
_generation = 0
_lock = threading.Lock()


def get_settings() -> Settings:
    cached = _cached
    if cached is not None and cached[0] == _generation:
        return cached[1]
    generation = _generation
    settings = Settings()
    _keep(generation, settings)
    return settings


def _keep(generation: int, settings: Settings) -> None:
    global _cached
    with _lock:
        if generation == _generation:  # no reset since the reading began
            _cached = (generation, settings)


def reset_settings() -> None:
    """Forget the cached settings (after the environment changed)."""
    global _cached, _generation
    with _lock:
        _generation += 1
        _cached = None
