"""The dashboard in-process (httpx against the whole app, real SQLite and PostgreSQL): sign-in and the
session cookie, CSRF on every form, what each role is offered and refused, the compose counters
against the queueing checks, inbox actions that change deliveries, and the Chinese pages."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select

from adapters import adapter_class
from adapters.text import split_thread
from scheduler.core.db import session_scope
from scheduler.core.models import Account, Delivery, Story, utcnow
from scheduler.desk import approval
from scheduler.desk.access import Actor, Role, Scope
from scheduler.desk.models import ApiToken, AuditEntry, Webhook
from scheduler.followers import sampling
from scheduler.stories.checks import check_targets
from scheduler.stories.drafts import Draft
from scheduler.web import views
from scheduler.web.app import ROUTERS
from tests.factories import SECRET, make_delivery
from tests.web.conftest import PASSWORD, WebDesk, csrf_of

PAGES = ("/ui/stories", "/ui/inbox", "/ui/compose", "/ui/calendar", "/ui/accounts", "/ui/followers",
         "/ui/audit", "/ui/webhooks", "/ui/users", "/ui/health", "/ui/settings")


# -- signing in ---------------------------------------------------------------------------------
def test_a_page_without_a_session_leads_to_the_login_form_and_back(web: WebDesk) -> None:
    client = web.client()
    answer = client.get("/ui/inbox")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login?next=%2Fui%2Finbox"
    assert client.get("/").headers["location"] == "/ui/stories"
    form = client.get("/ui/login?next=/ui/inbox")
    done = client.post("/ui/login", data={"name": "viewer", "password": PASSWORD, "csrf": csrf_of(form.text),
                                          "next": "/ui/inbox"})
    assert done.status_code == 303 and done.headers["location"] == "/ui/inbox"
    assert client.get("/ui/inbox").status_code == 200


def test_the_session_cookie_is_httponly_lax_and_secure_only_over_https(web: WebDesk) -> None:
    plain = web.sign_in("viewer")
    cookie = next(c for c in plain.cookies.jar if c.name == "cp_session")
    assert cookie.path == "/ui" and not cookie.secure
    assert cookie.has_nonstandard_attr("HttpOnly")
    tls = web.client(base_url="https://testserver")
    form = tls.get("/ui/login")
    answer = tls.post("/ui/login", data={"name": "viewer", "password": PASSWORD, "csrf": csrf_of(form.text)})
    header = answer.headers["set-cookie"]
    assert "cp_session=" in header and "HttpOnly" in header and "SameSite=lax" in header
    assert "Secure" in header
    assert "Secure" not in plain.get("/ui/login").headers.get("set-cookie", "")


def test_a_wrong_password_sets_no_session_and_an_open_redirect_is_refused(web: WebDesk) -> None:
    client = web.client()
    form = client.get("/ui/login")
    wrong = client.post("/ui/login", data={"name": "viewer", "password": "not it at all",
                                           "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    assert "cp_session" not in wrong.headers.get("set-cookie", "")
    form = client.get("/ui/login")
    right = client.post("/ui/login", data={"name": "viewer", "password": PASSWORD, "csrf": csrf_of(form.text),
                                           "next": "https://elsewhere.example/ui/"})
    assert right.headers["location"] == "/ui/stories"


def test_logout_revokes_the_session_token(web: WebDesk) -> None:
    client = web.sign_in("editor")
    stolen = client.cookies.get("cp_session")
    page = client.get("/ui/stories")
    out = client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    with session_scope() as s:
        revoked = s.scalars(select(ApiToken).where(ApiToken.revoked_at.is_not(None))).all()
    assert [t.name.startswith("login ") for t in revoked] == [True]
    replay = web.client()
    replay.cookies.set("cp_session", stolen, path="/ui")
    assert replay.get("/ui/stories").status_code == 303  # a copied cookie is dead too


def test_login_form_refuses_a_post_without_its_csrf_token(web: WebDesk) -> None:
    client = web.client()
    client.get("/ui/login")
    answer = client.post("/ui/login", data={"name": "viewer", "password": PASSWORD})
    assert answer.status_code == 403 and "cp_session" not in answer.headers.get("set-cookie", "")


# -- CSRF: every form ---------------------------------------------------------------------------
def _post_routes() -> list[str]:
    """Every POST of the dashboard, from its own route table: a new form is covered without a new test."""
    paths = ["/ui" + r.path for router in ROUTERS for r in router.routes
             if "POST" in getattr(r, "methods", set())]
    fill = {"{delivery_id}": "1", "{story_id}": "1", "{token_id}": "1", "{account_id}": "1",
            "{action}": "pause", "{name}": "viewer", "{hook_id}": "1"}
    for key, value in fill.items():
        paths = [p.replace(key, value) for p in paths]
    return paths


def test_every_form_refuses_a_post_without_the_session_csrf_token(web: WebDesk) -> None:
    routes = _post_routes()
    assert {"/ui/compose", "/ui/deliveries/1/retry", "/ui/stories/1/approve", "/ui/logout"} <= set(routes)
    client = web.sign_in("admin")
    other = web.sign_in("editor")
    foreign = csrf_of(other.get("/ui/stories").text)  # a real token, of another session
    for path in routes:
        if path == "/ui/login":
            continue
        for data in ({}, {"csrf": "forged"}, {"csrf": foreign}):
            answer = client.post(path, data={**data, "text": "x", "to": "en", "reason": "r", "name": "t"})
            assert answer.status_code == 403, (path, data, answer.status_code)
    with session_scope() as s:
        assert s.scalar(select(Story.id)) is None
        assert s.scalars(select(Account.status)).all() == ["active"] * 5


# -- roles: what is offered, and what is refused by hand --------------------------------------------
@pytest.mark.parametrize(("role", "offered", "refused"), [
    ("viewer", {"/ui/stories", "/ui/inbox", "/ui/health"}, {"/ui/compose", "/ui/audit", "/ui/followers"}),
    ("editor", {"/ui/compose", "/ui/calendar"}, {"/ui/audit", "/ui/webhooks"}),
    ("approver", {"/ui/compose", "/ui/accounts"}, {"/ui/audit", "/ui/followers", "/ui/webhooks"}),
    ("admin", set(PAGES), set()),
])
def test_the_menu_offers_only_what_the_role_may_use(web: WebDesk, role: str, offered: set[str],
                                                    refused: set[str]) -> None:
    client = web.sign_in(role)
    page = client.get("/ui/stories").text
    menu = set(re.findall(r'<li><a href="(/ui/[a-z]+)"', page))
    assert offered <= menu and not refused & menu
    for path in refused:
        assert client.get(path).status_code == 403, path
    for path in menu:
        assert client.get(path).status_code == 200, path


def test_actions_a_role_lacks_are_refused_even_when_posted_by_hand(any_web: WebDesk) -> None:
    now = utcnow()
    with session_scope() as s:
        en = s.get(Account, any_web.ids["x"])
        fr = s.get(Account, any_web.ids["fr"])
        failed_en = make_delivery(s, en, now, state="failed").id
        failed_fr = make_delivery(s, fr, now, state="failed").id
    viewer = any_web.sign_in("viewer")
    token = csrf_of(viewer.get("/ui/inbox").text)
    assert viewer.post(f"/ui/deliveries/{failed_en}/retry", data={"csrf": token}).status_code == 403
    assert viewer.post(f"/ui/accounts/{any_web.ids['x']}/pause", data={"csrf": token}).status_code == 403
    assert viewer.post("/ui/users", data={"csrf": token, "name": "mallory", "password": PASSWORD,
                                          "roles": "admin"}).status_code == 403
    editor = any_web.sign_in("editor")
    token = csrf_of(editor.get("/ui/inbox").text)
    assert editor.post(f"/ui/deliveries/{failed_fr}/retry", data={"csrf": token}).status_code == 403
    assert f"/ui/deliveries/{failed_fr}/retry" not in editor.get("/ui/inbox").text  # not even shown
    assert editor.post("/ui/compose", data={"csrf": token, "text": "hi", "to": "fr"}).status_code == 403
    with session_scope() as s:
        states = dict(s.execute(select(Delivery.id, Delivery.state)).all())
        assert s.get(Account, any_web.ids["x"]).status == "active"
    assert states == {failed_en: "failed", failed_fr: "failed"}


# -- compose: the counters are the queueing checks ------------------------------------------------
def _counters(html: str) -> dict[str, str]:
    pattern = r'data-platform="(\w+)">\s*<strong>\w+</strong>\s*<span class="count">([^<]+)<'
    return dict(re.findall(pattern, html))


def test_compose_counts_as_each_platform_counts_and_agrees_with_queueing(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    # 150 CJK characters: X weighs each as 2 (300 > 280); Bluesky counts 150 graphemes; Telegram 150 UTF-16.
    # Each family emoji is one grapheme but 8 UTF-16 code units.
    text = "中" * 150 + " " + "👨‍👩‍👧" * 10
    targets = [str(web.ids["x"]), str(web.ids["bluesky"]), str(web.ids["telegram"])]
    answer = client.post("/ui/compose/check", data={"csrf": token, "text": text, "to": targets})
    assert answer.status_code == 200
    counted = _counters(answer.text)
    expected = {p: adapter_class(p).caps.count(text) for p in ("x", "bluesky", "telegram")}
    assert expected["bluesky"] == 161 and expected["telegram"] == 231 and expected["x"] > 280
    assert counted == {p: f"{n:,} of {adapter_class(p).caps.text_limit:,} {adapter_class(p).caps.unit}"
                       for p, n in expected.items()}
    states = {platform: state for state, platform in
              re.findall(r'class="counter (\w+)" data-platform="(\w+)"', answer.text)}
    assert states == {"x": "over", "bluesky": "fine", "telegram": "fine"}
    with session_scope() as s:
        accounts = [s.get(Account, int(i)) for i in targets]
        queueing_says = check_targets(Draft(text=text, targets=targets), accounts)
    shown = re.findall(r"<li>([^<]+)</li>", answer.text)
    assert queueing_says and set(queueing_says) <= set(shown)
    refused = client.post("/ui/compose", data={"csrf": token, "text": text, "to": targets})
    assert refused.status_code == 422 and web.accounts["x"] in refused.text
    with session_scope() as s:
        assert s.scalar(select(Story.id)) is None
    queued = client.post("/ui/compose", data={"csrf": token, "text": "中" * 100, "to": targets,
                                              "variant_x": "short for X"})
    assert queued.status_code == 303 and queued.headers["location"].startswith("/ui/stories?done=queued")
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        assert (story.variants, len(story.deliveries)) == ({"x": "short for X"}, 3)
        assert approval.writers(s, story) == {"editor"}


def test_compose_at_a_time_reads_it_in_the_operators_zone(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/settings").text)
    assert client.post("/ui/settings", data={"csrf": token, "language": "en", "tz": "Asia/Shanghai"}
                       ).status_code == 303
    when = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    local = when.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")
    answer = client.post("/ui/compose", data={"csrf": token, "text": "timed", "to": "en", "when": "at",
                                              "at": local})
    assert answer.status_code == 303, answer.text
    with session_scope() as s:
        assert s.scalars(select(Story.due_at)).one() == when


# -- the inbox acts ------------------------------------------------------------------------------
def test_inbox_retry_and_resolve_change_the_deliveries(any_web: WebDesk) -> None:
    now = utcnow()
    with session_scope() as s:
        x = s.get(Account, any_web.ids["x"])
        failed = make_delivery(s, x, now - timedelta(minutes=3), state="failed")
        failed.last_error = "the platform said: duplicate content"
        unknown = make_delivery(s, x, now - timedelta(minutes=2), state="unknown").id
        failed_id = failed.id
    client = any_web.sign_in("editor")
    inbox = client.get("/ui/inbox").text
    assert "the platform said: duplicate content" in inbox
    assert f'action="/ui/deliveries/{failed_id}/retry"' in inbox
    assert f'action="/ui/deliveries/{unknown}/resolve"' in inbox
    token = csrf_of(inbox)
    retried = client.post(f"/ui/deliveries/{failed_id}/retry", data={"csrf": token, "back": "/ui/inbox"})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/ui/inbox?done=retried&id={failed_id}"
    resolved = client.post(f"/ui/deliveries/{unknown}/resolve",
                           data={"csrf": token, "published": "https://x.com/a/status/1"})
    assert resolved.status_code == 303
    with session_scope() as s:
        assert s.get(Delivery, failed_id).state == "scheduled"
        done = s.get(Delivery, unknown)
        assert (done.state, done.published_url) == ("published", "https://x.com/a/status/1")
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "editor")).all()
    assert "delivery.retry" in actions and "delivery.resolve" in actions
    page = client.get("/ui/stories").text
    assert 'href="https://x.com/a/status/1"' in page and "waiting until" in page


def test_approval_is_offered_to_another_approver_and_releases_the_story(any_web: WebDesk) -> None:
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    editor = any_web.sign_in("editor")
    token = csrf_of(editor.get("/ui/compose").text)
    assert editor.post("/ui/compose", data={"csrf": token, "text": "needs a second pair of eyes",
                                            "to": "en"}).status_code == 303
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        story_id, fingerprint = story.id, story.fingerprint
    assert f"/ui/stories/{story_id}/approve" not in editor.get("/ui/inbox").text
    approver = any_web.sign_in("approver")
    inbox = approver.get("/ui/inbox").text
    assert f'action="/ui/stories/{story_id}/approve"' in inbox and fingerprint in inbox
    token = csrf_of(inbox)
    stale = approver.post(f"/ui/stories/{story_id}/approve", data={"csrf": token, "fingerprint": "0" * 64})
    assert stale.status_code == 409
    done = approver.post(f"/ui/stories/{story_id}/approve", data={"csrf": token, "fingerprint": fingerprint})
    assert done.status_code == 303
    with session_scope() as s:
        assert s.get(Story, story_id).status == "approved"
        assert set(s.scalars(select(Delivery.state).where(Delivery.story_id == story_id))) == {"scheduled"}


# -- languages, secrets --------------------------------------------------------------------------
def test_chinese_is_chosen_per_user_and_formats_dates(web: WebDesk) -> None:
    client = web.sign_in("viewer")
    token = csrf_of(client.get("/ui/settings").text)
    client.post("/ui/settings", data={"csrf": token, "language": "zh-Hans", "tz": "Asia/Shanghai"})
    with session_scope() as s:
        make_delivery(s, s.get(Account, web.ids["x"]), utcnow(), state="scheduled")  # in this week
    page = web.sign_in("viewer").get("/ui/calendar").text  # a new browser: the choice is the user's
    assert '<html lang="zh-Hans">' in page and "日程" in page and "退出" in page
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 周[一二三四五六日]", page)
    assert "(Asia/Shanghai)" in page and "账号当地时间" in page
    assert "Sign out" in web.sign_in("editor").get("/ui/stories").text  # others keep English


def test_no_page_shows_a_credential_or_the_session_secret(web: WebDesk) -> None:
    client = web.sign_in("admin")
    session_secret = client.cookies.get("cp_session")
    for path in PAGES:
        page = client.get(path).text
        assert SECRET not in page and session_secret not in page, path


def test_compose_previews_a_thread_and_each_accounts_next_slot_in_both_zones(web: WebDesk) -> None:
    with session_scope() as s:
        for platform in ("x", "telegram"):
            account = s.get(Account, web.ids[platform])
            account.schedule, account.tz = ["0 9 * * *"], "Asia/Kolkata"  # zones without DST
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/settings").text)
    client.post("/ui/settings", data={"csrf": token, "language": "en", "tz": "Asia/Tokyo"})
    text = " ".join(f"sentence number {n} of a long story." for n in range(30))
    answer = client.post("/ui/compose/check", data={"csrf": token, "text": text, "thread": "on",
                                                    "when": "next_slot",
                                                    "to": [str(web.ids["x"]), str(web.ids["telegram"])]})
    x_part = answer.text.split('data-platform="x"')[1]
    caps = adapter_class("x").caps
    expected = split_thread(text, caps.text_limit, caps.count)
    assert len(expected) > 1 and f"A thread of {len(expected)} posts" in x_part
    assert expected[-1] in x_part
    # 09:00 in Kolkata is 12:30 in Tokyo: both shown, the operator's first.
    assert re.search(r"12:30 <small>\(account&#39;s time \w{3} 09:00 IST\)</small>", answer.text)
    telegram = answer.text.split('data-platform="telegram"')[1].split('data-platform="x"')[0]
    assert "A thread of" not in telegram and "09:00 IST" in telegram  # one post there


def test_a_new_tokens_secret_is_shown_once_and_pages_are_not_cached_or_framed(web: WebDesk) -> None:
    client = web.sign_in("viewer")
    page = client.get("/ui/users")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    made = client.post("/ui/tokens", data={"csrf": csrf_of(page.text), "name": "my laptop", "days": "30"})
    assert made.status_code == 201
    secret = re.search(r'<code class="secret">(cpt_[^<]+)</code>', made.text).group(1)
    again = client.get("/ui/users").text
    assert "my laptop" in again and secret not in again
    api = web.client().get("/me", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200 and api.json()["name"] == "viewer"


def test_matrix_report_shows_gaps_as_gaps_and_downloads_the_same_figures(web: WebDesk) -> None:
    today = utcnow().replace(microsecond=0)  # a sample now: never in the future, always today
    with session_scope() as s:
        sampling.record(s, web.ids["x"], today - timedelta(days=10), 1000)
        sampling.record(s, web.ids["x"], today, 12_345)
        sampling.record(s, web.ids["bluesky"], today, 500)
    client = web.sign_in("admin")
    page = client.get("/ui/followers", params={"by": "platform", "days": 14}).text
    rows = dict(re.findall(r'<tr><th scope="row">(\d{4}-\d\d-\d\d)</th>(.*?)</tr>', page, re.S))
    columns = re.findall(r'<th scope="col">(\w+)</th>', page.split('class="series"')[1].split("</thead>")[0])
    assert columns[1:] == ["bluesky", "x"]
    cells = {day: re.findall(r"<td[^>]*>([^<]*)</td>", row) for day, row in rows.items()}
    first = (today - timedelta(days=10)).date().isoformat()
    before = (today - timedelta(days=11)).date().isoformat()
    assert cells[today.date().isoformat()] == ["500", "12,345"]
    assert cells[first] == ["", "1,000"] and cells[before] == ["", ""]  # no sample yet: empty, not 0
    csv_text = client.get("/ui/followers.csv", params={"by": "platform", "days": 14}).text
    assert csv_text.splitlines()[0] == "day,group,followers,accounts"
    assert f"{today.date().isoformat()},x,12345,1" in csv_text.splitlines()
    assert f"{before},x," not in csv_text
    assert web.sign_in("editor").get("/ui/followers.csv").status_code == 403  # scoped: not the matrix


def test_webhooks_page_adds_a_hook_shows_its_secret_once_and_its_log(web: WebDesk) -> None:
    client = web.sign_in("admin")
    page = client.get("/ui/webhooks")
    made = client.post("/ui/webhooks", data={"csrf": csrf_of(page.text), "url": "https://hooks.example/in",
                                             "events": ["delivery.failed"]})
    assert made.status_code == 201
    secret = re.search(r'<code class="secret">(whsec_[^<]+)</code>', made.text).group(1)
    listed = client.get("/ui/webhooks").text
    assert "https://hooks.example/in" in listed and "delivery.failed" in listed and secret not in listed
    with session_scope() as s:
        hook_id = s.scalars(select(Webhook.id)).one()
    log = client.get(f"/ui/webhooks?hook={hook_id}")
    assert log.status_code == 200 and f"#{hook_id}" in log.text
    assert web.sign_in("editor").get("/ui/webhooks").status_code == 403


def test_the_grid_filters_by_account_in_the_query_and_the_calendar_shows_a_month(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    for n in range(3):
        client.post("/ui/compose", data={"csrf": token, "text": f"to X {n}", "to": str(web.ids["x"])})
    client.post("/ui/compose", data={"csrf": token, "text": "to Telegram", "to": str(web.ids["telegram"])})
    page = client.get("/ui/stories", params={"account": web.accounts["x"]}).text
    # The rows' headings (each cell's text editor holds the text too).
    assert re.findall(r'</span> (to X \d|to Telegram)', page) == ["to X 2", "to X 1", "to X 0"]
    assert re.findall(r'<th scope="col">([^<]+)</th>', page) == ["Story", web.accounts["x"]]
    assert client.get("/ui/stories", params={"account": web.accounts["fr"]}).status_code == 403
    now = utcnow()
    mid_next_month = (now.replace(day=1, hour=12, minute=0, second=0, microsecond=0) + timedelta(days=45)
                      ).replace(day=15)
    with session_scope() as s:
        make_delivery(s, s.get(Account, web.ids["x"]), mid_next_month, text="next month")
    month = client.get("/ui/calendar", params={"span": "month", "week": 1}).text
    this_month = client.get("/ui/calendar", params={"span": "month"}).text
    week = client.get("/ui/calendar", params={"span": "week"}).text
    days = re.findall(r'<li class="day" data-day="(\d{4}-\d\d-\d\d)">', month)
    assert days[0] == mid_next_month.date().replace(day=1).isoformat() and 28 <= len(days) <= 31
    assert "next month" in month and "next month" not in this_month
    assert len(re.findall(r'<li class="day"', week)) == 7 and "to X 2" in week and "to Telegram" in week


def test_text_is_escaped_and_pause_is_offered_only_where_the_user_edits(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    client.post("/ui/compose", data={"csrf": token, "text": "<script>alert(1)</script> & more",
                                     "to": str(web.ids["mastodon"])})
    page = client.get("/ui/stories").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    accounts = client.get("/ui/accounts").text
    assert f'action="/ui/accounts/{web.ids["x"]}/pause"' in accounts
    assert web.accounts["fr"] not in accounts  # another desk's account is not even listed
    assert client.post(f"/ui/accounts/{web.ids['x']}/pause", data={"csrf": token}).status_code == 303
    assert f'action="/ui/accounts/{web.ids["x"]}/resume"' in client.get("/ui/accounts").text
    with session_scope() as s:
        assert s.get(Account, web.ids["x"]).status == "paused"


def test_repeated_wrong_passwords_are_refused_for_a_while(web: WebDesk) -> None:
    client = web.client()
    answers = []
    for _ in range(6):
        form = client.get("/ui/login")
        answers.append(client.post("/ui/login", data={"name": "viewer", "password": "wrong password!!",
                                                      "csrf": csrf_of(form.text)}).status_code)
    form = client.get("/ui/login")
    right = client.post("/ui/login", data={"name": "viewer", "password": PASSWORD,
                                           "csrf": csrf_of(form.text)})
    assert answers == [401] * 5 + [429] and right.status_code == 429
    assert "too many failed logins" in right.text and "cp_session" not in right.headers.get("set-cookie", "")


def test_an_overdue_story_is_approved_to_go_now_or_at_a_new_time_in_the_approvers_zone(web: WebDesk) -> None:
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    editor = web.sign_in("editor")
    token = csrf_of(editor.get("/ui/compose").text)
    soon = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert editor.post("/ui/compose", data={"csrf": token, "text": "late", "to": str(web.ids["x"]),
                                            "when": "at", "at": soon}).status_code == 303
    past = utcnow() - timedelta(hours=1)
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        story.due_at = past
        for d in story.deliveries:
            d.due_at = past
        story_id = story.id
    approver = web.sign_in("approver")
    token = csrf_of(approver.get("/ui/settings").text)
    approver.post("/ui/settings", data={"csrf": token, "language": "en", "tz": "Europe/Madrid"})
    inbox = approver.get("/ui/inbox").text
    assert "Publish now (its time has passed)" in inbox and f'id="at-{story_id}"' in inbox
    assert approver.post(f"/ui/stories/{story_id}/approve", data={"csrf": token}).status_code == 409
    later = (utcnow() + timedelta(hours=3)).replace(second=0, microsecond=0)
    local = later.astimezone(ZoneInfo("Europe/Madrid")).strftime("%Y-%m-%dT%H:%M")
    done = approver.post(f"/ui/stories/{story_id}/approve", data={"csrf": token, "at": local})
    assert done.status_code == 303
    with session_scope() as s:
        assert [(d.state, d.due_at) for d in s.get(Story, story_id).deliveries] == [("scheduled", later)]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_compose_uploads_an_image_with_alt_text_and_refuses_what_is_not_media(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    form = {"csrf": token, "text": "with a picture", "to": str(web.ids["mastodon"])}
    bad = client.post("/ui/compose", data=form,
                      files={"image_1": ("notes.txt", b"just some words", "text/plain")})
    assert bad.status_code == 422 and "notes.txt" in bad.text and "is not a JPEG" in bad.text
    assert str(web.env.data_dir) not in bad.text  # the server's paths never reach the page
    good = client.post("/ui/compose", data={**form, "image_1_alt": "A red square"},
                       files={"image_1": ("square.png", _png(), "image/png")})
    assert good.status_code == 303, good.text
    with session_scope() as s:
        stored = s.scalars(select(Story)).one().media
    assert [(m["mime"], m["alt"], m["width"]) for m in stored] == [("image/png", "A red square", 40)]


def test_the_calendar_moves_a_story_that_has_not_started_and_refuses_one_that_has(web: WebDesk) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    with session_scope() as s:
        x = s.get(Account, web.ids["x"])
        waiting = make_delivery(s, x, now + timedelta(hours=2), text="waiting one")
        gone = make_delivery(s, x, now - timedelta(minutes=1), state="published", text="gone one")
        waiting_story, gone_story = waiting.story_id, gone.story_id
    # The week that holds the waiting delivery (next week's, late on a Sunday).
    week = {"week": 0 if (now + timedelta(hours=2)).isocalendar()[:2] == now.isocalendar()[:2] else 1}
    viewer = web.sign_in("viewer")
    assert "/retime" not in viewer.get("/ui/calendar", params=week).text
    editor = web.sign_in("editor")
    page = editor.get("/ui/calendar", params=week).text
    assert f'action="/ui/stories/{waiting_story}/retime"' in page
    assert f'action="/ui/stories/{gone_story}/retime"' not in page
    token = csrf_of(page)
    target = now + timedelta(days=1, hours=3)
    moved = editor.post(f"/ui/stories/{waiting_story}/retime",
                        data={"csrf": token, "at": target.strftime("%Y-%m-%dT%H:%M"), "back": "/ui/calendar"})
    assert moved.status_code == 303 and "done=moved" in moved.headers["location"]
    refused = editor.post(f"/ui/stories/{gone_story}/retime",
                          data={"csrf": token, "at": target.strftime("%Y-%m-%dT%H:%M")})
    assert refused.status_code == 422 and "has no delivery that has not started" in refused.text
    assert viewer.post(f"/ui/stories/{waiting_story}/retime",
                       data={"csrf": csrf_of(viewer.get("/ui/calendar").text),
                             "at": now.strftime("%Y-%m-%dT%H:%M")}).status_code == 403
    with session_scope() as s:
        assert s.get(Delivery, waiting.id).due_at == target
        assert s.get(Delivery, gone.id).due_at == now - timedelta(minutes=1)


def test_cancel_from_the_grid_and_a_lapsed_session_while_typing(web: WebDesk) -> None:
    client = web.sign_in("editor")
    token = csrf_of(client.get("/ui/compose").text)
    client.post("/ui/compose", data={"csrf": token, "text": "changed our minds", "to": str(web.ids["x"])})
    with session_scope() as s:
        story_id = s.scalars(select(Story.id)).one()
    grid = client.get("/ui/stories").text
    assert f'action="/ui/stories/{story_id}/cancel"' in grid
    assert f'action="/ui/stories/{story_id}/cancel"' not in web.sign_in("viewer").get("/ui/stories").text
    done = client.post(f"/ui/stories/{story_id}/cancel", data={"csrf": token, "back": "/ui/stories"})
    assert done.status_code == 303 and "done=cancelled_story" in done.headers["location"]
    with session_scope() as s:
        assert {d.state for d in s.get(Story, story_id).deliveries} == {"cancelled"}
    assert f'action="/ui/stories/{story_id}/cancel"' not in client.get("/ui/stories").text
    lapsed = web.client()
    answer = lapsed.post("/ui/compose/check", data={"text": "x"}, headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["HX-Redirect"].startswith("/ui/login")


def test_accounts_draw_a_follower_line_for_viewers_of_every_account(web: WebDesk) -> None:
    today = utcnow().replace(microsecond=0)  # a sample now: never in the future, always today
    with session_scope() as s:
        for days_ago, count in ((20, 100), (19, 110), (3, 150)):
            sampling.record(s, web.ids["x"], today - timedelta(days=days_ago), count)
    page = web.sign_in("admin").get("/ui/accounts").text
    line = re.search(r'<svg class="spark"[^>]*>\s*<path d="([^"]+)"', page).group(1)
    # Counts are carried forward between samples: one unbroken line from 20 days ago to today, from the
    # bottom (the lowest count) to the top.
    moves = re.findall(r"([ML])([\d.]+),([\d.]+)", line)
    assert moves[0][0] == "M" and all(m[0] == "L" for m in moves[1:]) and len(moves) == 21
    assert float(moves[0][2]) > float(moves[-1][2])
    assert '<svg class="spark"' not in web.sign_in("editor").get("/ui/accounts").text


def test_the_sparkline_breaks_at_days_without_a_count() -> None:
    first = utcnow().date()
    points = [(first, 5, 1), (first + timedelta(days=1), 7, 1), (first + timedelta(days=3), 6, 1)]
    path = views.sparkline(points, first, 4, width=30, height=28)
    assert path == "M0.0,26.0 L10.0,2.0 M30.0,14.0"


# A viewer may sign out, set their preferences and manage their own tokens; every other form is refused.
VIEWER_MAY = {"/ui/login", "/ui/logout", "/ui/settings", "/ui/settings/notifications", "/ui/tokens",
              "/ui/tokens/{token_id}/revoke"}


def test_every_form_a_viewer_lacks_the_role_for_answers_403_with_a_valid_csrf_token(web: WebDesk) -> None:
    """Generated from the route table, on objects of the viewer's own desk (so no 404 hides a 403)."""
    now = utcnow()
    with session_scope() as s:
        x = s.get(Account, web.ids["x"])
        failed = make_delivery(s, x, now + timedelta(hours=1), state="failed")
        ids = {"{delivery_id}": str(failed.id), "{story_id}": str(failed.story_id),
               "{account_id}": str(x.id), "{action}": "pause", "{name}": "editor", "{hook_id}": "1",
               "{platform}": "x"}
    viewer = web.sign_in("viewer")
    token = csrf_of(viewer.get("/ui/stories").text)
    checked = []
    for router in ROUTERS:
        for route in router.routes:
            if "POST" not in getattr(route, "methods", set()) or "/ui" + route.path in VIEWER_MAY:
                continue
            path = "/ui" + route.path
            for key, value in ids.items():
                path = path.replace(key, value)
            answer = viewer.post(path, data={"csrf": token, "text": "x", "to": "en", "reason": "r",
                                             "name": "t", "at": "2030-01-01T10:00", "url": "https://a.example",
                                             "handle": "someone", "password": PASSWORD, "published": "https://a.b/c",
                                             "language": "en", "tz": "UTC"})
            assert answer.status_code == 403, (path, answer.status_code)
            checked.append(path)
    assert len(checked) >= 14
    # Editing a story and one account's text are among them (a viewer is never offered either).
    assert {f"/ui/stories/{failed.story_id}/edit", f"/ui/deliveries/{failed.id}/text"} <= set(checked)
    with session_scope() as s:
        assert s.get(Delivery, failed.id).state == "failed"
        assert s.get(Account, web.ids["x"]).status == "active"


