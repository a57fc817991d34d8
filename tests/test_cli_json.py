"""Every command an operator or a script runs once answers in JSON with --json: listings, changes and
exports alike (only the long-running processes and the demo print for people)."""

from __future__ import annotations

import json

from typer.main import get_command

from scheduler.cli.main import app
from tests.conftest import Env

PROCESSES = {"worker", "beat", "run", "serve", "demo"}


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    if hasattr(command, "commands"):
        return [found for name, sub in command.commands.items() for found in _commands(sub, (*path, name))]
    return [(path, [p.name for p in command.params])]  # type: ignore[attr-defined]


def test_every_command_but_the_processes_takes_json() -> None:
    commands = _commands(get_command(app))
    assert len(commands) > 25
    missing = [" ".join(path) for path, params in commands
               if path[0] not in PROCESSES and "as_json" not in params]
    assert missing == []


def test_changes_answer_in_json(sqlite_env: Env) -> None:
    env = sqlite_env
    init = env.cli("init", "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)[0]["data_dir"] == str(env.data_dir)
    tick = env.cli("tick", "--json")
    assert tick.returncode == 0, tick.stderr
    assert set(json.loads(tick.stdout)[0]) == {"claimed", "sent", "requeued", "retried", "unknown", "failed",
                                                  "feeds"}
    exported = env.cli("deliveries", "export", "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == []
