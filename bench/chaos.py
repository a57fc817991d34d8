"""Chaos harness: the real pipeline under a seeded storm of crashes and outages.

Runs N `crosspost worker` processes and one `crosspost beat` on a private Redis and a private
PostgreSQL cluster, with the Mastodon, Bluesky and Telegram stand-ins in this process, and a workload of
stories over many accounts falling due across the run. Meanwhile, on a schedule drawn from the seed,
it kill -9s workers (some while a slow stand-in holds their request open) and starts new ones,
FLUSHALLs and restarts Redis, restarts PostgreSQL or terminates the workers' sessions, and makes the
stand-ins answer 429 with Retry-After, 5xx, time out or drop connections (the full run also kills beat
and expires every Bluesky access token now and then, so refreshes race the kills).

At the end it waits for quiescence and counts, from the stand-ins' own records and the database,
what went where. Exit status: 0 if nothing was lost or stuck, no idempotent platform got a
duplicate, and every non-idempotent duplicate is on a delivery marked ``unknown``; 1 otherwise;
2 if the harness itself failed. The last line printed is the summary as one JSON object; a failing
run names its suspect deliveries (posts made, attempt history) and keeps its working directory (logs,
the PostgreSQL data directory) for a look.

    python bench/chaos.py --seed 7 --kills 100 --workers 3 --stories 300 --accounts 30   # full
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
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from adapters import adapter_class
from adapters.base import Credentials
from adapters.standins import Fault, StandIn, standin_class
from adapters.standins.base import Created
from config.settings import reset_settings
from scheduler import accounts, stories
from scheduler.db import dispose_engines, migrate, session_scope
from scheduler.models import Account, Attempt, Delivery, Story, utcnow

try:
    from bench.chaos_faults import CREATE_PATHS, PLATFORMS, Event, Plan, make_schedule
    from bench.chaos_services import Fleet, PrivatePostgres, PrivateRedis, SharedPostgres, pids_connected_to
except ImportError:  # run as a script: the helpers sit beside this file
    from chaos_faults import CREATE_PATHS, PLATFORMS, Event, Plan, make_schedule
    from chaos_services import Fleet, PrivatePostgres, PrivateRedis, SharedPostgres, pids_connected_to

REPO = Path(__file__).resolve().parent.parent
ACTIVE = ("scheduled", "queued", "publishing", "retry_wait")
STUCK = (*ACTIVE, "blocked_auth", "awaiting_approval")
TOKEN_RE = re.compile(r"\[cx\d+s\d+\]")
# The kind of record each stand-in keeps for a post (Bluesky also keeps "edit" for a changed record).
POST_KINDS = {"mastodon": "status", "bluesky": "post", "telegram": "message"}


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
    http_timeout: float = 3.0
    settle_timeout: float = 240.0
    keep: bool = False
    verbose: bool = False
    pg_admin: str | None = None

    def plan(self) -> Plan:
        return Plan.short(self.http_timeout) if self.short else Plan.full(self.kills, self.http_timeout)


def crosspost_env(root: Path, database_url: str, broker_url: str, cfg: Config) -> dict[str, str]:
    """Short settings so that a run converges in minutes: leases of a few seconds, a fast tick, small
    backoff, and an attempt budget that storms cannot spend."""
    return {
        "CROSSPOST_DATA_DIR": str(root / "data"),
        "CROSSPOST_DATABASE_URL": database_url,
        "CROSSPOST_BROKER_URL": broker_url,
        "CROSSPOST_SECRET_KEY": Fernet.generate_key().decode(),
        "CROSSPOST_TICK_INTERVAL": "0.5",
        "CROSSPOST_LEASE_SECONDS": "5",
        "CROSSPOST_QUEUED_TIMEOUT": "4",
        "CROSSPOST_BACKOFF_BASE": "0.5",
        "CROSSPOST_BACKOFF_MAX": "4",
        "CROSSPOST_MAX_ATTEMPTS": "40",
        "CROSSPOST_ACCOUNT_MIN_INTERVAL": "0.25",
        "CROSSPOST_HTTP_TIMEOUT": str(cfg.http_timeout),
        "CROSSPOST_WORKER_CONCURRENCY": str(cfg.concurrency),
        "CROSSPOST_LOG_LEVEL": "INFO",
    }


# -- workload -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acct:
    id: int
    platform: str
    handle: str


def build_matrix(standins: dict[str, StandIn], count: int) -> list[Acct]:
    made = []
    with session_scope() as s:
        for i in range(count):
            platform = PLATFORMS[i % len(PLATFORMS)]
            # Each stand-in records the author of a post under exactly this handle.
            handle = f"@telegram{i}" if platform == "telegram" else f"{platform}{i}"
            creds = Credentials(standins[platform].add_account(handle, followers=100 + i))
            row = accounts.add(s, platform, handle, creds, base_url=standins[platform].url, tags=["chaos"])
            made.append(Acct(row.id, platform, handle))
    return made


def queue_stories(rng: random.Random, cfg: Config, matrix: list[Acct], spread: float) -> int:
    """Every story text carries a token unique to the story, so each (account, token) names exactly
    one delivery and every post a stand-in made can be traced back to it."""
    start = utcnow() + timedelta(seconds=2)
    deliveries = 0
    with session_scope() as s:
        for i in range(cfg.stories):
            chosen = rng.sample(matrix, k=min(cfg.targets, len(matrix)))
            link = f"https://example.org/chaos/{cfg.seed}/{i}" if rng.random() < 0.5 else None
            draft = stories.Draft(
                text=f"[cx{cfg.seed}s{i}] Chaos story {i}: the news of the day, told exactly once.",
                targets=[str(a.id) for a in chosen], link=link,
                at=start + timedelta(seconds=rng.uniform(0.0, spread)))
            stories.queue(s, draft, utcnow())
            deliveries += len(chosen)
    return deliveries


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

    def apply(self, event: Event) -> None:
        try:
            getattr(self, f"_{event.kind}")(**event.params)
            self.counts[event.kind] += 1
        except Exception as exc:  # a fault that could not be injected is reported, the run goes on
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
        fault = Fault(delay=self.cfg.http_timeout + 2.0, commit=commit, path=CREATE_PATHS[platform])
        standin.inject(fault)
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and _pending(standin, fault):
            time.sleep(0.05)
        if _pending(standin, fault):
            _withdraw(standin, fault)
            self.counts["kill_held_no_request"] += 1
            self.fleet.kill(slot)
            return
        time.sleep(after)
        live = self.fleet.pids()
        holders = pids_connected_to(int(standin.url.rsplit(":", 1)[1]), sorted(live))
        if holders:
            slot = live[holders[min(int(pick * len(holders)), len(holders) - 1)]]
            self.counts["kill_held_hit"] += 1
        else:
            self.counts["kill_held_missed"] += 1
        self.fleet.kill(slot)

    def _flushall(self) -> None:
        self.redis.flushall()

    def _redis_restart(self, sigkill: bool, gap: float) -> None:
        self.redis.stop(signal.SIGKILL if sigkill else signal.SIGTERM)
        self.pause(gap)
        self.redis.start()

    def _pg_restart(self, immediate: bool, gap: float) -> None:
        if not self.pg.restartable:
            self.counts["pg_restart_as_terminate"] += 1
            self.pg.terminate_sessions()
            return
        self.pg.stop(immediate=immediate)
        self.pause(gap)
        self.pg.start()

    def _pg_terminate(self) -> None:
        self.counts["pg_sessions_terminated"] += self.pg.terminate_sessions()

    def _beat_kill(self) -> None:
        self.fleet.kill_beat()

    def _token_expiry(self, platform: str) -> None:
        self.standins[platform].expire_access_tokens()  # type: ignore[attr-defined]

    def _storm(self, platform: str, kind: str, faults: list[Fault]) -> None:
        self.standins[platform].inject(*faults)
        self.counts[f"storm_{kind}"] += 1
        self.counts["standin_faults"] += len(faults)

    def withdraw_all(self) -> int:
        """Remove the stand-in faults no request has taken yet (the storms are over)."""
        left = 0
        for standin in self.standins.values():
            with standin.lock:
                left += sum(f.times for f in standin.faults)
                standin.faults.clear()
        return left


def quiet(standin: StandIn) -> StandIn:
    """Drop the tracebacks a stand-in's server prints when a client it held open has gone (killed
    worker, timed-out request): here that is the point."""
    standin._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return standin


def watch_rate_limits(standin: StandIn) -> list[tuple[str, float, float]]:
    """Record every 429 the stand-in answers (scope, when, Retry-After), so each request it counts as
    early can be told apart: how long after the 429 it came."""
    answered: list[tuple[str, float, float]] = []
    note = standin._note_retry_after

    def noting(req: Any, response: Any) -> None:
        note(req, response)
        wait = response.headers.get("Retry-After")
        if response.status == 429 and wait is not None:
            answered.append((standin.scope(req), time.time(), float(wait)))

    standin._note_retry_after = noting  # type: ignore[method-assign]
    return answered


def early_requests(standin: StandIn, answered: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """Each request that came inside a Retry-After window, with its path and timing."""
    found = []
    with standin.lock:
        requests = list(standin.requests)
    for r in requests:
        for scope, at, wait in answered:
            if scope == r["scope"] and at < r["at"] < at + wait:
                found.append({"path": r["path"].rsplit("/", 1)[-1],
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


def reckon(standins: dict[str, StandIn]) -> tuple[dict[str, PlatformTally], dict[str, int]]:
    with session_scope() as s:
        rows = s.execute(
            select(Delivery.id, Delivery.state, Account.platform, Account.handle, Story.text)
            .join(Account, Account.id == Delivery.account_id).join(Story, Story.id == Delivery.story_id)
        ).all()
        outcomes = {str(k): v for k, v in
                    s.execute(select(Attempt.outcome, func.count()).group_by(Attempt.outcome)).all()}
    posts: dict[tuple[str, str, str], list[Created]] = {}
    tallies = {p: PlatformTally() for p in PLATFORMS}
    for platform, standin in standins.items():
        tally = tallies[platform]
        for created in standin.posts():
            if created.kind != POST_KINDS[platform]:
                tally.edits += created.kind == "edit"
                continue
            token = TOKEN_RE.search(str(created.data.get("text", "")))
            key = (platform, str(created.data.get("account")), token.group() if token else "")
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
        if (made > 1 or (state == "published" and not made)) and len(tally.suspects) < 20:
            tally.suspects.append({"delivery": _id, "account": handle, "state": state,
                                   "posts": [{"id": c.id, "at": round(c.at, 3)} for c in posts.get(key, [])]})
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
            history.setdefault(a.delivery_id, []).append(
                f"{a.number}:{a.outcome} {a.started_at.strftime('%H:%M:%S.%f')[:-3]}-{ended}")
    return history


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
          f"{f.get('beat_kill', 0)} beat kills, {f.get('token_expiry', 0)} Bluesky token expiries")
    print(f"processes: {summary['worker_starts']} worker starts; "
          f"exited by themselves: {dict(exits) or 'none'}; "
          f"faults that could not be injected: {len(summary['fault_errors'])}")
    width = max(len(h) for h in HEADINGS) + 1
    print("platform".ljust(10) + "".join(h.rjust(width) for h in HEADINGS))
    rows = [*summary["platforms"].items(), ("total", summary["totals"])]
    for name, t in rows:
        print(name.ljust(10) + "".join(str(t[c]).rjust(width) for c in COLUMNS))
    print("  dups: posts made more than once for one delivery; dups!unk: of those, on deliveries not marked "
          "unknown;\n  unk+post / fail+post: unknown / failed deliveries whose post does exist; "
          "early: requests inside a Retry-After")
    print(f"attempt outcomes: {summary['attempt_outcomes']}")
    for name, t in summary["platforms"].items():
        for early in t.get("early_detail", []):
            print(f"early request on {name}: {early}")
    for name, t in summary["platforms"].items():
        for suspect in t.get("suspects", []):
            print(f"suspect on {name}: {suspect}")
    for error in summary["fault_errors"]:
        print(f"fault not injected: {error}")
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
    fleet: Fleet | None = None
    counts: StateCounts | None = None
    summary: dict[str, Any] = {}
    try:
        redis.start()
        pg.init()
        env = crosspost_env(root, pg.url, redis.url, cfg)
        (root / "data").mkdir()  # what `crosspost init` makes: beat keeps its schedule file there
        os.environ.update(env)
        reset_settings()
        dispose_engines()
        migrate()
        standins = {p: quiet(standin_class(p)()).start() for p in PLATFORMS}
        rate_limits = {p: watch_rate_limits(standin) for p, standin in standins.items()}
        matrix = build_matrix(standins, cfg.accounts)
        fleet = Fleet({**os.environ, **env}, root / "logs", cfg.workers, cfg.concurrency)
        fleet.start()
        fleet.wait_ready(120)
        expected = queue_stories(random.Random(f"{cfg.seed}:stories"), cfg, matrix, plan.window * 0.9)
        counts = StateCounts(pg.dsn)
        injector = Injector(cfg, fleet, redis, pg, standins)
        start = time.monotonic()
        next_report = start + 10
        for event in schedule:
            while (wait := start + event.at - time.monotonic()) > 0:
                injector.pause(min(wait, 0.5))
                if time.monotonic() >= next_report:
                    print(f"  t={time.monotonic() - start:5.0f}s states {counts.get()}", flush=True)
                    next_report += 10
            if cfg.verbose:
                print(f"  fault {event.describe()}", flush=True)
            injector.apply(event)
        injector.pause(max(0.0, start + plan.window - time.monotonic()))
        unused = injector.withdraw_all()
        print(f"  faults over at t={time.monotonic() - start:.0f}s; waiting for quiescence", flush=True)
        settled = quiesce(counts, injector, cfg.settle_timeout, grace=cfg.http_timeout + 3.0)
        tallies, outcomes = reckon(standins)
        problems = verdict(tallies, expected, settled)
        faults = dict(injector.counts)
        faults["kills"] = faults.get("kill", 0) + faults.get("kill_held", 0)
        faults["storms"] = sum(v for k, v in faults.items() if k.startswith("storm_"))
        faults["standin_faults_unused"] = unused
        suspects = [x for t in tallies.values() for x in t.suspects]
        history = attempt_history([x["delivery"] for x in suspects]) if suspects else {}
        for x in suspects:
            x["attempts"] = history.get(x["delivery"], [])
        platforms = {p: _as_dict(t) for p, t in tallies.items()}
        for p, standin in standins.items():
            platforms[p]["early_detail"] = early_requests(standin, rate_limits[p])[:20]
        summary = {
            "seed": cfg.seed, "mode": "short" if cfg.short else "full", "workers": cfg.workers,
            "stories": cfg.stories, "accounts": cfg.accounts, "expected_deliveries": expected,
            "duration_s": round(time.monotonic() - began, 1), "settled": settled,
            "platforms": platforms, "totals": _totals(platforms), "faults": faults,
            "worker_starts": fleet.started, "attempt_outcomes": outcomes,
            "unexpected_exits": [{k: v for k, v in e.items() if k != "log_tail"} for e in fleet.unexpected],
            "fault_errors": injector.errors, "problems": problems, "ok": not problems, "workdir": str(root),
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
    parser.add_argument("--stories", type=int, default=300)
    parser.add_argument("--accounts", type=int, default=30, help="Accounts, spread over the three platforms.")
    parser.add_argument("--targets", type=int, default=5, help="Accounts each story goes to.")
    parser.add_argument("--short", action="store_true",
                        help="CI size: 2 workers, 40 stories, 4 kills, one of each outage, small storms.")
    parser.add_argument("--settle-timeout", type=float, default=None, help="Seconds to wait for quiescence.")
    parser.add_argument("--keep", action="store_true", help="Keep the working directory (logs) after a pass.")
    parser.add_argument("--verbose", action="store_true", help="Print each fault as it fires.")
    parser.add_argument("--pg-admin", default=None,
                        help="Fallback: use a private database on this shared server instead of a private "
                             "cluster (never restarted; its sessions are terminated instead).")
    a = parser.parse_args(argv)
    if a.short:
        cfg = Config(seed=a.seed, kills=4, workers=2, stories=40, accounts=12, targets=3, short=True,
                     concurrency=a.concurrency, settle_timeout=a.settle_timeout or 90.0)
    else:
        cfg = Config(seed=a.seed, kills=a.kills, workers=a.workers, stories=a.stories, accounts=a.accounts,
                     targets=a.targets, short=False, concurrency=a.concurrency,
                     settle_timeout=a.settle_timeout or 240.0)
    cfg.keep, cfg.verbose, cfg.pg_admin = a.keep, a.verbose, a.pg_admin
    for name in ("kills", "workers", "stories", "accounts", "targets"):
        if getattr(cfg, name) < (0 if name == "kills" else 1):
            parser.error(f"--{name}: must be at least {0 if name == 'kills' else 1}")
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
