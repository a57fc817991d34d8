"""The chaos harness: its reckoning (which outcomes fail a run) on a real SQLite database and real
stand-ins, and its short run as CI runs it: real workers on a private Redis and PostgreSQL, killed,
flushed, restarted and stormed; nothing may be lost, stuck or posted twice."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.standins import StandIn, standin_class
from bench.chaos import PLATFORMS, POST_KINDS, Config, build_matrix, queue_stories, reckon, verdict
from bench.chaos_faults import Plan, make_schedule
from scheduler.db import session_scope
from scheduler.models import Account, Delivery, Story
from tests.conftest import IN_CI, Env

ROOT = Path(__file__).resolve().parent.parent


# -- the reckoning ----------------------------------------------------------------------------------
@pytest.fixture
def standins() -> Iterator[dict[str, StandIn]]:
    started = {p: standin_class(p)().start() for p in PLATFORMS}
    yield started
    for standin in started.values():
        standin.stop()


def _deliveries() -> dict[str, list[tuple[int, str, str]]]:
    """platform -> (delivery id, handle, story text), in delivery order."""
    found: dict[str, list[tuple[int, str, str]]] = {p: [] for p in PLATFORMS}
    with session_scope() as s:
        for d_id, platform, handle, text in s.execute(
                select(Delivery.id, Account.platform, Account.handle, Story.text)
                .join(Account, Account.id == Delivery.account_id).join(Story, Story.id == Delivery.story_id)
                .order_by(Delivery.id)):
            found[platform].append((d_id, handle, text))
    return found


def _set(delivery_id: int, state: str) -> None:
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id == delivery_id).values(state=state))


def _post(standin: StandIn, platform: str, handle: str, text: str, times: int = 1) -> None:
    for _ in range(times):
        standin.record(POST_KINDS[platform], {"account": handle, "text": text})


def test_reckoning_passes_a_clean_run_and_fails_every_forbidden_outcome(
        sqlite_env: Env, standins: dict[str, StandIn]) -> None:
    cfg = Config(seed=5, kills=0, workers=1, stories=2, accounts=3, targets=3, short=True)
    expected = queue_stories(random.Random(1), cfg, build_matrix(standins, 3), 1.0)
    assert expected == 6
    rows = _deliveries()
    for platform, items in rows.items():
        for d_id, handle, text in items:
            _post(standins[platform], platform, handle, text)
            _set(d_id, "published")
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, settled=True) == []
    assert sum(t.published for t in tallies.values()) == 6

    # Telegram may post twice only on a delivery marked unknown.
    tg_id, tg_handle, tg_text = rows["telegram"][0]
    _post(standins["telegram"], "telegram", tg_handle, tg_text)
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, True) == [
        "telegram: 1 duplicate posts on deliveries not marked unknown"]
    _set(tg_id, "unknown")
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, True) == []
    assert tallies["telegram"].unknown_posted == 1 and tallies["telegram"].duplicates == 1

    # An idempotent platform may never post twice, unknown or not.
    m_id, m_handle, m_text = rows["mastodon"][0]
    _post(standins["mastodon"], "mastodon", m_handle, m_text)
    _set(m_id, "unknown")
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, True) == ["mastodon: 1 duplicate posts on an idempotent platform"]

    # Published without a post is lost; a delivery still waiting is stuck.
    gone = rows["bluesky"][1][2]
    standins["bluesky"].created[:] = [c for c in standins["bluesky"].created if c.data["text"] != gone]
    _set(rows["bluesky"][0][0], "retry_wait")
    tallies, _ = reckon(standins)
    problems = verdict(tallies, expected, True)
    assert "bluesky: 1 deliveries marked published with no post on the platform" in problems
    assert "bluesky: 1 deliveries stuck in {'retry_wait': 1}" in problems


def test_the_fault_schedule_is_replayed_from_its_seed() -> None:
    def schedule(seed: int) -> list[str]:
        return [e.describe() + repr(e.params.get("faults"))
                for e in make_schedule(random.Random(f"{seed}:faults"), Plan.short(3.0), workers=2)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)
    kinds = Counter(line.split()[1] for line in schedule(7))
    assert kinds["kill"] + kinds["kill_held"] == 4
    assert {k: kinds[k] for k in ("flushall", "redis_restart", "pg_restart", "pg_terminate", "storm")} == {
        "flushall": 1, "redis_restart": 1, "pg_restart": 1, "pg_terminate": 1, "storm": 3}


# -- the short run ----------------------------------------------------------------------------------


def _servers_missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which("initdb") is None:
        return "the PostgreSQL server binaries (initdb) are not installed"
    return None


def run_short(seed: int) -> tuple[int, str, dict[str, Any]]:
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--short", "--seed", str(seed)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the harness stop its workers, Redis and PostgreSQL before it exits.
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"the chaos run did not finish in 240 s; its output ends:\n{out[-6000:]}")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        summary = json.loads(last)["chaos"]
    except (ValueError, KeyError):
        pytest.fail(f"the chaos run printed no summary (exit {proc.returncode}); "
                    f"its output ends:\n{out[-6000:]}")
    return proc.returncode, out, summary


@pytest.mark.workers
@pytest.mark.timeout(360)
def test_short_chaos_run_loses_nothing_and_never_posts_twice() -> None:
    missing = _servers_missing()
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    code, out, summary = run_short(seed=1)
    report = out[-6000:]
    assert "error" not in summary, report
    # Every fault of the short plan was really injected.
    faults = summary["faults"]
    assert summary["fault_errors"] == [], report
    assert faults["kills"] == 4 and faults["flushall"] == 1 and faults["redis_restart"] == 1, faults
    assert faults["pg_restart"] == 1 and faults["pg_terminate"] == 1 and faults["storms"] == 3, faults
    totals = summary["totals"]
    assert totals["deliveries"] == summary["expected_deliveries"] == 120, report
    assert totals["lost"] == 0 and totals["stuck"] == 0, report
    for platform in ("mastodon", "bluesky"):
        assert summary["platforms"][platform]["duplicates"] == 0, report
        assert summary["platforms"][platform]["unknown"] == 0, report
    assert summary["platforms"]["telegram"]["duplicates_not_unknown"] == 0, report
    # Whatever is not unknown went out exactly once.
    assert totals["published"] + totals["unknown"] + totals["failed"] == totals["deliveries"], report
    assert summary["ok"] and code == 0, report
