"""Request and response bodies: the OpenAPI schema is the contract (Schemathesis checks answers
against it). Responses allow extra fields, so a new field is not a breaking change."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


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


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    password: str | None = Field(None, min_length=12, max_length=1024)
    roles: list[str] = Field(default_factory=list, max_length=50)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    days: float | None = Field(90, gt=0, le=3660)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(min_length=1, max_length=300, description="tag:TAG or account:ID")


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class Changed(Open):
    pass


class TokenOut(Open):
    token: str = Field(description="The secret: shown this once, never stored.")


class Health(BaseModel):
    ready: bool
    checks: dict[str, dict[str, Any]]
