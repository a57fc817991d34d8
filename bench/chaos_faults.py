"""The seeded fault schedule of a chaos run.

Everything random is drawn here, up front, from one ``random.Random(seed)``: when each fault fires,
which worker slot dies, which platform storms and with what. Replaying a seed replays the schedule
(the processes' own timing still varies, which is what a replay is for: to try again).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from adapters.standins import Fault

PLATFORMS = ("mastodon", "bluesky", "telegram")
# The create endpoint of each stand-in: faults there hit publishes, not sessions or look-ups.
CREATE_PATHS = {"mastodon": "/api/v1/statuses", "bluesky": "putRecord", "telegram": "sendMessage"}
STORM_KINDS = ("429", "5xx", "timeout", "drop", "commit_drop", "mixed")


@dataclass
class Plan:
    """How much of each fault a run gets, and over how long."""

    window: float  # seconds during which faults fire and stories fall due
    kills: int
    held_share: float  # share of kills aimed at a worker while a slow stand-in holds its request
    flushes: int
    redis_restarts: int
    pg_restarts: int
    pg_terminates: int
    storms: int
    storm_size: tuple[int, int]
    http_timeout: float
    beat_kills: int = 0
    token_expiries: int = 0  # every Bluesky access token expires at once: refreshes race the kills

    @classmethod
    def full(cls, kills: int, http_timeout: float) -> Plan:
        return cls(window=max(60.0, kills * 2.5), kills=kills, held_share=0.35, flushes=max(2, kills // 25),
                   redis_restarts=max(2, kills // 33), pg_restarts=max(2, kills // 33),
                   pg_terminates=max(2, kills // 33), storms=max(6, kills // 4), storm_size=(3, 12),
                   http_timeout=http_timeout, beat_kills=max(2, kills // 20),
                   token_expiries=max(2, kills // 33))

    @classmethod
    def short(cls, http_timeout: float) -> Plan:
        return cls(window=30.0, kills=4, held_share=0.5, flushes=1, redis_restarts=1, pg_restarts=1,
                   pg_terminates=1, storms=3, storm_size=(3, 5), http_timeout=http_timeout)


@dataclass
class Event:
    at: float  # seconds after the start of the window
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "faults"}
        if "faults" in self.params:
            shown["faults"] = len(self.params["faults"])
        return f"{self.at:7.2f}s {self.kind} {shown}"


def storm_faults(rng: random.Random, kind: str, platform: str, size: int, http_timeout: float) -> list[Fault]:
    """``size`` faults of one kind (or a mix) on ``platform``'s create endpoint."""
    path = CREATE_PATHS[platform]
    faults = []
    for _ in range(size):
        this = rng.choice(STORM_KINDS[:-1]) if kind == "mixed" else kind
        if this == "429":
            faults.append(Fault(status=429, retry_after=rng.choice((1, 1.5, 2, 3)), path=path))
        elif this == "5xx":
            faults.append(Fault(status=rng.choice((500, 502, 503)), path=path))
        elif this == "timeout":
            # Longer than the workers' HTTP timeout: the client gives up. With commit the post exists
            # before the wait; without, it is created after it (the request did arrive), unless dropped.
            commit = rng.random() < 0.5
            drop = not commit and rng.random() < 0.5
            faults.append(Fault(delay=http_timeout + 1.0, commit=commit, drop=drop, path=path))
        elif this == "drop":
            faults.append(Fault(drop=True, path=path))
        else:
            faults.append(Fault(drop=True, commit=True, path=path))
    return faults


def make_schedule(rng: random.Random, plan: Plan, workers: int) -> list[Event]:
    events: list[Event] = []
    window = plan.window

    def at(end: float = 1.0) -> float:
        # Leave the last seconds for what the faults left behind to drain.
        return round(rng.uniform(1.0, window * end - 2.0), 2)

    for _ in range(plan.kills):
        held = rng.random() < plan.held_share
        params: dict[str, Any] = {"slot": rng.randrange(workers), "pick": rng.random()}
        if held:
            params |= {"platform": rng.choice(PLATFORMS), "commit": rng.random() < 0.7,
                       "after": round(rng.uniform(0.0, 0.5), 2)}
        events.append(Event(at(), "kill_held" if held else "kill", params))
    events += [Event(at(), "flushall") for _ in range(plan.flushes)]
    events += [Event(at(), "redis_restart", {"sigkill": rng.random() < 0.5,
                                             "gap": round(rng.uniform(0.5, 3.0), 2)})
               for _ in range(plan.redis_restarts)]
    events += [Event(at(), "pg_restart", {"immediate": rng.random() < 0.5,
                                          "gap": round(rng.uniform(0.5, 3.0), 2)})
               for _ in range(plan.pg_restarts)]
    events += [Event(at(), "pg_terminate") for _ in range(plan.pg_terminates)]
    events += [Event(at(), "beat_kill") for _ in range(plan.beat_kills)]
    events += [Event(at(0.75), "token_expiry", {"platform": "bluesky"}) for _ in range(plan.token_expiries)]
    for i in range(plan.storms):
        # Every platform gets storms: the first three go round the platforms.
        platform = PLATFORMS[i] if i < len(PLATFORMS) else rng.choice(PLATFORMS)
        kind = rng.choice(STORM_KINDS)
        size = rng.randint(*plan.storm_size)
        faults = storm_faults(rng, kind, platform, size, plan.http_timeout)
        # Storms come while stories still fall due, so that requests take their faults.
        events.append(Event(at(0.75), "storm", {"platform": platform, "kind": kind, "faults": faults}))
    events.sort(key=lambda e: e.at)
    return events
