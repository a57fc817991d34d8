"""The whole pipeline with real processes: `crosspost worker` / `beat` / `run` subprocesses, real
Redis + PostgreSQL, and the embedded default (SQLite + SQLAlchemy transport), against the stand-ins."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import func, select

from adapters.base import Credentials
from adapters.standins import Fault, StandIn, standin_class
from config.settings import get_settings
from scheduler.celery_app import create_app
from scheduler.core import deliveries
from scheduler.core.db import dispose_engines, session_scope
from scheduler.core.models import Attempt, Delivery, utcnow
from scheduler.matrix import accounts
from scheduler.stories import drafts, queueing
from tests.conftest import Env, free_port, start_redis_server, wait_for

PLATFORMS = ("mastodon", "bluesky", "telegram")
# Where each platform's stand-in creates a post: a fault aimed there holds the request open after the post.
CREATE_PATHS = {"mastodon": "/api/v1/statuses", "bluesky": "putRecord", "telegram": "sendMessage"}
pytestmark = pytest.mark.workers


@pytest.fixture
def standins() -> Iterator[dict[str, StandIn]]:
    started = {p: standin_class(p)().start() for p in PLATFORMS}
    yield started
    for standin in started.values():
        standin.stop()


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []
        self.env: Env | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        assert self.env is not None
        proc = self.env.spawn(*args, log=self.logs / f"{args[0]}.log")
        self.running.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.stop_all()


def matrix(standins: dict[str, StandIn], per_platform: int) -> list[int]:
    ids = []
    with session_scope() as s:
        for platform, standin in standins.items():
            for i in range(per_platform):
                handle = f"@{platform}{i}" if platform == "telegram" else f"{platform}{i}"
                creds = Credentials(standin.add_account(handle, followers=100 + i))
                ids.append(accounts.add(s, platform, handle, creds, base_url=standin.url, tags=["all"]).id)
    return ids


def queue(n: int, tag: str = "all") -> None:
    for i in range(n):
        with session_scope() as s:
            queueing.queue(s, drafts.Draft(text=f"Story {i}: the news of the day, told once. #{i}",
                                           link=f"https://example.org/{i}", targets=[tag]), utcnow())


def states() -> dict[str, int]:
    with session_scope() as s:
        return dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())


def settled() -> bool:
    return not set(states()) & {"scheduled", "queued", "publishing", "retry_wait"}


def wait_states(done: Callable[[], bool] | dict[str, int], timeout: float, what: str,
                procs: Processes) -> None:
    """Wait for ``done`` (a predicate, or the exact states it must reach); fail with the states and the
    processes' logs."""
    check = (lambda: states() == done) if isinstance(done, dict) else done
    try:
        wait_for(check, timeout, what=what)
    except AssertionError:
        raise AssertionError(f"states {states()}\n{procs.log_tail()}") from None


def assert_each_once(standins: dict[str, StandIn], expected_per_platform: int) -> None:
    for platform, standin in standins.items():
        assert len(standin.posts()) == expected_per_platform, platform
        assert standin.duplicates() == 0, platform


def run_pipeline(env: Env, procs: Processes, standins: dict[str, StandIn], commands: list[list[str]]) -> None:
    procs.env = env
    matrix(standins, per_platform=2)
    queue(5)
    for command in commands:
        procs.start(*command)
    wait_states({"published": 30}, 120, "30 deliveries published", procs)
    assert_each_once(standins, 10)
    with session_scope() as s:
        urls = s.scalars(select(Delivery.published_url)).all()
    assert all(urls) and len(set(urls)) == 30


def test_redis_postgres_workers_publish_each_delivery_once(
        pg_env: Env, redis_url: str, standins: dict[str, StandIn], procs: Processes) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    run_pipeline(pg_env, procs, standins, [["worker"], ["worker", "--concurrency", "4"], ["beat"]])


def test_embedded_default_publishes_each_delivery_once(
        sqlite_env: Env, standins: dict[str, StandIn], procs: Processes) -> None:
    run_pipeline(sqlite_env, procs, standins, [["run", "--no-serve"]])
    log = procs.logs / "run.log"
    # Every publish says what became of it; beat's housekeeping (a tick a second) says nothing at INFO,
    # then or while idle.
    assert log.read_text().count(": published") >= 30
    before = log.stat().st_size
    time.sleep(3)  # three ticks
    idle = [line for line in log.read_text().splitlines() if " INFO " in line]
    routine = re.compile(r"Sending due task|Task crosspost\.\w*tick\[")
    assert not [line for line in idle if routine.search(line)], idle[-5:]
    assert log.stat().st_size == before, log.read_text()[before:]


