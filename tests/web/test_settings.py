"""One's own e-mail notifications on the settings page, over HTTP: what ``PUT /me/notifications`` sets
(the event kinds by e-mail, the daily digest), checked by the desk, refusals beside their field, only
one's own, CSRF as everywhere, and in both languages."""

from __future__ import annotations

import re

from sqlalchemy import select

from scheduler.core.db import session_scope
from scheduler.desk.events import KINDS
from scheduler.desk.models import User
from tests.web.conftest import WebDesk, csrf_of


def _user(name: str) -> tuple[str | None, list[str], bool]:
    with session_scope() as s:
        user = s.scalars(select(User).where(User.name == name)).one()
        return user.email, list(user.notify or []), bool(user.digest)


def test_a_viewer_chooses_their_own_notifications_and_sees_them_again(web: WebDesk) -> None:
    viewer = web.sign_in("viewer")
    page = viewer.get("/ui/settings").text
    assert 'action="/ui/settings/notifications"' in page
    assert len(re.findall(r'<input type="checkbox" name="notify" value="([\w.]+)"', page)) == len(KINDS)
    saved = viewer.post("/ui/settings/notifications", data={
        "csrf": csrf_of(page), "email": " viewer@example.org ",
        "notify": ["delivery.failed", "approval.requested"], "digest": "true"})
    assert saved.status_code == 303 and saved.headers["location"] == "/ui/settings?done=done#notifications"
    assert _user("viewer") == ("viewer@example.org", ["delivery.failed", "approval.requested"], True)
    assert _user("editor") == (None, [], False)  # only one's own
    again = viewer.get("/ui/settings").text
    assert 'value="viewer@example.org"' in again
    assert 'value="delivery.failed" checked' in again and 'value="delivery.published" checked' not in again
    assert re.search(r'name="digest" value="true" checked', again)
    cleared = viewer.post("/ui/settings/notifications", data={"csrf": csrf_of(again), "email": ""})
    assert cleared.status_code == 303 and _user("viewer") == (None, [], False)


def test_refusals_are_shown_beside_their_field_and_change_nothing(web: WebDesk) -> None:
    editor = web.sign_in("editor")
    token = csrf_of(editor.get("/ui/settings").text)
    editor.post("/ui/settings/notifications", data={"csrf": token, "email": "ed@example.org",
                                                    "notify": ["delivery.failed"]})
    no_address = editor.post("/ui/settings/notifications",
                             data={"csrf": token, "email": "", "digest": "true"})
    assert no_address.status_code == 422
    assert re.search(r'id="p-email"><li>email: needed', no_address.text)
    assert 'aria-invalid="true"' in no_address.text
    bad = editor.post("/ui/settings/notifications", data={"csrf": token, "email": "not an address",
                                                          "notify": ["delivery.failed"]})
    assert bad.status_code == 422 and "is not an e-mail address" in bad.text
    assert 'value="not an address"' in bad.text  # what was typed comes back
    unknown = editor.post("/ui/settings/notifications", data={"csrf": token, "email": "ed@example.org",
                                                              "notify": ["story.exploded"]})
    assert unknown.status_code == 422 and "not among" in unknown.text
    for data in ({}, {"csrf": "forged"}):
        assert editor.post("/ui/settings/notifications",
                           data={**data, "email": "x@example.org"}).status_code == 403
    assert _user("editor") == ("ed@example.org", ["delivery.failed"], False)


def test_the_notifications_read_in_chinese(web: WebDesk) -> None:
    viewer = web.sign_in("viewer")
    token = csrf_of(viewer.get("/ui/settings").text)
    viewer.post("/ui/settings", data={"csrf": token, "language": "zh-Hans", "tz": "UTC"})
    page = viewer.get("/ui/settings").text
    assert "邮件通知" in page and "投递失败" in page and "每日摘要" in page and "电子邮箱" in page
