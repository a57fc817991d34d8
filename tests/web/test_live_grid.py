"""The stories grid's live refresh over HTTP: the page names a fragment of its own cells (its filters
kept, the flash left out), each cell carries a stamp of what it shows, a publish changes that cell's
stamp and no other, and the fragment keeps the scopes and the session rules of the page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from scheduler.core.db import session_scope
from scheduler.core.models import Account, Delivery, Story, utcnow
from scheduler.desk import approval
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, Role, Scope
from scheduler.stories.drafts import Draft
from tests.factories import make_delivery
from tests.web.conftest import WebDesk


def _stamps(html: str) -> dict[int, str]:
    return {int(i): stamp for i, stamp in re.findall(r'id="cell-(\d+)" data-stamp="(\w+)"', html)}


def test_the_fragment_changes_only_the_cell_a_worker_published(any_web: WebDesk) -> None:
    now = utcnow()
    with session_scope() as s:
        x, telegram = s.get(Account, any_web.ids["x"]), s.get(Account, any_web.ids["telegram"])
        first = make_delivery(s, x, now + timedelta(hours=1), text="first").id
        second = make_delivery(s, telegram, now + timedelta(hours=2), text="second").id
    viewer = any_web.sign_in("viewer")
    page = viewer.get("/ui/stories", params={"status": "", "done": "retried", "id": "3"}).text
    live = unescape(re.search(r'<table class="grid" data-live="([^"]+)"', page).group(1))
    assert live == "/ui/stories/cells?status="  # the filters, not the flash
    assert '<script src="/ui/static/grid.js" defer></script>' in page
    before = viewer.get(live)
    assert before.status_code == 200 and _stamps(before.text) == _stamps(page)
    assert set(_stamps(page)) == {first, second}
    with session_scope() as s:
        done = s.get(Delivery, first)
        done.state, done.published_url, done.published_at = "published", "https://x.com/a/status/9", now
    after = viewer.get(live).text
    assert _stamps(after)[first] != _stamps(page)[first] and _stamps(after)[second] == _stamps(page)[second]
    cell = re.search(rf'id="cell-{first}"[^>]*>(.*?)</td>', after, re.S).group(1)
    assert 'href="https://x.com/a/status/9"' in cell and "published" in cell
    assert re.findall(r'<tr data-story="(\d+)">', after) == re.findall(r'<tr data-story="(\d+)">', page)


def test_the_fragment_keeps_the_filters_scopes_and_session(web: WebDesk) -> None:
    now = utcnow()
    with session_scope() as s:
        english = make_delivery(s, s.get(Account, web.ids["x"]), now + timedelta(hours=1)).id
        french = make_delivery(s, s.get(Account, web.ids["fr"]), now + timedelta(hours=1)).id
        failed = make_delivery(s, s.get(Account, web.ids["x"]), now, state="failed").id
    viewer = web.sign_in("viewer")
    assert set(_stamps(viewer.get("/ui/stories/cells").text)) == {english, failed}  # never the French desk
    assert set(_stamps(viewer.get("/ui/stories/cells?attention=true").text)) == {failed}
    assert viewer.get("/ui/stories/cells", params={"account": web.accounts["fr"]}).status_code == 403
    admin = web.sign_in("admin")
    assert french in _stamps(admin.get("/ui/stories/cells").text)
    signed_out = web.client().get("/ui/stories/cells")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/ui/login")


def test_a_rows_heading_follows_an_approval_made_elsewhere(web: WebDesk) -> None:
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
        draft = Draft(text="waiting for a second pair of eyes", targets=[str(web.ids["x"])])
        story = desk_stories.queue(s, Actor.cli(), draft, utcnow())
        story_id, fingerprint = story.id, story.fingerprint
    approver = web.sign_in("approver")
    page = approver.get("/ui/stories").text
    head = re.search(rf'<th scope="row" class="story" id="head-{story_id}" data-stamp="(\w+)">(.*?)</th>',
                     page, re.S)
    assert f'action="/ui/stories/{story_id}/approve"' in head.group(2)
    with session_scope() as s:
        admin = Actor(name="admin", via="test", roles=(Role("admin", Scope("all", "")),))
        approval.approve(s, admin, s.get(Story, story_id), utcnow(), fingerprint=fingerprint)
    fresh = re.search(rf'id="head-{story_id}" data-stamp="(\w+)">(.*?)</th>',
                      approver.get("/ui/stories/cells").text, re.S)
    assert fresh.group(1) != head.group(1) and "/approve" not in fresh.group(2)


def test_an_empty_grid_still_looks_for_new_stories(web: WebDesk) -> None:
    page = web.sign_in("viewer").get("/ui/stories").text
    assert '<p data-live="/ui/stories/cells">Nothing here.</p>' in page and 'id="grid-new"' in page
