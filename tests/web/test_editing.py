"""Editing from the dashboard, over HTTP against the whole app: a story's text, link, variants and time
(the desk's checks again, an approved story back to approval, problems beside their field), and one
account's own text from its grid cell; offered only to who may, 403 by hand otherwise, CSRF as always."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from scheduler.core.db import session_scope
from scheduler.core.models import Account, Delivery, Story, utcnow
from scheduler.desk import approval
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, Scope
from scheduler.stories.drafts import Draft
from tests.web.conftest import WebDesk, csrf_of


def _queue(web: WebDesk, text: str = "A story to edit", to: str = "en", hours: int = 5,
           variants: dict[str, str] | None = None) -> int:
    with session_scope() as s:
        draft = Draft(text=text, targets=[to], variants=variants or {},
                      at=(utcnow() + timedelta(hours=hours)).replace(second=0, microsecond=0))
        return desk_stories.queue(s, Actor.cli(), draft, utcnow()).id


def _delivery(story_id: int, label: str) -> Delivery:
    with session_scope() as s:
        found = s.scalars(select(Delivery).where(Delivery.story_id == story_id)).all()
        chosen = next(d for d in found if d.account.label == label)
        s.expunge(chosen)
        return chosen


def test_an_editor_changes_text_link_variant_and_time_in_the_operators_zone(any_web: WebDesk) -> None:
    story_id = _queue(any_web)
    editor = any_web.sign_in("editor")
    grid = editor.get("/ui/stories").text
    assert f'href="/ui/stories/{story_id}/edit?back=' in grid
    form = editor.get(f"/ui/stories/{story_id}/edit")
    assert form.status_code == 200
    assert 'name="variant_x"' in form.text and 'name="variant_telegram"' in form.text
    token = csrf_of(form.text)
    later = (utcnow() + timedelta(days=1)).replace(second=0, microsecond=0)
    local = later.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")
    done = editor.post(f"/ui/stories/{story_id}/edit", data={
        "csrf": token, "text": "Edited in the browser", "link": "https://example.org/e",
        "variant_x": "Short for X", "variant_bluesky": "", "at": local, "back": "/ui/stories"})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/stories?done=done&id={story_id}"
    with session_scope() as s:
        story = s.get(Story, story_id)
        assert (story.text, story.link, story.variants) == ("Edited in the browser", "https://example.org/e",
                                                            {"x": "Short for X"})
        assert {d.due_at for d in story.deliveries} == {later}
        assert story.status == "approved"  # no policy, never approved: nothing to send back


def test_a_refused_edit_shows_each_problem_beside_its_field_and_changes_nothing(web: WebDesk) -> None:
    story_id = _queue(web, variants={"x": "for X"})
    editor = web.sign_in("editor")
    token = csrf_of(editor.get(f"/ui/stories/{story_id}/edit").text)
    # Fine for Telegram (4,096), too long for Bluesky (300 graphemes) and for X's own variant (280).
    answer = editor.post(f"/ui/stories/{story_id}/edit", data={
        "csrf": token, "text": "b" * 400, "variant_x": "中" * 150})
    assert answer.status_code == 422
    text_problems = re.search(r'<ul class="problems" id="p-text">(.*?)</ul>', answer.text, re.S).group(1)
    x_problems = re.search(r'<ul class="problems" id="p-variant_x">(.*?)</ul>', answer.text, re.S).group(1)
    assert web.accounts["bluesky"] in text_problems and web.accounts["telegram"] not in text_problems
    assert web.accounts["x"] in x_problems and "300" in x_problems
    assert "waits for an approver again" not in answer.text  # no policy, never approved
    bad_link = editor.post(f"/ui/stories/{story_id}/edit", data={"csrf": token, "text": "fine",
                                                                 "link": "not a link"})
    assert bad_link.status_code == 422 and re.search(r'id="p-link"><li>link:', bad_link.text)
    assert "b" * 400 in answer.text  # what was typed comes back, not the stored text
    with session_scope() as s:
        assert (s.get(Story, story_id).text, s.get(Story, story_id).variants) == ("A story to edit",
                                                                                 {"x": "for X"})


def test_an_edit_sends_an_approved_story_back_to_approval(web: WebDesk) -> None:
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    story_id = _queue(web)
    approver = web.sign_in("approver")
    with session_scope() as s:
        fingerprint = s.get(Story, story_id).fingerprint
    token = csrf_of(approver.get("/ui/inbox").text)
    assert approver.post(f"/ui/stories/{story_id}/approve",
                         data={"csrf": token, "fingerprint": fingerprint}).status_code == 303
    editor = web.sign_in("editor")
    page = editor.get(f"/ui/stories/{story_id}/edit").text
    assert "waits for an approver again" in page
    assert editor.post(f"/ui/stories/{story_id}/edit",
                       data={"csrf": csrf_of(page), "text": "Changed after approval"}).status_code == 303
    with session_scope() as s:
        story = s.get(Story, story_id)
        assert story.status == "awaiting_approval"
        assert {d.state for d in story.deliveries} == {"awaiting_approval"}


def test_one_accounts_text_from_its_grid_cell_checked_as_that_platform_counts(any_web: WebDesk) -> None:
    story_id = _queue(any_web)
    x = _delivery(story_id, any_web.accounts["x"])
    editor = any_web.sign_in("editor")
    grid = editor.get("/ui/stories").text
    cell = re.search(rf'id="cell-{x.id}" data-stamp="\w+">(.*?)</td>', grid, re.S).group(1)
    assert f'action="/ui/deliveries/{x.id}/text"' in cell and "A story to edit</textarea>" in cell
    token = csrf_of(grid)
    # 150 CJK characters weigh 300 on X: refused there, with X's words, and nothing stored.
    refused = editor.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "中" * 150})
    assert refused.status_code == 422 and any_web.accounts["x"] in refused.text
    assert "中" * 150 + "</textarea>" in refused.text and 'aria-invalid="true"' in refused.text
    assert _delivery(story_id, any_web.accounts["x"]).text is None
    done = editor.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "中" * 100,
                                                            "back": "/ui/stories?status=approved"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/stories?status=approved&done=done&id={x.id}"
    assert _delivery(story_id, any_web.accounts["x"]).text == "中" * 100
    assert _delivery(story_id, any_web.accounts["telegram"]).text is None  # only that account's
    page = editor.get(f"/ui/deliveries/{x.id}/edit").text
    assert "Use the story&#39;s text again" in page
    reset = editor.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "", "reset": "true"})
    assert reset.status_code == 303 and _delivery(story_id, any_web.accounts["x"]).text is None


def test_editing_is_not_offered_without_the_role_and_refused_by_hand(any_web: WebDesk) -> None:
    story_id = _queue(any_web)
    french = _queue(any_web, "Une histoire", to="fr")
    x = _delivery(story_id, any_web.accounts["x"])
    fr = _delivery(french, any_web.accounts["fr"])
    viewer = any_web.sign_in("viewer")
    grid = viewer.get("/ui/stories").text
    assert "/edit" not in grid and "/text" not in grid
    token = csrf_of(grid)
    assert viewer.get(f"/ui/stories/{story_id}/edit").status_code == 403
    assert viewer.get(f"/ui/deliveries/{x.id}/edit").status_code == 403
    assert viewer.post(f"/ui/stories/{story_id}/edit", data={"csrf": token, "text": "no"}).status_code == 403
    assert viewer.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "no"}).status_code == 403
    editor = any_web.sign_in("editor")  # an editor of the English desk only
    token = csrf_of(editor.get("/ui/stories").text)
    assert editor.post(f"/ui/stories/{french}/edit", data={"csrf": token, "text": "no"}).status_code == 403
    assert editor.post(f"/ui/deliveries/{fr.id}/text", data={"csrf": token, "text": "no"}).status_code == 403
    for path in (f"/ui/stories/{story_id}/edit", f"/ui/deliveries/{x.id}/text"):
        assert editor.post(path, data={"text": "no csrf"}).status_code == 403
        assert editor.post(path, data={"text": "forged", "csrf": "0" * 64}).status_code == 403
    with session_scope() as s:
        assert (s.get(Story, story_id).text, s.get(Story, french).text) == ("A story to edit", "Une histoire")
        assert s.get(Delivery, x.id).text is None and s.get(Delivery, fr.id).text is None


def test_a_started_delivery_is_not_offered_an_editor_and_its_story_cannot_change(web: WebDesk) -> None:
    story_id = _queue(web)
    x = _delivery(story_id, web.accounts["x"])
    with session_scope() as s:
        started = s.get(Delivery, x.id)
        started.state, started.attempts = "failed", 1
    editor = web.sign_in("editor")
    grid = editor.get("/ui/stories").text
    assert f"/ui/deliveries/{x.id}/text" not in grid and f"/ui/stories/{story_id}/edit" not in grid
    token = csrf_of(grid)
    refused = editor.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "too late"})
    assert refused.status_code == 422 and "has not started" in refused.text
    conflict = editor.post(f"/ui/stories/{story_id}/edit", data={"csrf": token, "text": "too late"})
    assert conflict.status_code == 409 and "started" in conflict.text
    with session_scope() as s:
        assert s.get(Story, story_id).text == "A story to edit"


def test_the_publish_again_and_publish_now_buttons_send_their_choice_in_the_form(web: WebDesk) -> None:
    """Both buttons carry their choice as a hidden form field (once read from the query string only, so
    the button answered 422/409 and did nothing)."""
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    story_id = _queue(web, to=str(web.ids["x"]), hours=1)
    with session_scope() as s:
        story = s.get(Story, story_id)
        story.due_at = utcnow() - timedelta(hours=1)
        for d in story.deliveries:
            d.due_at = story.due_at
        fingerprint = story.fingerprint
    approver = web.sign_in("approver")
    inbox = approver.get("/ui/inbox").text
    assert '<input type="hidden" name="now" value="true">' in inbox
    now = approver.post(f"/ui/stories/{story_id}/approve",
                        data={"csrf": csrf_of(inbox), "fingerprint": fingerprint, "now": "true"})
    assert now.status_code == 303
    with session_scope() as s:
        delivery = s.get(Story, story_id).deliveries[0]
        assert delivery.state == "scheduled" and delivery.due_at >= utcnow() - timedelta(minutes=1)
        delivery.state = "unknown"
        delivery_id = delivery.id
    editor = web.sign_in("editor")
    inbox = editor.get("/ui/inbox").text
    assert '<input type="hidden" name="republish" value="true">' in inbox
    again = editor.post(f"/ui/deliveries/{delivery_id}/resolve",
                        data={"csrf": csrf_of(inbox), "republish": "true"})
    assert again.status_code == 303
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).state == "scheduled"


def test_the_edit_page_counts_and_previews_for_the_storys_accounts_and_names_own_texts(web: WebDesk) -> None:
    story_id = _queue(web, "中" * 100)  # 200 on X's scale
    x = _delivery(story_id, web.accounts["x"])
    editor = web.sign_in("editor")
    page = editor.get(f"/ui/stories/{story_id}/edit").text
    assert 'hx-post="/ui/compose/check"' in page
    assert re.search(r'class="counter fine" data-platform="x"', page)
    assert 'data-preview="mastodon"' in page and "has a text of its own" not in page
    assert f'<input type="hidden" name="to" value="{web.ids["x"]}">' in page
    token = csrf_of(page)
    # What the page's live check posts as one types: the story's accounts, the text as typed.
    check = editor.post("/ui/compose/check", data={"csrf": token, "text": "中" * 150,
                                                   "to": [str(web.ids[p]) for p in ("x", "telegram")]})
    assert re.search(r'class="counter over" data-platform="x"', check.text)
    assert re.search(r'class="counter fine" data-platform="telegram"', check.text)
    done = editor.post(f"/ui/deliveries/{x.id}/text", data={"csrf": token, "text": "X's own"})
    assert done.status_code == 303
    page = editor.get(f"/ui/stories/{story_id}/edit").text
    assert f"{web.accounts['x']} has a text of its own" in page


def test_an_edit_may_move_the_story_to_each_accounts_next_slot(web: WebDesk) -> None:
    with session_scope() as s:
        account = s.get(Account, web.ids["x"])
        account.schedule, account.tz = ["0 9 * * *"], "Asia/Kolkata"  # no daylight saving
    story_id = _queue(web, to=str(web.ids["x"]))
    editor = web.sign_in("editor")
    page = editor.get(f"/ui/stories/{story_id}/edit").text
    assert 'name="next_slot"' in page
    done = editor.post(f"/ui/stories/{story_id}/edit", data={"csrf": csrf_of(page), "text": "A story to edit",
                                                             "next_slot": "true"})
    assert done.status_code == 303
    with session_scope() as s:
        story = s.get(Story, story_id)
        due = story.deliveries[0].due_at.astimezone(ZoneInfo("Asia/Kolkata"))
        assert story.timing == "next_slot" and (due.hour, due.minute) == (9, 0)
        assert story.text == "A story to edit"  # unchanged text: no edit, only the move
