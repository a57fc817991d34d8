"""The credentials key: `init` never writes a key that would orphan stored credentials; `keys rotate`
re-encrypts under a new key and loses nothing however it dies; the data directory and its files are
private (0700 / 0600). Real SQLite files, real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from adapters.base import Credentials
from config.settings import get_settings, reset_settings
from scheduler.core import vault
from scheduler.core.db import dispose_engines, session_scope
from scheduler.core.models import Account, utcnow
from scheduler.matrix import accounts
from tests.conftest import Env, wait_for


@pytest.fixture
def keyfile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A data directory that `crosspost init` has not seen, whose key lives in the key file (no
    CROSSPOST_SECRET_KEY)."""
    data = tmp_path / "data"
    env = Env(data, f"sqlite:///{data / 'crosspost.db'}", f"sqla+sqlite:///{data / 'broker.db'}")
    del env.vars["CROSSPOST_SECRET_KEY"]
    monkeypatch.delenv("CROSSPOST_SECRET_KEY", raising=False)
    for key, value in env.vars.items():
        monkeypatch.setenv(key, value)
    env.activate()
    yield env
    dispose_engines()
    reset_settings()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def init(env: Env) -> None:
    result = env.cli("init")
    assert result.returncode == 0, result.stderr


def add_accounts(*handles: str) -> dict[str, str]:
    tokens = {}
    with session_scope() as s:
        for handle in handles:
            tokens[handle] = f"tok-{handle}-0123456789"
            accounts.add(s, "mastodon", handle, Credentials({"access_token": tokens[handle]}),
                         base_url="http://127.0.0.1:9")
    return tokens


def readable() -> dict[str, str | None]:
    with session_scope() as s:
        return {a.handle: vault.unseal(a.credentials).get("access_token")
                for a in s.scalars(select(Account).order_by(Account.id))}


def sealed() -> list[bytes]:
    with session_scope() as s:
        return [a.credentials for a in s.scalars(select(Account).order_by(Account.id))]


def opens_any(key: bytes, tokens: list[bytes]) -> bool:
    for token in tokens:
        try:
            Fernet(key).decrypt(token)
            return True
        except InvalidToken:
            continue
    return False


# -- permissions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("existing", [False, True], ids=["new-dir", "dir-0755"])
def test_init_makes_a_private_data_directory(keyfile_env: Env, existing: bool) -> None:
    data = keyfile_env.data_dir
    if existing:  # made by an older crosspost, or by hand
        data.mkdir(mode=0o755)
        data.chmod(0o755)
    init(keyfile_env)
    assert mode(data) == 0o700
    for name in ("crosspost.db", "broker.db", "secret.key"):
        assert mode(data / name) == 0o600, name
    add_accounts("perms")  # a write: SQLite creates the WAL files, with the database's mode
    made = [data / n for n in ("crosspost.db-wal", "crosspost.db-shm") if (data / n).exists()]
    assert made
    assert all(mode(p) == 0o600 for p in made), [(p.name, oct(mode(p))) for p in made]


# -- init and a lost key --------------------------------------------------------------------------
def test_init_refuses_a_new_key_while_credentials_need_the_old_one(keyfile_env: Env) -> None:
    init(keyfile_env)
    tokens = add_accounts("one", "two")
    key_file = keyfile_env.data_dir / "secret.key"
    old_key = key_file.read_bytes()
    key_file.unlink()  # lost; the error of every command advises `crosspost init`
    result = keyfile_env.cli("init")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: the database holds credentials of 2 account(s)")
    assert "mastodon:one" in line and "No new key was written" in line
    assert not key_file.exists()
    # The key, once restored, still opens everything: nothing was lost.
    key_file.write_bytes(old_key)
    key_file.chmod(0o600)
    init(keyfile_env)
    assert readable() == tokens


def test_init_with_a_key_that_opens_nothing_says_so(keyfile_env: Env) -> None:
    init(keyfile_env)
    add_accounts("three")
    key_file = keyfile_env.data_dir / "secret.key"
    key_file.write_bytes(Fernet.generate_key())
    result = keyfile_env.cli("init")
    assert result.returncode == 0, result.stderr
    assert "warning: this key cannot decrypt the credentials of 1 account(s) (mastodon:three)" \
        in result.stderr


