"""Bad input to the real ``crosspost`` command: one line that names the problem, a non-zero exit code,
no traceback, and not one row changed.

Each case runs the CLI as a subprocess on a seeded embedded database; the database is read before and
after (every table, every row, and the schema) and must be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from adapters.base import Credentials
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, utcnow
from scheduler.followers import sampling
from scheduler.matrix import accounts
from scheduler.stories import drafts, queueing
from tests.conftest import Env

TOKEN = "tok-SECRET-cli-input-7f3a9c"
FUTURE = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class Seeded:
    """Ids of the rows the cases refer to."""

    story: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    finished: int = 0  # every delivery published
    cancelled: int = 0


def seed() -> Seeded:
    """Three accounts (one auth_broken) and one story whose deliveries are set to the states that
    operator commands refuse."""
    seeded = Seeded()
    with session_scope() as s:
        creds = Credentials({"access_token": TOKEN})
        masto = accounts.add(s, "mastodon", "newsroom", creds, tags=["news"], base_url="http://127.0.0.1:9")
        accounts.add(s, "telegram", "@newsroom", Credentials({"bot_token": "123456:" + TOKEN}),
                     tags=["news"])
        accounts.add(s, "bluesky", "newsroom.example", creds, tags=["en"])
        broken = accounts.add(s, "bluesky", "broken.example", creds, tags=["en"])
        broken.status = "auth_broken"
        story = queueing.queue(s, drafts.Draft(text="Seeded story", targets=["news", "en"],
                                               at=utcnow() + timedelta(days=1)), utcnow())
        seeded.story = story.id
        ids = [d.id for d in story.deliveries]
        for delivery_id, state in zip(ids, ("published", "failed", "unknown", "scheduled"), strict=True):
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(state=state))
            seeded.by_state[state] = delivery_id
        finished = queueing.queue(s, drafts.Draft(text="Finished story", targets=["news"]), utcnow())
        s.execute(update(Delivery).where(Delivery.story_id == finished.id).values(state="published"))
        cancelled = queueing.queue(s, drafts.Draft(text="Cancelled story", targets=["en"],
                                                   at=utcnow() + timedelta(days=2)), utcnow())
        queueing.cancel(s, cancelled, utcnow())
        seeded.finished, seeded.cancelled = finished.id, cancelled.id
        # One follower sample, so that `followers report --chart` gets as far as drawing.
        sampling.record(s, masto.id, utcnow(), 42)
    return seeded


def snapshot(db_file: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, and the schema, of the SQLite file (WAL included)."""
    conn = sqlite3.connect(db_file)
    try:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        snap: dict[str, list[tuple[object, ...]]] = {"__schema__": schema}
        for table in tables:
            snap[table] = sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        return snap
    finally:
        conn.close()


def assert_refused(result: object, *needles: str) -> str:
    """The command failed cleanly: exit code not 0, no traceback, exactly one line on standard error,
    starting ``error:`` and containing every needle."""
    stdout, stderr, code = result.stdout, result.stderr, result.returncode  # type: ignore[attr-defined]
    assert code != 0, f"exit code 0 for bad input\nstdout: {stdout[-2000:]}"
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert len(line) < 400, f"error line of {len(line)} characters"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert TOKEN not in stderr + stdout
    return line


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Input files the cases point at."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "creds.json").write_text(json.dumps({"access_token": "tok-new-0123456789"}))
    (d / "not-json.json").write_text('{"access_token": "' + TOKEN + '",}')  # trailing comma
    (d / "array.json").write_text(json.dumps([TOKEN]))
    (d / "empty-object.json").write_text("{}")
    stories_yaml = {
        "not-yaml.yaml": "text: [unclosed\nto: news\n",
        "list.yaml": "- text\n- to\n",
        "unknown-field.yaml": "text: hi\nto: news\ncolour: red\n",
        "text-list.yaml": "text: [1, 2]\nto: news\n",
        "link-number.yaml": "text: hi\nlink: 5\nto: news\n",
        "at-month-13.yaml": "text: hi\nto: news\nat: 2031-13-01\n",
    }
    for name, body in stories_yaml.items():
        (d / name).write_text(body)
    (d / "dir.png").mkdir()
    return d


