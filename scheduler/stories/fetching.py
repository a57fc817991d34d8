"""The one SSRF-safe HTTP GET: media URLs and feeds (and the article pages feeds point at) go through it.

Each hop is resolved once, every address the name resolves to is checked (no loopback, private or
link-local address unless CROSSPOST_MEDIA_ALLOW_PRIVATE), and the connection goes to the vetted
address, so a DNS answer that changes between check and connect cannot reach an unchecked one.
Redirects are followed by hand and each hop is vetted like the first; a size cap and a whole-fetch time
limit bound what one URL may cost.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import urllib3

from adapters.http import USER_AGENT
from config.settings import Settings
from scheduler.core.errors import UserError, shown

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_PERMANENT = (301, 308)


@dataclass
class Fetched:
    """What a fetch ended with. ``status`` is 200, or 304 when a conditional request was answered
    "not modified". ``moved_to`` is where the first URL permanently moved (the last hop reached by
    301/308 redirects only), for a caller that remembers it; None when there was no such redirect."""

    status: int
    url: str
    moved_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0


def vet(url: str, settings: Settings, what: str = "media") -> tuple[str, str, int, str]:
    """(scheme, host, port, address) for ``url``: the host resolved once, every address it resolves
    to checked, and the address to connect to."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UserError(f"{what}: {shown(url)} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{what}: {shown(url)} is not an http(s) URL")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UserError(f"{what}: cannot resolve the host of {shown(url)}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UserError(f"{what}: cannot resolve the host of {shown(url)}")
    if not settings.media_allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not address.is_global:
                raise UserError(f"{what}: {shown(url)} resolves to a non-public address ({address}); "
                                "set CROSSPOST_MEDIA_ALLOW_PRIVATE=true to allow it")
    return parts.scheme, parts.hostname, port, addresses[0]


def _pool(scheme: str, host: str, port: int, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    """A connection pool to ``address`` (already vetted) that speaks to ``host``: TLS still checks
    the certificate against the host name. urllib3 reads no proxy variables, so HTTP(S)_PROXY cannot
    route the fetch elsewhere either."""
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(address, port, timeout=limits, retries=False, maxsize=1,
                                           server_hostname=host, assert_hostname=host)
    return urllib3.HTTPConnectionPool(address, port, timeout=limits, retries=False, maxsize=1)


def fetch(url: str, target: BinaryIO, settings: Settings, *, what: str = "media",
          max_bytes: int | None = None, timeout: float | None = None, total: float | None = None,
          headers: dict[str, str] | None = None) -> Fetched:
    """GET ``url`` into ``target``, following at most MAX_REDIRECTS redirects, each hop resolved,
    vetted and connected to like the first. ``max_bytes`` caps the body (default: the media cap);
    ``timeout`` bounds each connect and read (default: the media fetch timeout); ``total``, when
    given, bounds the whole fetch, every hop included (a large video may take minutes; a feed may
    not). ``headers`` are sent on every hop (a conditional GET's If-None-Match, for one)."""
    max_bytes = max_bytes or settings.media_max_bytes
    timeout = timeout or settings.media_fetch_timeout
    deadline = time.monotonic() + total if total else None
    moved_to: str | None = None
    permanent_so_far = True
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, address = vet(url, settings, what)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default = port == (443 if scheme == "https" else 80)
        name = f"[{host}]" if ":" in host else host
        sent = {"Host": name if default else f"{name}:{port}", "User-Agent": USER_AGENT,
                "Accept-Encoding": "identity", **(headers or {})}
        left = deadline - time.monotonic() if deadline is not None else timeout
        pool = _pool(scheme, host, port, address, max(0.1, min(timeout, left)))
        try:
            response = pool.urlopen("GET", path, headers=sent, redirect=False, retries=False,
                                    preload_content=False, assert_same_host=False)
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise UserError(f"{what}: cannot fetch {shown(url)}: {type(exc).__name__}") from None
        try:
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise UserError(f"{what}: {shown(url)} redirects without a Location")
                url = urljoin(url, location)
                permanent_so_far = permanent_so_far and response.status in _PERMANENT
                if permanent_so_far:
                    moved_to = url
                continue
            answered = {k.lower(): v for k, v in response.headers.items()}
            if response.status == 304 and headers:
                return Fetched(304, url, moved_to, answered)
            if response.status != 200:
                raise UserError(f"{what}: {shown(url)} answered {response.status}")
            declared = answered.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:  # said up front: nothing to download
                raise UserError(f"{what}: {shown(url)} is larger than {max_bytes} bytes")
            size = 0
            try:
                # read1 returns whatever has arrived: a body trickled a few bytes at a time meets the
                # time limit, where filling a fixed-size chunk would wait for all of it.
                while chunk := response.read1(1024 * 256):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UserError(f"{what}: {shown(url)} is larger than {max_bytes} bytes")
                    if deadline is not None and time.monotonic() > deadline:
                        raise UserError(f"{what}: {shown(url)} took longer than {total:g} s")
                    target.write(chunk)
            except urllib3.exceptions.HTTPError as exc:
                raise UserError(f"{what}: cannot fetch {shown(url)}: {type(exc).__name__}") from None
            return Fetched(200, url, moved_to, answered, size)
        finally:
            response.release_conn()
            pool.close()
    raise UserError(f"{what}: {shown(url, 80)} redirects more than {MAX_REDIRECTS} times")
