"""A small, strict HTTP stand-in for a platform, shared by every platform's stand-in.

A stand-in implements the documented endpoints of one platform, checks every request as strictly as
the real service (auth, required fields, limits), records what it created, and can be told to
misbehave: answer 429 with Retry-After, 5xx, 401, answer slowly, or drop the connection (before or
after it created the post). It is controlled in-process (``inject``) or over HTTP under
``/_standin/`` so that tests, the chaos harness and the demo can drive it from another process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class HttpError(Exception):
    """Raised by a handler to answer with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, {"error": "body is not JSON"}) from None

    def form(self) -> dict[str, str]:
        ctype = self.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            data = self.json()
            if not isinstance(data, dict):
                raise HttpError(400, {"error": "body must be a JSON object"})
            return {k: v for k, v in data.items()}
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.startswith("Bearer ") else None


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Fault:
    """One misbehaviour, applied to the next ``times`` requests whose path contains ``path``.

    ``status``: answer this instead (429 gets ``Retry-After: retry_after``). ``delay``: seconds to
    wait before answering. ``drop``: close the connection without an answer. ``commit``: run the real
    handler first (the post is created), then delay or drop; otherwise the request never arrives.
    """

    status: int | None = None
    retry_after: float | None = None
    body: Any = None
    delay: float = 0.0
    drop: bool = False
    commit: bool = False
    path: str = ""
    times: int = 1
    # Extra headers on the injected answer (a redirect's Location, say).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Created:
    """One thing the platform created, with the idempotency key (if any) it was created under."""

    id: str
    kind: str
    data: dict[str, Any]
    key: str | None = None
    at: float = field(default_factory=time.time)


Route = tuple[str, re.Pattern[str], Callable[[Request], Response]]


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 overflows under a burst of workers and adds a 1 s SYN retry.
    request_queue_size = 256


