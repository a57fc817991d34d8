"""Bluesky's own servers on loopback (PDS, AppView, DID directory from npm), for the ``peer`` tests.

``shared/peers/bluesky/start.sh full`` (beside the clone, or ``$CROSSPOST_SHARED_DIR``) starts them
once per test session. The ~700 MB it downloads the first time stays in ``$BSKY_PEER_HOME`` (default
``~/.cache/crosspost/bsky-peer``, under ``$XDG_CACHE_HOME`` when set), outside the clone, so later
sessions start in seconds. Each session runs on its own free ports, its own PostgreSQL database and
its own work directory (linked to that cache), so two sessions on one machine do not meet. When
CI=true a network that cannot start fails the tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from sqlalchemy import select

from adapters.base import Post
from config.settings import reset_settings
from scheduler.core.db import dispose_engines, migrate, session_scope
from scheduler.core.models import Delivery, Story, utcnow
from scheduler.matrix import accounts
from tests.conftest import IN_CI, Env, free_port

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CROSSPOST_SHARED_DIR") or REPO.parent / "shared")
SCRIPTS = SHARED / "peers" / "bluesky"
CACHE = Path(os.environ.get("BSKY_PEER_HOME")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crosspost" / "bsky-peer")
# A cold start downloads Node and @atproto/dev-env (~700 MB, minutes); a warm one takes seconds, or a
# minute on a busy machine.
START_TIMEOUT = 1200.0
POST = "app.bsky.feed.post"


@dataclass
class PeerAccount:
    handle: str
    did: str
    password: str  # the account password (the test is the account's owner)
    app_password: str  # what an operator gives crosspost
    access_jwt: str
    refresh_jwt: str


class Network:
    """The running network and what the tests ask of it directly (as the accounts' owners would)."""

    def __init__(self, pds: str, appview: str, home: Path) -> None:
        self.pds, self.appview, self.home = pds, appview, home
        self.http = requests.Session()

    def call(self, method: str, base: str, nsid: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = self.http.request(method, f"{base}/xrpc/{nsid}", headers=headers, timeout=30, **kwargs)
        assert answer.ok, f"{nsid}: {answer.status_code} {answer.text[:300]}"
        return answer.json()

    def create_account(self, prefix: str = "cp") -> PeerAccount:
        handle, password = f"{prefix}{uuid.uuid4().hex[:10]}.test", uuid.uuid4().hex
        made = self.call("POST", self.pds, "com.atproto.server.createAccount",
                         json={"handle": handle, "email": f"{handle}@example.com", "password": password})
        app = self.call("POST", self.pds, "com.atproto.server.createAppPassword", made["accessJwt"],
                        json={"name": "crosspost"})
        return PeerAccount(handle, made["did"], password, app["password"], made["accessJwt"],
                           made["refreshJwt"])

    def follow(self, follower: PeerAccount, subject: PeerAccount) -> None:
        record = {"$type": "app.bsky.graph.follow", "subject": subject.did,
                  "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        self.call("POST", self.pds, "com.atproto.repo.createRecord", follower.access_jwt,
                  json={"repo": follower.did, "collection": "app.bsky.graph.follow", "record": record})

    def records(self, account: PeerAccount) -> list[dict[str, Any]]:
        """Every post record of ``account``, oldest first, from the PDS."""
        return self.call("GET", self.pds, "com.atproto.repo.listRecords",
                         params={"repo": account.did, "collection": POST, "limit": 100,
                                 "reverse": "true"})["records"]

    def record(self, uri: str) -> dict[str, Any]:
        did, collection, rkey = uri.removeprefix("at://").split("/")
        return self.call("GET", self.pds, "com.atproto.repo.getRecord",
                         params={"repo": did, "collection": collection, "rkey": rkey})

    def appview_posts(self, uris: list[str], timeout: float = 30) -> list[dict[str, Any]]:
        """The AppView's view of ``uris``, once it has indexed all of them (it runs behind the PDS)."""
        return self.until(lambda: self.call("GET", self.appview, "app.bsky.feed.getPosts",
                                             params={"uris": uris})["posts"],
                           lambda posts: len(posts) == len(uris), timeout, f"AppView posts {uris}")

    def appview_profile(self, account: PeerAccount) -> dict[str, Any]:
        return self.call("GET", self.appview, "app.bsky.actor.getProfile", params={"actor": account.did})

    @staticmethod
    def until(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {value!r:.300}")
            time.sleep(0.3)

    def jwt_secret(self, account: PeerAccount) -> bytes:
        """The PDS's HS256 signing secret: the known development one that verifies a real token
        (dev-env's TestNetwork uses "jwt-secret"; start.sh's PDS-only mode "dev-jwt-secret")."""
        for secret in (b"jwt-secret", b"dev-jwt-secret"):
            if sign(account.access_jwt.rsplit(".", 1)[0], secret) == account.access_jwt.rsplit(".", 1)[1]:
                return secret
        raise AssertionError("no known development secret verifies the PDS's tokens")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(signing_input: str, secret: bytes) -> str:
    return b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def expired_copy(jwt: str, secret: bytes) -> str:
    """``jwt`` with the same header and claims, but issued and expired an hour ago."""
    header, payload, _ = jwt.split(".")
    claims = json.loads(unb64(payload))
    now = int(time.time())
    claims.update(iat=now - 7200, exp=now - 3600)
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{body}.{sign(f'{header}.{body}', secret)}"


# -- starting and stopping ------------------------------------------------------------------------
def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@pytest.fixture(scope="session")
def peer_network() -> Iterator[Network]:
    if not (SCRIPTS / "start.sh").is_file():
        _unavailable(f"no {SCRIPTS}/start.sh: put shared/ beside the clone or set CROSSPOST_SHARED_DIR")
    if shutil.which("npm") is None and not (CACHE / "node22" / "package" / "bin" / "node").exists():
        _unavailable("npm is needed once to fetch Node 22 and @atproto/dev-env for the Bluesky peer")
    admin = os.environ.get("CROSSPOST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(admin, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL (for the Bluesky AppView) is not reachable: {exc}")
    # The download lands in the cache through these links; the run's own files stay in `home`.
    for part in ("node22", "devenv"):
        (CACHE / part).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bsky-peer-run-"))
    for part in ("node22", "devenv"):
        (home / part).symlink_to(CACHE / part)
    database = f"bsky_peer_{uuid.uuid4().hex[:10]}"
    ports = {name: free_port() for name in ("PLC_PORT", "PDS_PORT", "BSKY_PORT", "OZONE_PORT")}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "BSKY_PEER_HOME": str(home),
           "BSKY_PEER_PG_URL": f"{admin.rsplit('/', 1)[0]}/{database}"}
    try:
        with open(CACHE / ".lock", "w") as lock:
            # One install at a time; a second session waits for the first to finish downloading.
            fcntl.flock(lock, fcntl.LOCK_EX)
            started = subprocess.run(["bash", str(SCRIPTS / "start.sh"), "full"], env=env,
                                     capture_output=True, text=True, timeout=START_TIMEOUT)
        if started.returncode != 0:
            logs = "\n".join(f"--- {p.name}\n{_tail(p)}" for p in sorted((home / "logs").glob("*.log")))
            _unavailable(f"the Bluesky peer did not start (start.sh exit {started.returncode}):\n"
                         f"{started.stdout[-1500:]}{started.stderr[-1500:]}\n{logs}")
        yield Network(f"http://127.0.0.1:{ports['PDS_PORT']}", f"http://127.0.0.1:{ports['BSKY_PORT']}", home)
    except subprocess.TimeoutExpired:
        _unavailable(f"the Bluesky peer did not start within {START_TIMEOUT:.0f} s")
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env=env, capture_output=True, timeout=60)
        with contextlib.suppress(psycopg.Error), psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


# -- a proxy that lets the PDS commit a write and holds its answer --------------------------------
class HoldingProxy:
    """Forwards every request to ``upstream``; the first request whose path contains ``hold`` goes
    through (the PDS commits it), but its answer is held back until :meth:`release`, so the client
    can be killed while it waits."""

    _HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host"}

    def __init__(self, upstream: str, hold: str) -> None:
        self.upstream, self.hold = upstream.rstrip("/"), hold
        self.committed = threading.Event()
        self._released = threading.Event()
        self._armed = True
        self._lock = threading.Lock()
        self.seen: list[tuple[str, str, int]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy._HOP}
                answer = requests.request(self.command, proxy.upstream + self.path, headers=headers,
                                          data=body, timeout=60, allow_redirects=False)
                with proxy._lock:
                    proxy.seen.append((self.command, self.path.split("?")[0], answer.status_code))
                    hold = proxy._armed and proxy.hold in self.path
                    if hold:
                        proxy._armed = False
                if hold:
                    proxy.committed.set()
                    proxy._released.wait(120)
                    self.close_connection = True
                    return  # the client never hears the answer
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() not in proxy._HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward

        return Handler


# -- crosspost, run as an operator would ----------------------------------------------------------
class Operator:
    """One crosspost installation (embedded SQLite database and broker) with a `crosspost run`
    worker subprocess; everything goes through the `crosspost` command."""

    FINAL = ("published", "failed", "unknown", "blocked_auth", "cancelled")

    def __init__(self, env: Env, logs: Path) -> None:
        self.env, self.logs = env, logs
        self.worker: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        done = self.env.cli(*args, timeout=120)
        assert done.returncode == 0, f"crosspost {' '.join(args[:3])}: {done.stderr[-2000:]}"
        return done.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def start_worker(self) -> None:
        self.worker = self.env.spawn("run", "--concurrency", "4", log=self.logs / "run.log")

    def kill9_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(30)
        self.worker = None

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.kill9_worker()

    def log_tail(self) -> str:
        return _tail(self.logs / "run.log", 4000)

    def add_account(self, account: PeerAccount, base_url: str,
                    credentials: dict[str, str] | None = None) -> None:
        """`crosspost accounts add` with the app password (or ``credentials``) in a private file."""
        path = self.logs / f"{account.handle}.json"
        path.touch(0o600)
        path.write_text(json.dumps(credentials or {"identifier": account.handle,
                                                   "password": account.app_password}))
        try:
            self.cli("accounts", "add", "bluesky", account.handle, "--base-url", base_url,
                     "--credentials-file", str(path), "--json")
        finally:
            path.unlink()

    def queue(self, text: str, account: PeerAccount, link: str | None = None, images: tuple[Path, ...] = (),
              alts: tuple[str, ...] = (), thread: bool = False) -> int:
        if (images or thread) and not _cli_has_media_flags():
            return _queue_direct(text, account, link, images, alts, thread)
        args = ["stories", "queue", "--text", text, "--to", f"bluesky:{account.handle}"]
        args += ["--link", link] if link else []
        for path in images:
            args += ["--image", str(path)]
        for alt in alts:
            args += ["--alt", alt]
        args += ["--thread"] if thread else []
        [row] = self.cli_json(*args)
        return int(row["id"])

    def delivery(self, story_id: int) -> dict[str, Any]:
        [story] = self.cli_json("stories", "show", str(story_id))
        [delivery] = story["delivery_list"]
        return delivery

    def wait_published(self, story_id: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while _state(story_id) not in self.FINAL and time.monotonic() < deadline:
            time.sleep(0.3)
        delivery = self.delivery(story_id)
        assert delivery["state"] == "published", f"{delivery}\n{self.log_tail()}"
        return delivery


def _state(story_id: int) -> str | None:
    with session_scope() as s:
        return s.scalar(select(Delivery.state).where(Delivery.story_id == story_id))


def _cli_has_media_flags() -> bool:
    import typer

    from scheduler.cli import main as cli

    queue = typer.main.get_command(cli.app).commands["stories"].commands["queue"]  # type: ignore[attr-defined]
    return {"--image", "--alt", "--thread"} <= {o for p in queue.params for o in p.opts}


def _queue_direct(text: str, account: PeerAccount, link: str | None, images: tuple[Path, ...],
                  alts: tuple[str, ...], thread: bool) -> int:
    """Until `crosspost stories queue` has --image/--alt/--thread: what that command does, through the
    service functions (media ingested into the store, the adapter's checks, one story and one delivery)."""
    from adapters.bluesky import BlueskyAdapter
    from scheduler.stories import media as media_store

    found = tuple(media_store.ingest(str(p), alt) for p, alt in
                  zip(images, (*alts, *[""] * (len(images) - len(alts))), strict=True))
    problems = BlueskyAdapter().check(Post(text=text, link=link, media=found, thread=thread))
    assert not problems, problems
    now = utcnow()
    with session_scope() as s:
        target = accounts.find(s, f"bluesky:{account.handle}")
        story = Story(text=text, link=link, variants={}, targets=[target.label], status="approved",
                      due_at=now, created_at=now, media=[media_store.to_json(m) for m in found],
                      thread=thread)
        s.add(story)
        s.flush()
        s.add(Delivery(story_id=story.id, account_id=target.id, state="scheduled", due_at=now,
                       created_at=now, updated_at=now))
        return story.id


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    home = tmp_path_factory.mktemp("operator")
    saved = dict(os.environ)
    env = Env(home, f"sqlite:///{home / 'crosspost.db'}", f"sqla+sqlite:///{home / 'broker.db'}")
    # A publish to a real server under a loaded machine takes longer than the stand-in's.
    env.vars.update(CROSSPOST_LEASE_SECONDS="10", CROSSPOST_LOG_LEVEL="INFO")
    env.activate()
    migrate()
    op = Operator(env, home)
    op.start_worker()
    yield op
    op.stop()
    dispose_engines()
    os.environ.clear()
    os.environ.update(saved)
    reset_settings()
