"""The ``crosspost`` command: the app, set-up (init, keys), the processes (tick, worker, beat, run), the
demo, and the one place errors become one line and an exit code."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from typer.exceptions import TyperException

from config.settings import get_settings
from scheduler.cli.accounts import accounts_app
from scheduler.cli.common import JsonOpt, done, group, out, require_database
from scheduler.cli.deliveries import deliveries_app
from scheduler.cli.doctor import doctor_command
from scheduler.cli.feeds import feeds_app
from scheduler.cli.followers import followers_app
from scheduler.cli.people import audit_command, policies_app, tokens_app, users_app, webhooks_app
from scheduler.cli.schedule import schedule_app
from scheduler.cli.stories import stories_app
from scheduler.core import vault
from scheduler.core.db import check_writable, migrate, prepare_data_dir, session_scope
from scheduler.core.deliveries import IllegalTransition
from scheduler.core.errors import StoryRejected, UserError, shown, shown_path
from scheduler.core.models import utcnow
from scheduler.core.vault import VaultError, ensure_key
from scheduler.desk import keys
from scheduler.desk.access import Actor

app = typer.Typer(help="Publish stories to a matrix of social-media accounts.", no_args_is_help=True,
                  rich_markup_mode="markdown",
                  pretty_exceptions_enable=False, add_completion=False)


keys_app = group("The credentials key.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(stories_app, name="stories")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(followers_app, name="followers")
app.add_typer(schedule_app, name="schedule")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(policies_app, name="policies")
app.add_typer(webhooks_app, name="webhooks")
app.command("audit")(audit_command)
app.command("doctor")(doctor_command)
app.add_typer(feeds_app, name="feeds")


def _version(value: bool) -> None:
    if value:
        print(f"crosspost {package_version('crosspost')}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """Publish stories to a matrix of social-media accounts."""


def setup_logging() -> None:
    logging.basicConfig(level=get_settings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # matplotlib notes at INFO, as the charts module imports it, that it built its font cache (the
    # first chart on a fresh machine): not the operator's business, and a second line under an error.
    logging.getLogger("matplotlib").setLevel(max(logging.WARNING, logging.getLogger().level))


# -- set-up and processes -----------------------------------------------------------------------
@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create the data directory (0700), migrate the database and write a credentials key (0600) if
    there is none; never a new key while the database holds credentials sealed under another one."""
    settings = get_settings()
    try:
        prepare_data_dir(settings)
    except OSError as exc:
        raise UserError(f"data directory: cannot prepare {settings.data_dir}: {exc.strerror}") from None
    migrate()
    with session_scope() as s:
        vault.check_before_new_key(s)
        wrote = ensure_key(settings)
        unreadable = [] if wrote else vault.unreadable_accounts(s)
    done(as_json, f"data directory {settings.data_dir}; database migrated"
         + ("; new credentials key written" if wrote else ""), data_dir=str(settings.data_dir),
         key_written=wrote, unreadable_accounts=len(unreadable))
    if unreadable:
        print(f"warning: this key cannot decrypt the credentials of {len(unreadable)} account(s) "
              f"({', '.join(unreadable[:3])}); restore the key they were sealed with", file=sys.stderr)


@keys_app.command("rotate")
def keys_rotate(as_json: JsonOpt = False) -> None:
    """Re-encrypt every account's credentials (and webhook's secret) under a new key, then replace the
    key file with it."""
    require_database()
    count, hooks = keys.rotate(Actor.cli(), utcnow())
    key_file = get_settings().key_file
    done(as_json, f"credentials of {count} account(s) re-encrypted; new key in {key_file}", accounts=count,
         key_file=str(key_file), webhooks=hooks)


