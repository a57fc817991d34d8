"""Request and response bodies: the OpenAPI schema is the contract (Schemathesis checks answers
against it). Responses allow extra fields, so a new field is not a breaking change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from scheduler.core.errors import MAX_ID

# A row id in a path: beyond MAX_ID it cannot exist (and the database driver would overflow).
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
# A list's order (by id: the cursor follows it).
Order = Annotated[Literal["newest", "oldest"], Query(description="newest (default) or oldest first")]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


URL = r"^https?://"


class ImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, pattern=URL, description="Fetched into the media store at queue time.")
    alt: str = Field("", max_length=2000)


class StoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=100_000)
    to: list[str] = Field(min_length=1, max_length=500, description="Account ids, platform:handle, or tags.")
    link: str | None = Field(None, max_length=2048)
    variants: dict[str, str] = Field(default_factory=dict, description="PLATFORM: text override.")
    at: str | None = Field(None, description="ISO-8601 time with offset; none means now.")
    next_slot: bool = False
    not_before: str | None = None
    thread: bool = False
    allow_duplicate: bool = False
    # URLs only: the server never reads its own files for a client.
    images: list[ImageIn] = Field(default_factory=list, max_length=20)
    video: str | None = Field(None, max_length=2048, pattern=URL)


class StoryEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=100_000)
    link: str | None = Field(None, max_length=2048)
    variants: dict[str, str] | None = None


class Retime(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = None
    next_slot: bool = False


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: bool = Field(False, description="Publish now (needed when the story's time has passed).")
    at: str | None = Field(None, description="A new time (instead of now).")
    fingerprint: str | None = Field(None, description="The story's fingerprint as read; refused if edited.")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    published: str | None = Field(None, max_length=2048)
    republish: bool = False


class DeliveryText(BaseModel):
    """One account's own text for its story; null: the story's text again."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(..., max_length=100_000)


class Notifications(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = Field(None, max_length=255)
    notify: list[str] = Field(default_factory=list, max_length=20, description="Event kinds to e-mail.")
    digest: bool = Field(False, description="A daily digest of the user's desk.")


class UserIn(Notifications):
    name: str = Field(min_length=1, max_length=64)
    password: str | None = Field(None, min_length=12, max_length=1024)
    roles: list[str] = Field(default_factory=list, max_length=50)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    days: float | None = Field(90, gt=0, le=3660)


class AccountEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=255, description="Empty clears it.")
    tags: list[str] | None = Field(None, max_length=50, description="Replaces the tags.")
    tz: str | None = Field(None, max_length=64)
    language: str | None = Field(None, max_length=35, description="Empty clears it.")


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: list[str] = Field(max_length=50, description="Cron expressions in the account's zone.")
    min_gap_minutes: int = Field(0, ge=0, le=10080)
    tz: str | None = Field(None, max_length=64)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(min_length=1, max_length=300, description="tag:TAG or account:ID")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, pattern=URL)
    events: list[str] = Field(default_factory=list, max_length=20, description="Kinds wanted; none: all.")


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class Changed(Open):
    pass


class TokenOut(Open):
    token: str = Field(description="The secret: shown this once, never stored.")


class SecretOut(Open):
    secret: str = Field(description="The signing secret: shown this once.")


class Health(BaseModel):
    ready: bool
    checks: dict[str, dict[str, Any]]


class FieldError(Open):
    field: str | None = None
    account: str | None = None
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# Every route may answer these; the app declares them once for all.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _problem("A body that is not JSON (or not a form)"), 401: _problem("No valid bearer token"),
    403: _problem("The caller's roles or scopes do not allow it"),
    404: _problem("No such object"), 409: _problem("The object's state does not allow it now"),
    422: _problem("Invalid input, each problem by field (or by account)"),
    429: _problem("Too many failed logins"),
}
