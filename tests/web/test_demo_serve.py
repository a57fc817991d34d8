"""``crosspost demo --serve``: after the demo, the dashboard stays open on its data with a login it
prints. The demo itself takes two minutes (its stories wait for their times and retries), so this
test runs the serving step on a small matrix of its own, through the same uvicorn configuration."""

from __future__ import annotations

import io
import re
import threading

import httpx
import pytest
import uvicorn
from rich.console import Console

from scheduler.cli import demo, serving
from scheduler.core.db import session_scope
from scheduler.core.models import Account, utcnow
from tests.conftest import Env, free_port, wait_for
from tests.factories import make_delivery
from tests.web.conftest import WebDesk, csrf_of


def test_demo_serve_prints_a_login_that_opens_the_dashboard(web: WebDesk, sqlite_env: Env,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope() as s:
        done = make_delivery(s, s.get(Account, web.ids["x"]), utcnow(), state="published")
        done.published_url = "https://x.com/newsroom/status/1"
    servers: list[uvicorn.Server] = []

    def serve(host: str, port: int, log_level: str) -> None:  # serving.serve, with a handle to stop it
        servers.append(uvicorn.Server(serving._config(host, port, log_level)))
        servers[-1].run()

    monkeypatch.setattr(serving, "serve", serve)
    printed = io.StringIO()
    port = free_port()
    thread = threading.Thread(target=demo._serve_dashboard,
                              args=(Console(file=printed, width=200), "127.0.0.1", port), daemon=True)
    thread.start()
    try:
        wait_for(lambda: servers and servers[0].started, 30, 0.05, "the dashboard to start")
        found = re.search(rf"http://127.0.0.1:{port}/ui/ ; sign in as (\S+) with password (\S+)",
                          printed.getvalue())
        assert found, printed.getvalue()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            form = client.get("/ui/login")
            signed = client.post("/ui/login", data={"name": found.group(1), "password": found.group(2),
                                                    "csrf": csrf_of(form.text)})
            assert signed.status_code == 303
            assert 'href="https://x.com/newsroom/status/1"' in client.get("/ui/stories").text
            assert client.get("/ui/audit").status_code == 200  # the demo's user is an admin
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(10)


def test_demo_offers_serve(sqlite_env: Env) -> None:
    shown = sqlite_env.cli("demo", "--help")
    assert shown.returncode == 0 and "--serve" in shown.stdout and "--port" in shown.stdout
