"""The registry of platform adapters: one module per platform, listed here explicitly."""

from __future__ import annotations

from importlib import import_module

from adapters.base import Adapter, Credentials

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


def get_adapter(platform: str, timeout: float | None = None) -> Adapter:
    return adapter_class(platform)(timeout=timeout)


def validate_credentials(platform: str, data: object) -> Credentials:
    """``data`` checked against ``platform``'s credentials model: the credentials to store, or
    ValueError with one line per problem, each naming the platform and the field (never a value)."""
    return adapter_class(platform).credentials_model.validate(platform, data)
