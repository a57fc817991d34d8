"""Story text from a feed item: a sandboxed Jinja2 template per feed and platform, fitted to the
platform's length limit by shortening the summary, then the title, then (last) the whole text."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from adapters import PLATFORMS
from scheduler.core.errors import UserError
from scheduler.feeds.text import clip, cut_points, shorten

DEFAULT = "{{ title }}\n\n{{ link }}{% if hashtags %}\n\n{{ hashtags }}{% endif %}"
SOURCE_LIMIT = 10_000
# Larger than any platform allows; keeps `{{ title * 100000 }}` from filling memory.
OUTPUT_LIMIT = 100_000
FIELDS = ("title", "summary", "link", "categories", "hashtags", "image", "language", "feed")


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` on operands that would build huge values refused."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and right > 64:
            raise TemplateError("exponent too large")
        if operator == "*":
            size = max(len(x) if isinstance(x, str | list) else 1 for x in (left, right))
            factor = next((x for x in (left, right) if isinstance(x, int)), 1)
            if size * factor > OUTPUT_LIMIT:
                raise TemplateError("repetition too large")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check(source: str, name: str = "default") -> str:
    """``source`` if it is a template this feed can use, else a UserError naming the platform and
    the problem (unknown field, syntax, size)."""
    where = f"template: {name}"
    if len(source) > SOURCE_LIMIT:
        raise UserError(f"{where}: is {len(source)} characters; the limit is {SOURCE_LIMIT}")
    if name != "default" and name not in PLATFORMS:
        raise UserError(f"{where}: unknown platform; known: default, {', '.join(PLATFORMS)}")
    try:
        unknown = sorted(meta.find_undeclared_variables(_ENV.parse(source)) - set(FIELDS))
    except TemplateError as exc:
        raise UserError(f"{where}: {' '.join(str(exc).split())}") from None
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    return source


def wants_image(source: str) -> bool:
    """A template that mentions ``image`` asks for the article's Open Graph image as the story's."""
    try:
        return "image" in meta.find_undeclared_variables(_ENV.parse(source))
    except TemplateError:
        return False


@dataclass
class Fields:
    title: str
    summary: str
    link: str
    categories: list[str] = field(default_factory=list)
    hashtags: str = ""
    image: dict[str, str] | None = None
    language: str | None = None
    feed: str = ""


def render(source: str, fields: Fields) -> str:
    """The template's text for ``fields``: blank lines that empty fields leave collapsed, trimmed."""
    pieces: list[str] = []
    size = 0
    try:
        # Generated piece by piece, so a loop that writes without end stops at the limit.
        for piece in _ENV.from_string(source).generate(**fields.__dict__):
            pieces.append(piece)
            size += len(piece)
            if size > OUTPUT_LIMIT:
                break
    except TemplateError as exc:
        raise UserError(f"template: {' '.join(str(exc).split())}") from None
    text = "".join(pieces)
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text).strip()
    return text[:OUTPUT_LIMIT]


def _fit_field(source: str, fields: Fields, name: str, fits: Callable[[str], bool]) -> str | None:
    """The text with field ``name`` clipped as little as needed to fit, or None if even without it
    the text does not fit."""
    value: str = getattr(fields, name)
    points = cut_points(value)
    lo, hi, best = 0, len(points) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        text = render(source, _with(fields, name, clip(value, points[mid])))
        if fits(text):
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    return best


def _with(fields: Fields, name: str, value: str) -> Fields:
    return Fields(**{**fields.__dict__, name: value})


def fit(source: str, fields: Fields, limit: int, count: Callable[[str], int] = len) -> str:
    """The rendered text within ``limit`` (as ``count`` counts): the summary shortened first, then
    (without a summary) the title; as a last resort the whole text, cut before any link it would split."""
    def fits(text: str) -> bool:
        return count(text) <= limit

    text = render(source, fields)
    if fits(text):
        return text
    if fields.summary and (fitted := _fit_field(source, fields, "summary", fits)) is not None:
        return fitted
    without_summary = _with(fields, "summary", "")
    if fields.title and (fitted := _fit_field(source, without_summary, "title", fits)) is not None:
        return fitted
    return shorten(render(source, _with(without_summary, "title", "")) or text, limit, count)
