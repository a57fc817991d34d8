"""``crosspost demo``: the whole pipeline on one machine, against the platform stand-ins.

It uses its own data directory (``<data_dir>/demo``) on the embedded default (SQLite database,
SQLite broker), starts the stand-ins in this process, creates a demo matrix, queues stories (one of
them with a per-platform variant), runs a real ``crosspost run`` process, and waits until every
delivery has ended. A 429 and a 503 are injected on the way, to show retries at work.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from adapters.base import Media
from adapters.standins import Fault, StandIn, standin_class
from config.settings import get_settings, reset_settings
from scheduler.core.db import dispose_engines, migrate, prepare_data_dir, session_scope
from scheduler.core.deliveries import TERMINAL
from scheduler.core.models import Account, Delivery, utcnow
from scheduler.core.vault import ensure_key
from scheduler.desk import users
from scheduler.desk.access import Actor
from scheduler.matrix import accounts
from scheduler.stories import drafts, media, queueing

MATRIX = [
    ("mastodon", "newsroom_en", ["en", "news"]),
    ("mastodon", "newsroom_es", ["es", "news"]),
    ("mastodon", "culture_desk", ["en", "culture"]),
    ("mastodon", "sport_desk", ["en", "sport"]),
    ("bluesky", "newsroom-en.test", ["en", "news"]),
    ("bluesky", "newsroom-es.test", ["es", "news"]),
    ("bluesky", "culture.test", ["en", "culture"]),
    ("bluesky", "sport.test", ["en", "sport"]),
    ("telegram", "@newsroom_en", ["en", "news"]),
    ("telegram", "@newsroom_es", ["es", "news"]),
    ("telegram", "@culture_desk", ["en", "culture"]),
    ("telegram", "@sport_desk", ["en", "sport"]),
    ("x", "newsroom", ["en", "news"]),
    ("facebook", "newsroom", ["en", "news"]),
    ("threads", "newsroom", ["en", "news"]),
    ("linkedin", "urn:li:organization:2414183", ["en", "news"]),
    ("instagram", "newsroom", ["video"]),
    ("youtube", "newsroom", ["video"]),
    ("tiktok", "newsroom", ["video"]),
]
THREAD = "Live blog, 06:00. " + " ".join(
    f"Update {i}: crews report progress on the northern ring road, and the city says the tunnel "
    "reopens this evening."
    for i in range(1, 8)
)
THREAD_TARGETS = ["x:newsroom", "bluesky:newsroom-en.test", "mastodon:newsroom_en", "threads:newsroom"]
STORIES = [
    ("Parliament passes the budget after a night-long session.", "https://example.org/budget", ["news"]),
    ("El festival de cine abre con un estreno mundial 🎬", "https://example.org/cine", ["es"]),
    ("Museums open late every Friday this winter. #culture", None, ["culture"]),
    ("Final score: 2-1. A late header settles the derby ⚽", "https://example.org/derby", ["sport"]),
    (
        "Election night live: results as they come in, region by region.",
        "https://example.org/live",
        ["en", "es"],
    ),
]


def run_demo(out: Console, keep: bool = False, timeout: float = 300.0,
             serve: tuple[str, int] | None = None) -> int:
    """``serve``: afterwards keep the dashboard open on the demo's data at (host, port) until stopped."""
    demo_dir = get_settings().data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    env = {
        **os.environ,
        "CROSSPOST_DATA_DIR": str(demo_dir),
        "CROSSPOST_DATABASE_URL": "",
        "CROSSPOST_BROKER_URL": "",
        "CROSSPOST_TICK_INTERVAL": "1",
        "CROSSPOST_BACKOFF_BASE": "2",
        "CROSSPOST_ACCOUNT_MIN_INTERVAL": "0.2",
        "CROSSPOST_LOG_LEVEL": "WARNING",
        # The stand-ins of platforms that pull media by URL check the URL, they do not fetch it.
        "CROSSPOST_MEDIA_PUBLIC_URL": "https://media.news.example/media",
    }
    os.environ.update(env)
    reset_settings()
    dispose_engines()
    prepare_data_dir(get_settings())
    ensure_key(get_settings())
    migrate()

    standins: dict[str, StandIn] = {
        p: standin_class(p)().start() for p in dict.fromkeys(m[0] for m in MATRIX)
    }
    for name in ("youtube", "tiktok", "x", "mastodon"):
        standins[name].processing_polls = 1  # type: ignore[attr-defined] - one "still processing" answer
    try:
        _build_matrix(standins)
        _queue_stories(demo_dir)
        standins["mastodon"].inject(Fault(status=429, retry_after=2, path="/api/v1/statuses"))
        standins["bluesky"].inject(Fault(status=503, path="putRecord"))
        out.print(
            f"demo: {len(MATRIX)} accounts on {len(standins)} platform stand-ins; "
            f"{len(STORIES) + 2} stories queued; starting `crosspost run`"
        )
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "run", "--no-serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            done = _wait(timeout, out)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        elapsed = time.monotonic() - started
        code = _report(out, standins, done, elapsed, worker)
        if serve is not None:
            _serve_dashboard(out, *serve)
        return code
    finally:
        for standin in standins.values():
            standin.stop()
        dispose_engines()
        if not keep:
            shutil.rmtree(demo_dir, ignore_errors=True)


