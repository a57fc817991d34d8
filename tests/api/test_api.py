"""The API's answers: problem details, the per-account 422, Idempotency-Key, cursor pages, approval
through the routes, login and its limit, secrets never echoed, followers CSV, health and metrics."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading
from datetime import timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import select, update

from scheduler.core.db import session_scope
from scheduler.core.models import Attempt, Delivery, FollowerSample, utcnow
from scheduler.desk import health as health_checks
from tests.api.conftest import Desk
from tests.conftest import Env
from tests.factories import SECRET


def queue(desk: Desk, role: str = "editor", **body: object) -> dict[str, object]:
    answer = desk.client.post("/stories", json={"text": "hello", "to": [desk.en], **body},
                              headers=desk.as_(role))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_errors_are_problem_details_with_field_level_errors(desk: Desk) -> None:
    anonymous = desk.client.get("/stories")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(anonymous.json())
    invalid = desk.client.post("/stories", json={"text": 5}, headers=desk.as_("editor"))
    assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in invalid.json()["errors"]} == {"text", "to"}
    bad_time = desk.client.post("/stories", json={"text": "x", "to": [desk.en], "at": "tomorrow"},
                                headers=desk.as_("editor"))
    assert bad_time.status_code == 422 and bad_time.json()["errors"][0]["field"] == "at"
    for path in ("/stories/999999", "/deliveries/999999", "/accounts/999999"):
        missing = desk.client.get(path, headers=desk.as_("admin"))
        assert (missing.status_code, missing.json()["status"]) == (404, 404), path


def test_a_refused_story_lists_every_problem_per_account(desk: Desk) -> None:
    answer = desk.client.post("/stories", json={"text": "x" * 600, "to": [desk.en, desk.fr]},
                              headers=desk.as_("admin"))
    assert answer.status_code == 422
    problems = answer.json()["errors"]
    assert {p["account"] for p in problems} == {desk.en, desk.fr}
    assert {p["field"] for p in problems} == {"text"} and all("500" in p["detail"] for p in problems)


def test_an_idempotency_key_never_queues_twice(desk: Desk) -> None:
    headers = {**desk.as_("editor"), "Idempotency-Key": "cms-article-42"}
    body = {"text": "once only", "to": [desk.en]}
    first = desk.client.post("/stories", json=body, headers=headers)
    again = desk.client.post("/stories", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = desk.client.post("/stories", json={**body, "text": "another"}, headers=headers)
    assert other.status_code == 409
    listed = desk.client.get("/stories", headers=desk.as_("viewer")).json()["items"]
    assert [s["text"] for s in listed] == ["once only"]


def test_lists_page_with_a_cursor(desk: Desk) -> None:
    made = [queue(desk, text=f"story {n}")["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        page = desk.client.get("/stories", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                               headers=desk.as_("viewer")).json()
        seen += [s["id"] for s in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == sorted(made, reverse=True)
    oldest, cursor = [], None
    while True:
        page = desk.client.get("/stories", params={"limit": 3, "order": "oldest",
                                                   **({"cursor": cursor} if cursor else {})},
                               headers=desk.as_("viewer")).json()
        oldest += [s["id"] for s in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert oldest == sorted(made)
    deliveries = desk.client.get("/deliveries", params={"state": "scheduled", "limit": 500},
                                 headers=desk.as_("viewer")).json()["items"]
    assert {d["story"] for d in deliveries} == set(made)


def test_approval_through_the_routes(desk: Desk) -> None:
    policy = desk.client.post("/approval-policies", json={"scope": "tag:en"}, headers=desk.as_("admin"))
    assert policy.status_code == 201
    story = queue(desk, at=(utcnow() + timedelta(hours=1)).isoformat())
    assert story["states"] == {"awaiting_approval": 1}
    by_author = desk.client.post(f"/stories/{story['id']}/approve", json={}, headers=desk.as_("admin"))
    assert by_author.status_code == 200  # the admin did not write it
    again = desk.client.post(f"/stories/{story['id']}/approve", json={}, headers=desk.as_("approver"))
    assert again.status_code == 409
    edited = desk.client.patch(f"/stories/{story['id']}", json={"text": "changed"},
                               headers=desk.as_("editor"))
    assert edited.status_code == 200 and edited.json()["states"] == {"awaiting_approval": 1}
    rejected = desk.client.post(f"/stories/{story['id']}/reject", json={"reason": "no"},
                                headers=desk.as_("approver"))
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    trail = desk.client.get("/audit", params={"object": f"story:{story['id']}"}, headers=desk.as_("admin"))
    assert [e["action"] for e in trail.json()["items"]] == ["story.reject", "story.edit", "story.approve",
                                                             "story.queue"]
    assert trail.json()["items"][-1]["via"] == "token:tests"


def test_login_gives_a_token_and_is_limited(desk: Desk) -> None:
    good = desk.client.post("/auth/login", data={"username": "viewer", "password": "viewer password 123"})
    assert good.status_code == 200
    token = good.json()["token"]
    me = desk.client.get("/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["name"], me["via"][:6], me["roles"]) == ("viewer", "token:", [{"role": "viewer",
                                                                              "scope": "tag en"}])
    answers = [desk.client.post("/auth/login", data={"username": "viewer", "password": "guess"}).status_code
               for _ in range(6)]
    assert answers == [401] * 5 + [429]
    limited = desk.client.post("/auth/login", data={"username": "viewer", "password": "viewer password 123"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_secrets_never_come_back(desk: Desk) -> None:
    created = desk.client.post("/tokens", json={"user": "editor", "name": "cms"}, headers=desk.as_("admin"))
    secret = created.json()["token"]
    listing = desk.client.get("/tokens", headers=desk.as_("admin")).text
    accounts = desk.client.get("/accounts", headers=desk.as_("admin")).text
    users = desk.client.get("/users", headers=desk.as_("admin")).text
    audit = desk.client.get("/audit", headers=desk.as_("admin")).text
    for text in (listing, accounts, users, audit):
        assert secret not in text and SECRET not in text
        assert "password 123" not in text and "argon2" not in text
    wrong = desk.client.post("/auth/login", data={"username": "viewer", "password": "hunter2-secret"})
    assert "hunter2-secret" not in wrong.text


def test_followers_report_as_json_and_csv(desk: Desk) -> None:
    report = desk.client.get("/followers/report", headers=desk.as_("admin"))
    assert report.status_code == 200 and report.json()["total"]["accounts"] == 2
    table = desk.client.get("/followers/report", params={"format": "csv"}, headers=desk.as_("admin"))
    assert table.headers["content-type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(table.text))) == ["day", "group", "followers", "accounts"]


def test_health_and_metrics(desk: Desk) -> None:
    story = queue(desk)
    health = desk.client.get("/health")
    body = health.json()
    assert body["checks"]["database"]["ok"] is True and body["checks"]["beat"]["ok"] is False
    assert (health.status_code, body["ready"], body["checks"]["worker"]["ok"]) == (200, True, True)
    metrics = desk.client.get("/metrics").text
    assert 'crosspost_deliveries{platform="mastodon",state="scheduled"} 1.0' in metrics
    # Due for longer than the dead-man time and no attempt started since: the worker is silent.
    late = utcnow() - timedelta(seconds=health_checks.DEAD_MAN_SECONDS + 60)
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.story_id == story["id"]).values(due_at=late))
    silent = desk.client.get("/health")
    assert (silent.status_code, silent.json()["checks"]["worker"]["ok"]) == (503, False)
    assert "crosspost_oldest_due_unclaimed_seconds 3" in desk.client.get("/metrics").text  # 360 s and more
    with session_scope() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.story_id == story["id"])).one()
        s.add(Attempt(delivery_id=delivery.id, number=1, started_at=utcnow()))
    assert desk.client.get("/health").status_code == 200


def test_concurrent_retries_with_one_key_queue_one_story(any_desk: Desk) -> None:
    desk = any_desk
    headers = {**desk.as_("editor"), "Idempotency-Key": "burst"}
    barrier = threading.Barrier(4)
    answers: list[tuple[int, int]] = []

    def post() -> None:
        barrier.wait(10)
        answer = desk.client.post("/stories", json={"text": "burst", "to": [desk.en]}, headers=headers)
        answers.append((answer.status_code, answer.json().get("id", -1)))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(code for code, _ in answers) == [200, 200, 200, 201]
    assert len({story for _, story in answers}) == 1
    listed = desk.client.get("/stories", headers=desk.as_("admin")).json()["items"]
    assert len(listed) == 1


def test_images_come_by_url_never_from_the_servers_files(desk: Desk, sqlite_env: Env, tmp_path: Path) -> None:
    Image.new("RGB", (64, 48), "navy").save(tmp_path / "photo.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sqlite_env.set(media_allow_private="true")  # the picture is served from this machine
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.png"
        story = queue(desk, images=[{"url": url, "alt": "the harbour"}])
        shown = desk.client.get(f"/stories/{story['id']}", headers=desk.as_("viewer")).json()
        assert len(shown["media"]) == 1
        local = desk.client.post("/stories", json={"text": "x", "to": [desk.en],
                                                   "images": [{"url": str(tmp_path / "photo.png")}]},
                                 headers=desk.as_("editor"))
        assert local.status_code == 422 and local.json()["errors"][0]["field"] == "images.0.url"
    finally:
        server.shutdown()


def test_exports_are_the_cli_files(desk: Desk, sqlite_env: Env, tmp_path: Path) -> None:
    queue(desk, text="exported")
    lines = desk.client.get("/exports/stories", params={"format": "jsonl"}, headers=desk.as_("admin"))
    assert lines.headers["content-type"].startswith("application/jsonl")
    rows = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["text"] for r in rows] == ["exported"]
    cli = sqlite_env.cli("stories", "export", "--format", "jsonl")
    assert cli.returncode == 0 and cli.stdout == lines.text
    table = desk.client.get("/exports/deliveries", params={"state": "scheduled"}, headers=desk.as_("admin"))
    assert next(csv.DictReader(io.StringIO(table.text)))["state"] == "scheduled"
    scoped = desk.client.get("/exports/stories", headers=desk.as_("viewer"))
    assert scoped.status_code == 403


def test_import_over_the_api_goes_through_roles_policies_and_remote_media(desk: Desk) -> None:
    desk.client.post("/approval-policies", json={"scope": "tag:en"}, headers=desk.as_("admin"))
    rows = "".join(json.dumps({"text": text, "to": desk.en}) + "\n" for text in ("one", "two"))
    done = desk.client.post("/stories/import", files={"file": ("rows.jsonl", rows, "application/jsonl")},
                            headers=desk.as_("editor"))
    assert done.status_code == 200, done.text
    imported = done.json()["imported"]
    states = [desk.client.get(f"/stories/{i}", headers=desk.as_("editor")).json()["states"] for i in imported]
    assert states == [{"awaiting_approval": 1}] * 2
    french = json.dumps({"text": "x", "to": desk.fr})
    other_desk = desk.client.post("/stories/import", headers=desk.as_("editor"),
                                  files={"file": ("rows.jsonl", french, "")})
    assert other_desk.status_code == 403
    local = json.dumps({"text": "x", "to": desk.en, "images": ["/etc/hostname"]})
    refused = desk.client.post("/stories/import", files={"file": ("rows.jsonl", local, "")},
                               headers=desk.as_("editor"))
    assert refused.status_code == 422 and "by URL only" in refused.json()["detail"]


def test_metrics_of_the_last_hour(desk: Desk) -> None:
    story = queue(desk)
    now = utcnow()
    with session_scope() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.story_id == story["id"])).one()
        delivery.state, delivery.due_at, delivery.published_at = "published", now - timedelta(seconds=30), now
        s.add(Attempt(delivery_id=delivery.id, number=1, started_at=now - timedelta(seconds=4),
                      ended_at=now - timedelta(seconds=1), outcome="published"))
        s.add(FollowerSample(account_id=delivery.account_id, taken_at=now, followers=None, error="timeout"))
    text = desk.client.get("/metrics").text
    assert 'crosspost_attempts_last_hour{outcome="published",platform="mastodon"} 1.0' in text
    assert 'crosspost_publish_seconds_largest_last_hour{platform="mastodon"} 3.0' in text
    assert 'crosspost_lateness_seconds_mean_last_hour{platform="mastodon"} 30.0' in text
    assert 'crosspost_follower_samples_last_hour{outcome="failed"} 1.0' in text
