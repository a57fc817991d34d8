"""/health, /metrics and /followers: the installation's state and the matrix's audience."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.settings import get_settings
from scheduler.api.auth import Viewer
from scheduler.api.routes.feeds import FeedMetrics
from scheduler.api.schemas import Changed, Health
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import figures, health
from scheduler.desk.access import require_everywhere
from scheduler.followers import summary

router = APIRouter()


@router.get("/health", response_model=Health, tags=["system"],
            responses={503: {"model": Health, "description": "Not ready"}})
def get_health() -> JSONResponse:
    """Unauthenticated, for load balancers: 200 when ready, 503 with the failing checks otherwise."""
    found = health.checks(utcnow())
    ok = health.ready(found)
    return JSONResponse({"ready": ok, "checks": found}, status_code=200 if ok else 503)


class _Figures(Collector):
    """The desk's figures as Prometheus families (gauges: each scrape reads the database afresh)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with session_scope() as s:
            found = figures.read(s, utcnow())
        states = GaugeMetricFamily("crosspost_deliveries", "Deliveries by state and platform",
                                   labels=["state", "platform"])
        for (state, platform), count in sorted(found.deliveries.items()):
            states.add_metric([state, platform], count)
        yield states
        yield GaugeMetricFamily("crosspost_oldest_due_unclaimed_seconds",
                                "Age of the oldest due delivery no worker has claimed",
                                value=found.oldest_due_unclaimed)
        yield GaugeMetricFamily("crosspost_tokens_expiring_within_a_day",
                                "Accounts whose platform token expires within a day",
                                value=found.tokens_expiring)
        yield GaugeMetricFamily("crosspost_rate_gates_closed", "Rate gates (accounts, apps) closed now",
                                value=found.rate_gates_closed)
        attempts = GaugeMetricFamily("crosspost_attempts_last_hour", "Publish attempts started in the last "
                                     "hour, by platform and outcome", labels=["platform", "outcome"])
        for (platform, outcome), count in sorted(found.attempts.items()):
            attempts.add_metric([platform, outcome], count)
        yield attempts
        for name, what, spreads in (
                ("publish", "How long a publish attempt took", found.publish_seconds),
                ("lateness", "How long after its time a delivery was published", found.lateness_seconds)):
            for stat in ("mean", "largest"):
                family = GaugeMetricFamily(f"crosspost_{name}_seconds_{stat}_last_hour",
                                           f"{what}: the {stat} over the last hour", labels=["platform"])
                for platform, spread in sorted(spreads.items()):
                    family.add_metric([platform], getattr(spread, stat))
                yield family
        samples = GaugeMetricFamily("crosspost_follower_samples_last_hour",
                                    "Follower samples taken in the last hour", labels=["outcome"])
        for outcome, count in sorted(found.follower_samples.items()):
            samples.add_metric([outcome], count)
        yield samples


@router.get("/metrics", tags=["system"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics() -> Response:
    """Prometheus text format; unauthenticated like /health (figures, no content)."""
    registry = CollectorRegistry()
    registry.register(_Figures())
    registry.register(FeedMetrics())
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/followers/report", response_model=Changed, tags=["followers"],
            responses={200: {"content": {"text/csv": {}}}})
def followers_report(actor: Viewer, by: str = "platform",
                     since: Annotated[str | None, Query(description="YYYY-MM-DD (UTC)")] = None,
                     format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    """The report as JSON, or its daily series per group as CSV. Figures cover the whole matrix, so
    the route needs a viewer of every account."""
    require_everywhere(actor, "viewer", "followers report")
    now = utcnow()
    since_day = summary.parse_since(since, now.date())
    series_from = since_day or now.date() - timedelta(days=90)
    with session_scope() as s:
        _, body, daily = summary.report(s, now, summary.check_by(by), since_day,
                                        get_settings().follower_interval,
                                        series_from if format == "csv" else None)
    if format == "json":
        return body
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(summary.CSV_HEADER)
    writer.writerows(summary.daily_rows(daily))
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
