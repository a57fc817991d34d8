"""Local stand-ins of the platforms, for tests, the demo and operators' rehearsals."""

from __future__ import annotations

from importlib import import_module

from adapters.standins.base import Fault, StandIn

_STANDINS = {
    "mastodon": "adapters.standins.mastodon:MastodonStandIn",
    "bluesky": "adapters.standins.bluesky:BlueskyStandIn",
    "telegram": "adapters.standins.telegram:TelegramStandIn",
    "facebook": "adapters.standins.facebook:FacebookStandIn",
    "instagram": "adapters.standins.instagram:InstagramStandIn",
    "x": "adapters.standins.x:XStandIn",
    "threads": "adapters.standins.threads:ThreadsStandIn",
    "linkedin": "adapters.standins.linkedin:LinkedInStandIn",
    "youtube": "adapters.standins.youtube:YouTubeStandIn",
    "tiktok": "adapters.standins.tiktok:TikTokStandIn",
}

__all__ = ["Fault", "StandIn", "standin_class"]


def standin_class(platform: str) -> type[StandIn]:
    module, name = _STANDINS[platform].split(":")
    return getattr(import_module(module), name)
