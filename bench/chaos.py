"""Chaos harness: the real pipeline under a seeded storm of crashes and outages.

Runs N `crosspost worker` processes and one `crosspost beat` on a private Redis and a private
PostgreSQL cluster, with the stand-ins of all ten platforms in this process (and a small HTTP server
for the media store, which Instagram, Threads and TikTok fetch by URL), and a workload of stories over
many accounts falling due across the run: text stories (some with a link) for X, Facebook, Threads,
LinkedIn, Bluesky, Mastodon and Telegram, an image for Instagram, a video for YouTube and TikTok.
Meanwhile, on a schedule drawn from the seed, it kill -9s workers (some while a slow stand-in holds
their request open) and starts new ones, FLUSHALLs and restarts Redis, restarts PostgreSQL or
terminates the workers' sessions, and makes the stand-ins answer creates with 429 and Retry-After,
5xx, time out or drop connections. Every platform also gets a create that completes only after the
lease would have run out (the worker is alive: the heartbeat must keep its lease) and a create that
completes but whose answer is lost. The full run also kills beat and expires every Bluesky access
token now and then, so refreshes race the kills.

At the end it waits for quiescence and counts, from the stand-ins' own records and the database,
what went where, per platform. Exit status: 0 if nothing was lost or stuck, no idempotent platform
got a duplicate, and every non-idempotent duplicate is on a delivery marked ``unknown``; 1
otherwise; 2 if the harness itself failed. The last line printed is the summary as one JSON object;
a failing run names its suspect deliveries (posts made, attempt history) and keeps its working
directory (logs, the PostgreSQL data directory) for a look.

    python bench/chaos.py --seed 7 --kills 40 --workers 3 --stories 200 --accounts 30   # full
    python bench/chaos.py --short --seed 7                                               # CI size
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from PIL import Image
from sqlalchemy import func, select

from adapters import adapter_class
from adapters.base import Credentials, Media
from adapters.standins import Fault, StandIn, standin_class
from adapters.standins.base import Created
from config.settings import get_settings, reset_settings
from scheduler.core.db import dispose_engines, migrate, session_scope
from scheduler.core.models import Account, Attempt, Delivery, Story, utcnow
from scheduler.matrix import accounts
from scheduler.stories import drafts, media, queueing

try:
    from bench.chaos_faults import (
        IMAGE_PLATFORMS,
        PLATFORMS,
        TEXT_PLATFORMS,
        VIDEO_PLATFORMS,
        CreateFault,
        Event,
        Plan,
        create_fault,
        make_schedule,
    )
    from bench.chaos_services import Fleet, PrivatePostgres, PrivateRedis, SharedPostgres, pids_connected_to
    from bench.common import closest_starts
except ImportError:  # run as a script: the helpers sit beside this file
    from chaos_faults import (
        IMAGE_PLATFORMS,
        PLATFORMS,
        TEXT_PLATFORMS,
        VIDEO_PLATFORMS,
        CreateFault,
        Event,
        Plan,
        create_fault,
        make_schedule,
    )
    from chaos_services import Fleet, PrivatePostgres, PrivateRedis, SharedPostgres, pids_connected_to
    from common import closest_starts

REPO = Path(__file__).resolve().parent.parent
ACTIVE = ("scheduled", "queued", "publishing", "retry_wait")
STUCK = (*ACTIVE, "blocked_auth", "awaiting_approval")
# The workers' ACCOUNT_MIN_INTERVAL: no two attempts on one account may start closer, storm or not.
SPACING = 0.25
TOKEN_RE = re.compile(r"\[cx\d+s\d+\]")
# The kind of record each stand-in keeps for a post (Bluesky also keeps "edit" for a changed record,
# Threads "reply" for a thread's later parts; Facebook keeps a video as "video", a feed post as "post").
POST_KINDS = {"x": "tweet", "facebook": "post", "threads": "post", "linkedin": "post", "bluesky": "post",
              "mastodon": "status", "telegram": "message", "instagram": "media", "youtube": "video",
              "tiktok": "video"}
# Every stand-in keeps the text it published under "text" (LinkedIn: the commentary as shown, escapes
# resolved; YouTube: the description; TikTok: the description, else the title; Instagram: the
# caption) and its author under "account", spelt as the stand-in knows it (normalised for the match).
TEXT_FIELD = "text"
AUTHOR_FIELD = "account"


@dataclass
class Config:
    seed: int
    kills: int
    workers: int
    stories: int
    accounts: int
    targets: int
    short: bool
    concurrency: int = 8
    # Above the lease, so that a create can take longer than the lease and still be answered: the
    # slow-create fault answers after slow_delay (between the two), and only the heartbeat keeps the lease.
    http_timeout: float = 10.0
    lease: int = 5
    settle_timeout: float = 240.0
    keep: bool = False
    verbose: bool = False
    pg_admin: str | None = None
    # 0: the workers' concurrency. Fewer than the deliveries due at one moment makes the tick hand them
    # out several per message (with ``bursts``, so that many do fall due together).
    publish_slots: int = 0
    # 0: stories fall due uniformly over the run; N: at N instants, many at once.
    bursts: int = 0

    def plan(self) -> Plan:
        if self.short:
            return Plan.short(self.http_timeout, self.lease)
        return Plan.full(self.kills, self.http_timeout, self.lease)


def crosspost_env(root: Path, database_url: str, broker_url: str, cfg: Config,
                  media_url: str) -> dict[str, str]:
    """Short settings so that a run converges in minutes: leases of a few seconds, a fast tick, small
    backoff, and an attempt budget that storms cannot spend. Media is served from this process on
    loopback, hence the private-address allowance."""
    return {
        "CROSSPOST_DATA_DIR": str(root / "data"),
        "CROSSPOST_DATABASE_URL": database_url,
        "CROSSPOST_BROKER_URL": broker_url,
        "CROSSPOST_SECRET_KEY": Fernet.generate_key().decode(),
        "CROSSPOST_TICK_INTERVAL": "0.5",
        "CROSSPOST_LEASE_SECONDS": str(cfg.lease),
        "CROSSPOST_QUEUED_TIMEOUT": "4",
        "CROSSPOST_BACKOFF_BASE": "0.5",
        "CROSSPOST_BACKOFF_MAX": "4",
        "CROSSPOST_MAX_ATTEMPTS": "40",
        "CROSSPOST_ACCOUNT_MIN_INTERVAL": str(SPACING),
        "CROSSPOST_HTTP_TIMEOUT": str(cfg.http_timeout),
        "CROSSPOST_WORKER_CONCURRENCY": str(cfg.concurrency),
        "CROSSPOST_PUBLISH_SLOTS": str(cfg.publish_slots),
        "CROSSPOST_LOG_LEVEL": "INFO",
        "CROSSPOST_MEDIA_PUBLIC_URL": media_url,
        "CROSSPOST_MEDIA_ALLOW_PRIVATE": "true",
    }


# -- workload -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acct:
    id: int
    platform: str
    handle: str  # as crosspost stores it (normalised)


def handle_for(platform: str, i: int) -> str:
    """A handle each platform accepts: Bluesky wants a domain, Telegram a channel @name, LinkedIn an
    organisation URN (a member's bare name would post under a person URN the harness cannot match)."""
    if platform == "bluesky":
        return f"bluesky{i}.test"
    if platform == "telegram":
        return f"@telegram{i}"
    if platform == "linkedin":
        return f"urn:li:organization:{100000 + i}"
    return f"{platform}{i}"


def build_matrix(standins: dict[str, StandIn], count: int) -> list[Acct]:
    """``count`` accounts round the platforms present in ``standins`` (in PLATFORMS order). Accounts go in
    through the service function, with the credentials the stand-in issued for the same handle."""
    platforms = [p for p in PLATFORMS if p in standins]
    made = []
    with session_scope() as s:
        for i in range(count):
            platform = platforms[i % len(platforms)]
            handle = handle_for(platform, i)
            creds = Credentials(standins[platform].add_account(handle, followers=100 + i))
            row = accounts.add(s, platform, handle, creds, base_url=standins[platform].url, tags=["chaos"])
            made.append(Acct(row.id, platform, row.handle))
    return made


def tiny_mp4(width: int, height: int) -> bytes:
    """An MP4 skeleton (ftyp, a video track header with its size, some data): enough for the media
    store and the stand-ins' checks, small enough to go up in one request."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    tkhd = bytes(76) + struct.pack(">II", width << 16, height << 16)
    return (box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + box(b"moov", box(b"trak", box(b"tkhd", tkhd)))
            + box(b"mdat", bytes(64 * 1024)))


def make_media(folder: Path) -> tuple[Media, Media]:
    """One image (3:2, inside Instagram's aspect range) and one vertical video, in the media store."""
    folder.mkdir(parents=True, exist_ok=True)
    photo, clip = folder / "chaos.jpg", folder / "chaos.mp4"
    Image.new("RGB", (1200, 800), (30, 90, 160)).save(photo, "JPEG")
    clip.write_bytes(tiny_mp4(720, 1280))
    return media.ingest(str(photo), alt="A chaos test image"), media.ingest(str(clip))


def queue_stories(rng: random.Random, cfg: Config, matrix: list[Acct], spread: float,
                  image: Media | None = None, video: Media | None = None) -> int:
    """Every story text carries a token unique to the story, so each (account, token) names exactly
    one delivery and every post a stand-in made can be traced back to it. A story goes to text
    platforms (text, maybe a link), or to Instagram with an image, or to YouTube and TikTok with a
    video; the kinds are drawn in proportion to their accounts, so every platform gets a like share."""
    start = utcnow() + timedelta(seconds=2)
    pools = {"text": [a for a in matrix if a.platform in TEXT_PLATFORMS],
             "image": [a for a in matrix if a.platform in IMAGE_PLATFORMS] if image else [],
             "video": [a for a in matrix if a.platform in VIDEO_PLATFORMS] if video else []}
    kinds = [k for k, pool in pools.items() if pool]
    deliveries = 0
    with session_scope() as s:
        for i in range(cfg.stories):
            kind = rng.choices(kinds, weights=[len(pools[k]) for k in kinds])[0]
            pool = pools[kind]
            chosen = rng.sample(pool, k=min(cfg.targets, len(pool)))
            with_link = kind == "text" and rng.random() < 0.5
            link = f"https://example.org/chaos/{cfg.seed}/{i}" if with_link else None
            draft = drafts.Draft(
                text=f"[cx{cfg.seed}s{i}] Chaos story {i}: the news of the day, told exactly once.",
                targets=[str(a.id) for a in chosen], link=link,
                media=[m for m in ({"image": image, "video": video}.get(kind),) if m is not None],
                at=start + timedelta(seconds=spread * rng.randrange(cfg.bursts) / cfg.bursts if cfg.bursts
                                     else rng.uniform(0.0, spread)))
            queueing.queue(s, draft, utcnow())
            deliveries += len(chosen)
    return deliveries


class MediaServer:
    """The media directory over HTTP on loopback, as CROSSPOST_MEDIA_PUBLIC_URL says it is served (the
    stand-ins only check the URLs they are given, but a URL that answers is the honest set-up)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        handler = partial(_QuietFiles, directory=str(folder))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="chaos-media", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def tune_standins(standins: dict[str, StandIn], media_url: str) -> None:
    """Take out of the way what the chaos is not about, on these stand-ins only: daily quotas and caps
    (YouTube's 100 inserts a day, TikTok's 15 posts a day and 6 inits a minute per creator) that retried
    creates would spend, and multi-poll processing whose 10-30 s waits would outlast the run. One poll
    of processing stays, so the look-ups and polls still run."""
    for standin in standins.values():
        for name in ("processing_polls", "video_polls"):
            if isinstance(getattr(standin, name, None), int):
                setattr(standin, name, 1)
    if "youtube" in standins:
        yt: Any = standins["youtube"]
        yt.insert_quota, yt.unit_quota = 1_000_000, 1_000_000_000
    if "tiktok" in standins:
        tt: Any = standins["tiktok"]
        tt.daily_post_cap, tt.init_per_minute, tt.status_per_minute = 1_000_000, 1_000, 1_000
        tt.verified_prefixes.append(media_url + "/")
    if "instagram" in standins:
        standins["instagram"].quota_total = 1_000_000  # type: ignore[attr-defined]
    if "threads" in standins:
        standins["threads"].quota_total = 1_000_000  # type: ignore[attr-defined]


# -- faults ---------------------------------------------------------------------------------------
class Injector:
    def __init__(self, cfg: Config, fleet: Fleet, redis: PrivateRedis, pg: PrivatePostgres,
                 standins: dict[str, StandIn]) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.redis = redis
        self.pg = pg
        self.standins = standins
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        # Two threads apply faults (see play_standin_faults); the tallies are shared.
        self._tally = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self._tally:
            self.counts[key] += n

    def apply(self, event: Event) -> None:
        try:
            getattr(self, f"_{event.kind}")(**event.params)
            self.count(event.kind)
        except Exception as exc:  # a fault that could not be injected is reported, the run goes on
            with self._tally:
                self.errors.append(f"{event.describe()}: {type(exc).__name__}: {exc}")

    def pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.fleet.check()
            time.sleep(min(0.2, left))

    def _kill(self, slot: int, pick: float) -> None:
        self.fleet.kill(slot)

    def _kill_held(self, slot: int, pick: float, platform: str, commit: bool, after: float) -> None:
        """Make the stand-in hold the next publish open (longer than the HTTP timeout), wait until a
        worker's request is held, and kill -9 the worker that holds it."""
        standin = self.standins[platform]
        fault = create_fault(platform, "held", delay=self.cfg.http_timeout + 2.0, commit=commit)
        standin.inject(fault)
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and _pending(standin, fault):
            time.sleep(0.05)
        if _pending(standin, fault):
            _withdraw(standin, fault)
            self.count("kill_held_no_request")
            self.fleet.kill(slot)
            return
        time.sleep(after)
        live = self.fleet.pids()
        holders = pids_connected_to(int(standin.url.rsplit(":", 1)[1]), sorted(live))
        if holders:
            slot = live[holders[min(int(pick * len(holders)), len(holders) - 1)]]
            self.count("kill_held_hit")
        else:
            self.count("kill_held_missed")
        self.fleet.kill(slot)

    def _flushall(self) -> None:
        self.redis.flushall()

    def _redis_restart(self, sigkill: bool, gap: float) -> None:
        self.redis.stop(signal.SIGKILL if sigkill else signal.SIGTERM)
        self.pause(gap)
        self.redis.start()

    def _pg_restart(self, immediate: bool, gap: float) -> None:
        if not self.pg.restartable:
            self.count("pg_restart_as_terminate")
            self.pg.terminate_sessions()
            return
        self.pg.stop(immediate=immediate)
        self.pause(gap)
        self.pg.start()

    def _pg_terminate(self) -> None:
        self.count("pg_sessions_terminated", self.pg.terminate_sessions())

    def _beat_kill(self) -> None:
        self.fleet.kill_beat()

    def _token_expiry(self, platform: str) -> None:
        self.standins[platform].expire_access_tokens()  # type: ignore[attr-defined]

    def _storm(self, platform: str, kind: str, faults: list[Fault]) -> None:
        self.standins[platform].inject(*faults)
        self.count(f"storm_{kind}")
        self.count("standin_faults", len(faults))

    def _slow_create(self, platform: str, fault: Fault) -> None:
        self.standins[platform].inject(fault)

    def _lost_answer(self, platform: str, fault: Fault) -> None:
        self.standins[platform].inject(fault)

    def withdraw_all(self) -> tuple[int, dict[str, dict[str, int]]]:
        """Remove the stand-in faults no request has taken yet (the storms are over); how many, and
        per platform, by tag."""
        left = 0
        by_platform: dict[str, dict[str, int]] = {}
        for platform, standin in self.standins.items():
            with standin.lock:
                left += sum(f.times for f in standin.faults)
                for f in standin.faults:
                    tag = getattr(f, "tag", "") or "untagged"
                    mine = by_platform.setdefault(platform, {})
                    mine[tag] = mine.get(tag, 0) + f.times
                standin.faults.clear()
        return left, by_platform


# Faults that only arm a stand-in: they take no time, so they keep to their schedule on a thread of
# their own instead of waiting behind the kills, restarts and held requests (which block for seconds).
STANDIN_EVENTS = frozenset({"storm", "slow_create", "lost_answer", "token_expiry"})


def play_standin_faults(events: list[Event], start: float, injector: Injector, stop: threading.Event,
                        verbose: bool) -> threading.Thread:
    def play() -> None:
        for event in events:
            if stop.wait(max(0.0, start + event.at - time.monotonic())):
                return
            if verbose:
                print(f"  fault {event.describe()}", flush=True)
            injector.apply(event)

    thread = threading.Thread(target=play, name="chaos-standin-faults", daemon=True)
    thread.start()
    return thread


def quiet(standin: StandIn) -> StandIn:
    """Drop the tracebacks a stand-in's server prints when a client it held open has gone (killed
    worker, timed-out request): here that is the point."""
    standin._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return standin


class FaultLog:
    """Which injected faults requests took, per platform and tag (slow, lost_answer, 5xx...)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken: Counter[tuple[str, str]] = Counter()

    def note(self, platform: str, fault: Fault) -> None:
        with self.lock:
            self.taken[(platform, getattr(fault, "tag", "") or "untagged")] += 1

    def by_platform(self) -> dict[str, dict[str, int]]:
        with self.lock:
            out: dict[str, dict[str, int]] = {}
            for (platform, tag), n in sorted(self.taken.items()):
                out.setdefault(platform, {})[tag] = n
            return out


def honour_methods(standin: StandIn, platform: str, log: FaultLog) -> None:
    """Make the stand-in give a :class:`CreateFault` only to a request of its method (the base matches
    the path alone, so a look-up sharing a create's path would take it), and log every fault taken.
    The stand-in's handler notes the request, then takes a fault, in the same thread: the method is
    passed between the two in a thread-local."""
    current = threading.local()
    note = standin._note_request

    def noting(req: Any) -> None:
        current.method = req.method
        note(req)

    def take(path: str) -> Fault | None:
        method = getattr(current, "method", "")
        with standin.lock:
            for fault in standin.faults:
                wanted = fault.method if isinstance(fault, CreateFault) else ""
                if fault.path in path and wanted in ("", method):
                    fault.times -= 1
                    if fault.times <= 0:
                        standin.faults.remove(fault)
                    log.note(platform, fault)
                    return fault
        return None

    standin._note_request = noting  # type: ignore[method-assign]
    standin._take_fault = take  # type: ignore[method-assign]


def watch_rate_limits(standin: StandIn) -> list[tuple[str, float, float]]:
    """Record every wait the stand-in announces (scope, when, how long), so each request it counts as
    early can be told apart: how long after the 429 it came. The wait is read back from the stand-in's
    own block, which covers Retry-After and Graph's usage header (whole minutes, on any status)."""
    answered: list[tuple[str, float, float]] = []
    note = standin._note_retry_after

    def noting(req: Any, response: Any) -> None:
        scope = standin.scope(req)
        with standin.lock:
            before = standin.retry_blocks.get(scope, 0.0)
        note(req, response)
        now = time.time()
        with standin.lock:
            after = standin.retry_blocks.get(scope, 0.0)
        if after != before and after > now:
            answered.append((scope, now, after - now))

    standin._note_retry_after = noting  # type: ignore[method-assign]
    return answered


def early_requests(standin: StandIn, answered: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """Each request that came inside an announced wait, with its method, path and timing."""
    found = []
    with standin.lock:
        requests = list(standin.requests)
    for r in requests:
        for scope, at, wait in answered:
            if scope == r["scope"] and at < r["at"] < at + wait:
                # The last path part only: Telegram's path carries the bot token.
                found.append({"request": f"{r['method']} {r['path'].rsplit('/', 1)[-1]}",
                              "after_429_ms": round((r["at"] - at) * 1000),
                              "window_left_ms": round((at + wait - r["at"]) * 1000)})
                break
    return found


def _pending(standin: StandIn, fault: Fault) -> bool:
    with standin.lock:
        return any(f is fault for f in standin.faults)


def _withdraw(standin: StandIn, fault: Fault) -> None:
    with standin.lock:
        standin.faults[:] = [f for f in standin.faults if f is not fault]


# -- watching -------------------------------------------------------------------------------------
class StateCounts:
    """Delivery counts by state over one plain connection that survives the database's restarts."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection[Any] | None = None

    def get(self) -> dict[str, int] | None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
            return dict(self.conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
        except psycopg.Error:
            if self.conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self.conn.close()
            self.conn = None
            return None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()


def quiesce(counts: StateCounts, injector: Injector, timeout: float, grace: float) -> bool:
    """Wait until no delivery is in a working state for a few polls in a row, then for the stand-ins'
    held requests to end, and check again. True if it settled within ``timeout``."""
    deadline = time.monotonic() + timeout
    graced = False
    calm = 0
    while time.monotonic() < deadline:
        injector.fleet.check()
        states = counts.get()
        calm = calm + 1 if states is not None and not set(states) & set(ACTIVE) else 0
        if calm >= 3:
            if graced:
                return True
            # A request a stand-in still holds may yet create a post or let a worker record it.
            injector.pause(grace)
            graced, calm = True, 0
            continue
        time.sleep(1.0)
    return False


# -- the reckoning ----------------------------------------------------------------------------------
@dataclass
class PlatformTally:
    deliveries: int = 0
    states: Counter[str] = field(default_factory=Counter)
    published: int = 0
    failed: int = 0
    unknown: int = 0
    stuck: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicates_not_unknown: int = 0
    failed_but_posted: int = 0
    unknown_posted: int = 0
    orphan_posts: int = 0
    edits: int = 0
    standin_duplicates: int = 0
    early_requests: int = 0
    requests: int = 0
    # The deliveries behind a failing count, with the posts the stand-in made for each.
    suspects: list[dict[str, Any]] = field(default_factory=list)
    # Deliveries that ended unknown, with their posts (if any) and, once the run ends, their attempts.
    unknowns: list[dict[str, Any]] = field(default_factory=list)


def author_of(platform: str, created: Created) -> str:
    """The post's author as crosspost spells the account's handle (YouTube's stand-in keeps the channel
    handle as it was created, ``youtube3``; crosspost stores ``@youtube3``)."""
    author = str(created.data.get(AUTHOR_FIELD))
    try:
        return adapter_class(platform).normalize_handle(author)
    except ValueError:
        return author


def finish_processing(standins: dict[str, StandIn]) -> int:
    """Let TikTok finish what it was given. Its stand-in makes a post only when a status poll finds the
    upload complete; the real service publishes a complete upload whether anyone polls or not. So a
    delivery that ended ``unknown`` (or anything else) after its upload completed did post: poll every
    such publish here, as TikTok's own processing would, before the stand-ins' records are read."""
    standin: Any = standins.get("tiktok")
    if standin is None:
        return 0
    finished = 0
    with standin.lock:
        for publish in standin.publishes.values():
            user = standin.users.get(publish.user)
            complete = publish.source != "FILE_UPLOAD" or publish.received >= publish.size > 0
            if user is None or not complete:
                continue
            for _ in range(10):
                if publish.status not in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD"):
                    break
                standin._advance(publish, user)
                finished += publish.status == "PUBLISH_COMPLETE"
    return finished


def reckon(standins: dict[str, StandIn]) -> tuple[dict[str, PlatformTally], dict[str, int]]:
    with session_scope() as s:
        rows = s.execute(
            select(Delivery.id, Delivery.state, Account.platform, Account.handle, Story.text)
            .join(Account, Account.id == Delivery.account_id).join(Story, Story.id == Delivery.story_id)
        ).all()
        outcomes = {str(k): v for k, v in
                    s.execute(select(Attempt.outcome, func.count()).group_by(Attempt.outcome)).all()}
    posts: dict[tuple[str, str, str], list[Created]] = {}
    tallies = {p: PlatformTally() for p in standins}
    for platform, standin in standins.items():
        tally = tallies[platform]
        for created in standin.posts():
            if created.kind != POST_KINDS[platform]:
                tally.edits += created.kind == "edit"
                continue
            token = TOKEN_RE.search(str(created.data.get(TEXT_FIELD, "")))
            key = (platform, author_of(platform, created), token.group() if token else "")
            posts.setdefault(key, []).append(created)
        with standin.lock:
            tally.standin_duplicates = standin.duplicates()
            tally.early_requests = standin.early_requests
            tally.requests = len(standin.requests)
    claimed: set[tuple[str, str, str]] = set()
    for _id, state, platform, handle, text in rows:
        tally = tallies[platform]
        token = TOKEN_RE.search(text)
        key = (platform, handle, token.group() if token else "")
        claimed.add(key)
        made = len(posts.get(key, []))
        tally.deliveries += 1
        tally.states[state] += 1
        tally.published += state == "published"
        tally.failed += state == "failed"
        tally.unknown += state == "unknown"
        tally.stuck += state in STUCK
        tally.lost += state == "published" and made == 0
        tally.failed_but_posted += state == "failed" and made > 0
        tally.unknown_posted += state == "unknown" and made > 0
        if made > 1:
            tally.duplicates += made - 1
            tally.duplicates_not_unknown += (made - 1) if state != "unknown" else 0
        shown = {"delivery": _id, "account": handle, "state": state,
                 "posts": [{"id": c.id, "at": round(c.at, 3)} for c in posts.get(key, [])]}
        suspect = (made > 1 and state != "unknown") or (state == "published" and not made) or state in STUCK
        if (suspect or (made > 1 and adapter_class(platform).caps.idempotent)
                or (state == "failed" and made)) and len(tally.suspects) < 20:
            tally.suspects.append(shown)
        elif state == "unknown" and len(tally.unknowns) < 20:
            # Not a failure: what the platform could not settle, kept to show what happened to it.
            tally.unknowns.append(shown)
    for key, made_posts in posts.items():
        if key not in claimed:
            tallies[key[0]].orphan_posts += len(made_posts)
    return tallies, outcomes


def attempt_history(delivery_ids: list[int]) -> dict[int, list[str]]:
    """Each delivery's attempts, for the suspects of a failed run."""
    history: dict[int, list[str]] = {}
    with session_scope() as s:
        for a in s.scalars(select(Attempt).where(Attempt.delivery_id.in_(delivery_ids))
                           .order_by(Attempt.delivery_id, Attempt.number)):
            ended = a.ended_at.strftime("%H:%M:%S.%f")[:-3] if a.ended_at else "open"
            error = f" {' '.join(a.error.split())[:160]}" if a.error else ""
            status = f" {a.http_status}" if a.http_status else ""
            history.setdefault(a.delivery_id, []).append(
                f"{a.number}:{a.outcome}{status} {a.started_at.strftime('%H:%M:%S.%f')[:-3]}-{ended}{error}")
    return history


def lease_lapses(deaths: list[float], slack: float = 1.0) -> list[dict[str, Any]]:
    """Attempts the reaper took (``lease_expired``) while no worker died: a live worker lost its lease,
    which the heartbeat exists to prevent. Reported, with the delivery's end state, not judged: a
    database outage longer than the lease can also starve the heartbeat."""
    found = []
    with session_scope() as s:
        rows = s.execute(
            select(Attempt.delivery_id, Attempt.number, Attempt.started_at, Attempt.ended_at,
                   Account.platform, Delivery.state)
            .join(Delivery, Delivery.id == Attempt.delivery_id)
            .join(Account, Account.id == Delivery.account_id)
            .where(Attempt.outcome == "lease_expired").order_by(Attempt.started_at)).all()
    for delivery, number, started, ended, platform, state in rows:
        start, end = started.timestamp(), (ended.timestamp() if ended else time.time())
        if not any(start - slack <= d <= end + slack for d in deaths):
            found.append({"platform": platform, "delivery": delivery, "attempt": number, "state": state,
                          "ran": f"{started.strftime('%H:%M:%S.%f')[:-3]}-"
                                 f"{ended.strftime('%H:%M:%S.%f')[:-3] if ended else 'open'}"})
    return found


def verdict(tallies: dict[str, PlatformTally], expected: int, settled: bool) -> list[str]:
    problems = []
    total = sum(t.deliveries for t in tallies.values())
    if total != expected:
        problems.append(f"{expected - total} deliveries missing from the database")
    for platform, t in tallies.items():
        idempotent = adapter_class(platform).caps.idempotent
        if t.lost:
            problems.append(f"{platform}: {t.lost} deliveries marked published with no post on the platform")
        if t.stuck:
            problems.append(f"{platform}: {t.stuck} deliveries stuck in {dict(_only(t.states, STUCK))}")
        if idempotent and t.duplicates:
            problems.append(f"{platform}: {t.duplicates} duplicate posts on an idempotent platform")
        if not idempotent and t.duplicates_not_unknown:
            problems.append(f"{platform}: {t.duplicates_not_unknown} duplicate posts on deliveries "
                            "not marked unknown")
        if t.orphan_posts:
            problems.append(f"{platform}: {t.orphan_posts} posts that no delivery accounts for")
    if not settled and not any("stuck" in p for p in problems):
        problems.append("the run did not settle within the timeout")
    return problems


def _only(states: Counter[str], wanted: tuple[str, ...]) -> Counter[str]:
    return Counter({k: v for k, v in states.items() if k in wanted})


# -- output -----------------------------------------------------------------------------------------
COLUMNS = ("deliveries", "published", "failed", "unknown", "stuck", "lost", "duplicates",
           "duplicates_not_unknown", "unknown_posted", "failed_but_posted", "early_requests")
HEADINGS = ("deliveries", "published", "failed", "unknown", "stuck", "lost", "dups", "dups!unk",
            "unk+post", "fail+post", "early")


def print_summary(summary: dict[str, Any]) -> None:
    f = summary["faults"]
    exits = Counter(str(e["process"]).split("-")[0] for e in summary["unexpected_exits"])
    print(f"\nchaos run: seed {summary['seed']}, {summary['mode']}, {summary['workers']} workers, "
          f"{summary['stories']} stories over {summary['accounts']} accounts, {summary['duration_s']:.0f} s")
    print(f"faults: {f.get('kills', 0)} kills ({f.get('kill', 0)} at random, {f.get('kill_held', 0)} while "
          f"a stand-in held a request: {f.get('kill_held_hit', 0)} hit the holder), "
          f"{f.get('flushall', 0)} FLUSHALL, {f.get('redis_restart', 0)} Redis restarts, "
          f"{f.get('pg_restart', 0)} PostgreSQL restarts"
          f"{' (as terminations: shared server)' if f.get('pg_restart_as_terminate') else ''}, "
          f"{f.get('pg_terminate', 0)} session terminations "
          f"({f.get('pg_sessions_terminated', 0)} sessions), {f.get('storms', 0)} stand-in storms "
          f"({f.get('standin_faults', 0)} faults, {f.get('standin_faults_unused', 0)} never taken), "
          f"{f.get('beat_kill', 0)} beat kills, {f.get('token_expiry', 0)} Bluesky token expiries, "
          f"{f.get('slow_create', 0)} slow creates and {f.get('lost_answer', 0)} lost answers placed "
          f"(the table's slow/lost columns: taken by a create)")
    print(f"processes: {summary['worker_starts']} worker starts; "
          f"exited by themselves: {dict(exits) or 'none'}; "
          f"faults that could not be injected: {len(summary['fault_errors'])}")
    width = max(len(h) for h in HEADINGS) + 1
    print("platform".ljust(10) + "".join(h.rjust(width) for h in (*HEADINGS, "slow", "lost")))
    rows = [*summary["platforms"].items(), ("total", summary["totals"])]
    for name, t in rows:
        over = summary["platforms"].values() if name == "total" else [t]
        extra = [str(sum(p.get("faults_taken", {}).get(tag, 0) for p in over))
                 for tag in ("slow", "lost_answer")]
        print(name.ljust(10) + "".join(str(t[c]).rjust(width) for c in COLUMNS)
              + "".join(x.rjust(width) for x in extra))
    print("  dups: posts made more than once for one delivery; dups!unk: of those, on deliveries not marked "
          "unknown;\n  unk+post / fail+post: unknown / failed deliveries whose post does exist; "
          "early: requests inside a Retry-After;\n  slow / lost: creates that took a slow-create / "
          "lost-answer fault")
    if summary["faults"].get("tiktok_finished_by_harness"):
        print(f"  TikTok uploads completed but never polled, finished by the harness before counting: "
              f"{summary['faults']['tiktok_finished_by_harness']}")
    print(f"attempt outcomes: {summary['attempt_outcomes']}")
    for name, t in summary["platforms"].items():
        for early in t.get("early_detail", []):
            print(f"early request on {name}: {early}")
    for name, t in summary["platforms"].items():
        for suspect in t.get("suspects", []):
            print(f"suspect on {name}: {suspect}")
    for name, t in summary["platforms"].items():
        for unknown in t.get("unknowns", []):
            print(f"unknown on {name}: {unknown}")
    for error in summary["fault_errors"]:
        print(f"fault not injected: {error}")
    lapses = summary.get("lease_lapses", [])
    print(f"lease expiries while no worker died (a live worker lost its lease): {len(lapses)}")
    print(f"closest two attempt starts on one account: {summary.get('closest_starts_s')} s "
          f"(ACCOUNT_MIN_INTERVAL {SPACING} s)")
    for lapse in lapses[:30]:
        print(f"  lease lapse: {lapse}")
    print("verdict: " + ("PASS" if summary["ok"] else "FAIL: " + "; ".join(summary["problems"])))


# -- the run ----------------------------------------------------------------------------------------
def run(cfg: Config) -> dict[str, Any]:
    began = time.monotonic()
    plan = cfg.plan()
    schedule = make_schedule(random.Random(f"{cfg.seed}:faults"), plan, cfg.workers)
    root = Path(tempfile.mkdtemp(prefix="crosspost-chaos-"))
    root.chmod(0o755)  # the private PostgreSQL runs as postgres and lives below
    print(f"chaos: seed {cfg.seed}; working directory {root}; {len(schedule)} scheduled faults", flush=True)
    (root / "schedule.txt").write_text("\n".join(e.describe() for e in schedule) + "\n")
    redis = PrivateRedis(root)
    pg: PrivatePostgres = SharedPostgres(cfg.pg_admin) if cfg.pg_admin else PrivatePostgres(root)
    standins: dict[str, StandIn] = {}
    files: MediaServer | None = None
    fault_log = FaultLog()
    fleet: Fleet | None = None
    counts: StateCounts | None = None
    summary: dict[str, Any] = {}
    try:
        redis.start()
        pg.init()
        (root / "data").mkdir()  # what `crosspost init` makes: beat keeps its schedule file there
        files = MediaServer(root / "data" / "media")
        env = crosspost_env(root, pg.url, redis.url, cfg, files.url)
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate()
        if get_settings().media_dir != root / "data" / "media":
            raise RuntimeError(f"the media store is {get_settings().media_dir}, not the folder served")
        standins = {p: quiet(standin_class(p)()).start() for p in PLATFORMS}
        tune_standins(standins, files.url)
        for p, standin in standins.items():
            honour_methods(standin, p, fault_log)
        rate_limits = {p: watch_rate_limits(standin) for p, standin in standins.items()}
        matrix = build_matrix(standins, cfg.accounts)
        image, video = make_media(root / "source-media")
        fleet = Fleet({**os.environ, **env}, root / "logs", cfg.workers, cfg.concurrency)
        fleet.start()
        fleet.wait_ready(120)
        expected = queue_stories(random.Random(f"{cfg.seed}:stories"), cfg, matrix, plan.window * 0.9,
                                 image, video)
        counts = StateCounts(pg.dsn)
        injector = Injector(cfg, fleet, redis, pg, standins)
        start = time.monotonic()
        next_report = start + 10
        stop_playing = threading.Event()
        player = play_standin_faults([e for e in schedule if e.kind in STANDIN_EVENTS], start, injector,
                                     stop_playing, cfg.verbose)
        for event in [e for e in schedule if e.kind not in STANDIN_EVENTS]:
            while (wait := start + event.at - time.monotonic()) > 0:
                injector.pause(min(wait, 0.5))
                if time.monotonic() >= next_report:
                    print(f"  t={time.monotonic() - start:5.0f}s states {counts.get()}", flush=True)
                    next_report += 10
            if cfg.verbose:
                print(f"  fault {event.describe()}", flush=True)
            injector.apply(event)
        injector.pause(max(0.0, start + plan.window - time.monotonic()))
        stop_playing.set()
        player.join(10)
        unused, unused_by_platform = injector.withdraw_all()
        print(f"  faults over at t={time.monotonic() - start:.0f}s; waiting for quiescence", flush=True)
        settled = quiesce(counts, injector, cfg.settle_timeout, grace=cfg.http_timeout + 3.0)
        finished = finish_processing(standins)
        tallies, outcomes = reckon(standins)
        problems = verdict(tallies, expected, settled)
        closest = closest_starts()
        if closest is not None and closest < SPACING - 1e-3:
            problems.append(f"two attempts on one account started {closest:.3f} s apart, under "
                            f"ACCOUNT_MIN_INTERVAL ({SPACING} s)")
        faults = dict(injector.counts)
        faults["kills"] = faults.get("kill", 0) + faults.get("kill_held", 0)
        faults["storms"] = sum(v for k, v in faults.items() if k.startswith("storm_"))
        faults["standin_faults_unused"] = unused
        faults["tiktok_finished_by_harness"] = finished
        lapses = lease_lapses(fleet.deaths)
        suspects = [x for t in tallies.values() for x in (*t.suspects, *t.unknowns)]
        history = attempt_history([x["delivery"] for x in suspects]) if suspects else {}
        for x in suspects:
            x["attempts"] = history.get(x["delivery"], [])
        platforms = {p: _as_dict(t) for p, t in tallies.items()}
        taken = fault_log.by_platform()
        for p, standin in standins.items():
            platforms[p]["early_detail"] = early_requests(standin, rate_limits[p])[:20]
            platforms[p]["faults_taken"] = taken.get(p, {})
            platforms[p]["faults_unused"] = unused_by_platform.get(p, {})
        summary = {
            "seed": cfg.seed, "mode": "short" if cfg.short else "full", "workers": cfg.workers,
            "stories": cfg.stories, "accounts": cfg.accounts, "expected_deliveries": expected,
            "duration_s": round(time.monotonic() - began, 1), "settled": settled,
            "platforms": platforms, "totals": _totals(platforms), "faults": faults,
            "worker_starts": fleet.started, "attempt_outcomes": outcomes,
            "unexpected_exits": [{k: v for k, v in e.items() if k != "log_tail"} for e in fleet.unexpected],
            "fault_errors": injector.errors, "problems": problems, "ok": not problems, "workdir": str(root),
            "lease_lapses": lapses, "worker_deaths": len(fleet.deaths), "closest_starts_s": closest,
            # Messages that carried several deliveries (Celery logs each one received).
            "batch_tasks": sum(log.read_text(errors="replace").count("Task crosspost.publish_batch[")
                               for log in fleet.logs.glob("worker*.log")) // 2,
        }
        for exit_ in fleet.unexpected:
            print(f"--- {exit_['process']} exited by itself ({exit_['exit']}); its log ends:\n"
                  f"{exit_['log_tail']}")
        return summary
    finally:
        if fleet is not None:
            fleet.stop()
        if counts is not None:
            counts.close()
        for standin in standins.values():
            standin.stop()
        if files is not None:
            files.stop()
        dispose_engines()
        redis.stop(signal.SIGKILL)
        pg.cleanup()
        if summary.get("ok") and not cfg.keep:
            shutil.rmtree(root, ignore_errors=True)


def _as_dict(t: PlatformTally) -> dict[str, Any]:
    data = {k: v for k, v in t.__dict__.items() if k != "states"}
    data["states"] = dict(t.states)
    return data


def _totals(platforms: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {c: sum(p[c] for p in platforms.values()) for c in COLUMNS}


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="Seed of the fault schedule and the workload.")
    parser.add_argument("--kills", type=int, default=100, help="Workers to kill -9 (full run).")
    parser.add_argument("--workers", type=int, default=3, help="`crosspost worker` processes.")
    parser.add_argument("--concurrency", type=int, default=8, help="Threads per worker.")
    parser.add_argument("--stories", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=30, help="Accounts, spread over the ten platforms.")
    parser.add_argument("--targets", type=int, default=4, help="Accounts each story goes to (at most).")
    parser.add_argument("--short", action="store_true",
                        help="CI size: 2 workers, 40 stories, 20 accounts (2 a platform), 4 kills, one of "
                             "each outage, small storms, one slow create and one lost answer a platform.")
    parser.add_argument("--settle-timeout", type=float, default=None, help="Seconds to wait for quiescence.")
    parser.add_argument("--keep", action="store_true", help="Keep the working directory (logs) after a pass.")
    parser.add_argument("--verbose", action="store_true", help="Print each fault as it fires.")
    parser.add_argument("--publish-slots", type=int, default=0,
                        help="CROSSPOST_PUBLISH_SLOTS (0: the concurrency); with --bursts, a small number "
                             "makes the tick hand deliveries out several per message.")
    parser.add_argument("--bursts", type=int, default=0,
                        help="Stories fall due at this many instants instead of uniformly over the run.")
    parser.add_argument("--pg-admin", default=None,
                        help="Fallback: use a private database on this shared server instead of a private "
                             "cluster (never restarted; its sessions are terminated instead).")
    a = parser.parse_args(argv)
    if a.short:
        cfg = Config(seed=a.seed, kills=4, workers=2, stories=40, accounts=20, targets=3, short=True,
                     concurrency=a.concurrency, settle_timeout=a.settle_timeout or 90.0)
    else:
        cfg = Config(seed=a.seed, kills=a.kills, workers=a.workers, stories=a.stories, accounts=a.accounts,
                     targets=a.targets, short=False, concurrency=a.concurrency,
                     settle_timeout=a.settle_timeout or 240.0)
    cfg.keep, cfg.verbose, cfg.pg_admin = a.keep, a.verbose, a.pg_admin
    cfg.publish_slots, cfg.bursts = a.publish_slots, a.bursts
    for name in ("kills", "workers", "stories", "accounts", "targets", "publish_slots", "bursts"):
        least = 0 if name in ("kills", "publish_slots", "bursts") else 1
        if getattr(cfg, name) < least:
            parser.error(f"--{name.replace('_', '-')}: must be at least {least}")
    return cfg


def _terminate(signum: int, _frame: Any) -> None:
    # Unwind through run()'s cleanup: no worker, Redis or PostgreSQL is left behind.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    os.chdir(REPO)
    try:
        summary = run(cfg)
    except Exception:
        traceback.print_exc()
        print(json.dumps({"chaos": {"seed": cfg.seed, "ok": False, "error": traceback.format_exc(limit=3)}}))
        return 2
    print_summary(summary)
    print(json.dumps({"chaos": summary}, sort_keys=True), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
