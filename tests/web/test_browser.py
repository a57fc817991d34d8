"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright; Playwright's own
browser download is never used): sign in, compose with the counters updating as one types, approve as a
second user on a phone-sized screen, and a screenshot of that screen. With CI=true a missing Chromium
fails these tests instead of skipping them."""

from __future__ import annotations

import importlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from sqlalchemy import select

from adapters.base import Credentials
from adapters.standins import standin_class
from scheduler.api.app import create_app
from scheduler.core.db import session_scope
from scheduler.core.models import Account, Delivery, Story, utcnow
from scheduler.desk import approval
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, Scope
from scheduler.desk.models import User
from scheduler.matrix import accounts
from scheduler.stories.drafts import Draft
from tests.conftest import IN_CI, Env, free_port, wait_for, wait_for_api
from tests.factories import make_delivery
from tests.web.conftest import PASSWORD, WebDesk

# A 1x1 PNG: enough for the file input (the preview shows the name and the alt text, not the pixels).
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63"
                    "f8cfc0f01f0005000201a5a2f1f80000000049454e44ae426082")
CHROMIUM = Path(os.environ.get("CROSSPOST_TEST_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("CROSSPOST_TEST_SCREENSHOTS", "/tmp/crosspost-screenshots"))

# In CI a missing playwright is an import error (a failure), elsewhere a skip.
PLAYWRIGHT = "playwright.sync_api"
sync_api = importlib.import_module(PLAYWRIGHT) if IN_CI else pytest.importorskip(PLAYWRIGHT)


@pytest.fixture
def server(web: WebDesk) -> Iterator[str]:
    """The whole app (API and dashboard) under a real uvicorn on a free port, in this process's env."""
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_for(lambda: running.started, 30, 0.05, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (tests/services.sh does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


def sign_in(page: object, base: str, name: str) -> None:
    page.goto(f"{base}/ui/stories")  # leads to the login form, then back
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/ui/stories")


def test_compose_with_live_counters_then_approve_on_a_phone(web: WebDesk, server: str,
                                                            browser: object) -> None:
    expect = sync_api.expect
    with session_scope() as s:
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    desktop = browser.new_context(viewport={"width": 1280, "height": 900})
    page = desktop.new_page()
    sign_in(page, server, "editor")
    page.get_by_role("link", name="Compose").click()
    page.get_by_label("#en").check()
    text = page.get_by_label("Text", exact=True)
    # Typed key by key: htmx asks the server for the counters as the text changes.
    text.press_sequentially("中" * 145)
    x_counter = page.locator('#counters [data-platform="x"]')
    expect(x_counter).to_have_class("counter over")
    expect(x_counter.locator(".count")).to_have_text("290 of 280 weighted characters")
    expect(page.locator('#counters [data-platform="telegram"] .count')).to_have_text(
        "145 of 4,096 UTF-16 code units")
    expect(page.locator('#counters [data-platform="telegram"]')).to_have_class("counter fine")
    text.fill("Short enough for every platform")
    text.press("End")
    text.press_sequentially("!")
    expect(x_counter).to_have_class("counter fine")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "compose-1280.png"), full_page=True)
    page.get_by_role("button", name="Queue").click()
    page.wait_for_url("**/ui/stories?done=queued*")
    expect(page.get_by_role("status")).to_contain_text("Queued story")
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        assert story.status == "awaiting_approval"

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    sign_in(mobile, server, "approver")
    mobile.get_by_role("link", name="Inbox").click()
    card = mobile.locator(f"#story-{story.id}")
    expect(card).to_contain_text("Short enough for every platform!")
    # Nothing wider than the phone: no sideways scrolling to reach the buttons.
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    mobile.screenshot(path=str(SHOTS / "inbox-390.png"), full_page=True)
    card.get_by_role("button", name="Approve").click()
    mobile.wait_for_url("**/ui/inbox?done=approved*")
    expect(mobile.get_by_role("status")).to_contain_text(f"Story {story.id} approved")
    expect(mobile.locator(f"#story-{story.id}")).to_have_count(0)
    with session_scope() as s:
        assert set(s.scalars(select(Delivery.state).where(Delivery.story_id == story.id))) == {"scheduled"}
    mobile.get_by_role("link", name="Stories").click()
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    mobile.screenshot(path=str(SHOTS / "stories-390.png"), full_page=True)
    desktop.close()
    phone.close()


