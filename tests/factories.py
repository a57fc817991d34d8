"""Small builders for rows the tests need, through the same service functions operators use."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from adapters import adapter_class
from adapters.base import Credentials
from scheduler.core.models import Account, Delivery, Story
from scheduler.matrix import accounts

SECRET = "tok-SECRET-do-not-leak-4242"


def make_account(s: Session, platform: str = "mastodon", handle: str | None = None,
                 base_url: str = "http://127.0.0.1:9", creds: dict[str, str] | None = None,
                 tags: list[str] | None = None) -> Account:
    handle = handle or _handle(platform, f"acct{uuid.uuid4().hex[:8]}")
    if platform == "telegram" and not handle.startswith("@"):
        handle = "@" + handle
    return accounts.add(s, platform, handle, Credentials(creds or {"access_token": SECRET}),
                        base_url=base_url, tags=tags)


def _handle(platform: str, name: str) -> str:
    """``name`` in a form the platform's handles can take (a domain on Bluesky, ``@name`` on Telegram)."""
    cls = adapter_class(platform)
    for candidate in (name, f"@{name}", f"{name}.bsky.social"):
        try:
            return cls.normalize_handle(candidate)
        except ValueError:
            continue
    raise ValueError(f"{platform}: no test handle fits {name!r}")


def make_delivery(s: Session, account: Account, due: datetime, state: str = "scheduled",
                  text: str = "hello") -> Delivery:
    story = Story(text=text, due_at=due, created_at=due)
    s.add(story)
    s.flush()
    delivery = Delivery(story_id=story.id, account_id=account.id, state=state, due_at=due,
                        created_at=due, updated_at=due)
    s.add(delivery)
    s.flush()
    return delivery
