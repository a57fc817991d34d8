"""Connecting accounts of every platform from the dashboard, each against its stand-in over real HTTP:
the full flow, re-connecting, a forged state, a denied consent, another account's token refused, and
the stand-ins' strictness about redirect_uri, state, PKCE and client credentials. No page or error
shows a token or an app secret."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from adapters import adapter_class
from adapters.standins import standin_class
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.core.models import Account
from scheduler.desk.models import AuditEntry
from scheduler.web.models import MastodonApp
from scheduler.web.oauth_flows import FLOWS, App, Grant
from tests.conftest import Env
from tests.web.conftest import WebDesk, csrf_of

SERVER = "http://testserver"


def _callback(platform: str) -> str:
    return f"{SERVER}/ui/oauth/{platform}/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Pages:
    """Every page and answer the admin saw, to check that no secret is in any of them."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def keep(self, answer: Any) -> Any:
        self.seen.append(f"{answer.headers.get('location', '')}\n{answer.text}")
        return answer

    def assert_never_shown(self, *secrets: str) -> None:
        for secret in secrets:
            assert secret and not any(secret in page for page in self.seen), "a secret was shown"


def _account(platform: str, handle: str) -> Account | None:
    with session_scope() as s:
        account = s.scalars(select(Account).where(Account.platform == platform,
                                                  Account.handle == handle)).first()
        if account is not None:
            s.expunge(account)
        return account


def _consent(authorize: str, decision: str = "allow") -> str:
    """The admin's browser on the platform: the consent page, then the decision; where it leads."""
    query = parse_qs(urlsplit(authorize).query)
    with httpx.Client() as browser:
        consent = browser.get(authorize)
        assert consent.status_code == 200, consent.text
        back = browser.post(authorize.split("?")[0], data={**{k: v[0] for k, v in query.items()},
                                                           "decision": decision})
    assert back.status_code == 302, back.text
    return back.headers["location"]


# -- Mastodon ------------------------------------------------------------------------------------------
@pytest.fixture
def mastodon() -> Iterator[Any]:
    standin = standin_class("mastodon")().start()
    yield standin
    standin.stop()


def _start_mastodon(client: Any, pages: Pages, handle: str, instance: str) -> str:
    """Start a connection as the admin; the authorize page's URL (a link: form-action cannot name
    every instance)."""
    page = pages.keep(client.get("/ui/accounts"))
    assert 'action="/ui/connect/mastodon"' in page.text
    started = pages.keep(client.post("/ui/connect/mastodon", data={"csrf": csrf_of(page.text),
                                                                    "handle": handle, "instance": instance}))
    assert started.status_code == 200, started.text
    found = re.search(r'<a class="button primary" href="([^"]+)"', started.text)
    assert found, started.text
    return html.unescape(found.group(1))


def _finish(client: Any, pages: Pages, location: str) -> Any:
    assert location.startswith(SERVER)
    return pages.keep(client.get(location.removeprefix(SERVER)))