def _serve_dashboard(out: Console, host: str, port: int) -> None:
    """The dashboard on the demo's data, with a demo admin whose password is made here and printed once."""
    from scheduler.cli.serving import serve

    password = secrets.token_urlsafe(12)
    with session_scope() as s:
        users.add(s, Actor.cli(), "demo", utcnow(), password=password, roles=[users.parse_role(s, "admin")])
    out.print(f"demo: the dashboard is at http://{host}:{port}/ui/ ; sign in as demo with password "
              f"{password} (Ctrl-C stops it)", highlight=False)
    serve(host, port, "warning")


def _build_matrix(standins: dict[str, StandIn]) -> None:
    # As an operator adds accounts: each platform (its stand-in) is asked whose the credentials are.
    for i, (platform, handle, tags) in enumerate(MATRIX):
        creds = standins[platform].add_account(handle, followers=1000 * (i + 1))
        accounts.connect(
            platform,
            handle,
            creds,
            tags=tags,
            base_url=standins[platform].url,
            tz="Europe/Madrid" if "es" in tags else "UTC",
            language="es" if "es" in tags else "en",
        )


def _demo_media(folder: Path) -> tuple[Media, Media]:
    photo, clip = folder / "harbour.jpg", folder / "clip.mp4"
    Image.new("RGB", (1200, 800), (30, 90, 160)).save(photo, "JPEG")
    clip.write_bytes(_tiny_mp4(1280, 720))
    return media.ingest(str(photo), alt="The harbour at dawn, cranes against a blue sky"), media.ingest(
        str(clip)
    )


def _tiny_mp4(width: int, height: int) -> bytes:
    """An MP4 skeleton (ftyp, a video track header, some data): enough for the stand-ins' checks."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    tkhd = bytes(76) + struct.pack(">II", width << 16, height << 16)
    return (
        box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
        + box(b"moov", box(b"trak", box(b"tkhd", tkhd)))
        + box(b"mdat", bytes(64 * 1024))
    )


def _queue_stories(folder: Path) -> None:
    now = utcnow()
    photo, clip = _demo_media(folder)
    for i, (text, link, targets) in enumerate(STORIES):
        draft = drafts.Draft(text=text, link=link, targets=targets)
        if i == 0:
            draft.variants = {"telegram": text + "\n\nFollow the channel for live updates."}
            draft.media = [photo]
        with session_scope() as s:
            queueing.queue(s, draft, now)
    with session_scope() as s:
        queueing.queue(s, drafts.Draft(text=THREAD, targets=THREAD_TARGETS, thread=True), now)
        queueing.queue(
            s,
            drafts.Draft(
                text="Harbour timelapse: the first container ship of the winter.\n"
                "Filmed at dawn from the north pier. #harbour",
                targets=["video"],
                media=[clip],
            ),
            now,
        )


def _wait(timeout: float, out: Console) -> bool:
    """Wait for every delivery to settle, printing progress (published so far, by platform) whenever it
    changes, so the video platforms' simulated processing is not two silent minutes."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        with session_scope() as s:
            rows = s.execute(
                select(Account.platform, Delivery.state, func.count())
                .join(Account, Account.id == Delivery.account_id)
                .group_by(Account.platform, Delivery.state)
            ).all()
        total = sum(n for _, _, n in rows)
        done = {p: n for p, state, n in rows if state == "published"}
        pending = sum(n for _, state, n in rows if state not in (*TERMINAL, "unknown", "blocked_auth"))
        line = (f"published {sum(done.values())}/{total}: "
                + ", ".join(f"{p} {done.get(p, 0)}" for p in sorted({p for p, _, _ in rows})))
        if line != shown:
            out.print(line)
            shown = line
        if not pending:
            return True
        time.sleep(0.5)
    return False


def _story_label(story_id: int, text: str) -> str:
    """The story by its id and first words, so each row says what went out, within 100 columns."""
    words = " ".join(text.split())
    return f"{story_id} {words[:12]}…" if len(words) > 13 else f"{story_id} {words}"


def _report(
    out: Console, standins: dict[str, StandIn], done: bool, elapsed: float, worker: subprocess.Popen[str]
) -> int:
    table = Table(title="What went where", width=min(out.width, 100))
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("story", no_wrap=True)
    table.add_column("account", overflow="fold", max_width=20)
    table.add_column("state", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("link or reason", overflow="fold", min_width=24)
    with session_scope() as s:
        rows = s.scalars(select(Delivery).order_by(Delivery.story_id, Delivery.id)).all()
        for d in rows:
            table.add_row(
                str(d.id),
                _story_label(d.story_id, d.story.text),
                d.account.label,
                d.state,
                str(d.attempts),
                d.published_url or d.last_error or "",
            )
        published = sum(d.state == "published" for d in rows)
    out.print(table)
    created = sum(len(st.posts()) for st in standins.values())
    dupes = sum(st.duplicates() for st in standins.values())
    out.print(
        f"{published}/{len(rows)} deliveries published in {elapsed:.1f} s "
        f"({published / elapsed:.1f} deliveries/s including start-up); the stand-ins hold "
        f"{created} posts, {dupes} duplicates"
    )
    if not done or published != len(rows) or dupes:
        tail = (worker.stderr.read() if worker.stderr else "")[-2000:]
        out.print(f"demo FAILED: not every delivery was published exactly once\n{tail}")
        return 1
    return 0
