"""Serving the API from the command (``serve``, and ``run`` unless --no-serve). uvicorn imports the app
by name, as Celery imports the tasks: the two faces never import each other."""

from __future__ import annotations

import socket
import threading

import uvicorn

from scheduler.core.errors import UserError

APP = "scheduler.api.app:create_app"


def _config(host: str, port: int, log_level: str) -> uvicorn.Config:
    # No access log: it holds query strings, and a client's mistake could put a token in one.
    return uvicorn.Config(APP, factory=True, host=host, port=port, log_level=log_level.lower(),
                          access_log=False)


def _check_port(host: str, port: int) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UserError(f"port: cannot serve the API on {host}:{port}: {exc.strerror}") from None


def serve(host: str, port: int, log_level: str) -> None:
    """Serve until stopped."""
    _check_port(host, port)
    uvicorn.Server(_config(host, port, log_level)).run()


def serve_in_thread(host: str, port: int, log_level: str) -> None:
    """Serve from a daemon thread of this process: it dies with the worker, however the worker dies.
    A port in use fails here, before the worker starts."""
    _check_port(host, port)
    server = uvicorn.Server(_config(host, port, log_level))
    # The worker owns the signals: uvicorn's handlers would take its SIGTERM.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    threading.Thread(target=server.run, name="api", daemon=True).start()