def test_a_mastodon_account_is_connected_through_an_app_registered_once_per_instance(
        any_web: WebDesk, mastodon: Any) -> None:
    """On SQLite and PostgreSQL (the app registration is a table of the dashboard's own)."""
    web = any_web
    mastodon.sign_in("newsdesk", followers=5)
    client, pages = web.sign_in("admin"), Pages()
    authorize = _start_mastodon(client, pages, "@newsdesk", mastodon.url + "/")
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{mastodon.url}/oauth/authorize?")
    assert query["redirect_uri"] == [_callback("mastodon")] and query["scope"] == ["read write"]
    assert query["code_challenge_method"] == ["S256"] and mastodon.apps_registered == 1
    client_id = query["client_id"][0]
    secret = mastodon.clients[client_id]
    with session_scope() as s:
        app = s.scalars(select(MastodonApp)).one()
        assert app.instance == mastodon.url and app.client_id == client_id
        assert secret.encode() not in app.client_secret  # sealed, as credentials are
        assert vault.unseal(app.client_secret).get("client_secret") == secret
    back = _consent(authorize)
    assert parse_qs(urlsplit(back).query)["state"] == query["state"]
    done = _finish(client, pages, back)
    assert done.status_code == 303 and done.headers["location"].startswith("/ui/accounts?done=connected")
    account = _account("mastodon", "newsdesk")
    assert account is not None and account.base_url == mastodon.url and account.remote_id
    first_token = vault.unseal(account.credentials).get("access_token")
    assert set(vault.unseal(account.credentials).reveal()) == {"access_token"}
    assert first_token in mastodon.tokens
    # The answer cannot be replayed: the connection's cookie is gone.
    assert _finish(client, pages, back).status_code == 403
    page = pages.keep(client.get("/ui/accounts")).text
    assert "mastodon:newsdesk" in page and f'value="{mastodon.url}"' in page  # the row's re-connect

    # Re-connecting goes through the instance again, with the same app, and stores the new token.
    authorize = _start_mastodon(client, pages, "newsdesk", mastodon.url)
    assert parse_qs(urlsplit(authorize).query)["client_id"] == [client_id] and mastodon.apps_registered == 1
    assert _finish(client, pages, _consent(authorize)).status_code == 303
    account = _account("mastodon", "newsdesk")
    assert account is not None and vault.unseal(account.credentials).get("access_token") != first_token
    with session_scope() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "admin")).all()
    assert "account.add" in actions and "account.reauth" in actions

    # The next account on that instance reuses the registration.
    mastodon.sign_in("weekend")
    authorize = _start_mastodon(client, pages, "weekend", mastodon.url.upper().replace("HTTP://", "http://"))
    assert _finish(client, pages, _consent(authorize)).status_code == 303
    assert mastodon.apps_registered == 1 and _account("mastodon", "weekend") is not None
    tokens = [vault.unseal(a.credentials).get("access_token") or ""
              for a in (_account("mastodon", "newsdesk"), _account("mastodon", "weekend")) if a]
    pages.assert_never_shown(secret, first_token, *tokens)


def test_mastodon_refuses_another_accounts_token_a_forged_state_and_a_denied_consent(
        web: WebDesk, mastodon: Any) -> None:
    client, pages = web.sign_in("admin"), Pages()
    mastodon.sign_in("someone_else")  # signed in on the instance as another account
    authorize = _start_mastodon(client, pages, "newsdesk", mastodon.url)
    refused = _finish(client, pages, _consent(authorize))
    assert refused.status_code == 422 and "someone_else" in refused.text
    assert _account("mastodon", "newsdesk") is None

    mastodon.sign_in("newsdesk")
    authorize = _start_mastodon(client, pages, "newsdesk", mastodon.url)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    forged = pages.keep(client.get("/ui/oauth/mastodon/callback", params={"state": "not-it", "code": "x"}))
    assert forged.status_code == 403
    denied = _finish(client, pages, _consent(authorize, "deny"))
    assert denied.status_code == 422 and "access_denied" in denied.text
    # Someone else's session cannot bring the answer home, nor can an editor start one.
    editor = web.sign_in("editor")
    assert editor.get("/ui/oauth/mastodon/callback", params={"state": state}).status_code == 403
    form = {"csrf": csrf_of(editor.get("/ui/accounts").text), "handle": "x", "instance": mastodon.url}
    assert editor.post("/ui/connect/mastodon", data=form).status_code == 403
    # Tokens never cross the network in clear: http only for an instance on this machine.
    form = {"csrf": csrf_of(pages.keep(client.get("/ui/accounts")).text), "handle": "newsdesk",
            "instance": "http://mastodon.example"}
    plain = pages.keep(client.post("/ui/connect/mastodon", data=form))
    assert plain.status_code == 422 and "https" in plain.text
    assert _account("mastodon", "newsdesk") is None
    pages.assert_never_shown(*(s for s in mastodon.clients.values() if s), *mastodon.tokens)


