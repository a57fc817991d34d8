"""The dashboard's own table: each user's language and time zone, so the choice follows the person
from laptop to phone (a cookie would stay on one browser)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from scheduler.core.models import Base


class Preference(Base):
    __tablename__ = "web_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    # The operator's zone: the calendar and every time on the pages are shown in it.
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
