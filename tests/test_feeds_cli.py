"""`crosspost feeds` end to end, in a child process like an operator runs it: add, list with health,
poll, the drafts inbox and promote, edit, pause, remove, and bad input named by its field."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.base import Credentials
from adapters.standins import standin_class
from config.settings import reset_settings
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError
from scheduler.core.models import Story, utcnow
from scheduler.feeds import registry
from scheduler.matrix import accounts
from tests.conftest import Env, wait_for
from tests.factories import make_account
from tests.feed_server import THREE, XML, rss, serving


@pytest.fixture
def env(sqlite_env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    with session_scope() as s:
        make_account(s, "mastodon", tags=["news"])
    yield sqlite_env


def run(env: Env, *args: str) -> Any:
    done = env.cli("feeds", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_feed_from_add_to_remove(env: Env, tmp_path: Path) -> None:
    with serving() as srv:
        srv.routes["/rss"] = (200, XML, rss(THREE))
        template = tmp_path / "masto.j2"
        template.write_text("{{ title }} — {{ link }}", encoding="utf-8")
        (added,) = run(env, "add", srv.url("/rss"), "--to", "news", "--lang", "EN", "--every", "5m",
                       "--template", f"mastodon={template}", "--utm", "utm_campaign=home")
        assert (added["mode"], added["language"], added["every_seconds"]) == ("draft", "en", 300)
        assert added["templates"] == ["mastodon"] and added["utm"] == {"utm_campaign": "home"}
        (polled,) = run(env, "poll")  # every due feed: a new one is due at once
        assert (polled["outcome"], polled["new"], polled["drafts"]) == ("fetched", 3, 3)
        (listed,) = run(env, "list")
        assert (listed["item_count"], listed["error_count"], listed["silent"]) == (3, 0, False)
        drafts = run(env, "drafts")
        assert [d["status"] for d in drafts] == ["draft"] * 3
        (promoted,) = run(env, "promote", str(drafts[0]["id"]))
        with session_scope() as s:
            story = s.get(Story, promoted["story"])
            assert story is not None and " — http" in story.variants["mastodon"]
            assert "utm_campaign=home" in story.variants["mastodon"]
        (edited,) = run(env, "edit", str(added["id"]), "--mode", "auto")
        assert edited["mode"] == "auto"
        assert run(env, "pause", str(added["id"]))[0]["status"] == "paused"
        (shown,) = run(env, "show", srv.url("/rss"))
        assert shown["status"] == "paused" and len(shown["waiting"]) == 2
        assert run(env, "remove", str(added["id"]))[0]["status"] == "removed"
        assert run(env, "list") == []


@pytest.mark.parametrize("args, message", [
    (["add", "http://x.example/rss", "--to", "news", "--every", "5x"], "every: '5x' is not a duration"),
    (["add", "http://x.example/rss", "--to", "nobody"], "to: no account has tag 'nobody'"),
    (["promote", "999"], "item: no feed item '999'"),
])
def test_bad_input_is_one_line_naming_the_field(env: Env, args: list[str], message: str) -> None:
    done = env.cli("feeds", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("kw, message", [
    ({"every": "10s"}, "every: '10s' is outside 60 s to 7 days"),
    ({"every": "8d"}, "every: '8d' is outside 60 s to 7 days"),
    ({"mode": "yolo"}, "mode: 'yolo' is not one of draft, approve, auto"),
    ({"url": "ftp://x.example/rss"}, "url: 'ftp://x.example/rss' is not an http(s) URL"),
    ({"utm": {"utm_x": "1"}}, "utm: unknown parameter 'utm_x'"),
    ({"language": "not a language"}, "language: 'not a language' is not a BCP-47 language tag"),
    ({"sources": {"myspace": "{{ title }}"}}, "template: myspace: unknown platform"),
])
def test_bad_feed_settings_are_refused_by_field(env: Env, kw: dict[str, Any], message: str) -> None:
    url = kw.pop("url", "http://x.example/rss")
    with session_scope() as s, pytest.raises(UserError) as refused:
        registry.add(s, url, ["news"], utcnow(), **kw)
    assert str(refused.value).startswith(message)


def test_the_same_url_is_watched_once(env: Env) -> None:
    with session_scope() as s:
        first = registry.add(s, "http://x.example/rss", ["news"], utcnow())
        with pytest.raises(UserError, match=f"url: feed {first.id} already watches"):
            registry.add(s, "http://x.example/rss", ["news"], utcnow())


def test_a_bad_template_file_is_refused_with_its_problem(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ headline }}", encoding="utf-8")
    done = env.cli("feeds", "add", "http://x.example/rss", "--to", "news", "--template", str(bad))
    assert done.returncode == 2 and "template: default: unknown field 'headline'" in done.stderr


@pytest.mark.workers
def test_tick_hands_a_due_feed_to_a_worker_and_its_story_is_published(sqlite_env: Env, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Real processes: `crosspost tick` (as a system crontab runs it) hands the due feed to a
    `crosspost worker`, which polls it; the next tick hands the story's delivery out, and the worker
    publishes it to the Mastodon stand-in, link tagged for Mastodon."""
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    standin = standin_class("mastodon")().start()
    worker = None
    try:
        with serving() as srv:
            srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
            with session_scope() as s:
                creds = Credentials(standin.add_account("desk"))
                accounts.add(s, "mastodon", "desk", creds, base_url=standin.url, tags=["news"])
                registry.add(s, srv.url("/rss"), ["news"], utcnow(), mode="auto")
            # The tick first: kombu's SQLAlchemy transport lets a first tick and a starting worker race to
            # create the queue's row (UNIQUE constraint failed: kombu_queue.name).
            ticked = sqlite_env.cli("tick", "--json")
            assert ticked.returncode == 0 and json.loads(ticked.stdout)[0]["feeds"] == 1, ticked.stderr
            worker = sqlite_env.spawn("worker", "--concurrency", "2", log=tmp_path / "worker.log")

            def stored() -> int:
                with session_scope() as s:
                    return s.scalar(select(func.count()).select_from(Story)) or 0

            wait_for(lambda: stored() == 1, 60, what="the worker to poll the feed")
            assert sqlite_env.cli("tick").returncode == 0
            wait_for(lambda: len(standin.posts()) == 1, 60, what="the story to be published")
        text = str(standin.posts()[0].data.get("text"))
        assert text.startswith("Story number 1") and "utm_source=mastodon&utm_medium=social" in text
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        standin.stop()