def test_a_registration_whose_secret_no_longer_opens_is_made_again(web: WebDesk, mastodon: Any,
                                                                  sqlite_env: Env) -> None:
    """Key rotation re-encrypts accounts, not the dashboard's registrations: one sealed under a key
    that is gone is replaced by a new registration instead of failing every connection."""
    mastodon.sign_in("newsdesk")
    client, pages = web.sign_in("admin"), Pages()
    _start_mastodon(client, pages, "newsdesk", mastodon.url)
    sqlite_env.set(secret_key=Fernet.generate_key().decode())
    authorize = _start_mastodon(client, pages, "newsdesk", mastodon.url)
    assert mastodon.apps_registered == 2
    assert _finish(client, pages, _consent(authorize)).status_code == 303
    with session_scope() as s:
        app = s.scalars(select(MastodonApp)).one()
        assert app.client_id == parse_qs(urlsplit(authorize).query)["client_id"][0]


def test_an_app_the_instance_deleted_is_registered_again(web: WebDesk, mastodon: Any) -> None:
    """The instance's admin removed the dashboard's app: the next connection finds out before sending
    anyone to a consent page that could only show an error, registers again and goes through."""
    mastodon.sign_in("newsdesk")
    client, pages = web.sign_in("admin"), Pages()
    first = parse_qs(urlsplit(_start_mastodon(client, pages, "newsdesk", mastodon.url)).query)["client_id"][0]
    assert mastodon.apps_registered == 1
    again = parse_qs(urlsplit(_start_mastodon(client, pages, "newsdesk", mastodon.url)).query)["client_id"][0]
    assert (again, mastodon.apps_registered, mastodon.app_tokens) == (first, 1, 1)  # still known: kept
    mastodon.delete_app(first)
    authorize = _start_mastodon(client, pages, "newsdesk", mastodon.url)
    assert parse_qs(urlsplit(authorize).query)["client_id"][0] != first and mastodon.apps_registered == 2
    assert _finish(client, pages, _consent(authorize)).status_code == 303
    assert _account("mastodon", "newsdesk") is not None
    assert mastodon.app_tokens == 1  # the code's return asks nothing more: the code is bound to the app
    pages.assert_never_shown(*(s for s in mastodon.clients.values() if s), *mastodon.tokens)