# (id, argv with {in} for the input directory, {failed}/{published}/{unknown}/{scheduled} for delivery
#  ids and {story} for the seeded story, stdin, needles the error line must contain)
CASES: list[tuple[str, list[str], str | None, tuple[str, ...]]] = [
    # -- accounts ------------------------------------------------------------------------------
    ("account-unknown-label", ["accounts", "show", "mastodon:nobody"], None,
     ("account:", "no account 'mastodon:nobody'")),
    ("account-huge-id", ["accounts", "show", "9" * 30], None, ("account:", "no account")),
    ("account-not-a-ref", ["accounts", "show", "nobody"], None, ("account:", "neither an id nor")),
    ("account-arabic-digit", ["accounts", "show", "\u0663"], None, ("account:",)),
    ("pause-unknown", ["accounts", "pause", "telegram:@nobody"], None, ("account:", "no account")),
    ("resume-unknown", ["accounts", "resume", "77"], None, ("account:", "no account '77'")),
    ("remove-unknown", ["accounts", "remove", "bluesky:nobody.example"], None, ("account:", "no account")),
    ("add-unknown-platform", ["accounts", "add", "myspace", "x", "--credentials-file", "{in}/creds.json"],
     None, ("platform:", "'myspace'")),
    ("add-handle-space", ["accounts", "add", "mastodon", "two words", "--credentials-file",
                          "{in}/creds.json"], None, ("handle:",)),
    ("add-handle-not-utf8", ["accounts", "add", "mastodon", "caf\udce9", "--credentials-file",
                             "{in}/creds.json"], None, ("handle:",)),
    ("add-duplicate", ["accounts", "add", "mastodon", "newsroom", "--credentials-file", "{in}/creds.json"],
     None, ("account:", "already exists")),
    ("add-bad-tz", ["accounts", "add", "mastodon", "x", "--tz", "Mars/Olympus_Mons", "--credentials-file",
                    "{in}/creds.json"], None, ("tz:", "'Mars/Olympus_Mons'")),
    ("add-tz-path", ["accounts", "add", "mastodon", "x", "--tz", "../../etc/passwd", "--credentials-file",
                     "{in}/creds.json"], None, ("tz:",)),
    ("add-base-url-scheme", ["accounts", "add", "mastodon", "x", "--base-url", "ftp://example.org",
                             "--credentials-file", "{in}/creds.json"], None, ("base-url:",)),
    ("add-base-url-ipv6", ["accounts", "add", "mastodon", "x", "--base-url", "http://[::1",
                           "--credentials-file", "{in}/creds.json"], None, ("base-url:",)),
    ("creds-option-missing", ["accounts", "add", "mastodon", "x"], None, ("credentials-file:", "required")),
    ("creds-file-missing", ["accounts", "add", "mastodon", "x", "--credentials-file", "{in}/nope.json"],
     None, ("credentials-file:", "nope.json")),
    ("creds-not-json", ["accounts", "add", "mastodon", "x", "--credentials-file", "{in}/not-json.json"],
     None, ("credentials:", "not JSON")),
    ("creds-array", ["accounts", "add", "mastodon", "x", "--credentials-file", "{in}/array.json"], None,
     ("credentials:", "JSON object")),
    ("creds-empty-object", ["accounts", "add", "mastodon", "x", "--credentials-file",
                            "{in}/empty-object.json"], None, ("credentials:", "empty")),
    ("creds-deep-nesting", ["accounts", "add", "mastodon", "x", "--credentials-file", "-"],
     "[" * 100_000, ("credentials:",)),
    # -- stories -------------------------------------------------------------------------------
    ("queue-at-not-iso", ["stories", "queue", "--text", "hi", "--to", "news", "--at", "tomorrow 9am"], None,
     ("at:", "ISO-8601")),
    ("queue-at-no-offset", ["stories", "queue", "--text", "hi", "--to", "news", "--at", "2031-01-01T09:00"],
     None, ("at:", "no UTC offset")),
    ("queue-at-past", ["stories", "queue", "--text", "hi", "--to", "news", "--at", "2020-01-01T09:00Z"],
     None, ("at:", "in the past")),
    ("queue-at-out-of-range", ["stories", "queue", "--text", "hi", "--to", "news", "--at",
                               "0001-01-01T00:00+05:00"], None, ("at:", "out of range")),
    ("queue-at-and-now", ["stories", "queue", "--text", "hi", "--to", "news", "--at", FUTURE, "--now"], None,
     ("at:", "--now")),
    ("queue-variant-no-equals", ["stories", "queue", "--text", "hi", "--to", "news", "--variant", "telegram"],
     None, ("variant:", "PLATFORM=TEXT")),
    ("queue-variant-unknown-platform", ["stories", "queue", "--text", "hi", "--to", "news", "--variant",
                                        "myspace=hello"], None, ("variant:", "'myspace'")),
    ("queue-text-empty", ["stories", "queue", "--text", "", "--to", "news"], None, ("text:", "empty")),
    ("queue-text-10mb-file", ["stories", "queue", "--file", "{in}/ten-mb.yaml"], None,
     ("text:", "10000000", "100000")),
    ("queue-text-not-utf8", ["stories", "queue", "--text", "caf\udce9", "--to", "news"], None,
     ("text:", "Unicode")),
    ("queue-text-too-long-for-mastodon", ["stories", "queue", "--text", "z" * 600, "--to",
                                          "mastodon:newsroom"], None,
     ("mastodon:newsroom", "text:", "500")),
    ("queue-unknown-tag", ["stories", "queue", "--text", "hi", "--to", "sports"], None, ("to:", "'sports'")),
    ("queue-unknown-account", ["stories", "queue", "--text", "hi", "--to", "mastodon:nobody"], None,
     ("account:", "mastodon:nobody")),
    ("file-missing", ["stories", "queue", "--file", "{in}/nope.yaml"], None, ("file:", "nope.yaml")),
    ("file-not-yaml", ["stories", "queue", "--file", "{in}/not-yaml.yaml"], None,
     ("file:", "not valid YAML")),
    ("file-not-mapping", ["stories", "queue", "--file", "{in}/list.yaml"], None, ("file:", "mapping")),
    ("file-unknown-field", ["stories", "queue", "--file", "{in}/unknown-field.yaml"], None,
     ("file:", "colour")),
    ("file-text-list", ["stories", "queue", "--file", "{in}/text-list.yaml"], None, ("text:", "list")),
    ("file-link-number", ["stories", "queue", "--file", "{in}/link-number.yaml"], None, ("link:",)),
    ("file-at-month-13", ["stories", "queue", "--file", "{in}/at-month-13.yaml"], None, ("file:",)),
    ("story-show-unknown", ["stories", "show", "424242"], None, ("story:", "424242")),
    ("story-show-huge-id", ["stories", "show", "9" * 30], None, ("story:",)),
    ("story-cancel-unknown", ["stories", "cancel", "424242"], None, ("story:", "424242")),
    # -- issue 9, item 12 ----------------------------------------------------------------------
    ("queue-text-control-char", ["stories", "queue", "--text", "ring the \x07bell", "--to", "news"], None,
     ("text:", "U+0007", "character 10")),
    ("queue-variant-control-char", ["stories", "queue", "--text", "hi", "--to", "news", "--variant",
                                    "telegram=esc\x1b[31m"], None, ("variant:", "U+001B")),
    ("queue-at-year-9999", ["stories", "queue", "--text", "hi", "--to", "news", "--at", "9999-12-31T00:00Z"],
     None, ("at:", "days ahead", "CROSSPOST_SCHEDULE_HORIZON_DAYS")),
    ("queue-at-date-9999", ["stories", "queue", "--text", "hi", "--to", "news", "--at", "9999-12-31"], None,
     ("at:", "no time")),
    ("queue-not-before-year-9999", ["stories", "queue", "--text", "hi", "--to", "news", "--next-slot",
                                    "--not-before", "9999-01-01T00:00Z"], None,
     ("not-before:", "days ahead")),
    ("retime-finished", ["stories", "retime", "{finished}", "--at", FUTURE], None,
     ("story:", "no delivery that has not started", "published")),
    ("retime-cancelled", ["stories", "retime", "{cancelled}", "--at", FUTURE], None,
     ("story:", "cancelled")),
    ("retime-year-9999", ["stories", "retime", "{story}", "--at", "9999-12-31T00:00Z"], None,
     ("at:", "days ahead")),
    ("export-status-bogus", ["stories", "export", "--status", "bogus"], None,
     ("status:", "'bogus'", "approved")),
    ("queue-png-bomb", ["stories", "queue", "--text", "hi", "--to", "news", "--image", "{in}/bomb.png"], None,
     ("media:", "bomb.png", "decompression bomb")),
    ("schedule-never-fires", ["schedule", "set", "mastodon:newsroom", "--cron", "0 9 30 2 *"], None,
     ("cron:", "never fires")),
    ("chart-is-directory", ["followers", "report", "--chart", "{in}/dir.png"], None,
     ("chart:", "is a directory")),
    ("chart-cannot-write", ["followers", "report", "--chart", "/proc/crosspost-chart.png"], None,
     ("chart:", "cannot write", "/proc/crosspost-chart.png")),
    # -- deliveries ----------------------------------------------------------------------------
    ("list-state-bogus", ["deliveries", "list", "--state", "bogus"], None, ("state:", "'bogus'")),
    ("list-story-not-int", ["deliveries", "list", "--story", "abc"], None, ("--story",)),
    ("retry-unknown", ["deliveries", "retry", "424242"], None, ("424242",)),
    ("retry-not-id", ["deliveries", "retry", "first"], None, ("delivery:", "'first'")),
    ("retry-published", ["deliveries", "retry", "{published}"], None, ("is published", "failed")),
    ("resolve-unknown-id", ["deliveries", "resolve", "424242", "--republish"], None, ("424242",)),
    ("resolve-failed", ["deliveries", "resolve", "{failed}", "--republish"], None, ("is failed", "unknown")),
    ("resolve-neither", ["deliveries", "resolve", "{unknown}"], None, ("resolve:",)),
    ("resolve-bad-url", ["deliveries", "resolve", "{unknown}", "--published", "it went out"], None,
     ("published:",)),
    # -- the command itself --------------------------------------------------------------------
    ("unknown-option", ["accounts", "list", "--colour"], None, ("--colour",)),
    ("worker-bad-pool", ["worker", "--pool", "gevent"], None, ("pool:", "'gevent'")),
]