def test_a_burst_beyond_the_workers_slots_is_published_once_in_batches(
        pg_env: Env, redis_url: str, standins: dict[str, StandIn], procs: Processes) -> None:
    """The worker announces its two slots; the tick hands the 30 deliveries due at once out several per
    message, and each is still published exactly once. Stopped, the worker withdraws its slots."""
    redis.Redis.from_url(redis_url).flushdb()
    procs.env = pg_env
    pg_env.set(publish_batch_max="4")
    worker = procs.start("worker", "--concurrency", "2")
    wait_for(lambda: live_slots() == 2, 60, what="the worker's two slots announced")
    run_pipeline(pg_env, procs, standins, [["beat"]])
    assert "Task crosspost.publish_batch[" in (procs.logs / "worker.log").read_text()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0  # asked to stop: a clean exit
    assert live_slots() == 0


def test_messages_that_reach_the_worker_late_still_keep_the_accounts_interval(
        pg_env: Env, redis_url: str, standins: dict[str, StandIn], procs: Processes) -> None:
    """The tick hands out one account's next three posts a quarter second apart, and the worker starts
    only after all three send times have passed: they still begin ACCOUNT_MIN_INTERVAL apart."""
    redis.Redis.from_url(redis_url).flushdb()
    procs.env = pg_env
    pg_env.set(account_min_interval="0.25")
    mastodon = standins["mastodon"]
    with session_scope() as s:
        accounts.add(s, "mastodon", "spaced", Credentials(mastodon.add_account("spaced")),
                     base_url=mastodon.url, tags=["spaced"])
    queue(4, tag="spaced")
    handed = pg_env.cli("tick")
    assert handed.returncode == 0, handed.stderr
    assert states().get("queued") == 3, states()  # now, +0.25 s, +0.5 s: a 0.5 s tick's worth
    time.sleep(2)
    procs.start("worker")
    procs.start("beat")
    wait_states({"published": 4}, 60, "4 deliveries published", procs)
    with session_scope() as s:
        starts = sorted(s.scalars(select(Attempt.started_at)).all())
    assert len(starts) == 4 and len(mastodon.posts()) == 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.25, gaps


def live_slots() -> int:
    from scheduler.core import workers

    with session_scope() as s:
        return workers.live_slots(s, utcnow())


def test_worker_killed_mid_batch(pg_env: Env, redis_url: str, standins: dict[str, StandIn],
                                 procs: Processes) -> None:
    """kill -9 while the first delivery of a three-delivery message is held open after its post was made:
    the two behind it, never started, are handed out again and published; the one in flight ends as
    its platform allows (published after a lookup, or unknown on Telegram); no platform posts twice."""
    redis.Redis.from_url(redis_url).flushdb()
    procs.env = pg_env
    pg_env.set(publish_slots="1", publish_batch_max="8")
    matrix(standins, per_platform=1)
    for platform, standin in standins.items():
        standin.inject(Fault(delay=30, commit=True, path=CREATE_PATHS[platform]))
    queue(1)
    tick = pg_env.cli("tick")
    assert tick.returncode == 0, tick.stderr
    worker = procs.start("worker")
    wait_for(lambda: sum(len(s.posts()) for s in standins.values()) == 1, 60, what="the first post held open")
    time.sleep(1)  # long enough for a second publish to have begun, were the three not one message
    assert states() == {"publishing": 1, "queued": 2}
    held = next(p for p, s in standins.items() if s.posts())
    procs.kill9(worker)
    for standin in standins.values():
        standin.clear_faults()
    procs.start("worker")
    procs.start("beat")
    wait_states(settled, 60, "deliveries settled after the crash", procs)
    with session_scope() as s:
        by_platform = {d.account.platform: d.state for d in s.scalars(select(Delivery))}
    assert by_platform == {p: "unknown" if p == held == "telegram" else "published" for p in PLATFORMS}
    for platform, standin in standins.items():
        assert standin.duplicates() == 0, platform
        assert len(standin.posts()) == 1, platform