def test_the_mastodon_standin_is_as_strict_as_doorkeeper(web: WebDesk, mastodon: Any) -> None:
    # Signed in over the control API; Mastodon needs no app of the installation's (it registers one).
    assert httpx.post(f"{mastodon.url}/_standin/sign-in", json={"handle": "newsdesk"}).json() == {}
    with httpx.Client(base_url=mastodon.url) as http:
        assert http.post("/api/v1/apps", data={"client_name": "c", "redirect_uris": "not a uri"}
                         ).status_code == 422
        app = http.post("/api/v1/apps", data={"client_name": "c", "redirect_uris": _callback("mastodon"),
                                              "scopes": "read write"}).json()
        verifier = "a-verifier-of-enough-length-0123456789-abcdefghij"
        params = {"response_type": "code", "client_id": app["client_id"],
                  "redirect_uri": _callback("mastodon"), "scope": "read write", "state": "s1",
                  "code_challenge": _challenge(verifier), "code_challenge_method": "S256"}
        elsewhere = http.get("/oauth/authorize", params={**params, "redirect_uri": "https://evil.example/cb"})
        assert elsewhere.status_code == 400 and "location" not in elsewhere.headers
        wider = http.get("/oauth/authorize", params={**params, "scope": "read write admin:write"})
        assert "error=invalid_scope" in wider.headers["location"]
        plain = http.get("/oauth/authorize", params={**params, "code_challenge_method": "plain"})
        assert "error=invalid_request" in plain.headers["location"]
        assert "error=invalid_request" in http.get("/oauth/authorize", params={**params, "state": ""}
                                                   ).headers["location"]

        def code() -> str:
            back = http.post("/oauth/authorize", data={**params, "decision": "allow"})
            return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

        token = {"grant_type": "authorization_code", "redirect_uri": _callback("mastodon"),
                 "client_id": app["client_id"], "client_secret": app["client_secret"],
                 "code_verifier": verifier}
        first = code()
        wrong = http.post("/oauth/token", data={**token, "code": first, "code_verifier": "not-the-verifier"})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        # The failed try spent the code.
        assert http.post("/oauth/token", data={**token, "code": first}).status_code == 400
        assert http.post("/oauth/token", data={**token, "code": code(), "client_secret": "nope"}
                         ).json()["error"] == "invalid_client"
        assert http.post("/oauth/token", data={**token, "code": code(), "redirect_uri": f"{SERVER}/other"}
                         ).status_code == 400
        good = http.post("/oauth/token", data={**token, "code": code()})
        assert good.status_code == 200 and good.json()["scope"] == "read write"
        me = http.get("/api/v1/accounts/verify_credentials",
                      headers={"Authorization": f"Bearer {good.json()['access_token']}"})
        assert me.json()["username"] == "newsdesk"
        # An app token (no user): the app's own secret and scopes, nothing wider.
        app_grant = {"grant_type": "client_credentials", "client_id": app["client_id"],
                     "client_secret": app["client_secret"], "scope": "read",
                     "redirect_uri": _callback("mastodon")}
        assert http.post("/oauth/token", data=app_grant).status_code == 200
        assert http.post("/oauth/token", data={**app_grant, "redirect_uri": f"{SERVER}/other"}
                         ).status_code == 400
        assert http.post("/oauth/token", data={**app_grant, "client_secret": "nope"}
                         ).json()["error"] == "invalid_client"
        assert http.post("/oauth/token", data={**app_grant, "scope": "admin:write"}
                         ).json()["error"] == "invalid_scope"


# -- Telegram ------------------------------------------------------------------------------------------
def test_a_telegram_channel_is_connected_with_its_bot_token_never_shown_again(
        web: WebDesk, sqlite_env: Env) -> None:
    standin = standin_class("telegram")().start()
    try:
        sqlite_env.set(telegram__api_url=standin.url)
        token = standin.add_account("@deskchannel", followers=3)["bot_token"]
        other = standin.add_account("@otherchannel")["bot_token"]
        client, pages = web.sign_in("admin"), Pages()
        page = pages.keep(client.get("/ui/accounts"))
        assert 'action="/ui/connect/telegram/bot-token"' in page.text
        form = {"csrf": csrf_of(page.text), "handle": "@deskchannel"}
        made_up = f"{token.split(':')[0]}:{'A' * 35}"
        wrong = pages.keep(client.post("/ui/connect/telegram/bot-token", data={**form, "bot_token": made_up}))
        assert wrong.status_code in (401, 403, 422) and made_up not in wrong.text
        # Another channel's bot is a bot, and can read a public channel: it may not post there.
        foreign = pages.keep(client.post("/ui/connect/telegram/bot-token", data={**form, "bot_token": other}))
        assert foreign.status_code == 422 and "administrator" in foreign.text
        assert _account("telegram", "@deskchannel") is None
        done = pages.keep(client.post("/ui/connect/telegram/bot-token", data={**form, "bot_token": token}))
        assert done.status_code == 303, done.text
        account = _account("telegram", "@deskchannel")
        assert account is not None and account.base_url == standin.url and account.remote_id
        again = pages.keep(client.post("/ui/connect/telegram/bot-token", data={**form, "bot_token": token}))
        assert again.status_code == 303
        with session_scope() as s:
            assert "account.reauth" in s.scalars(select(AuditEntry.action)).all()
        pages.keep(client.get("/ui/accounts"))
        pages.assert_never_shown(token, other, made_up.split(":")[1])
        editor = web.sign_in("editor")
        form = {**form, "csrf": csrf_of(editor.get("/ui/accounts").text), "bot_token": token}
        refused = editor.post("/ui/connect/telegram/bot-token", data=form)
        assert refused.status_code == 403
    finally:
        standin.stop()


