"""A real HTTP server on 127.0.0.1 serving feed documents written for the tests: each route answers
a fixed (status, headers, body) or a function of the request; every request is recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A body given as a list of pieces is trickled: one piece every TRICKLE seconds.
Answer = tuple[int, dict[str, str], bytes | list[bytes]]
TRICKLE = 0.2
UNSAID_LENGTH = "x-test-unsaid-length"
Route = Answer | Callable[[dict[str, str]], Answer]


@dataclass
class FeedServer:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)


@contextmanager
def serving() -> Iterator[FeedServer]:
    state = FeedServer("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append((self.path, headers))
            route = state.routes.get(self.path)
            if route is None:
                status, answer, body = 404, {}, b"not found"
            else:
                status, answer, body = route(headers) if callable(route) else route
            self.send_response(status)
            # UNSAID_LENGTH: no Content-Length; the body ends when the connection closes.
            unsaid = answer.get(UNSAID_LENGTH) is not None
            for key, value in answer.items():
                if key != UNSAID_LENGTH:
                    self.send_header(key, value)
            pieces = body if isinstance(body, list) else [body]
            if unsaid:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(sum(len(p) for p in pieces)))
            self.end_headers()
            for n, piece in enumerate(pieces):
                if n:
                    time.sleep(TRICKLE)
                try:
                    self.wfile.write(piece)
                    self.wfile.flush()
                except OSError:  # the client gave up (a time limit): nothing more to send
                    return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def rss(items: list[tuple[str, str, str]], language: str | None = None) -> bytes:
    body = "".join(f"<item><guid>{g}</guid><link>{link}</link><title>{t}</title>"
                   f"<category>City News</category></item>" for g, link, t in items)
    lang = f"<language>{language}</language>" if language else ""
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>S</title>{lang}'
            f"{body}</channel></rss>").encode()


XML = {"Content-Type": "application/rss+xml; charset=utf-8"}
THREE = [(f"g{i}", f"https://news.example.com/{i}", f"Story number {i}") for i in range(1, 4)]