class StandIn:
    platform = "standin"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.RLock()
        self.created: list[Created] = []
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.early_requests = 0
        # TCP connections accepted: a client that keeps its connection alive opens one for many requests.
        self.connections = 0
        self.retry_blocks: dict[str, float] = {}
        self.routes: list[Route] = []
        self.register()
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"standin-{self.platform}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what subclasses provide ----------------------------------------------------------------
    def register(self) -> None:
        """Add routes with :meth:`route`."""

    def route(self, method: str, pattern: str, handler: Callable[[Request], Response]) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def scope(self, request: Request) -> str:
        """Who a request counts against for rate limits: by default its Authorization header."""
        return hashlib.sha256(request.headers.get("authorization", "").encode()).hexdigest()[:16]

    def rate_limited(self, fault: Fault) -> Response:
        """The platform's own 429 answer; subclasses shape the body like the real service."""
        wait = fault.retry_after if fault.retry_after is not None else 1
        return Response(429, fault.body or {"error": "Too many requests"},
                        {"Retry-After": str(int(wait) if float(wait).is_integer() else wait)})

    def fault_response(self, fault: Fault) -> Response:
        """An injected non-429 error, shaped like the platform's own; subclasses may override."""
        return Response(fault.status or 500, fault.body or {"error": "injected fault"})

    def state(self) -> dict[str, Any]:
        return {}

    def add_account(self, handle: str, followers: int = 0) -> dict[str, str]:
        """Create an account on this stand-in; return the credentials crosspost should store for it."""
        raise NotImplementedError

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Who is signed in on the platform's own site (its consent page acts for them)."""
        raise HttpError(404, {"error": f"the {self.platform} stand-in has no sign-in page"})

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        """The installation's app on this stand-in, with ``redirect_uri`` registered: its client id
        and secret, for rehearsing a connection from the dashboard (empty: no app is needed)."""
        return {}

    def duplicates(self) -> int:
        """Posts created more than once: same account and same text (every test story is unique)."""
        with self.lock:
            seen: dict[tuple[str, str], int] = {}
            for c in self.created:
                ident = (str(c.data.get("account")), str(c.data.get("text")))
                seen[ident] = seen.get(ident, 0) + 1
        return sum(n - 1 for n in seen.values())

    # -- control --------------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset(self) -> None:
        with self.lock:
            self.created.clear()
            self.requests.clear()
            self.faults.clear()
            self.retry_blocks.clear()
            self.early_requests = 0

    def record(self, kind: str, data: dict[str, Any], key: str | None = None,
               id: str | None = None) -> Created:
        with self.lock:
            item = Created(id or str(len(self.created) + 1), kind, data, key)
            self.created.append(item)
            return item

    def posts(self, kind: str | None = None) -> list[Created]:
        with self.lock:
            return [c for c in self.created if kind is None or c.kind == kind]

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path in path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _control(self, req: Request) -> Response:
        action = req.path.removeprefix("/_standin/")
        if req.method == "GET" and action == "posts":
            return Response(200, [asdict(c) for c in self.posts()])
        if req.method == "GET" and action == "stats":
            with self.lock:
                return Response(200, {"created": len(self.created), "requests": len(self.requests),
                                      "duplicates": self.duplicates(),
                                      "early_requests": self.early_requests, **self.state()})
        if req.method == "POST" and action == "faults":
            data = req.json()
            self.inject(*(Fault(**f) for f in (data if isinstance(data, list) else [data])))
            return Response(200, {"ok": True})
        if req.method == "POST" and action == "accounts":
            data = req.json()
            return Response(200, self.add_account(data["handle"], int(data.get("followers", 0))))
        if req.method == "POST" and action == "sign-in":
            # Rehearsing a connection from another process: who consents, and the dashboard's app.
            data = req.json()
            try:
                self.sign_in(str(data["handle"]), int(data.get("followers", 0)))
                with self.lock:
                    return Response(200, self.oauth_app(str(data.get("redirect_uri") or "")))
            except HttpError as err:
                return Response(err.status, err.body)
        if req.method == "POST" and action == "latency":
            self.latency = float(req.json()["seconds"])
            return Response(200, {"ok": True})
        if req.method == "POST" and action == "reset":
            self.reset()
            return Response(200, {"ok": True})
        return Response(404, {"error": f"no control action {action}"})

    # -- dispatch -------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        for method, pattern, handler in self.routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                req.match = m
                try:
                    return handler(req)
                except HttpError as err:
                    return Response(err.status, err.body, err.headers)
        return Response(404, {"error": f"{self.platform} stand-in has no {req.method} {req.path}"})

    def _note_request(self, req: Request) -> None:
        scope = self.scope(req)
        now = time.time()
        with self.lock:
            self.requests.append({"method": req.method, "path": req.path, "at": now, "scope": scope})
            if self.retry_blocks.get(scope, 0) > now:
                self.early_requests += 1

    def _note_retry_after(self, req: Request, response: Response) -> None:
        wait = response.headers.get("Retry-After")
        if response.status == 429 and wait is not None:
            with self.lock:
                self.retry_blocks[self.scope(req)] = time.time() + float(wait)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without this each answer waits ~40 ms (Nagle).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                with standin.lock:
                    standin.connections += 1

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path,
                              {k: v[-1] for k, v in parse_qs(parts.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, body)
                if parts.path.startswith("/_standin/"):
                    self._answer(standin._control(req))
                    return
                standin._note_request(req)
                fault = standin._take_fault(parts.path)
                if standin.latency:
                    time.sleep(standin.latency)
                if fault and not fault.commit:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        self._drop()
                        return
                    if fault.status is not None:
                        response = (standin.rate_limited(fault) if fault.status == 429
                                    else standin.fault_response(fault))
                        response.headers.update(fault.headers)
                        standin._note_retry_after(req, response)
                        self._answer(response)
                        return
                response = standin.dispatch(req)
                standin._note_retry_after(req, response)
                if fault and fault.commit:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        self._drop()
                        return
                self._answer(response)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _answer(self, response: Response) -> None:
                payload = response.raw if response.raw is not None else (
                    b"" if response.body is None else json.dumps(response.body).encode())
                self.send_response(response.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler


def serve(standin: StandIn) -> None:
    """Run ``standin`` in the foreground, printing its URL (for ``python -m adapters.standins``)."""
    standin.start()
    print(standin.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
