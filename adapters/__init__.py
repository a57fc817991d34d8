"""The registry of platform adapters: one module per platform, listed here explicitly."""

from __future__ import annotations

import os
import threading
from importlib import import_module

import requests

from adapters.base import Adapter, Credentials
from adapters.http import new_session

# platform name -> "module:Class"
_ADAPTERS = {
    "mastodon": "adapters.mastodon:MastodonAdapter",
    "bluesky": "adapters.bluesky:BlueskyAdapter",
    "telegram": "adapters.telegram:TelegramAdapter",
    "facebook": "adapters.facebook:FacebookAdapter",
    "instagram": "adapters.instagram:InstagramAdapter",
    "x": "adapters.x:XAdapter",
    "threads": "adapters.threads:ThreadsAdapter",
    "linkedin": "adapters.linkedin:LinkedInAdapter",
    "youtube": "adapters.youtube:YouTubeAdapter",
    "tiktok": "adapters.tiktok:TikTokAdapter",
}
PLATFORMS: tuple[str, ...] = tuple(_ADAPTERS)


class UnknownPlatform(ValueError):
    def __init__(self, platform: str) -> None:
        super().__init__(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")


def adapter_class(platform: str) -> type[Adapter]:
    try:
        module, name = _ADAPTERS[platform].split(":")
    except KeyError:
        raise UnknownPlatform(platform) from None
    return getattr(import_module(module), name)


_local = threading.local()


def _session(platform: str) -> requests.Session:
    """This thread's keep-alive session for ``platform``: a publish reuses the connection (and its TLS
    handshake) of the previous one. Per thread, since a Session is not thread-safe; per process, since a
    forked pool child must not share its parent's sockets."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.sessions = os.getpid(), {}
    sessions: dict[str, requests.Session] = _local.sessions
    if platform not in sessions:
        sessions[platform] = new_session()
    return sessions[platform]


def get_adapter(platform: str, timeout: float | None = None) -> Adapter:
    return adapter_class(platform)(session=_session(platform), timeout=timeout)


def validate_credentials(platform: str, data: object) -> Credentials:
    """``data`` checked against ``platform``'s credentials model: the credentials to store, or
    ValueError with one line per problem, each naming the platform and the field (never a value)."""
    return adapter_class(platform).credentials_model.validate(platform, data)
