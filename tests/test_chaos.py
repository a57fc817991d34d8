"""The chaos harness: its reckoning (which outcomes fail a run) on a real SQLite database and the real
stand-ins of all ten platforms, and its short run as CI runs it: real workers on a private Redis and
PostgreSQL, killed, flushed, restarted and stormed, with a slow create and a lost answer on every
platform; nothing may be lost, stuck or posted twice."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from adapters.standins import Fault, StandIn, standin_class
from bench.chaos import (
    PLATFORMS,
    POST_KINDS,
    Config,
    FaultLog,
    MediaServer,
    build_matrix,
    finish_processing,
    honour_methods,
    lease_lapses,
    make_media,
    queue_stories,
    reckon,
    tune_standins,
    verdict,
)
from bench.chaos_faults import CREATES, Plan, create_fault, make_schedule
from config.settings import reset_settings
from scheduler.core.db import session_scope
from scheduler.core.models import Account, Attempt, Delivery, Story
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


@pytest.fixture
def media_env(sqlite_env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The media directory served on loopback, as the harness serves it."""
    files = MediaServer(sqlite_env.data_dir / "media")
    monkeypatch.setenv("CROSSPOST_MEDIA_PUBLIC_URL", files.url)
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    yield files.url
    files.stop()


def test_reckoning_passes_a_clean_run_and_fails_every_forbidden_outcome(
        sqlite_env: Env, media_env: str, standins: dict[str, StandIn]) -> None:
    cfg = Config(seed=5, kills=0, workers=1, stories=40, accounts=10, targets=3, short=True)
    image, video = make_media(sqlite_env.data_dir / "source")
    assert image.url and image.url.startswith(media_env) and video.url
    expected = queue_stories(random.Random(1), cfg, build_matrix(standins, 10), 1.0, image, video)
    rows = _deliveries()
    # Every platform gets stories, Instagram, YouTube and TikTok with their media (queue checks passed).
    assert all(rows[p] for p in PLATFORMS), {p: len(v) for p, v in rows.items()}
    with session_scope() as s:
        medias = {p: {len(st.media or []) for st in s.scalars(
            select(Story).join(Delivery).join(Account).where(Account.platform == p))} for p in PLATFORMS}
    assert medias["instagram"] == medias["youtube"] == medias["tiktok"] == {1}
    assert medias["x"] == {0}
    for platform, items in rows.items():
        for d_id, handle, text in items:
            _post(standins[platform], platform, handle, text)
            _set(d_id, "published")
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, settled=True) == []
    assert sum(t.published for t in tallies.values()) == expected
    # The stand-ins spell some authors otherwise than crosspost stores them (YouTube: no @).
    _, yt_handle, yt_text = rows["youtube"][0]
    assert yt_handle.startswith("@")
    standins["youtube"].created[:] = [c for c in standins["youtube"].created if c.data["text"] != yt_text]
    _post(standins["youtube"], "youtube", yt_handle.removeprefix("@"), yt_text)
    tallies, _ = reckon(standins)
    assert verdict(tallies, expected, settled=True) == []

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
                for e in make_schedule(random.Random(f"{seed}:faults"), Plan.short(10.0, 5), workers=2)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)
    kinds = Counter(line.split()[1] for line in schedule(7))
    assert kinds["kill"] + kinds["kill_held"] == 4
    assert {k: kinds[k] for k in ("flushall", "redis_restart", "pg_restart", "pg_terminate", "storm")} == {
        "flushall": 1, "redis_restart": 1, "pg_restart": 1, "pg_terminate": 1, "storm": 3}
    # Every platform gets a slow create and a lost answer, aimed at its create request.
    placed = [e for e in make_schedule(random.Random("7:faults"), Plan.short(10.0, 5), workers=2)
              if e.kind in ("slow_create", "lost_answer")]
    assert Counter((e.kind, e.params["platform"]) for e in placed) == Counter(
        {(k, p): 1 for k in ("slow_create", "lost_answer") for p in PLATFORMS})
    for e in placed:
        fault = e.params["fault"]
        assert (fault.method, fault.path) == CREATES[e.params["platform"]]
        if e.kind == "slow_create":
            assert 5 < fault.delay < 10 and not fault.drop  # past the lease, inside the HTTP timeout
        else:
            assert fault.commit and fault.drop and not fault.delay


def test_create_faults_go_to_creates_only_and_are_logged() -> None:
    """LinkedIn looks posts up on the path it creates them on: a fault meant for the create must not
    be spent on a look-up."""
    log = FaultLog()
    with standin_class("linkedin")() as standin:
        honour_methods(standin, "linkedin", log)
        standin.inject(create_fault("linkedin", "5xx", status=503), Fault(status=502, path="/rest/posts"))
        creds = standin.add_account("urn:li:organization:100001")
        headers = {"Authorization": f"Bearer {creds['access_token']}", "LinkedIn-Version": "202511",
                   "X-Restli-Protocol-Version": "2.0.0"}
        got = requests.get(f"{standin.url}/rest/posts", headers=headers, timeout=5,
                           params={"q": "author", "author": "urn:li:organization:100001"})
        assert got.status_code == 502  # the plain fault matches any method
        got = requests.get(f"{standin.url}/rest/posts", headers=headers, timeout=5,
                           params={"q": "author", "author": "urn:li:organization:100001"})
        assert got.status_code != 503
        got = requests.post(f"{standin.url}/rest/posts", headers=headers, json={}, timeout=5)
        assert got.status_code == 503
    assert log.by_platform() == {"linkedin": {"5xx": 1, "untagged": 1}}