# -- the platforms with an installation-wide app: one flow, one case each -----------------------------
@dataclass(frozen=True)
class Case:
    platform: str
    authorize: str  # paths on the stand-in
    token: str
    handle: str = "newsdesk"  # the account connected (LinkedIn: an organisation, whose admin signs in)


CASES = {c.platform: c for c in (
    Case("facebook", "/v24.0/dialog/oauth", "/v24.0/oauth/access_token"),
    Case("instagram", "/v24.0/dialog/oauth", "/v24.0/oauth/access_token"),
    Case("threads", "/oauth/authorize", "/oauth/access_token"),
    Case("linkedin", "/oauth/v2/authorization", "/oauth/v2/accessToken",
         handle="urn:li:organization:2414183"),
    Case("youtube", "/o/oauth2/v2/auth", "/token", handle="@newsdesk"),
    Case("tiktok", "/v2/auth/authorize/", "/v2/oauth/token/"),
)}


@pytest.fixture(params=sorted(CASES))
def platform(request: Any, web: WebDesk, sqlite_env: Env) -> Iterator[tuple[Case, Any, str, str]]:
    """A platform's stand-in with the dashboard's app registered on it (over the stand-in's control
    API, as an operator rehearsing from another process would) and configured in the settings."""
    case = CASES[request.param]
    standin = standin_class(case.platform)().start()
    app = httpx.post(f"{standin.url}/_standin/sign-in",
                     json={"handle": case.handle, "redirect_uri": _callback(case.platform)}).json()
    client_id, secret = app["client_id"], app["client_secret"]
    sqlite_env.set(**{f"{case.platform}__client_id": client_id, f"{case.platform}__client_secret": secret,
                      f"{case.platform}__authorize_url": standin.url + case.authorize,
                      f"{case.platform}__token_url": standin.url + case.token,
                      f"{case.platform}__api_url": standin.url})
    yield case, standin, client_id, secret
    standin.stop()


def _start(client: Any, pages: Pages, platform: str, handle: str) -> str:
    page = pages.keep(client.get("/ui/accounts"))
    assert f'action="/ui/connect/{platform}"' in page.text
    started = pages.keep(client.post(f"/ui/connect/{platform}", data={"csrf": csrf_of(page.text),
                                                                       "handle": handle}))
    assert started.status_code == 303, started.text
    return started.headers["location"]


def _secrets_of(account: Account | None) -> list[str]:
    if account is None:
        return []
    return [v for k, v in vault.unseal(account.credentials).reveal().items()
            if k not in ("user_id", "page_id", "open_id", "expires_at", "refresh_expires_at", "login",
                         "app_id", "client_id", "client_key", "author")]


