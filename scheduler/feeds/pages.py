"""An article page's Open Graph / Twitter Card image and its alt text."""

from __future__ import annotations

import io
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from config.settings import Settings
from scheduler.stories import fetching

PAGE_LIMIT = 2 * 1024 * 1024
PAGE_TIMEOUT = 15.0


@dataclass(frozen=True)
class PageImage:
    url: str
    alt: str


class _Meta(HTMLParser):
    """Collects ``<meta property|name=... content=...>`` until ``</head>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done or tag != "meta":
            return
        values = {k.lower(): v or "" for k, v in attrs}
        key = (values.get("property") or values.get("name") or "").strip().lower()
        if key and "content" in values:
            self.found.setdefault(key, values["content"].strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.done = True


def image_of(html: str, page_url: str) -> PageImage | None:
    """The page's og:image (else twitter:image) resolved against the page, with its alt text."""
    parser = _Meta()
    parser.feed(html)
    found = parser.found
    for prefix in ("og:image", "twitter:image"):
        url = found.get(prefix) or found.get(f"{prefix}:secure_url") or found.get(f"{prefix}:src")
        if url:
            alt = found.get(f"{prefix}:alt") or found.get("og:image:alt") or found.get("twitter:image:alt")
            return PageImage(urljoin(page_url, url), alt or "")
    return None


def fetch_image_ref(page_url: str, settings: Settings) -> PageImage | None:
    """Fetch the article page (through the SSRF-safe fetcher, small and quick) and read its image."""
    sink = io.BytesIO()
    got = fetching.fetch(page_url, sink, settings, what="page", max_bytes=PAGE_LIMIT, timeout=PAGE_TIMEOUT,
                          total=PAGE_TIMEOUT)
    charset = "utf-8"
    content_type = got.headers.get("content-type", "")
    if "charset=" in content_type.lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
    try:
        html = sink.getvalue().decode(charset, errors="replace")
    except LookupError:
        html = sink.getvalue().decode("utf-8", errors="replace")
    return image_of(html, got.url)
