"""Connecting an X account from the dashboard through the stand-in's OAuth pages (authorization code
with PKCE), and the stand-in's strictness about redirect_uri, state, the code and the verifier."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from adapters.standins import standin_class
from scheduler.core.db import session_scope
from scheduler.core.models import Account
from scheduler.desk.models import AuditEntry
from tests.conftest import Env
from tests.web.conftest import WebDesk, csrf_of

CALLBACK = "http://testserver/ui/oauth/x/callback"


@pytest.fixture
def x(web: WebDesk, sqlite_env: Env) -> Iterator[object]:
    standin = standin_class("x")().start()
    standin.oauth.redirect_uris["standin-public"].add(CALLBACK)
    sqlite_env.set(x__client_id="standin-public", x__authorize_url=f"{standin.url}/i/oauth2/authorize",
                   x__token_url=f"{standin.url}/2/oauth2/token", x__api_url=standin.url)
    yield standin
    standin.stop()


def _authorize(client: object, web: WebDesk, handle: str) -> str:
    """Start a connection as the admin; the authorize page's URL."""
    page = client.get("/ui/accounts")
    assert 'action="/ui/connect/x"' in page.text
    started = client.post("/ui/connect/x", data={"csrf": csrf_of(page.text), "handle": handle})
    assert started.status_code == 303
    assert "form-action 'self' http://127.0.0.1:" in page.headers["content-security-policy"]
    return started.headers["location"]


def test_an_admin_connects_and_reconnects_an_x_account_through_the_oauth_pages(web: WebDesk,
                                                                              x: object) -> None:
    x.sign_in("newsdesk", followers=12)
    client = web.sign_in("admin")
    authorize = _authorize(client, web, "@newsdesk")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [CALLBACK]
    with httpx.Client() as browser:  # the admin's browser on the platform's site
        consent = browser.get(authorize)
        assert consent.status_code == 200 and "@newsdesk" in consent.text
        back = browser.post(authorize.split("?")[0], data={**{k: v[0] for k, v in query.items()},
                                                           "decision": "allow"})
    assert back.status_code == 302 and back.headers["location"].startswith(CALLBACK)
    returned = parse_qs(urlsplit(back.headers["location"]).query)
    assert returned["state"] == query["state"]
    done = client.get(back.headers["location"].replace("http://testserver", ""))
    assert done.status_code == 303 and done.headers["location"].startswith("/ui/accounts?done=connected")
    with session_scope() as s:
        account = s.scalars(select(Account).where(Account.platform == "x",
                                                  Account.handle == "newsdesk")).one()
        assert account.base_url == x.url and account.remote_id is not None
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "admin")).all()
    assert "account.add" in actions
    page = client.get("/ui/accounts").text
    assert "x:newsdesk" in page and "Re-connect" in page
    # The answer cannot be replayed (the connection's cookie is gone); re-connecting goes through the
    # platform again and stores the new tokens on the same account.
    assert client.get(back.headers["location"].replace("http://testserver", "")).status_code == 403
    authorize = _authorize(client, web, "newsdesk")
    query = parse_qs(urlsplit(authorize).query)
    with httpx.Client() as browser:
        back = browser.post(authorize.split("?")[0], data={**{k: v[0] for k, v in query.items()},
                                                           "decision": "allow"})
    again = client.get(back.headers["location"].replace("http://testserver", ""))
    assert again.status_code == 303
    with session_scope() as s:
        assert "account.reauth" in s.scalars(select(AuditEntry.action)).all()


def test_a_forged_state_or_a_denied_consent_connects_nothing(web: WebDesk, x: object) -> None:
    x.sign_in("newsdesk")
    client = web.sign_in("admin")
    authorize = _authorize(client, web, "newsdesk")
    query = parse_qs(urlsplit(authorize).query)
    forged = client.get("/ui/oauth/x/callback", params={"state": "not-the-one", "code": "x"})
    assert forged.status_code == 403
    with httpx.Client() as browser:
        denied = browser.post(authorize.split("?")[0], data={**{k: v[0] for k, v in query.items()},
                                                             "decision": "deny"})
    answer = client.get(denied.headers["location"].replace("http://testserver", ""))
    assert answer.status_code == 422 and "access_denied" in answer.text
    other = web.sign_in("editor")
    assert other.get("/ui/oauth/x/callback", params={"state": query["state"][0]}).status_code == 403
    with session_scope() as s:
        assert s.scalars(select(Account).where(Account.handle == "newsdesk")).first() is None


def test_the_standin_is_strict_about_redirect_uri_and_verifier(web: WebDesk, x: object) -> None:
    x.sign_in("newsdesk")
    verifier = "a-verifier-of-enough-length-0123456789-abcdefghij"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": "standin-public", "redirect_uri": CALLBACK,
              "scope": "tweet.read tweet.write users.read", "state": "s1", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    with httpx.Client(base_url=x.url) as browser:
        elsewhere = browser.get("/i/oauth2/authorize", params={**params, "redirect_uri": "https://evil.example/cb"})
        assert elsewhere.status_code == 400 and "location" not in elsewhere.headers
        no_state = browser.get("/i/oauth2/authorize", params={**params, "state": ""})
        assert "error=invalid_request" in no_state.headers["location"]
        code = parse_qs(urlsplit(browser.post("/i/oauth2/authorize", data={**params, "decision": "allow"})
                                 .headers["location"]).query)["code"][0]
        token = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                 "client_id": "standin-public"}
        wrong = browser.post("/2/oauth2/token", data={**token, "code_verifier": "not-the-verifier"})
        assert wrong.status_code == 400 and "code verifier" in wrong.json()["error_description"]
        # The failed try spent the code, as a stolen code must not be retried.
        right = browser.post("/2/oauth2/token", data={**token, "code_verifier": verifier})
        assert right.status_code == 400


def test_a_bluesky_account_is_connected_with_an_app_password_never_shown_again(web: WebDesk) -> None:
    standin = standin_class("bluesky")().start()
    try:
        password = standin.add_account("desk.bsky.social")["password"]
        client = web.sign_in("admin")
        token = csrf_of(client.get("/ui/accounts").text)
        form = {"csrf": token, "handle": "desk.bsky.social", "pds": standin.url}
        wrong = client.post("/ui/connect/bluesky/app-password",
                            data={**form, "password": "abcd-efgh-ijkl-mnop"})
        assert wrong.status_code in (401, 403, 422) and "abcd-efgh-ijkl-mnop" not in wrong.text
        done = client.post("/ui/connect/bluesky/app-password", data={**form, "password": password})
        assert done.status_code == 303, done.text
        page = client.get("/ui/accounts").text
        assert "bluesky:desk.bsky.social" in page and password not in page
        editor = web.sign_in("editor")
        refused = editor.post("/ui/connect/bluesky/app-password",
                              data={**form, "csrf": csrf_of(editor.get("/ui/accounts").text),
                                    "handle": "other.bsky.social", "password": password})
        assert refused.status_code == 403
    finally:
        standin.stop()