PAGES = ("stories", "inbox", "compose", "calendar", "accounts", "followers", "audit", "webhooks", "users",
         "health", "settings")


def test_every_page_in_chinese_at_both_widths_fits_and_starts_with_the_skip_link(
        web: WebDesk, server: str, browser: object) -> None:
    expect = sync_api.expect
    with session_scope() as s:
        x = s.get(Account, web.ids["x"])
        make_delivery(s, x, utcnow(), state="failed").last_error = "rate limited for too long"
        make_delivery(s, x, utcnow(), state="unknown")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server, "admin")
    page.goto(f"{server}/ui/settings")
    page.get_by_label("Language").select_option("zh-Hans")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for name in PAGES:
            page.goto(f"{server}/ui/{name}")
            expect(page.get_by_role("button", name="退出")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
            page.screenshot(path=str(SHOTS / f"{name}-{width}-zh.png"), full_page=True)
    page.goto(f"{server}/ui/inbox")
    page.keyboard.press("Tab")  # the keyboard's first stop skips the menu
    expect(page.locator(":focus")).to_have_text("跳到正文")
    context.close()


def test_queued_to_each_accounts_next_slot_then_an_unknown_resolved_from_the_inbox(
        web: WebDesk, server: str, browser: object) -> None:
    """The issue's proof: queue to next slots in the browser, and resolve an unknown there."""
    expect = sync_api.expect
    with session_scope() as s:
        for platform in ("x", "telegram"):
            account = s.get(Account, web.ids[platform])
            account.schedule, account.tz = ["0 9 * * *"], "Asia/Kolkata"  # a zone without DST
        unknown = make_delivery(s, s.get(Account, web.ids["x"]), utcnow() - timedelta(minutes=5),
                                state="unknown")
        unknown.last_error = "telegram: connection dropped after the request was sent"
        unknown_id = unknown.id
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, server, "editor")
    page.get_by_role("link", name="Compose").click()
    page.get_by_label("Text", exact=True).fill("The council votes on the budget tonight")
    for platform in ("x", "telegram"):
        page.get_by_label(web.accounts[platform], exact=True).check()
    page.get_by_label("Next slot of each account").check()
    page.get_by_role("button", name="Queue").click()
    page.wait_for_url("**/ui/stories?done=queued*")
    with session_scope() as s:
        story = s.scalars(select(Story).where(Story.text.startswith("The council"))).one()
        due = s.execute(select(Delivery.account_id, Delivery.due_at, Delivery.slot_at)
                        .where(Delivery.story_id == story.id)).all()
    assert {account for account, _, _ in due} == {web.ids["x"], web.ids["telegram"]}
    for _, due_at, slot_at in due:
        local = due_at.astimezone(ZoneInfo("Asia/Kolkata"))
        assert slot_at == due_at and (local.hour, local.minute) == (9, 0) and due_at > utcnow()

    page.get_by_role("link", name="Inbox").click()
    card = page.locator(f"#delivery-{unknown_id}")
    expect(card).to_contain_text("connection dropped after the request was sent")
    card.get_by_label("Link").fill("https://x.com/desk/status/42")
    card.get_by_label("Link").press("Enter")  # by keyboard: the field's form is "It went out"
    page.wait_for_url(f"**/ui/inbox?done=resolved&id={unknown_id}")
    expect(page.get_by_role("status")).to_contain_text(f"Delivery {unknown_id} resolved")
    expect(page.locator(f"#delivery-{unknown_id}")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "inbox-resolved-390.png"), full_page=True)
    with session_scope() as s:
        done = s.get(Delivery, unknown_id)
        assert (done.state, done.published_url) == ("published", "https://x.com/desk/status/42")
    context.close()