def test_each_platform_connects_and_reconnects_through_its_oauth_pages(
        web: WebDesk, platform: tuple[Case, Any, str, str]) -> None:
    case, standin, client_id, secret = platform
    flow = FLOWS[case.platform]
    standin.sign_in(case.handle, followers=7)
    client, pages = web.sign_in("admin"), Pages()
    authorize = _start(client, pages, case.platform, case.handle)
    assert authorize.startswith(standin.url + case.authorize)
    query = parse_qs(urlsplit(authorize).query)
    assert query[flow.client_param] == [client_id] and query["redirect_uri"] == [_callback(case.platform)]
    assert query["scope"] == [flow.scope_for(case.handle)] and query["state"][0]
    assert ("code_challenge" in query) == flow.pkce
    assert all(query[k] == [v] for k, v in flow.extra.items())
    page = client.get("/ui/accounts")
    assert urlsplit(standin.url).netloc in page.headers["content-security-policy"]
    back = _consent(authorize)
    assert parse_qs(urlsplit(back).query)["state"] == query["state"]
    done = _finish(client, pages, back)
    assert done.status_code == 303, done.text
    account = _account(case.platform, case.handle)
    assert account is not None and account.base_url == standin.url and account.remote_id
    model = adapter_class(case.platform).credentials_model
    stored = vault.unseal(account.credentials).reveal()
    model.model_validate(stored)  # the shape the adapter takes, nothing else
    first = _secrets_of(account)
    assert _finish(client, pages, back).status_code == 403  # the answer cannot be replayed
    assert f"{case.platform}:{case.handle}" in pages.keep(client.get("/ui/accounts")).text

    # Re-connecting goes through the platform again and stores the new token on the same account.
    reconnected = _finish(client, pages, _consent(_start(client, pages, case.platform, case.handle)))
    assert reconnected.status_code == 303, reconnected.text
    again = _account(case.platform, case.handle)
    assert again is not None and again.id == account.id
    assert vault.unseal(again.credentials).get("access_token") != stored["access_token"]
    with session_scope() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "admin")).all()
    assert "account.add" in actions and "account.reauth" in actions
    pages.assert_never_shown(secret, *first, *_secrets_of(again))


def test_each_platform_refuses_a_forged_state_a_denied_consent_and_another_accounts_token(
        web: WebDesk, platform: tuple[Case, Any, str, str]) -> None:
    case, standin, _, secret = platform
    client, pages = web.sign_in("admin"), Pages()
    standin.sign_in("someone_else")  # signed in on the platform as another account
    refused = _finish(client, pages, _consent(_start(client, pages, case.platform, case.handle)))
    assert refused.status_code in (403, 422) and _account(case.platform, case.handle) is None

    standin.sign_in(case.handle)
    authorize = _start(client, pages, case.platform, case.handle)
    forged = pages.keep(client.get(f"/ui/oauth/{case.platform}/callback", params={"state": "x", "code": "x"}))
    assert forged.status_code == 403
    denied = _finish(client, pages, _consent(authorize, "deny"))
    assert denied.status_code == 422 and "access_denied" in denied.text
    editor = web.sign_in("editor")
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    assert editor.get(f"/ui/oauth/{case.platform}/callback", params={"state": state}).status_code == 403
    assert _account(case.platform, case.handle) is None
    pages.assert_never_shown(secret)


def test_each_standin_is_strict_about_redirect_uri_state_the_code_and_the_client(
        web: WebDesk, platform: tuple[Case, Any, str, str]) -> None:
    case, standin, client_id, secret = platform
    flow = FLOWS[case.platform]
    standin.sign_in(case.handle)
    verifier = "a-verifier-of-enough-length-0123456789-abcdefghij"
    params = {"response_type": "code", flow.client_param: client_id, "redirect_uri": _callback(case.platform),
              "scope": flow.scope_for(case.handle), "state": "s1", **flow.extra}
    if flow.pkce:
        params.update(code_challenge=_challenge(verifier), code_challenge_method="S256")
    with httpx.Client(base_url=standin.url) as http:
        elsewhere = http.get(case.authorize, params={**params, "redirect_uri": "https://evil.example/cb"})
        assert elsewhere.status_code == 400 and "location" not in elsewhere.headers
        unknown = http.get(case.authorize, params={**params, flow.client_param: "someone-elses-app"})
        assert unknown.status_code == 400 and "location" not in unknown.headers
        no_state = http.get(case.authorize, params={**params, "state": ""})
        assert "error=" in no_state.headers["location"] and "code=" not in no_state.headers["location"]

        def code() -> str:
            back = http.post(case.authorize, data={**params, "decision": "allow"})
            return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

        token = {"grant_type": "authorization_code", "redirect_uri": _callback(case.platform),
                 flow.client_param: client_id, "client_secret": secret}
        if flow.pkce:
            token["code_verifier"] = verifier
            spent = code()
            wrong = http.post(case.token, data={**token, "code": spent, "code_verifier": "not-the-verifier"})
            assert wrong.status_code in (400, 401) and secret not in wrong.text
            assert http.post(case.token, data={**token, "code": spent}).status_code in (400, 401)
        assert http.post(case.token, data={**token, "code": code(), "client_secret": "not-the-secret"}
                         ).status_code in (400, 401)
        assert http.post(case.token, data={**token, "code": code(), "redirect_uri": f"{SERVER}/other"}
                         ).status_code in (400, 401)
        once = code()
        good = http.post(case.token, data={**token, "code": once})
        assert good.status_code == 200 and good.json()["access_token"]
        assert http.post(case.token, data={**token, "code": once}).status_code in (400, 401)  # once only


