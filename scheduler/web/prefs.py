"""A user's language and time zone (``web_preferences``); defaults until they choose."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scheduler.desk.access import Actor
from scheduler.matrix import accounts as matrix
from scheduler.web import i18n
from scheduler.web.models import Preference


@dataclass(frozen=True)
class Prefs:
    language: str = i18n.DEFAULT
    tz: str = "UTC"


def read(s: Session, actor: Actor | None) -> Prefs:
    row = s.get(Preference, actor.user_id) if actor is not None and actor.user_id is not None else None
    return Prefs(i18n.check(row.language), row.tz) if row is not None else Prefs()


def save(s: Session, actor: Actor, language: str, tz: str) -> Prefs:
    """Each user sets their own (the zone is checked as an account's is)."""
    chosen = Prefs(i18n.check(language), matrix.check_tz(tz))
    row = s.get(Preference, actor.user_id)
    if row is None:
        s.add(Preference(user_id=actor.user_id, language=chosen.language, tz=chosen.tz))
    else:
        row.language, row.tz = chosen.language, chosen.tz
    return chosen