# -- rotation -------------------------------------------------------------------------------------
def test_rotate_reencrypts_everything_under_a_new_key(keyfile_env: Env) -> None:
    init(keyfile_env)
    tokens = add_accounts("a", "b", "gone")
    with session_scope() as s:
        accounts.remove(s, accounts.find(s, "mastodon:gone"), utcnow())
        versions = {a.handle: a.credentials_version for a in s.scalars(select(Account))}
    key_file = keyfile_env.data_dir / "secret.key"
    old_key = key_file.read_bytes()
    assert readable() == tokens  # this process now holds the old key in its ring
    result = keyfile_env.cli("keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert "credentials of 3 account(s) re-encrypted" in result.stdout
    new_key = key_file.read_bytes()
    assert new_key != old_key and mode(key_file) == 0o600
    assert not vault.next_key_file(get_settings()).exists()
    assert not opens_any(old_key, sealed())  # the old key opens nothing any more, removed rows included
    assert all(opens_any(new_key, [token]) for token in sealed())
    # A process that was running through the rotation reads the new key without a restart.
    assert readable() == tokens
    with session_scope() as s:
        # The version is a token refresh's compare-and-set: a rotation must not make one fail.
        assert {a.handle: a.credentials_version for a in s.scalars(select(Account))} == versions


def test_rotate_killed_midway_loses_nothing(keyfile_env: Env, tmp_path: Path) -> None:
    init(keyfile_env)
    tokens = add_accounts("c", "d")
    key_file = keyfile_env.data_dir / "secret.key"
    old_key = key_file.read_bytes()
    pending = vault.next_key_file(get_settings())
    dispose_engines()
    # Hold the database's write lock, so the rotation stops inside its transaction, after it wrote
    # the new key beside the old one; then kill it there.
    blocker = sqlite3.connect(keyfile_env.data_dir / "crosspost.db", isolation_level=None, timeout=60)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        proc = keyfile_env.spawn("keys", "rotate", log=tmp_path / "rotate.log")
        wait_for(pending.exists, 60, what="the new key written beside the old one")
        wait_for(lambda: _waiting_on_lock(proc.pid), 30, what="the rotation blocked on the database")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert key_file.read_bytes() == old_key
    assert readable() == tokens
    written = pending.read_bytes()
    again = keyfile_env.cli("keys", "rotate")
    assert again.returncode == 0, again.stderr
    # The second run kept the key the first one wrote (credentials could have been sealed under it).
    assert key_file.read_bytes() == written and not pending.exists()
    assert not opens_any(old_key, sealed())
    assert readable() == tokens


def _waiting_on_lock(pid: int) -> bool:
    # The rotating process is asleep in SQLite's busy handler (its write transaction waits on ours).
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return False


def test_rotate_that_died_after_its_commit_is_finished_by_the_next(keyfile_env: Env) -> None:
    """The database is re-encrypted and committed, but the process died before the new key replaced
    the old one: every credential is still readable (the new key is beside the old one), and the next
    `keys rotate` completes the job."""
    init(keyfile_env)
    tokens = add_accounts("e")
    settings = get_settings()
    old_key = settings.key_file.read_bytes()
    assert vault.begin_rotation(settings)
    with session_scope() as s:
        vault.reseal_all(s)
    # (no finish_rotation: the crash)
    assert not opens_any(old_key, sealed())
    assert readable() == tokens
    written = vault.next_key_file(settings).read_bytes()
    result = keyfile_env.cli("keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert settings.key_file.read_bytes() == written
    assert readable() == tokens


def test_rotate_refuses_when_some_credentials_cannot_be_opened(keyfile_env: Env) -> None:
    init(keyfile_env)
    tokens = add_accounts("f", "g")
    with session_scope() as s:
        stranger = accounts.find(s, "mastodon:g")
        stranger.credentials = Fernet(Fernet.generate_key()).encrypt(b'{"access_token": "x"}')
    before = sealed()
    key = get_settings().key_file.read_bytes()
    result = keyfile_env.cli("keys", "rotate")
    assert result.returncode == 2
    assert "mastodon:g" in result.stderr and "no credential was changed" in result.stderr
    assert sealed() == before and get_settings().key_file.read_bytes() == key
    # Once the operator removed it (a removed account's credentials are never used again), it passes.
    with session_scope() as s:
        accounts.remove(s, accounts.find(s, "mastodon:g"), utcnow())
    again = keyfile_env.cli("keys", "rotate")
    assert again.returncode == 0, again.stderr
    assert get_settings().key_file.read_bytes() != key and readable_live() == {"f": tokens["f"]}


def readable_live() -> dict[str, str | None]:
    with session_scope() as s:
        return {a.handle: vault.unseal(a.credentials).get("access_token")
                for a in s.scalars(select(Account).where(Account.status != "removed"))}


def test_rotate_refuses_a_key_from_the_environment(sqlite_env: Env) -> None:
    result = sqlite_env.cli("keys", "rotate")
    assert result.returncode == 2
    assert "CROSSPOST_SECRET_KEY" in result.stderr and result.stderr.count("\n") == 1