def test_a_worker_celery_stops_by_itself_exits_with_a_failure(
        pg_env: Env, standins: dict[str, StandIn], procs: Processes) -> None:
    """Redis restarts while the worker holds unacknowledged messages: kombu 5.7 cannot restore them and
    Celery stops the worker, with status 0. Nobody asked it to stop, so crosspost's worker says so and
    exits 1, for a supervisor's restart-on-failure. (Should kombu recover instead, the worker must
    still be running, and publish once Redis is back.)"""
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is needed (tests/services.sh installs it)"
    port = free_port()

    def start_redis() -> subprocess.Popen[bytes]:
        proc = start_redis_server(server, port)
        assert redis.Redis(port=port).ping(), "the test's Redis did not start"
        return proc

    broker = start_redis()
    try:
        pg_env.set(broker_url=f"redis://127.0.0.1:{port}/0")
        procs.env = pg_env
        matrix(standins, per_platform=1)
        for standin in standins.values():
            standin.inject(Fault(delay=8, commit=True))
        queue(1)
        tick = pg_env.cli("tick")
        assert tick.returncode == 0, tick.stderr
        worker = procs.start("worker")
        wait_for(lambda: sum(len(s.posts()) for s in standins.values()) >= 1, 60, what="a post held open")
        broker.kill()
        broker.wait(10)
        broker = start_redis()
        try:
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            code = None  # kombu recovered: the worker goes on
        log = procs.log_tail()
        if code is None:
            wait_for(settled, 60, what="deliveries settled after the broker came back")
        else:
            assert code == 1, log
            assert "the worker stopped without being asked to" in log, log
    finally:
        broker.kill()
        broker.wait(10)


def test_worker_killed_mid_publish(pg_env: Env, redis_url: str, standins: dict[str, StandIn],
                                   procs: Processes) -> None:
    """kill -9 while every platform holds the request open after creating the post: the idempotent
    platforms end published with one post; Telegram, which cannot tell, ends unknown, never posted twice."""
    redis.Redis.from_url(redis_url).flushdb()
    procs.env = pg_env
    matrix(standins, per_platform=1)
    for platform, standin in standins.items():
        standin.inject(Fault(delay=25, commit=True, path=CREATE_PATHS[platform]))
    worker = procs.start("worker")
    procs.start("beat")
    queue(1)
    wait_for(lambda: all(len(s.posts()) == 1 for s in standins.values()), 60, what="posts held open")
    assert states() == {"publishing": 3}
    procs.kill9(worker)
    procs.start("worker")
    wait_states(settled, 60, "deliveries settled after the crash", procs)
    by_platform = {}
    with session_scope() as s:
        for d in s.scalars(select(Delivery)):
            by_platform[d.account.platform] = d.state
    assert by_platform == {"mastodon": "published", "bluesky": "published", "telegram": "unknown"}
    assert_each_once(standins, 1)


def test_flushall_while_queued_loses_nothing(pg_env: Env, redis_url: str, standins: dict[str, StandIn],
                                             procs: Processes) -> None:
    procs.env = pg_env
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    matrix(standins, per_platform=1)
    queue(3)
    tick = pg_env.cli("tick")
    assert tick.returncode == 0, tick.stderr
    assert states() == {"queued": 9}
    client.flushdb()  # the broker forgets every message
    procs.start("worker")
    procs.start("beat")
    wait_states({"published": 9}, 60, "all published after FLUSHALL", procs)
    assert_each_once(standins, 3)


def test_publish_retries_itself_on_a_database_error(pg_env: Env, pg_admin: str, redis_url: str,
                                                    standins: dict[str, StandIn], procs: Processes) -> None:
    """The database refuses connections when the worker takes the delivery: the task retries itself
    within seconds (no beat runs here, so nothing else would ever hand the delivery out again)."""
    redis.Redis.from_url(redis_url).flushdb()
    procs.env = pg_env
    matrix({"mastodon": standins["mastodon"]}, per_platform=1)
    queue(1)
    with session_scope() as s:
        claimed = deliveries.claim_due(s, utcnow() + timedelta(seconds=1), 10)
    assert len(claimed) == 1
    procs.start("worker")
    wait_for(lambda: "ready" in procs.log_tail(), 60, what="the worker to be ready")
    name = pg_env.database_url.rsplit("/", 1)[1]
    dispose_engines()
    with psycopg.connect(pg_admin, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        create_app(get_settings()).send_task("crosspost.publish", args=[claimed[0]])
        try:
            wait_for(lambda: "OperationalError" in procs.log_tail(), 60, what="the worker meeting the outage")
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    wait_states({"published": 1}, 60, "published after the outage", procs)
    assert len(standins["mastodon"].posts()) == 1