def test_tiktok_uploads_nobody_polled_are_finished_before_counting(tmp_path: Path) -> None:
    """TikTok publishes a complete upload whether or not crosspost polls it again: the reckoning
    counts such a post as made (an unknown delivery's post did go out)."""
    with standin_class("tiktok")() as standin:
        tune_standins({"tiktok": standin}, "http://127.0.0.1:1")
        creds = standin.add_account("tiktok1")
        auth = {"Authorization": f"Bearer {creds['access_token']}"}
        size = 1000
        info = {"title": "[cx1s1] a video", "privacy_level": "SELF_ONLY"}
        answers = [requests.post(f"{standin.url}/v2/post/publish/video/init/", headers=auth, timeout=5,
                                 json={"post_info": info, "source_info": {
                                     "source": "FILE_UPLOAD", "video_size": size, "chunk_size": size,
                                     "total_chunk_count": 1}}).json()["data"] for _ in range(2)]
        # The first upload completes, the second never starts.
        video = b"\0\0\0\x18ftypisom" + bytes(size - 12)
        put = requests.put(answers[0]["upload_url"], data=video, timeout=5, headers={
            "Content-Type": "video/mp4", "Content-Range": f"bytes 0-{size - 1}/{size}"})
        assert put.status_code == 201, put.text
        assert standin.posts() == []
        assert finish_processing({"tiktok": standin}) == 1
        assert [c.data["text"] for c in standin.posts()] == ["[cx1s1] a video"]


# -- the short run ----------------------------------------------------------------------------------


def _servers_missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which("initdb") is None:
        return "the PostgreSQL server binaries (initdb) are not installed"
    return None


def run_short(seed: int, *options: str) -> tuple[int, str, dict[str, Any]]:
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--short", "--seed", str(seed), *options]
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
    # The stories fall due at three instants over two announced slots, so deliveries go several per
    # message under the storm, as in a burst.
    code, out, summary = run_short(1, "--bursts", "3", "--publish-slots", "2")
    report = out[-6000:]
    assert "error" not in summary, report
    assert summary["batch_tasks"] > 0, report
    # No two attempts on one account started closer than its least interval, whatever was killed.
    assert summary["closest_starts_s"] is not None and summary["closest_starts_s"] >= 0.25 - 1e-3, report
    # Every fault of the short plan was really injected.
    faults = summary["faults"]
    assert summary["fault_errors"] == [], report
    assert faults["kills"] == 4 and faults["flushall"] == 1 and faults["redis_restart"] == 1, faults
    assert faults["pg_restart"] == 1 and faults["pg_terminate"] == 1 and faults["storms"] == 3, faults
    assert faults["slow_create"] == 10 and faults["lost_answer"] == 10, faults
    totals = summary["totals"]
    assert totals["deliveries"] == summary["expected_deliveries"], report
    assert totals["lost"] == 0 and totals["stuck"] == 0, report
    platforms = summary["platforms"]
    assert set(platforms) == set(PLATFORMS), report
    for platform, t in platforms.items():
        assert t["deliveries"] > 0, (platform, report)
        assert t["duplicates_not_unknown"] == 0, (platform, report)
    for platform in ("mastodon", "bluesky"):
        # Idempotent: never a duplicate, and a lost answer or a dead worker is simply retried.
        assert platforms[platform]["duplicates"] == 0, report
        assert platforms[platform]["unknown"] == 0, report
    # The new faults reached the creates they were aimed at on most platforms (a platform whose last
    # create came before its fault was armed leaves it unused; the run says so per platform).
    taken = Counter(tag for t in platforms.values() for tag, n in t["faults_taken"].items() for _ in range(n))
    shown = {p: t["faults_taken"] for p, t in platforms.items()}
    assert taken["slow"] >= 6 and taken["lost_answer"] >= 6, shown
    # Whatever is not unknown went out exactly once.
    assert totals["published"] + totals["unknown"] + totals["failed"] == totals["deliveries"], report
    assert summary["ok"] and code == 0, report


def test_a_lease_that_ran_out_while_no_worker_died_is_reported(
        sqlite_env: Env, standins: dict[str, StandIn]) -> None:
    cfg = Config(seed=5, kills=0, workers=1, stories=1, accounts=1, targets=1, short=True)
    queue_stories(random.Random(1), cfg, build_matrix({"x": standins["x"]}, 1), 1.0)
    now = datetime.now(UTC)
    with session_scope() as s:
        delivery = s.scalars(select(Delivery)).one()
        s.add(Attempt(delivery_id=delivery.id, number=1, started_at=now - timedelta(seconds=10),
                      ended_at=now - timedelta(seconds=2), outcome="lease_expired"))
    assert [x["delivery"] for x in lease_lapses([])] == [delivery.id]
    # A worker died while the attempt ran: the reaper took what a dead worker left, as it should.
    assert lease_lapses([(now - timedelta(seconds=5)).timestamp()]) == []
    assert len(lease_lapses([(now - timedelta(seconds=60)).timestamp()])) == 1
