"""``crosspost doctor``: the checks behind the API's /health, for an operator at the machine."""

from __future__ import annotations

import json

import typer

from scheduler.cli.common import JsonOpt, require_database, table
from scheduler.core.models import utcnow
from scheduler.desk import health


def doctor_command(as_json: JsonOpt = False) -> None:
    """Check the database, the broker, the beat and the workers (a worker is silent when deliveries
    are due and none started lately); exit code 1 if the installation is not ready."""
    require_database()
    found = health.checks(utcnow())
    ready = health.ready(found)
    if as_json:
        print(json.dumps([{"ready": ready, "checks": found}], ensure_ascii=False))
    else:
        rows = [{"check": name, "ok": "yes" if result["ok"] else "NO",
                 "detail": result.get("detail") or ", ".join(f"{k} {v}" for k, v in result.items()
                                                             if k not in ("ok", "detail") and v is not None)}
                for name, result in found.items()]
        table(rows, ["check", "ok", "detail"], "ready" if ready else "NOT READY")
    if not ready:
        raise typer.Exit(1)