def test_every_story_and_delivery_form_refuses_an_editor_of_another_desk(web: WebDesk) -> None:
    """Generated from the route table: each POST on a story or a delivery (retry, resolve, approve, edit,
    one account's text...) by an editor of the English desk, on the French desk's story, is a 403."""
    now = utcnow()
    with session_scope() as s:
        french = make_delivery(s, s.get(Account, web.ids["fr"]), now + timedelta(hours=1), state="failed")
        ids = {"{delivery_id}": str(french.id), "{story_id}": str(french.story_id)}
    editor = web.sign_in("editor")
    token = csrf_of(editor.get("/ui/stories").text)
    checked = []
    for router in ROUTERS:
        for route in router.routes:
            path = "/ui" + route.path
            if "POST" not in getattr(route, "methods", set()) or not any(k in path for k in ids):
                continue
            for key, value in ids.items():
                path = path.replace(key, value)
            answer = editor.post(path, data={"csrf": token, "text": "x", "reason": "r",
                                             "at": "2030-01-01T10:00", "published": "https://a.b/c"})
            assert answer.status_code == 403, (path, answer.status_code)
            checked.append(path)
    assert {f"/ui/stories/{french.story_id}/edit", f"/ui/deliveries/{french.id}/text"} <= set(checked)
    with session_scope() as s:
        assert (s.get(Delivery, french.id).state, s.get(Delivery, french.id).text) == ("failed", None)


def test_a_feed_gone_silent_waits_in_the_inbox_of_its_desk_only(web: WebDesk) -> None:
    from scheduler.feeds import registry
    from scheduler.feeds.models import FeedItem

    now = utcnow()
    with session_scope() as s:
        feed = registry.add(s, "https://news.example.com/en/rss", ["en"], now - timedelta(hours=15))
        # New items every hour until ten hours ago: silent for well over three usual gaps.
        for n in range(5):
            s.add(FeedItem(feed_id=feed.id, guid=f"q{n}", guid_key=f"q{n}", title="old", status="queued",
                           created_at=now - timedelta(hours=14 - n)))
        feed.last_new_at = now - timedelta(hours=10)
    inbox = web.sign_in("editor").get("/ui/inbox").text
    assert "https://news.example.com/en/rss" in inbox
    with session_scope() as s:
        french = Actor(name="fr-editor", via="test", roles=(Role("editor", Scope("tag", "fr")),))
        assert views.inbox(s, french, now).silent_feeds == []  # a feed of another desk's accounts
