"""Thin Celery tasks: ids in, plain functions do the work."""

from __future__ import annotations

from celery import Task

from scheduler.celery_app import app
from scheduler.publishing import publish_delivery
from scheduler.ticks import tick as run_tick


def send_publish(delivery_id: int) -> None:
    publish.apply_async(args=[delivery_id])


@app.task(name="crosspost.tick", ignore_result=True)
def tick() -> int:
    return len(run_tick(send_publish).claimed)


@app.task(name="crosspost.publish", bind=True, ignore_result=True)
def publish(self: Task, delivery_id: int) -> str:
    return publish_delivery(int(delivery_id), celery_id=self.request.id)
