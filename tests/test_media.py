"""The media store: local files and URLs, sniffed types, sizes, dimensions, no private fetches."""

from __future__ import annotations

import io
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image

from config.settings import Settings
from scheduler.core.errors import UserError
from scheduler.stories import media


def png(path: Path, size: tuple[int, int] = (640, 360)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, "PNG")
    return path


def mp4(path: Path, width: int = 1280, height: int = 720) -> Path:
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    tkhd = bytes(4) + bytes(72) + struct.pack(">II", width << 16, height << 16)  # version 0 layout
    data = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + box(b"moov", box(b"trak", box(b"tkhd", tkhd)))
    path.write_bytes(data + box(b"mdat", bytes(1024)))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    files = {"/a.png": png(tmp_path / "served.png").read_bytes(), "/big": bytes(4096)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/a.png")
                self.end_headers()
                return
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain")  # wrong on purpose: the bytes decide
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_local_image_is_stored_by_content_with_dimensions(tmp_path: Path, settings: Settings) -> None:
    src = png(tmp_path / "photo.png")
    got = media.ingest(str(src), alt="A red square", settings=settings)
    assert (got.kind, got.mime, got.width, got.height, got.alt) == (
        "image",
        "image/png",
        640,
        360,
        "A red square",
    )
    assert Path(got.path).read_bytes() == src.read_bytes()
    assert got.sha256 in got.path
    again = media.ingest(str(src), settings=settings)
    assert again.path == got.path  # content-addressed: stored once


def test_video_dimensions_come_from_the_track_header(tmp_path: Path, settings: Settings) -> None:
    got = media.ingest(str(mp4(tmp_path / "clip.mp4")), settings=settings)
    assert (got.kind, got.mime, got.width, got.height) == ("video", "video/mp4", 1280, 720)


def test_public_url_is_derived_from_the_store_name(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", media_public_url="https://cdn.example.org/media/")
    got = media.ingest(str(png(tmp_path / "p.png")), settings=s)
    assert got.url == f"https://cdn.example.org/media/{got.sha256[:2]}/{got.sha256}.png"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"%PDF-1.7 not media", "is not a JPEG, PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "cannot be read as an image"),
    ],
)
def test_unreadable_files_are_refused(
    tmp_path: Path, settings: Settings, content: bytes, message: str
) -> None:
    src = tmp_path / "x.png"
    src.write_bytes(content)
    with pytest.raises(UserError, match=message):
        media.ingest(str(src), settings=settings)
    assert not list((settings.media_dir).rglob("*.*"))


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", media_max_bytes=100)
    with pytest.raises(UserError, match="no file"):
        media.ingest(str(tmp_path / "nope.png"), settings=s)
    with pytest.raises(UserError, match="larger than 100 bytes"):
        media.ingest(str(png(tmp_path / "p.png")), settings=s)


def test_url_on_loopback_is_refused_by_default(server: str, settings: Settings) -> None:
    with pytest.raises(UserError, match="non-public address"):
        media.ingest(f"{server}/a.png", settings=settings)


def test_url_is_fetched_sniffed_and_redirects_followed_when_allowed(server: str, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True)
    got = media.ingest(f"{server}/redirect", settings=s)
    assert (got.mime, got.width) == ("image/png", 640)


def test_url_size_cap_and_http_errors(server: str, tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True, media_max_bytes=1000)
    with pytest.raises(UserError, match="larger than 1000 bytes"):
        media.ingest(f"{server}/big", settings=s)
    with pytest.raises(UserError, match="answered 404"):
        media.ingest(f"{server}/missing", settings=s)


@pytest.mark.parametrize("url", ["ftp://example.org/a.png", "http:///a.png"])
def test_non_http_urls(url: str, settings: Settings) -> None:
    with pytest.raises(UserError, match="media"):
        media.ingest(url, settings=settings) if url.startswith("http") else media._check_host(url, settings)


