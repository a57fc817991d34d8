"""Test data every adapter module can use: accounts on a stand-in, media files, publishing to the end.

Plain functions (fixtures that build on them are in conftest.py), so a module imports exactly what it
uses and a table row can call them.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from pathlib import Path
from typing import Any

from PIL import Image

from adapters.base import AccountRef, Adapter, Credentials, Media, Post, Progress, Published
from adapters.errors import InProgress
from adapters.standins.base import StandIn

_serial = itertools.count(1)


def unique(prefix: str = "newsroom") -> str:
    """A name no other test in this process uses (stand-ins live for the whole session)."""
    return f"{prefix}{next(_serial)}"


def account_on(standin: StandIn, platform: str, handle: str, followers: int = 10,
               **kwargs: Any) -> AccountRef:
    """A new account on ``standin`` with the credentials it issued, pointed at the stand-in."""
    creds = standin.add_account(handle, followers=followers, **kwargs)  # type: ignore[call-arg]
    return AccountRef(id=1, platform=platform, handle=handle, base_url=standin.url,
                      credentials=Credentials(creds))


def mp4(path: Path, size: int, seconds: int = 30, ftyp: bool = True, version: int = 0) -> Media:
    """An MP4-shaped file: ``ftyp``, a ``moov`` holding an ``mvhd`` (box ``version`` 0 or 1) of
    ``seconds``, then ``mdat``."""
    if version == 1:
        mvhd = struct.pack(">B3xQQIQ", 1, 0, 0, 1000, seconds * 1000)
    else:
        mvhd = struct.pack(">B3xIIII", 0, 0, 0, 600, seconds * 600)
    mvhd = struct.pack(">I4s", 8 + len(mvhd), b"mvhd") + mvhd
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    head = (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" if ftyp else b"\x00" * 24) + moov
    filler = hashlib.sha256(path.name.encode()).digest() * ((size - len(head)) // 32 + 1)
    data = (head + struct.pack(">I4s", size - len(head), b"mdat") + filler)[:size]
    path.write_bytes(data)
    return Media(kind="video", path=str(path), mime="video/mp4", size=size, width=1080, height=1920,
                 sha256=hashlib.sha256(data).hexdigest())


def png(path: Path, size: tuple[int, int] = (64, 48), url: str | None = None, alt: str = "") -> Media:
    """A real PNG file (``url``: where a platform that pulls media would fetch it)."""
    Image.new("RGB", size, (hash(path.name) % 255, 90, 160)).save(path, "PNG")
    return Media("image", str(path), "image/png", path.stat().st_size, size[0], size[1], alt=alt, url=url,
                 sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def fake(kind: str, mime: str, size: int, dims: tuple[int, int] | None = None, alt: str = "") -> Media:
    """Media for pure checks: described, never read."""
    return Media(kind, "/nonexistent", mime, size, *(dims or (None, None)), alt=alt)


def finish(adapter: Adapter, account: AccountRef, post: Post, progress: Progress | None = None,
           rounds: int = 20, key: str = "d1") -> Published:
    """Publish as the scheduler would: again, with the same progress, after every InProgress."""
    return finish_counted(adapter, account, post, progress, rounds, key)[0]


def finish_counted(adapter: Adapter, account: AccountRef, post: Post, progress: Progress | None = None,
                   rounds: int = 10, key: str = "d1") -> tuple[Published, int]:
    """:func:`finish`, also saying how many waits (InProgress, each with a positive ``after``) it took."""
    progress = progress if progress is not None else Progress()
    for waits in range(rounds):
        try:
            return adapter.publish(account, post, key, progress), waits
        except InProgress as wait:
            assert wait.after > 0
    raise AssertionError(f"{adapter.platform}: still in progress after {rounds} rounds")