@app.command()
def tick(as_json: JsonOpt = False) -> None:
    """Reap and claim once, handing due deliveries and due feeds to the workers (for a system crontab)."""
    from scheduler.core.ticks import tick as run_tick
    from scheduler.feeds.polling import tick as feeds_tick
    from scheduler.tasks import publisher, send_poll_feed

    require_database()
    with publisher() as send:
        result = run_tick(send)
    feeds = feeds_tick(send_poll_feed)
    r = result.reaped
    done(as_json, f"claimed {len(result.claimed)}, sent {result.sent}; reaped {r.requeued} lost messages, "
         f"{r.retried} expired leases retried, {r.unknown} unknown, {r.failed} failed; {len(feeds)} due "
         "feed(s) handed out", claimed=len(result.claimed), sent=result.sent, requeued=r.requeued,
         retried=r.retried, unknown=r.unknown, failed=r.failed, feeds=len(feeds))


def _celery(argv: list[str], *, beat_thread: bool = False) -> None:
    from celery import signals

    from scheduler.celery_app import app as celery
    from scheduler.celery_app import embed_beat

    if beat_thread:
        embed_beat(celery)
    asked: list[str] = []

    def shutting_down(sig: str = "", **_: object) -> None:
        asked.append(sig)

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    code = celery.start(argv)
    if isinstance(code, int) and code:
        raise typer.Exit(code)
    if argv[0] == "worker" and not asked:
        # Nobody asked it to stop: Celery gave up by itself (kombu 5.7 does so with status 0 after a
        # Redis restart, when it cannot restore its unacknowledged messages). A failure status lets a
        # supervisor's restart-on-failure bring it back; the reaper hands out what it held.
        print("error: the worker stopped without being asked to (see its log); restart it", file=sys.stderr)
        raise typer.Exit(1)


def _preflight() -> None:
    """What every long-running process checks before it starts: a database that exists, and a data
    directory, database and broker it can write. Files it creates are private to this user."""
    require_database()
    os.umask(0o077)
    check_writable(get_settings())


@contextmanager
def _beat_role() -> Iterator[None]:
    """Hold the beat role (one per database and per data directory) while the block runs; a second
    `run` or `beat` is refused, naming the holder. If the role is lost (this process was stopped
    longer than the lease and another beat took over), this process shuts down."""
    from scheduler.core.db import sqlite_path
    from scheduler.core.locks import Lease

    settings = get_settings()
    db_file = sqlite_path(settings.database_url)
    here = db_file is not None and db_file.parent.resolve() == settings.data_dir.resolve()
    lease = Lease("beat", settings.data_dir, on_lost=lambda: os.kill(os.getpid(), signal.SIGTERM),
                  database_here=here)
    try:
        yield
    finally:
        lease.release()


POOLS = ("threads", "prefork", "solo")


def _worker_argv(pool: str | None, concurrency: int | None) -> list[str]:
    if pool is not None and pool not in POOLS:
        raise UserError(f"pool: {shown(pool)} is not one of {', '.join(POOLS)}")
    _preflight()
    settings = get_settings()
    return ["worker", "--pool", pool or settings.worker_pool,
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "--loglevel", settings.log_level, "--hostname", f"crosspost-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


PoolOpt = Annotated[str | None, typer.Option(help="threads (default), prefork or solo.")]


ConcOpt = Annotated[int | None, typer.Option(min=1, help="Concurrent publishes in this process.")]


@app.command()
def worker(pool: PoolOpt = None, concurrency: ConcOpt = None) -> None:
    """Run a Celery worker that publishes deliveries."""
    _celery(_worker_argv(pool, concurrency))


@app.command()
def beat() -> None:
    """Run Celery beat: one tick every few seconds. Only one beat runs per database: a second one
    refuses to start and names the holder."""
    _preflight()
    with _beat_role():
        _celery(["beat", "--loglevel", get_settings().log_level])


HostOpt = Annotated[str, typer.Option(help="Address the API listens on.")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="Port the API listens on.")]