def test_dragging_a_story_to_another_day_moves_it(web: WebDesk, server: str, browser: object) -> None:
    expect = sync_api.expect
    now = utcnow().replace(second=0, microsecond=0)
    # Next week (UTC is the user's zone): Thursday noon dragged to Friday, both ahead whatever today is.
    monday = (now - timedelta(days=now.weekday()) + timedelta(weeks=1)).replace(hour=12, minute=0)
    with session_scope() as s:
        story = make_delivery(s, s.get(Account, web.ids["x"]), monday + timedelta(days=3), text="drag me")
        story_id, delivery_id = story.story_id, story.id
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server, "editor")
    page.goto(f"{server}/ui/calendar?week=1")
    item = page.locator(f'li.movable[data-story="{story_id}"]')
    target = page.locator(f'li.day[data-day="{(monday + timedelta(days=4)).date().isoformat()}"]')
    item.drag_to(target)
    page.wait_for_url("**done=moved*")
    expect(page.get_by_role("status")).to_contain_text(f"Story {story_id} moved")
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).due_at == monday + timedelta(days=4)
    context.close()


def test_connecting_an_x_account_through_the_standins_oauth_pages(web: WebDesk, server: str,
                                                                 browser: object, sqlite_env: Env) -> None:
    expect = sync_api.expect
    standin = standin_class("x")().start()
    try:
        standin.oauth.redirect_uris["standin-public"].add(f"{server}/ui/oauth/x/callback")
        standin.sign_in("worlddesk", followers=3)
        sqlite_env.set(x__client_id="standin-public", x__authorize_url=f"{standin.url}/i/oauth2/authorize",
                       x__token_url=f"{standin.url}/2/oauth2/token", x__api_url=standin.url)
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        sign_in(page, server, "admin")
        page.goto(f"{server}/ui/accounts")
        page.get_by_label("X handle").fill("@worlddesk")
        page.get_by_role("button", name="Connect X", exact=True).click()
        expect(page.get_by_role("heading", name="Authorize app")).to_be_visible()  # the platform's page
        page.get_by_role("button", name="Authorize app").click()
        page.wait_for_url(f"{server}/ui/accounts?done=connected*")
        expect(page.get_by_role("status")).to_contain_text("connected")
        expect(page.get_by_role("rowheader", name="x:worlddesk")).to_be_visible()
        context.close()
    finally:
        standin.stop()


def test_connecting_a_mastodon_account_through_the_instances_oauth_pages(web: WebDesk, server: str,
                                                                        browser: object) -> None:
    """The dashboard registers itself on the instance, then the admin follows a link (a form-action
    cannot name every instance) to the instance's consent page and comes back connected."""
    expect = sync_api.expect
    standin = standin_class("mastodon")().start()
    try:
        standin.sign_in("worlddesk", followers=3)
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        sign_in(page, server, "admin")
        page.goto(f"{server}/ui/accounts")
        page.get_by_label("Instance address").fill(standin.url)
        page.get_by_label("Mastodon handle").fill("@worlddesk")
        page.get_by_role("button", name="Connect Mastodon", exact=True).click()
        page.get_by_role("link", name=f"Continue to {standin.url}").click()
        expect(page.get_by_role("heading", name="Authorize app")).to_be_visible()  # the instance's page
        page.get_by_role("button", name="Authorize app").click()
        page.wait_for_url(f"{server}/ui/accounts?done=connected*")
        expect(page.get_by_role("status")).to_contain_text("connected")
        expect(page.get_by_role("rowheader", name="mastodon:worlddesk")).to_be_visible()
        assert standin.apps_registered == 1
        context.close()
    finally:
        standin.stop()