# -- what a fetch connects to (issue 9, item 9) ------------------------------------------------
class Recorder(ThreadingHTTPServer):
    """A local HTTP server that remembers every request line and Host header it was sent."""

    def __init__(self, address: tuple[str, int], routes: dict[str, tuple[int, dict[str, str], bytes]]):
        self.seen: list[tuple[str, str]] = []
        self.routes = routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append((self.path, self.headers.get("Host", "")))
                status, headers, body = server.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value.format(port=server.server_address[1]))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(address, Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def two_loopbacks(tmp_path: Path) -> Iterator[tuple[Recorder, Recorder]]:
    """The same port on 127.0.0.1 and 127.0.0.2: a name that resolves to one then the other."""
    image = png(tmp_path / "served.png").read_bytes()
    routes = {"/a.png": (200, {}, image),
              "/hop": (302, {"Location": "http://rebind.test:{port}/a.png"}, b""),
              "/loop": (302, {"Location": "/loop"}, b"")}
    first = Recorder(("127.0.0.1", 0), routes)
    second = Recorder(("127.0.0.2", first.server_address[1]), routes)
    yield first, second
    for server in (first, second):
        server.shutdown()
        server.server_close()


class Resolver:
    """An in-process DNS for ``rebind.test``: its answers change on every lookup, as a rebinding
    attacker's server would make them (other names resolve as usual)."""

    def __init__(self, answers: list[str], name: str = "rebind.test") -> None:
        self.answers, self.asked, self.name = answers, 0, name
        self.real = socket.getaddrinfo

    def __call__(self, host: str, port: object, *args: object, **kwargs: object) -> list[Any]:
        if host != self.name:
            return self.real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        address = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def test_fetch_connects_to_the_address_it_vetted(two_loopbacks: tuple[Recorder, Recorder], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once per hop, and the connection goes to that answer; a
    second lookup (which would answer 127.0.0.2) never happens, and nothing reaches 127.0.0.2."""
    first, second = two_loopbacks
    resolver = Resolver(["127.0.0.1", "127.0.0.2"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True)
    got = media.ingest(f"http://rebind.test:{first.server_address[1]}/a.png", settings=s)
    assert got.width == 640
    assert resolver.asked == 1
    assert first.seen == [("/a.png", f"rebind.test:{first.server_address[1]}")]  # the name, not the IP
    assert second.seen == []


def test_vetted_public_address_is_the_one_connected_to(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With the guard on: the name first resolves to a public address (which passes), then would
    resolve to loopback. The socket is opened to the public address that was vetted, by number, and
    the name is looked up once. (The connect is recorded and refused here, so no test traffic leaves
    the machine.)"""
    resolver = Resolver(["93.184.215.14", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    connects: list[tuple[str, int]] = []

    def record(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connects.append(address)
        raise ConnectionRefusedError(111, "refused by the test")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", record)
    s = Settings(data_dir=tmp_path / "d", media_fetch_timeout=2)
    with pytest.raises(UserError, match="cannot fetch"):
        media.ingest("http://rebind.test:8080/a.png", settings=s)
    assert connects == [("93.184.215.14", 8080)]
    assert resolver.asked == 1


def test_every_redirect_hop_is_resolved_and_vetted_again(two_loopbacks: tuple[Recorder, Recorder],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = two_loopbacks
    resolver = Resolver(["127.0.0.2", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True)
    port = first.server_address[1]
    media.ingest(f"http://rebind.test:{port}/hop", settings=s)
    # Hop 1 went to the first answer, hop 2 to the second: each hop connects where its own lookup said.
    assert resolver.asked == 2
    assert [p for p, _ in second.seen] == ["/hop"]
    assert [p for p, _ in first.seen] == ["/a.png"]


def test_redirect_to_a_non_public_address_is_refused(two_loopbacks: tuple[Recorder, Recorder],
                                                     tmp_path: Path) -> None:
    first, _ = two_loopbacks
    s = Settings(data_dir=tmp_path / "d")
    with pytest.raises(UserError, match=r"non-public address \(127\.0\.0\.1\)"):
        media._fetch(f"http://127.0.0.1:{first.server_address[1]}/a.png", io.BytesIO(), s)
    assert first.seen == []  # refused before connecting


def test_redirect_from_a_public_host_to_loopback_is_refused(two_loopbacks: tuple[Recorder, Recorder],
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With the guard on, a public host (played by the local server: the connect to the vetted
    public address is recorded, then carried to it) redirects to loopback: the second hop is vetted
    and refused before any connection."""
    first, _ = two_loopbacks
    port = first.server_address[1]
    first.routes["/to-loopback"] = (302, {"Location": "http://127.0.0.1:{port}/a.png"}, b"")
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["93.184.215.14"]))
    connects: list[tuple[str, int]] = []

    def carry(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connects.append(address)
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", carry)
    s = Settings(data_dir=tmp_path / "d")
    with pytest.raises(UserError, match=r"non-public address \(127\.0\.0\.1\)"):
        media.ingest(f"http://rebind.test:{port}/to-loopback", settings=s)
    assert connects == [("93.184.215.14", port)]
    assert [p for p, _ in first.seen] == ["/to-loopback"]


def test_redirects_are_capped(two_loopbacks: tuple[Recorder, Recorder], tmp_path: Path) -> None:
    first, _ = two_loopbacks
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True)
    with pytest.raises(UserError, match=f"redirects more than {media.MAX_REDIRECTS} times"):
        media.ingest(f"http://127.0.0.1:{first.server_address[1]}/loop", settings=s)
    assert len(first.seen) == media.MAX_REDIRECTS + 1
    assert not list(s.media_dir.rglob("*.*"))


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by its own key: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.parametrize(("served_as", "ok"), [("media.test", True), ("other.test", False)])
def test_https_to_the_vetted_address_still_checks_the_certificate_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served_as: str, ok: bool) -> None:
    """Connecting by number must not weaken TLS: the certificate is checked against the URL's host
    name (sent as SNI), so a server with another name's certificate is refused."""
    cert_file, key_file = self_signed(tmp_path, served_as)
    server = Recorder(("127.0.0.1", 0), {"/a.png": (200, {}, png(tmp_path / "served.png").read_bytes())})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the only certificate the client trusts
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["127.0.0.1"], "media.test"))
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True, media_fetch_timeout=5)
    url = f"https://media.test:{server.server_address[1]}/a.png"
    try:
        if ok:
            assert media.ingest(url, settings=s).width == 640
            assert server.seen == [("/a.png", f"media.test:{server.server_address[1]}")]
        else:
            with pytest.raises(UserError, match="cannot fetch"):
                media.ingest(url, settings=s)
            assert server.seen == []
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_variables_are_ignored(two_loopbacks: tuple[Recorder, Recorder], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy variable in the worker's environment must not route media fetches (the proxy would
    make its own lookup, past our checks)."""
    first, proxy = two_loopbacks
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.2:{proxy.server_address[1]}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(data_dir=tmp_path / "d", media_allow_private=True)
    media.ingest(f"http://127.0.0.1:{first.server_address[1]}/a.png", settings=s)
    assert [p for p, _ in first.seen] == ["/a.png"]
    assert proxy.seen == []


def test_decompression_bomb_header_is_refused(tmp_path: Path, settings: Settings) -> None:
    """A PNG whose header claims 30000x30000: one clear error, nothing stored (Pillow raises
    DecompressionBombError, which is not an OSError)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(UserError, match="decompression bomb"):
        media.ingest(str(bomb), settings=settings)
    assert not list(settings.media_dir.rglob("*.*"))


def test_unwritable_media_store_is_a_clear_error(tmp_path: Path) -> None:
    """The data directory's media store cannot be written (here: a file stands where it should be,
    which fails for root too, unlike permission bits)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "media").write_text("not a directory")
    s = Settings(data_dir=data)
    with pytest.raises(UserError, match="cannot write to the media store"):
        media.ingest(str(png(tmp_path / "p.png")), settings=s)