@app.command()
def serve(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Serve the desk's HTTP API (uvicorn); run as many as needed behind a proxy."""
    from scheduler.cli.serving import serve as run_api

    require_database()
    run_api(host, port, get_settings().log_level)


RunPortOpt = Annotated[int | None, typer.Option(min=1, max=65535, help="Port the API listens on (8000).")]


@app.command()
def run(pool: PoolOpt = None, concurrency: ConcOpt = None, host: HostOpt = "127.0.0.1",
        port: RunPortOpt = None,
        no_serve: Annotated[bool, typer.Option("--no-serve", help="Do not serve the API.")] = False) -> None:
    """A worker with its beat in one process (a thread, so it dies with the process however the
    process dies), and the API unless --no-serve: the embedded, single-machine way to run. The default
    port taken by something else only costs the API (a warning); a --port that cannot be had is an error."""
    argv = _worker_argv(pool, concurrency)
    with _beat_role():
        if not no_serve:
            from scheduler.cli.serving import serve_in_thread

            try:
                serve_in_thread(host, port or 8000, get_settings().log_level)
            except UserError as exc:
                if port is not None:
                    raise
                print(f"warning: {exc}; the worker runs without it (give --port, or --no-serve)",
                      file=sys.stderr)
        _celery(argv, beat_thread=True)


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the demo data directory afterwards.")] = False,
         serve: Annotated[bool, typer.Option("--serve", help="Then keep the dashboard open on the demo's "
                                             "data, printing its address and a login.")] = False,
         host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Start the stand-ins, create a demo matrix, queue stories, publish them all with a real worker."""
    from scheduler.cli.demo import run_demo

    raise typer.Exit(run_demo(out, keep=keep, serve=(host, port) if serve else None))


def _rejected(exc: StoryRejected) -> str:
    if len(exc.problems) == 1:
        return f"{exc.outcome}: {exc.problems[0]}"
    return "\n".join([f"{exc.outcome}, {len(exc.problems)} problems:", *(f"  {p}" for p in exc.problems)])


def _database_problem(exc: DBAPIError) -> str:
    # The driver's own words, first line only: SQLAlchemy's text would add the statement and its
    # parameters (sealed credentials among them).
    text = str(exc.orig).strip() if exc.orig is not None else type(exc).__name__
    first = text.splitlines()[0] if text else type(exc).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "database: not initialised; run `crosspost init`"
    if "no such column" in text or ("column" in text and "does not exist" in text):
        return "database: the schema is older than this crosspost; run `crosspost init` to migrate it"
    return f"database: {first}"


def _settings_problem(exc: ValidationError) -> str:
    # The message only: pydantic's full text repeats the value, which may be a secret.
    first = exc.errors()[0]
    name = "CROSSPOST_" + "__".join(str(part) for part in first["loc"]).upper()
    return f"settings: {name}: {first['msg']}"


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the command; every expected failure ends in ``error: ...`` on standard error (one line
    per problem, never a traceback) and a non-zero exit code."""
    try:
        setup_logging()
        # Not standalone: Click's usage errors come here, to be printed like every other error.
        code = app(args=argv, standalone_mode=False)
    except StoryRejected as exc:
        _fail(_rejected(exc), 2)
    except (UserError, IllegalTransition, VaultError) as exc:
        _fail(" ".join(str(exc).splitlines()), 2)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed (Typer checks by name)
            sys.exit(2)
        _fail(" ".join(exc.format_message().split()), getattr(exc, "exit_code", 2))
    except typer.Abort:
        _fail("aborted", 1)
    except ValidationError as exc:
        _fail(_settings_problem(exc), 2)
    except (ArgumentError, NoSuchModuleError):
        # Never echo the URL: it may carry a password.
        _fail("settings: CROSSPOST_DATABASE_URL is not a database URL SQLAlchemy can use", 2)
    except DBAPIError as exc:
        _fail(_database_problem(exc), 1)
    except OSError as exc:
        # The last net for the file system (a read-only or full disk the checks did not foresee): the
        # operating system's words and the file, on one line.
        where = f"{shown_path(str(exc.filename))}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or type(exc).__name__}", 1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