@pytest.mark.workers
def test_approved_in_the_browser_then_crosspost_run_publishes_it_into_the_grid(
        web: WebDesk, browser: object, sqlite_env: Env, tmp_path: Path) -> None:
    """The dashboard as `crosspost run` serves it (one process: worker, beat and the app by name)."""
    expect = sync_api.expect
    standin = standin_class("mastodon")().start()
    port = free_port()
    run = None
    try:
        with session_scope() as s:
            account = accounts.add(s, "mastodon", "frontdesk", Credentials(standin.add_account("frontdesk")),
                                   base_url=standin.url, tags=["en"])
            label = account.label
            approval.add_policy(s, Actor.cli(), Scope("account", str(account.id)), utcnow())
        run = sqlite_env.spawn("run", "--concurrency", "4", "--port", str(port), log=tmp_path / "run.log")
        base = f"http://127.0.0.1:{port}"
        wait_for_api(base, "the dashboard of `crosspost run`")
        desk = browser.new_context(viewport={"width": 1280, "height": 900})
        page = desk.new_page()
        sign_in(page, base, "editor")
        page.goto(f"{base}/ui/compose")
        page.get_by_label(label).check()
        page.get_by_label("Text", exact=True).fill("Published by a real worker")
        page.get_by_role("button", name="Queue").click()
        page.wait_for_url("**/ui/stories?done=queued*")
        phone = browser.new_context(viewport={"width": 390, "height": 844})
        approver = phone.new_page()
        sign_in(approver, base, "approver")
        approver.goto(f"{base}/ui/inbox")

        # The editor's grid, filtered, opened while the story still waits for approval: the worker's post
        # turns up in it without a reload (the page's own marker survives), the filter as it was.
        page.goto(f"{base}/ui/stories?account={label}")
        expect(page.get_by_role("cell", name=re.compile("awaiting approval"))).to_be_visible()
        page.evaluate("window.notReloaded = true")
        approver.get_by_role("button", name="Approve").click()
        approver.wait_for_url("**done=approved*")
        expect(page.locator("a.ok", has_text="published")).to_have_count(1, timeout=60_000)
        assert page.evaluate("window.notReloaded === true")
        expect(page.get_by_label("Account")).to_have_value(label)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "stories-live-1280.png"), full_page=True)
        approver.goto(f"{base}/ui/stories")
        link = approver.locator("a.ok", has_text="published").get_attribute("href")
        assert link is not None and link.startswith(standin.url)
        posts = standin.posts()
        assert len(posts) == 1 and "Published by a real worker" in str(posts[0].data)
        expect(approver.get_by_role("cell", name=re.compile("published"))).to_be_visible()
        desk.close()
        phone.close()
    finally:
        if run is not None:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(30)
        standin.stop()


def test_editing_one_accounts_text_from_the_grid_and_the_story_by_keyboard(web: WebDesk, server: str,
                                                                          browser: object) -> None:
    expect = sync_api.expect
    with session_scope() as s:
        draft = Draft(text="The story's own words", targets=["en"],
                      at=(utcnow() + timedelta(hours=3)).replace(second=0, microsecond=0))
        story_id = desk_stories.queue(s, Actor.cli(), draft, utcnow()).id
        x_delivery = s.scalars(select(Delivery.id).where(Delivery.story_id == story_id,
                                                         Delivery.account_id == web.ids["x"])).one()
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = "The story's own words"
    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        sign_in(page, server, "editor")
        cell = page.locator(f"#cell-{x_delivery}")
        cell.get_by_text("Edit this account's text").click()
        box = cell.get_by_label(f"Text sent to {web.accounts['x']}")
        expect(box).to_have_value(before)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"stories-edit-cell-{width}.png"), full_page=True)
        box.fill("中" * 150)  # 300 on X's scale: refused, said beside the text
        cell.get_by_role("button", name="Save").click()
        expect(page.get_by_role("alert")).to_contain_text(web.accounts["x"])
        again = page.get_by_label(f"Text sent to {web.accounts['x']}")
        expect(again).to_have_attribute("aria-invalid", "true")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"delivery-edit-{width}.png"), full_page=True)
        again.fill(f"Only for X at {width}")
        again.press("Tab")
        page.keyboard.press("Enter")  # the keyboard reaches Save next
        page.wait_for_url("**/ui/stories?done=done*")
        with session_scope() as s:
            assert s.get(Delivery, x_delivery).text == f"Only for X at {width}"
        page.get_by_role("link", name="Edit the story").click()
        page.get_by_label("Text", exact=True).fill(f"New words for everyone {width}")
        # The preview follows the typing, as in compose.
        telegram = page.locator('[data-preview="telegram"] .post-text')
        expect(telegram).to_have_text(f"New words for everyone {width}")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"story-edit-{width}.png"), full_page=True)
        page.get_by_role("button", name="Save").click()
        page.wait_for_url("**/ui/stories?done=done*")
        row = page.locator(f'tr[data-story="{story_id}"] th')
        expect(row).to_contain_text(f"New words for everyone {width}")
        before = f"Only for X at {width}"  # the account's own text outlives an edit of the story's
        context.close()


