"""Feed documents to items: RSS 0.9x/1.0/2.0 and Atom through feedparser (any declared or detectable
encoding, malformed XML recovered where it can be), JSON Feed and news sitemaps read here. Links
are resolved against the feed's URL; titles and summaries become plain text."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from charset_normalizer import from_bytes

from scheduler.core.errors import UserError
from scheduler.feeds.text import plain
from scheduler.matrix import accounts

SUMMARY_LIMIT = 5_000
_NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"
_SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass
class Entry:
    guid: str
    link: str | None
    title: str = ""
    summary: str = ""
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    published: datetime | None = None


@dataclass
class Parsed:
    kind: str
    title: str
    language: str | None
    entries: list[Entry]


def _language(value: object) -> str | None:
    """A declared language as a BCP-47 tag (``zh-cn`` -> ``zh-CN``), or None when it is not one: a
    feed's typo must not reach a column or a platform."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return accounts.check_language(value)
    except UserError:
        return None


def _strings(values: object) -> list[str]:
    """Categories as plain, non-empty strings (a JSON Feed may hold anything in ``tags``)."""
    if not isinstance(values, list):
        return []
    return [text for v in values if isinstance(v, str) and (text := plain(v))][:50]


def _guid(value: str) -> str:
    return value.replace("\x00", "").strip()[:4000]


def parse(body: bytes, url: str, content_type: str | None = None) -> Parsed:
    """The items of the feed document ``body`` fetched from ``url``; UserError if it is none."""
    head = body.lstrip()[:2048]
    if head.startswith(b"{"):
        return _json_feed(body, url)
    if b"<urlset" in head and (_NEWS.encode()[1:-1] in body[:8192]):
        return _sitemap(body, url)
    return _xml_feed(_undeclared_to_utf8(body, content_type), url, content_type)


def _undeclared_to_utf8(body: bytes, content_type: str | None) -> bytes:
    """A document that declares no encoding (neither in its Content-Type nor its XML declaration) and
    is not UTF-8 is detected (a GBK or Big5 site that never says so) and re-encoded as UTF-8; feedparser
    would otherwise read it as windows-1252."""
    if (content_type and "charset=" in content_type.lower()) or _DECLARED.match(body):
        return body
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        best = from_bytes(body[:200_000]).best()
        if best is None:
            return body
        return body.decode(best.encoding, errors="replace").encode("utf-8")


def _when(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _resolved(link: object, base: str) -> str | None:
    """``link`` made absolute against ``base``; None for no link, or one with white space or control
    characters inside (no real URL has them)."""
    if not isinstance(link, str) or not link.strip() or not link.strip().isprintable() or " " in link.strip():
        return None
    return urljoin(base, link.strip())


def _xml_feed(body: bytes, url: str, content_type: str | None) -> Parsed:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    doc = feedparser.parse(body, response_headers=headers, sanitize_html=True, resolve_relative_uris=True)
    if not doc.get("version") and not doc.entries:
        problem = doc.get("bozo_exception")
        detail = f" ({' '.join(str(problem).split())[:120]})" if problem else ""
        raise UserError(f"feed: {url} is not an RSS, Atom, JSON Feed or news sitemap document{detail}")
    language = _language(doc.feed.get("language"))
    entries = []
    for item in doc.entries:
        link = _resolved(item.get("link"), url)
        guid = _guid(item.get("id") or link or item.get("title") or "")
        if not guid:
            continue  # nothing identifies it; it could never be recognised again
        summary = plain(item.get("summary") or "")[:SUMMARY_LIMIT]
        entries.append(Entry(
            guid=guid, link=link, title=plain(item.get("title") or ""), summary=summary,
            categories=_strings([t.get("term") for t in item.get("tags") or []]),
            language=_language((item.get("title_detail") or {}).get("language")),
            published=_when(item.get("published_parsed") or item.get("updated_parsed"))))
    return Parsed(doc.get("version") or "unknown", plain(doc.feed.get("title") or ""), language, entries)


def _json_feed(body: bytes, url: str) -> Parsed:
    """JSON Feed 1.0 and 1.1 (always UTF-8, by its specification)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"feed: {url} is not valid JSON Feed ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or "jsonfeed.org" not in str(doc.get("version", "")):
        raise UserError(f"feed: {url} is JSON but not a JSON Feed (no jsonfeed.org version)")
    base = doc.get("feed_url") or url
    entries = []
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = _resolved(item.get("url") or item.get("external_url"), base)
        guid = _guid(str(item.get("id") or link or ""))
        if not guid:
            continue
        summary = item.get("summary") or item.get("content_text") or plain(item.get("content_html") or "")
        published = None
        if isinstance(item.get("date_published"), str):
            try:
                published = datetime.fromisoformat(item["date_published"].replace("Z", "+00:00"))
                published = published.astimezone(UTC) if published.tzinfo else None
            except ValueError:
                published = None
        entries.append(Entry(guid=guid, link=link, title=plain(str(item.get("title") or "")),
                             summary=plain(str(summary))[:SUMMARY_LIMIT],
                             categories=_strings(item.get("tags")),
                             language=_language(item.get("language")), published=published))
    return Parsed("json", plain(str(doc.get("title") or "")), _language(doc.get("language")), entries)


def _sitemap(body: bytes, url: str) -> Parsed:
    """A Google News sitemap: one item per ``<url>`` that carries ``<news:news>`` (a plain sitemap's
    thousands of pages are not news)."""
    try:
        root = ET.fromstring(body)  # expat: no external entities, and entity expansion is bounded
    except ET.ParseError as exc:
        raise UserError(f"feed: {url} is a sitemap that cannot be read ({exc})") from None
    entries = []
    for node in root.iter(f"{_SITEMAP}url"):
        news = node.find(f"{_NEWS}news")
        loc = _resolved(node.findtext(f"{_SITEMAP}loc"), url)
        if news is None or not loc:
            continue
        published = None
        text = news.findtext(f"{_NEWS}publication_date")
        if text:
            try:
                published = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
                published = published.astimezone(UTC) if published.tzinfo else None
            except ValueError:
                published = None
        keywords = news.findtext(f"{_NEWS}keywords") or ""
        entries.append(Entry(
            guid=loc, link=loc, title=plain(news.findtext(f"{_NEWS}title") or ""),
            categories=_strings(keywords.split(",")),
            language=_language(news.findtext(f"{_NEWS}publication/{_NEWS}language")),
            published=published))
    return Parsed("sitemap-news", "", None, entries)
