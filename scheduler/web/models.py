"""The dashboard's own tables: each user's language and time zone, so the choice follows the person
from laptop to phone (a cookie would stay on one browser); and the apps it registered on Mastodon
instances to connect accounts there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scheduler.core.models import Base, UTCDateTime, utcnow


class Preference(Base):
    __tablename__ = "web_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    # The operator's zone: the calendar and every time on the pages are shown in it.
    tz: Mapped[str] = mapped_column(String(64), default="UTC")


class MastodonApp(Base):
    """The app the dashboard registered on one Mastodon instance for one callback address: reused for
    every account connected there; the client secret is sealed with the credentials key."""

    __tablename__ = "web_mastodon_apps"
    __table_args__ = (UniqueConstraint("instance", "redirect_uri", name="uq_web_mastodon_apps_instance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance: Mapped[str] = mapped_column(String(255))  # the instance's origin, https://host[:port]
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    scopes: Mapped[str] = mapped_column(String(255))  # as registered, space-separated
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[bytes] = mapped_column(LargeBinary)  # vault.seal
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
