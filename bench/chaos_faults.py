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

# Platforms whose posts may be text alone, and those that publish only with media: Instagram gets an
# image, YouTube and TikTok a video (a story carries one media list for all its targets, so a story
# goes either to text platforms or to media ones).
TEXT_PLATFORMS = ("x", "facebook", "threads", "linkedin", "bluesky", "mastodon", "telegram")
IMAGE_PLATFORMS = ("instagram",)
VIDEO_PLATFORMS = ("youtube", "tiktok")
PLATFORMS = (*TEXT_PLATFORMS, *IMAGE_PLATFORMS, *VIDEO_PLATFORMS)
# The request that makes a post exist on each stand-in (method, a substring of its path): faults there
# hit publishes, not sessions, uploads or look-ups. The method matters where a look-up shares the path
# (LinkedIn's GET /rest/posts, Facebook's GET /feed).
CREATES: dict[str, tuple[str, str]] = {
    "x": ("POST", "/2/tweets"),
    "facebook": ("POST", "/feed"),
    "threads": ("POST", "/threads_publish"),
    "linkedin": ("POST", "/rest/posts"),
    "bluesky": ("POST", "com.atproto.repo.putRecord"),
    "mastodon": ("POST", "/api/v1/statuses"),
    "telegram": ("POST", "/sendMessage"),
    "instagram": ("POST", "/media_publish"),
    # A small video goes up in one PUT, the one that completes the upload and creates the video.
    "youtube": ("PUT", "/upload/youtube/v3/videos/resumable"),
    "tiktok": ("POST", "/v2/post/publish/video/init/"),
}
CREATE_PATHS = {p: path for p, (_method, path) in CREATES.items()}
STORM_KINDS = ("429", "5xx", "timeout", "drop", "commit_drop", "slow", "mixed")


@dataclass
class CreateFault(Fault):
    """A stand-in fault that only a request with this method takes (the harness teaches each stand-in
    to honour it), tagged with what it stands for so that the run can tell which ones were taken."""

    method: str = ""
    tag: str = ""


def create_fault(platform: str, tag: str, **kwargs: Any) -> CreateFault:
    method, path = CREATES[platform]
    return CreateFault(path=path, method=method, tag=tag, **kwargs)


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
    lease: float
    beat_kills: int = 0
    token_expiries: int = 0  # every Bluesky access token expires at once: refreshes race the kills
    # Per platform: creates that complete only after the lease would have run out (the heartbeat must
    # keep it), and creates that complete but whose answer never comes back.
    slow_creates: int = 1
    lost_answers: int = 1

    @property
    def slow_delay(self) -> float:
        """Longer than the lease, shorter than the HTTP timeout: the worker is alive and waiting."""
        return round(self.lease + (self.http_timeout - self.lease) / 2, 2)

    @classmethod
    def full(cls, kills: int, http_timeout: float, lease: float) -> Plan:
        return cls(window=max(60.0, kills * 2.5), kills=kills, held_share=0.35, flushes=max(2, kills // 25),
                   redis_restarts=max(2, kills // 33), pg_restarts=max(2, kills // 33),
                   pg_terminates=max(2, kills // 33), storms=max(10, kills // 4), storm_size=(3, 10),
                   http_timeout=http_timeout, lease=lease, beat_kills=max(2, kills // 20),
                   token_expiries=max(2, kills // 33), slow_creates=max(2, kills // 20),
                   lost_answers=max(2, kills // 20))

    @classmethod
    def short(cls, http_timeout: float, lease: float) -> Plan:
        return cls(window=30.0, kills=4, held_share=0.5, flushes=1, redis_restarts=1, pg_restarts=1,
                   pg_terminates=1, storms=3, storm_size=(3, 5), http_timeout=http_timeout, lease=lease)


@dataclass
class Event:
    at: float  # seconds after the start of the window
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("faults", "fault")}
        if "faults" in self.params:
            shown["faults"] = len(self.params["faults"])
        if "fault" in self.params:
            shown |= {"commit": self.params["fault"].commit, "delay": self.params["fault"].delay}
        return f"{self.at:7.2f}s {self.kind} {shown}"


def storm_faults(rng: random.Random, kind: str, platform: str, size: int, plan: Plan) -> list[Fault]:
    """``size`` faults of one kind (or a mix) on ``platform``'s create endpoint."""
    faults: list[Fault] = []
    for _ in range(size):
        this = rng.choice(STORM_KINDS[:-1]) if kind == "mixed" else kind
        if this == "429":
            faults.append(create_fault(platform, "429", status=429, retry_after=rng.choice((1, 1.5, 2, 3))))
        elif this == "5xx":
            faults.append(create_fault(platform, "5xx", status=rng.choice((500, 502, 503))))
        elif this == "timeout":
            # Longer than the workers' HTTP timeout: the client gives up. With commit the post exists
            # before the wait; without, it is created after it (the request did arrive), unless dropped.
            commit = rng.random() < 0.5
            drop = not commit and rng.random() < 0.5
            faults.append(create_fault(platform, "timeout", delay=plan.http_timeout + 1.0, commit=commit,
                                       drop=drop))
        elif this == "drop":
            faults.append(create_fault(platform, "drop", drop=True))
        elif this == "slow":
            faults.append(slow_create(rng, platform, plan))
        else:
            faults.append(create_fault(platform, "commit_drop", drop=True, commit=True))
    return faults


def slow_create(rng: random.Random, platform: str, plan: Plan) -> Fault:
    # With commit the post exists at once and the answer comes late; without, the platform takes its
    # time and creates it just before answering. Either way the answer comes after the lease.
    return create_fault(platform, "slow", delay=plan.slow_delay, commit=rng.random() < 0.5)


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
        # Every platform gets storms when there are enough: the first ones go round the platforms.
        platform = PLATFORMS[i] if i < len(PLATFORMS) else rng.choice(PLATFORMS)
        kind = rng.choice(STORM_KINDS)
        size = rng.randint(*plan.storm_size)
        faults = storm_faults(rng, kind, platform, size, plan)
        # Storms come while stories still fall due, so that requests take their faults.
        events.append(Event(at(0.75), "storm", {"platform": platform, "kind": kind, "faults": faults}))
    # The two faults every platform must get, whatever the storms drew.
    for platform in PLATFORMS:
        events += [Event(at(0.5), "slow_create", {"platform": platform,
                                                  "fault": slow_create(rng, platform, plan)})
                   for _ in range(plan.slow_creates)]
        events += [Event(at(0.5), "lost_answer", {"platform": platform,
                                                  "fault": create_fault(platform, "lost_answer", commit=True,
                                                                        drop=True)})
                   for _ in range(plan.lost_answers)]
    events.sort(key=lambda e: e.at)
    return events
