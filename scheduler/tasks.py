"""Thin Celery tasks: ids in, plain functions do the work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.settings import get_settings
from scheduler.celery_app import app
from scheduler.core.models import utcnow
from scheduler.core.publishing import publish_delivery
from scheduler.core.ticks import tick as run_tick
from scheduler.desk import webhooks
from scheduler.feeds import polling
from scheduler.followers.sampling import sample_account
from scheduler.followers.schedule import tick as run_followers_tick
from scheduler.matrix.tokens import refresh_expiring


@contextmanager
def publisher() -> Iterator[Callable[[list[int], datetime | None], None]]:
    """A tick's ``send``: every message handed to the workers through one producer and its broker
    connection, taken from the pool once per tick instead of once per message (a tenth of the tick's
    CPU per delivery, bench/RESULTS.md). kombu reconnects it if the broker goes away meanwhile."""
    with app.producer_or_acquire() as producer:
        def send(delivery_ids: list[int], due_at: datetime | None = None) -> None:
            # An eta of at most one tick (the claim looks no further ahead), well inside the broker's
            # visibility timeout: waiting longer than that lives in due_at, never in the broker.
            if len(delivery_ids) == 1:
                publish.apply_async(args=delivery_ids, eta=due_at, producer=producer)
            else:
                publish_batch.apply_async(args=[delivery_ids], eta=due_at, producer=producer)
        yield send


# Redis pushes a message to a waiting worker at once; kombu's SQLAlchemy transport (the embedded
# default) is polled once a second, so the tick hands its messages out two polls earlier: with one, a
# message that came just after a poll (or while the poll's own work ran) reached the worker after its
# eta (embedded lateness p99 0.13-0.85 s in five runs, against 0.09-0.24 s with two; bench/RESULTS.md).
BROKER_LEAD = 0.0 if get_settings().broker_url.startswith(("redis", "rediss")) else 2.0


@app.task(name="crosspost.tick", ignore_result=True)
def tick() -> int:
    with publisher() as send:
        return len(run_tick(send, lead=BROKER_LEAD).claimed)


# A database error (a restart, a failover, a lock timeout) retries the task within seconds instead of
# leaving the delivery queued until the reaper's queued_timeout: every step is a compare-and-set on the
# delivery's state and attempt number, so a repeat after a partial run is harmless.
@app.task(name="crosspost.publish", bind=True, ignore_result=True, autoretry_for=(DBAPIError,),
          retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=8)
def publish(self: Task, delivery_id: int) -> str:
    return publish_delivery(int(delivery_id), celery_id=self.request.id)


# Several deliveries of a burst, one after another on this thread (ticks.messages). A repeat (the
# retry below, a redelivery after a crash) starts none of those already started or done: the start is
# the same compare-and-set; and one that no message reaches is handed out again by the reaper.
@app.task(name="crosspost.publish_batch", bind=True, ignore_result=True, autoretry_for=(DBAPIError,),
          retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=8)
def publish_batch(self: Task, delivery_ids: list[int]) -> list[str]:
    return [publish_delivery(int(delivery_id), celery_id=self.request.id) for delivery_id in delivery_ids]


def send_sample(account_id: int) -> None:
    sample_followers.apply_async(args=[account_id])


@app.task(name="crosspost.followers_tick", ignore_result=True)
def followers_tick() -> int:
    return len(run_followers_tick(send_sample))


@app.task(name="crosspost.sample_followers", ignore_result=True)
def sample_followers(account_id: int) -> str:
    return sample_account(int(account_id), scheduled=True).outcome


@app.task(name="crosspost.refresh_tokens", ignore_result=True)
def refresh_tokens() -> int:
    return len(refresh_expiring().refreshed)


def send_poll_feed(feed_id: int) -> None:
    poll_feed.apply_async(args=[feed_id])


@app.task(name="crosspost.feeds_tick", ignore_result=True)
def feeds_tick() -> int:
    return len(polling.tick(send_poll_feed))


@app.task(name="crosspost.poll_feed", ignore_result=True)
def poll_feed(feed_id: int) -> str:
    return polling.poll_feed(int(feed_id)).outcome


def send_notification_later(send_id: int) -> None:
    send_notification.apply_async(args=[send_id])


@app.task(name="crosspost.notify_tick", ignore_result=True)
def notify_tick() -> int:
    return len(webhooks.tick(send_notification_later, utcnow()))


# One webhook POST or one e-mail; a failure is retried by the notifier with backoff, not by Celery.
@app.task(name="crosspost.send_notification", ignore_result=True)
def send_notification(send_id: int) -> str:
    return webhooks.send(int(send_id), utcnow())