def test_the_compose_preview_splits_x_into_a_thread_as_one_types_while_telegram_stays_one_post(
        web: WebDesk, server: str, browser: object) -> None:
    expect = sync_api.expect
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        sign_in(page, server, "editor")
        page.goto(f"{server}/ui/compose")
        page.get_by_label(web.accounts["x"]).check()
        page.get_by_label(web.accounts["telegram"]).check()
        page.get_by_label("Split into a thread").check()
        text = page.get_by_label("Text", exact=True)
        text.fill("The budget passed after a night-long session in the #parliament. " * 4)
        text.press("End")
        x_posts = page.locator('[data-preview="x"] li.post')
        telegram_posts = page.locator('[data-preview="telegram"] li.post')
        expect(x_posts).to_have_count(1)
        # Typed key by key: the preview follows, and X's post becomes a numbered chain.
        text.press_sequentially(" Ministers said @desk will publish the full text at https://example.org/b.")
        expect(x_posts).to_have_count(2)
        expect(x_posts.nth(0).locator(".part")).to_have_text("1/2")
        expect(x_posts.nth(1)).to_contain_text("2/2")
        expect(telegram_posts).to_have_count(1)
        expect(telegram_posts.locator(".hl.link")).to_have_text("https://example.org/b")
        expect(telegram_posts.locator(".hl.hashtag")).to_have_text(["#parliament"] * 4)
        page.get_by_text("Images and video").click()
        page.get_by_label("Alt text (what the image shows)").first.fill("Ministers leaving at dawn")
        expect(telegram_posts.locator("figcaption")).to_have_count(0)  # no image chosen yet
        page.get_by_label("Image 1", exact=True).set_input_files(
            files=[{"name": "dawn.png", "mimeType": "image/png", "buffer": PNG}])
        expect(telegram_posts.locator("figcaption")).to_have_text("ALT Ministers leaving at dawn")
        expect(x_posts.nth(0).locator("figcaption")).to_have_count(1)
        expect(x_posts.nth(1).locator("figcaption")).to_have_count(0)  # on the chain's first post
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"compose-preview-{width}.png"), full_page=True)
        context.close()


def test_changing_ones_notification_settings_by_keyboard_at_both_widths(web: WebDesk, server: str,
                                                                        browser: object) -> None:
    expect = sync_api.expect
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, address in ((1280, "approver@example.org"), (390, "phone@example.org")):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        sign_in(page, server, "approver")
        page.get_by_role("link", name="Preferences").click()
        page.get_by_label("E-mail address").fill(address)
        page.get_by_label("a story waits for approval").check()
        page.get_by_label("A daily digest of my desk").focus()
        page.keyboard.press("Space")  # by keyboard
        expect(page.get_by_label("A daily digest of my desk")).to_be_checked(checked=width == 1280)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"settings-notifications-{width}.png"), full_page=True)
        page.get_by_role("button", name="Update notifications").click()
        page.wait_for_url("**/ui/settings?done=done*")
        expect(page.get_by_label("E-mail address")).to_have_value(address)
        expect(page.get_by_label("a story waits for approval")).to_be_checked()
        with session_scope() as s:
            user = s.scalars(select(User).where(User.name == "approver")).one()
            assert (user.email, user.notify, user.digest) == (address, ["approval.requested"], width == 1280)
        context.close()
