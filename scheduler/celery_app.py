"""The Celery app, configured from Settings: JSON only, late acks, prefetch 1, beat runs the tick."""

from __future__ import annotations

import logging

from celery import Celery, signals

from config.settings import Settings, get_settings
from scheduler.core.workers import Presence
from scheduler.followers.schedule import tick_period


def create_app(settings: Settings) -> Celery:
    app = Celery("crosspost", broker=settings.broker_url, include=["scheduler.tasks"])
    transport: dict[str, object] = {}
    # kombu's SQLAlchemy transport hands every transport option to create_engine, so its poll
    # interval (1 s) cannot be tuned here without breaking it.
    if settings.broker_url.startswith("redis"):
        # Redelivery of unacked messages after a crash; the state machine makes repeats harmless.
        transport["visibility_timeout"] = 3600
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport,
        worker_hijack_root_logger=False,
        beat_schedule={
            "tick": {"task": "crosspost.tick", "schedule": settings.tick_interval,
                     "options": {"expires": settings.tick_interval * 2}},
            # Tokens that expire within the margin are refreshed before a publish meets a 401.
            "tokens": {"task": "crosspost.refresh_tokens", "schedule": 300.0, "options": {"expires": 600}},
            # Claims the accounts whose follower-sampling slot has come (see scheduler/followers.py).
            "followers": {"task": "crosspost.followers_tick", "schedule": tick_period(settings),
                          "options": {"expires": tick_period(settings) * 2}},
            # Hands the feeds whose polling interval has come to the workers (scheduler/feeds/polling.py).
            "feeds": {"task": "crosspost.feeds_tick", "schedule": 30.0, "options": {"expires": 60}},
            # Turns what happened into webhook events, hands the due sends out (scheduler/desk/webhooks.py).
            "notify": {"task": "crosspost.notify_tick", "schedule": 5.0, "options": {"expires": 10}},
        },
        beat_schedule_filename=str(settings.data_dir / "beat-schedule"),
        timezone="UTC",
    )
    return app


def embed_beat(celery: Celery) -> None:
    """Run beat as a thread of this worker process, started once the worker is ready.

    Celery's ``worker --beat`` forks beat into a child process, which outlives a ``kill -9`` of the
    worker (it is re-parented to PID 1 and ticks forever). A thread dies with its process, however the
    process dies, so ``crosspost run`` can never leave a beat behind.
    """
    from celery import beat

    service = beat.EmbeddedService(celery, thread=True,
                                   schedule_filename=celery.conf.beat_schedule_filename)

    def _start(**_: object) -> None:
        service.start()

    def _stop(**_: object) -> None:
        if service.is_alive():
            service.stop()

    # weak=False: the handlers are closures that nothing else keeps alive.
    signals.worker_ready.connect(_start, weak=False)
    signals.worker_shutdown.connect(_stop, weak=False)


def announce_slots(celery: Celery) -> None:
    """While a worker of ``celery`` runs, its publish slots are in the database
    (``scheduler.core.workers``), so the tick knows how many deliveries the fleet takes at once."""
    running: list[Presence] = []

    def ready(sender: object, **_: object) -> None:
        controller = getattr(sender, "controller", None)
        if getattr(sender, "app", None) is not celery or controller is None:
            return  # another app's worker in this process (the benchmarks' no-op)
        running.append(Presence(str(controller.hostname), int(controller.concurrency)).start())

    def shutdown(**_: object) -> None:
        while running:
            running.pop().stop()

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)


# Beat's housekeeping runs every second or so; its "sending", "received" and "succeeded" lines would be
# most of an idle installation's log. They go to DEBUG; what the tasks did (a claim, a sample, an error)
# is logged by the tasks themselves, and every publish still logs its outcome.
class RoutineToDebug(logging.Filter):
    def __init__(self, routine: tuple[str, ...]) -> None:
        super().__init__()
        self.routine = routine

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not any(name in record.getMessage() for name in self.routine):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


app = create_app(get_settings())
announce_slots(app)
# Every task beat runs on a schedule: its names in the lines of the loggers that speak of them (sent,
# received, expired before it ran, done).
ROUTINE = tuple(f"{entry['task']}[" for entry in app.conf.beat_schedule.values()) + tuple(
    f"({entry['task']})" for entry in app.conf.beat_schedule.values())
for _name in ("celery.beat", "celery.worker.strategy", "celery.worker.request", "celery.app.trace"):
    logging.getLogger(_name).addFilter(RoutineToDebug(ROUTINE))