def test_a_role_that_may_not_connect_is_told_403_before_any_field_is_checked(web: WebDesk) -> None:
    """Posted by hand without the platform's fields: still 403, not which field is missing."""
    for role in ("viewer", "editor", "approver"):
        client = web.sign_in(role)
        token = csrf_of(client.get("/ui/accounts").text)
        for path in ("/ui/connect/mastodon", "/ui/connect/telegram/bot-token",
                     "/ui/connect/bluesky/app-password", "/ui/connect/facebook"):
            answer = client.post(path, data={"csrf": token, "handle": "someone", "password": "p"})
            assert answer.status_code == 403, (role, path, answer.status_code)


def test_an_apps_secret_and_the_tokens_stay_out_of_repr() -> None:
    """A flow's objects may end up in a log line or a traceback's locals: no secret in their repr."""
    app = App("client", "the-app-secret", "https://a.example/auth", "https://a.example/token", "")
    grant = Grant("x", "newsdesk", app, {"access_token": "the-access-token"}, 1.0)
    assert "the-app-secret" not in repr(app) and "the-access-token" not in repr(grant)


def test_with_mastodon_connecting_turned_off_no_mastodon_form_is_offered(web: WebDesk,
                                                                         sqlite_env: Env) -> None:
    """CROSSPOST_MASTODON__ENABLED=false: neither the connect form nor a row's re-connect is shown, and
    the route answers 404 when posted by hand."""
    client = web.sign_in("admin")
    page = client.get("/ui/accounts").text
    assert 'action="/ui/connect/mastodon"' in page  # offered by default (an admin, a Mastodon row)
    sqlite_env.set(mastodon__enabled="false")
    page = client.get("/ui/accounts").text
    assert "/ui/connect/mastodon" not in page and 'id="mastodon-instance"' not in page
    answer = client.post("/ui/connect/mastodon", data={"csrf": csrf_of(page), "handle": "newsdesk",
                                                       "instance": "https://mastodon.example"})
    assert answer.status_code == 404


def test_a_token_endpoint_that_redirects_is_not_followed_with_the_code_and_the_secret(
        web: WebDesk, sqlite_env: Env) -> None:
    """A 307 from the token endpoint would re-post the code and the app's secret to wherever it points:
    the answer is a refusal, and nothing reaches the other address."""
    reached: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reached.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(Elsewhere):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_port}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

    token_endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (elsewhere, token_endpoint):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sqlite_env.set(linkedin__client_id="li-app", linkedin__client_secret="li-secret-value-123",
                       linkedin__authorize_url="https://www.linkedin.com/oauth/v2/authorization",
                       linkedin__token_url=f"http://127.0.0.1:{token_endpoint.server_port}/token")
        client = web.sign_in("admin")
        token = csrf_of(client.get("/ui/accounts").text)
        started = client.post("/ui/connect/linkedin", data={"csrf": token, "handle": "urn:li:person:abc"})
        assert started.status_code == 303
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        back = client.get("/ui/oauth/linkedin/callback", params={"state": state, "code": "the-code"})
        assert back.status_code >= 400 and "connect:" in back.text
        assert reached == [] and "li-secret-value-123" not in back.text
    finally:
        for server in (elsewhere, token_endpoint):
            server.shutdown()
            server.server_close()
