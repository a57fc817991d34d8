"""``Idempotency-Key``: the first request with a key queues its story and stores the key beside it in
the same transaction; a retry with that key gets that story back instead of queueing a second one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.core.db import is_postgres
from scheduler.core.models import Story
from scheduler.desk.access import Actor
from scheduler.desk.errors import Conflict, UserError
from scheduler.desk.models import IdempotencyKey

MAX_KEY = 255


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def replay(s: Session, actor: Actor, key: str, request_hash: str) -> Story | None:
    """The story an earlier request with ``key`` queued, or None if there was none."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise UserError(f"Idempotency-Key: 1 to {MAX_KEY} printable characters")
    found = s.get(IdempotencyKey, (actor.user_id or 0, key))
    if found is None:
        return None
    if found.request_hash != request_hash:
        raise Conflict("Idempotency-Key: this key was used with another request body; use a new key")
    return s.get(Story, found.story_id)


def queue_once(s: Session, actor: Actor, key: str, request_hash: str, now: datetime,
               queue: Callable[[], Story]) -> tuple[Story, bool]:
    """``(story, created)``: the story ``queue`` stores, or the one an earlier request with ``key``
    stored. Concurrent requests with one key take turns: on PostgreSQL a transaction lock on the key
    (otherwise the second would find neither the key nor, a statement later, miss the first's story
    and call it a duplicate); SQLite's write lock already serialises them. The key's primary key is the
    last guard: a clash rolls the second story back (``is_key_clash``)."""
    if actor.user_id is None:
        raise UserError("Idempotency-Key: only a user's requests carry one")
    if is_postgres(s):
        lock = int.from_bytes(hashlib.sha256(f"{actor.user_id}:{key}".encode()).digest()[:8], "big",
                              signed=True)
        s.execute(select(func.pg_advisory_xact_lock(lock)))
    earlier = replay(s, actor, key, request_hash)
    if earlier is not None:
        return earlier, False
    story = queue()
    s.add(IdempotencyKey(user_id=actor.user_id, key=key, request_hash=request_hash, story_id=story.id,
                         created_at=now))
    s.flush()
    return story, True


def is_key_clash(exc: IntegrityError) -> bool:
    return "desk_idempotency_keys" in str(exc.orig) or "pk_desk_idempotency_keys" in str(exc.orig)