@pytest.mark.parametrize(("args", "stdin", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(sqlite_env: Env, files: Path, args: list[str], stdin: str | None,
                                      needles: tuple[str, ...]) -> None:
    seeded = seed()
    ids = {"in": str(files), "story": str(seeded.story), "finished": str(seeded.finished),
           "cancelled": str(seeded.cancelled), **{k: str(v) for k, v in seeded.by_state.items()}}
    argv = [a.format(**ids) if "{" in a else a for a in args]
    if "{in}/bomb.png" in args:
        (files / "bomb.png").write_bytes(png_claiming(30000, 30000))
    if "{in}/ten-mb.yaml" in args:
        (files / "ten-mb.yaml").write_text("to: news\ntext: " + "x" * 10_000_000 + "\n")
    if "--chart" in args and sqlite_env.monkeypatch is not None:
        # matplotlib's cache as on a fresh machine: building it must not add a line to the error.
        sqlite_env.monkeypatch.setenv("MPLCONFIGDIR", str(files / "matplotlib"))
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    result = sqlite_env.cli(*argv, stdin=stdin, timeout=120)
    assert_refused(result, *needles)
    assert snapshot(db_file) == before


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and holds none."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("name", "value", "needles"), [
    ("LOG_LEVEL", "LOUD", ("CROSSPOST_LOG_LEVEL", "'LOUD'", "DEBUG")),
    ("DATA_DIR", "{file}", ("CROSSPOST_DATA_DIR", "not a directory")),
])
def test_bad_setting_values(sqlite_env: Env, tmp_path: Path, name: str, value: str,
                            needles: tuple[str, ...]) -> None:
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    sqlite_env.vars[f"CROSSPOST_{name}"] = value.format(file=a_file)
    for argv in (["accounts", "list"], ["stories", "queue", "--text", "hi", "--to", "news"]):
        assert_refused(sqlite_env.cli(*argv), *needles)
    assert snapshot(db_file) == before


