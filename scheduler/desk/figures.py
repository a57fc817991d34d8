"""The installation's figures for /metrics: what is waiting and how the last hour went. Read from the
database at scrape time, so every API process reports the same figures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler.core.deliveries import DUE
from scheduler.core.models import Account, Attempt, Delivery, FollowerSample, RateGate

WINDOW = timedelta(hours=1)


@dataclass
class Spread:
    """Seconds: how many, their mean and their largest."""

    count: int = 0
    total: float = 0.0
    largest: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.largest = max(self.largest, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class Figures:
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # (state, platform) -> count
    oldest_due_unclaimed: float = 0.0
    tokens_expiring: int = 0
    rate_gates_closed: int = 0
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # (platform, outcome), last hour
    publish_seconds: dict[str, Spread] = field(default_factory=dict)  # by platform, last hour
    lateness_seconds: dict[str, Spread] = field(default_factory=dict)  # published - due, last hour
    follower_samples: dict[str, int] = field(default_factory=dict)  # sampled / failed, last hour


def read(s: Session, now: datetime) -> Figures:
    since = now - WINDOW
    found = Figures()
    by_account = Account.id == Delivery.account_id
    found.deliveries = {(state, platform): count for state, platform, count in s.execute(
        select(Delivery.state, Account.platform, func.count()).join(Account, by_account)
        .group_by(Delivery.state, Account.platform))}
    oldest = s.scalar(select(func.min(Delivery.due_at))
                      .where(Delivery.state.in_(DUE), Delivery.due_at <= now))
    found.oldest_due_unclaimed = (now - oldest).total_seconds() if oldest else 0.0
    found.tokens_expiring = s.scalar(select(func.count()).select_from(Account).where(
        Account.status != "removed", Account.token_expires_at < now + timedelta(days=1))) or 0
    found.rate_gates_closed = s.scalar(select(func.count()).select_from(RateGate)
                                       .where(RateGate.next_at > now)) or 0
    attempts: dict[tuple[str, str], int] = defaultdict(int)
    durations: dict[str, Spread] = defaultdict(Spread)
    for platform, outcome, started, ended in s.execute(
            select(Account.platform, Attempt.outcome, Attempt.started_at, Attempt.ended_at)
            .join(Delivery, Delivery.id == Attempt.delivery_id).join(Account, by_account)
            .where(Attempt.started_at >= since)):
        attempts[(platform, outcome or "running")] += 1
        if ended is not None:
            durations[platform].add((ended - started).total_seconds())
    lateness: dict[str, Spread] = defaultdict(Spread)
    for platform, due, published in s.execute(
            select(Account.platform, Delivery.due_at, Delivery.published_at)
            .join(Account, by_account)
            .where(Delivery.state == "published", Delivery.due_at >= since - WINDOW,
                   Delivery.published_at >= since)):
        lateness[platform].add(max(0.0, (published - due).total_seconds()))
    samples = s.execute(select(FollowerSample.followers.is_(None), func.count())
                        .where(FollowerSample.taken_at >= since).group_by(FollowerSample.followers.is_(None)))
    found.follower_samples = {"failed" if failed else "sampled": n for failed, n in samples}
    found.attempts, found.publish_seconds = dict(attempts), dict(durations)
    found.lateness_seconds = dict(lateness)
    return found
