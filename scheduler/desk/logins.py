"""Password login, producing a short-lived token; failed logins are counted per name and per address,
and past the limit every try is refused until the window has passed (right or wrong password)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from scheduler.core.db import session_scope
from scheduler.desk import tokens, users
from scheduler.desk.access import Actor
from scheduler.desk.errors import TooManyAttempts, Unauthenticated
from scheduler.desk.models import LoginFailure, User

WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
LOGIN_HOURS = 12


def check_rate(s: Session, name: str, address: str | None, now: datetime) -> None:
    since = now - WINDOW
    who = LoginFailure.name == name
    if address:
        who = or_(who, LoginFailure.address == address)
    failures, oldest = s.execute(select(func.count(), func.min(LoginFailure.at))
                                 .where(LoginFailure.at > since, who)).one()
    if failures >= MAX_FAILURES:
        wait = max(1, int((oldest + WINDOW - now).total_seconds()) + 1)
        raise TooManyAttempts(f"login: too many failed logins; try again in {wait} s", wait)


def login(s: Session, name: str, password: str, now: datetime,
          address: str | None = None) -> tuple[str, Actor]:
    """A new token (named after the time) for a correct name and password. The caller commits even
    when this raises Unauthenticated, so that the failure is counted (see ``record_failure``)."""
    check_rate(s, name[:64], address, now)
    user = s.scalar(select(User).where(User.name == name))
    if not users.verify_password(user, password) or user is None or user.disabled:
        raise Unauthenticated("login: wrong name or password")
    itself = Actor(name=user.name, via="password", user_id=user.id, address=address)
    _, secret = tokens.create(s, itself, user, f"login {now:%Y%m%d-%H%M%S-%f}", now, days=LOGIN_HOURS / 24)
    return secret, tokens.authenticate(s, secret, now, address)


def record_failure(s: Session, name: str, address: str | None, now: datetime) -> None:
    s.add(LoginFailure(name=name[:64], address=address, at=now, reason="wrong name or password"))


def sign_in(name: str, password: str, now: datetime, address: str | None) -> tuple[str, Actor]:
    """A login in its own transaction, and a failed one counted in another (the first rolled back):
    what the API's password login and the dashboard's sign-in both do."""
    try:
        with session_scope() as s:
            return login(s, name, password, now, address)
    except Unauthenticated:
        with session_scope() as s:
            record_failure(s, name, address, now)
        raise