def test_image_on_a_read_only_data_directory(sqlite_env: Env, tmp_path: Path) -> None:
    """The data directory is mounted read-only (in a private mount namespace of the command, so
    nothing outside it sees the mount; as root, permission bits would not stop a write)."""
    seed()
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (10, 120, 200)).save(image, "PNG")
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    argv = [sys.executable, "-m", "scheduler.cli", "stories", "queue", "--text", "hi", "--to", "news",
            "--image", str(image)]
    data = str(sqlite_env.data_dir)
    if os.geteuid() != 0:
        sqlite_env.data_dir.chmod(0o555)
        try:
            result = subprocess.run(argv, env=sqlite_env.child_env(), capture_output=True, text=True,
                                    timeout=60)
        finally:
            sqlite_env.data_dir.chmod(0o755)
    else:
        if shutil.which("unshare") is None:
            pytest.skip("unshare(1) is needed to mount the data directory read-only")
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                 data, *argv], env=sqlite_env.child_env(), capture_output=True, text=True,
                                timeout=60)
        if "mount:" in result.stderr:
            pytest.skip(f"cannot mount in a private namespace here: {result.stderr.strip()[:200]}")
    assert_refused(result, "media:", "cannot write to the media store", "Read-only file system"
                   if os.geteuid() == 0 else "Permission denied")
    assert snapshot(db_file) == before
    assert not (sqlite_env.data_dir / "media").exists()


