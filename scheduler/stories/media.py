"""The media store: images and videos a story carries, content-addressed in the data directory.

A local path is copied in; an http(s) URL is fetched once, with a size cap, redirects checked hop by
hop, and no fetch from loopback, private or link-local addresses unless settings allow it (a story's
media URL must never make crosspost probe the newsroom's internal network). The type is sniffed from
the bytes, never trusted from a file name or a Content-Type header.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, UnidentifiedImageError

from adapters.base import Media
from config.settings import Settings, get_settings
from scheduler.core.errors import UserError, shown_path
from scheduler.stories import fetching

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"ftypqt", 4, "video/quicktime"),
    (b"ftyp", 4, "video/mp4"),
]
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
               "video/mp4": "mp4", "video/quicktime": "mov"}
MAX_REDIRECTS = fetching.MAX_REDIRECTS


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first bytes, or None if it is not one crosspost handles."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, offset, mime in _SIGNATURES:
        if signature != b"WEBP" and head[offset:offset + len(signature)] == signature:
            return mime
    return None


def _mp4_dimensions(f: BinaryIO) -> tuple[int | None, int | None]:
    """Width and height from the first video track header (``tkhd``) of an MP4, if it can be found."""
    def boxes(end: int) -> Any:
        while f.tell() + 8 <= end:
            start = f.tell()
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = end - start
            if size < 8:
                return
            yield kind, start, start + size
            f.seek(start + size)

    f.seek(0, os.SEEK_END)
    total = f.tell()
    f.seek(0)
    for kind, _start, end in boxes(total):
        if kind != b"moov":
            continue
        for track, _s, track_end in boxes(end):
            if track != b"trak":
                continue
            for head, head_start, _e in boxes(track_end):
                if head == b"tkhd":
                    f.seek(head_start + 8)
                    version = f.read(1)[0]
                    f.seek(head_start + 8 + (88 if version == 1 else 76))
                    width, height = struct.unpack(">II", f.read(8))
                    if width and height:
                        return width >> 16, height >> 16
            f.seek(track_end)
        break
    return None, None


def _vet(url: str, settings: Settings) -> tuple[str, str, int, str]:
    return fetching.vet(url, settings)


def _check_host(url: str, settings: Settings) -> None:
    _vet(url, settings)


def _fetch(url: str, target: BinaryIO, settings: Settings) -> None:
    """Download ``url`` into ``target`` through the shared SSRF-safe fetcher."""
    fetching.fetch(url, target, settings)


def ingest(source: str, alt: str = "", settings: Settings | None = None) -> Media:
    """Bring ``source`` (a local path or an http(s) URL) into the store; return what was read of it."""
    settings = settings or get_settings()
    try:
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=settings.media_dir, delete=False)  # noqa: SIM115 - below
    except OSError as exc:
        # A read-only data directory, or a file where the media directory should be.
        raise UserError(f"media: cannot write to the media store {settings.media_dir}: "
                        f"{exc.strerror or type(exc).__name__}") from None
    with tmp:
        try:
            if source.startswith(("http://", "https://")):
                _fetch(source, tmp, settings)
            else:
                path = Path(source).expanduser()
                try:
                    if not path.is_file():
                        raise UserError(f"media: no file {shown_path(source)}")
                    if path.stat().st_size > settings.media_max_bytes:
                        raise UserError(f"media: {shown_path(source)} is larger than "
                                        f"{settings.media_max_bytes} bytes")
                    with path.open("rb") as f:
                        shutil.copyfileobj(f, tmp)
                except ValueError:  # a NUL in the name
                    raise UserError(f"media: {shown_path(source)} is not a file name") from None
            tmp.flush()
            return _store(Path(tmp.name), source, alt, settings)
        except OSError as exc:
            # Reading the source or writing the copy (a full or read-only disk): one line, no traceback.
            raise UserError(f"media: cannot store {shown_path(source)}: "
                            f"{exc.strerror or type(exc).__name__}") from None
        finally:
            Path(tmp.name).unlink(missing_ok=True)


def _store(tmp: Path, source: str, alt: str, settings: Settings) -> Media:
    size = tmp.stat().st_size
    with tmp.open("rb") as f:
        mime = sniff(f.read(32))
    if mime is None:
        raise UserError(f"media: {shown_path(source)} is not a JPEG, PNG, GIF, WebP image or an MP4/MOV "
                        "video")
    digest = hashlib.sha256()
    with tmp.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    kind = "image" if mime.startswith("image/") else "video"
    if kind == "image":
        try:
            with Image.open(tmp) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            # The header alone claims the size: refuse it before any platform is asked to decode it.
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise UserError(f"media: {shown_path(source)} claims more than {limit} pixels (the limit); "
                            "refused as a decompression bomb") from None
        except (UnidentifiedImageError, OSError):
            raise UserError(f"media: {shown_path(source)} looks like {mime} but cannot be read as an "
                            "image") from None
    else:
        with tmp.open("rb") as f:
            try:
                width, height = _mp4_dimensions(f)
            except (struct.error, IndexError):
                width = height = None
    name = f"{sha[:2]}/{sha}.{_EXTENSIONS[mime]}"
    final = settings.media_dir / name
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        os.replace(tmp, final)
    url = f"{settings.media_public_url.rstrip('/')}/{name}" if settings.media_public_url else None
    return Media(kind=kind, path=str(final), mime=mime, size=size, width=width, height=height, alt=alt,
                 sha256=sha, url=url)


def to_json(media: Media) -> dict[str, Any]:
    return asdict(media)
