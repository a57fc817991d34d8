"""The media store: local files and URLs, sniffed types, sizes, dimensions, no private fetches."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from config.settings import Settings
from scheduler import media
from scheduler.errors import UserError


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