def test_identical_story_is_refused_unless_allowed(sqlite_env: Env) -> None:
    seed()
    argv = ["stories", "queue", "--text", "Council votes tonight", "--to", "news", "--at", FUTURE]
    first = sqlite_env.cli(*argv)
    assert first.returncode == 0, first.stderr
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    assert_refused(sqlite_env.cli(*argv), "identical to story", "--allow-duplicate")
    # The same story named through its accounts instead of its tag is still the same story.
    assert_refused(sqlite_env.cli("stories", "queue", "--text", "Council votes tonight", "--to",
                                  "mastodon:newsroom", "--to", "telegram:@newsroom", "--at", FUTURE),
                   "identical to story")
    assert snapshot(db_file) == before
    again = sqlite_env.cli(*argv, "--allow-duplicate")
    assert again.returncode == 0, again.stderr
    # Another time is another story.
    later = (utcnow() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%MZ")
    other = sqlite_env.cli("stories", "queue", "--text", "Council votes tonight", "--to", "news",
                           "--at", later)
    assert other.returncode == 0, other.stderr


def test_bad_settings_are_refused_cleanly(sqlite_env: Env) -> None:
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    sqlite_env.vars["CROSSPOST_MAX_ATTEMPTS"] = "plenty"
    assert_refused(sqlite_env.cli("accounts", "list"), "CROSSPOST_MAX_ATTEMPTS")
    sqlite_env.vars["CROSSPOST_MAX_ATTEMPTS"] = "5"
    sqlite_env.vars["CROSSPOST_DATABASE_URL"] = "postgresql+nosuchdriver://user:hunter2-pass@db/x"
    line = assert_refused(sqlite_env.cli("accounts", "list"), "CROSSPOST_DATABASE_URL")
    assert "hunter2" not in line
    assert snapshot(db_file) == before


@pytest.mark.parametrize(("args", "make_dir"), [
    (["accounts", "add", "mastodon", "x", "--credentials-file", "{in}/creds.json"], False),
    (["stories", "queue", "--text", "hi", "--to", "news"], True),
    (["deliveries", "retry", "1"], True),
    (["worker"], True),
    (["followers", "report"], True),
    (["schedule", "show"], True),
], ids=lambda a: "-".join(a[:2]) if isinstance(a, list) else ("empty-dir" if a else "no-dir"))
def test_database_not_initialised(tmp_path: Path, files: Path, args: list[str], make_dir: bool) -> None:
    """A fresh data directory without `crosspost init` (missing, or empty): a clear error, and no
    database file appears."""
    data = tmp_path / "fresh"
    if make_dir:
        data.mkdir()
    env = Env(data, f"sqlite:///{data / 'crosspost.db'}", f"sqla+sqlite:///{data / 'broker.db'}")
    result = env.cli(*[a.format(**{"in": str(files)}) for a in args], timeout=120)
    assert_refused(result, "database:", "not initialised", "crosspost init")
    assert not data.exists() or list(data.iterdir()) == []


def test_bad_cron_schedule(sqlite_env: Env) -> None:
    seed()
    probe = sqlite_env.cli("schedule", "--help")
    if probe.returncode != 0:
        pytest.skip("TODO(issue 6): `crosspost schedule` is not wired into the CLI yet; "
                    "then a bad cron expression must be refused like every other bad input")
    db_file = sqlite_env.data_dir / "crosspost.db"
    before = snapshot(db_file)
    for cron in ("61 * * * *", "every morning", "* * * *", "0 9 * * 8"):
        assert_refused(sqlite_env.cli("schedule", "set", "mastodon:newsroom", "--cron", cron), "cron:")
    assert_refused(sqlite_env.cli("schedule", "set", "mastodon:nobody", "--cron", "0 9 * * *"), "account:")
    assert snapshot(db_file) == before
