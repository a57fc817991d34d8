"""One declaration per platform for connecting accounts through its OAuth 2 authorization code flow:
the scopes, whether PKCE is part of it, how the app authenticates at the token endpoint, the extra
parameters of the authorize page, and what follows the code (Meta's long-lived exchange, picking the
Page, LinkedIn's member URN). ``connecting.py`` runs the one flow; each ``finish`` turns the token
endpoint's answer into the credentials the platform's adapter takes (its pydantic model refuses any
other key), so the desk's ``accounts.connect`` can check them with the platform before they are stored.

Errors never quote a token or a secret: the platforms' words are passed through ``shown`` and only
their ``error``/``message`` fields are kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import requests

from adapters.graph import GRAPH_VERSION
from scheduler.core.errors import UserError, shown
from scheduler.core.models import utcnow


@dataclass(frozen=True)
class App:
    """The app one connection goes through: the installation's (settings), or for Mastodon the one
    registered on the instance."""

    client_id: str
    secret: str | None = field(repr=False)  # never in a log line or a traceback's locals
    authorize_url: str
    token_url: str
    api_url: str  # where the accounts' API is (empty: the platform's own)


@dataclass(frozen=True)
class Grant:
    """What the token endpoint answered, with what a post-step needs to ask the platform more."""

    platform: str
    handle: str
    app: App
    body: Mapping[str, Any] = field(repr=False)  # the tokens
    timeout: float

    def get(self, url: str, params: Mapping[str, str], what: str) -> dict[str, Any]:
        """One GET to the platform after the code (an exchange, a listing); its JSON object."""
        try:
            # Never followed: Meta's exchange carries the app's secret in the query.
            answer = requests.get(url, params=dict(params), timeout=self.timeout, allow_redirects=False)
            body = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise UserError(f"connect: {self.platform} did not answer {what} ({type(exc).__name__})"
                            ) from None
        if answer.status_code != 200 or not isinstance(body, dict) or "error" in body:
            raise UserError(f"connect: {self.platform} refused {what} ({refusal(body)})")
        return body

    def expires_at(self, seconds: Any) -> str | None:
        try:
            return (utcnow() + timedelta(seconds=int(seconds))).isoformat() if seconds else None
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Flow:
    platform: str
    scopes: tuple[str, ...]
    finish: Callable[[Grant], dict[str, Any]]
    scope_sep: str = " "
    pkce: bool = True
    # "basic": HTTP Basic when the app has a secret, else client_id in the form (a public client, X);
    # "form": client_id and client_secret in the form (Meta, LinkedIn, Google, TikTok, Mastodon).
    client_auth: Literal["basic", "form"] = "basic"
    client_param: str = "client_id"  # TikTok calls it client_key
    extra: Mapping[str, str] = field(default_factory=dict)  # more authorize parameters
    needs_secret: bool = True  # the token endpoint refuses a client without one
    # More scopes for some handles (a LinkedIn organisation needs the Community Management ones).
    more_scopes: Callable[[str], tuple[str, ...]] = lambda handle: ()

    def scope_for(self, handle: str) -> str:
        return self.scope_sep.join((*self.scopes, *self.more_scopes(handle)))


def refusal(body: Any) -> str:
    """A platform's refusal in its own words, without anything else it may have echoed: OAuth's
    ``error``/``error_description``, Graph's ``error.message``, TikTok's ``error.code``."""
    if not isinstance(body, dict):
        return "no JSON answer"
    error = body.get("error")
    if isinstance(error, dict):
        return f"{shown(str(error.get('type') or error.get('code') or 'error'))}: " \
               f"{shown(str(error.get('message') or ''), 200)}"
    return f"{shown(str(error))}: {shown(str(body.get('error_description') or ''), 200)}"


def _secret(grant: Grant) -> str:
    if not grant.app.secret:
        raise UserError(f"connect: the {grant.platform} app has no client secret "
                        f"(CROSSPOST_{grant.platform.upper()}__CLIENT_SECRET)")
    return grant.app.secret


def _api(grant: Grant, default: str) -> str:
    return (grant.app.api_url or default).rstrip("/")


def _x(grant: Grant) -> dict[str, Any]:
    creds: dict[str, Any] = {"access_token": grant.body["access_token"], "client_id": grant.app.client_id,
                             "refresh_token": grant.body.get("refresh_token"),
                             "client_secret": grant.app.secret,
                             "expires_at": grant.expires_at(grant.body.get("expires_in"))}
    return {k: v for k, v in creds.items() if v}


def _mastodon(grant: Grant) -> dict[str, Any]:
    # A Mastodon token never expires and has no refresh; the app's secret is not the account's.
    return {"access_token": grant.body["access_token"]}


def _meta_user_token(grant: Grant) -> tuple[str, str | None]:
    """Facebook Login's short-lived user token exchanged for a long-lived one (about 60 days)."""
    params = {"grant_type": "fb_exchange_token", "client_id": grant.app.client_id,
              "client_secret": _secret(grant), "fb_exchange_token": grant.body["access_token"]}
    long = grant.get(grant.app.token_url, params, "the long-lived token exchange")
    if not isinstance(long.get("access_token"), str):
        raise UserError(f"connect: {grant.platform} answered the exchange without a token")
    return long["access_token"], grant.expires_at(long.get("expires_in"))


def _pages(grant: Grant, user_token: str) -> list[dict[str, Any]]:
    url = f"{_api(grant, 'https://graph.facebook.com')}/{GRAPH_VERSION}/me/accounts"
    listing = grant.get(url, {"access_token": user_token, "fields": "id,name,username,access_token,tasks,"
                              "instagram_business_account{id,username}"}, "the list of Pages")
    return [p for p in listing.get("data") or [] if isinstance(p, dict)]


def _named(handle: str, *names: Any) -> bool:
    wanted = handle.removeprefix("@").casefold()
    return any(isinstance(n, str) and n.removeprefix("@").casefold() == wanted for n in names)


def _facebook(grant: Grant) -> dict[str, Any]:
    """The Page the handle names (its id or its name), with its Page token."""
    user_token, _ = _meta_user_token(grant)
    page = next((p for p in _pages(grant, user_token)
                 if _named(grant.handle, p.get("id"), p.get("username"), p.get("name"))), None)
    if page is None or not isinstance(page.get("access_token"), str):
        raise UserError(f"connect: the Facebook user who signed in manages no Page {shown(grant.handle)}")
    return {"page_id": str(page["id"]), "access_token": page["access_token"], "user_access_token": user_token}


def _instagram(grant: Grant) -> dict[str, Any]:
    """The professional account the handle names, linked to one of the user's Pages; the long-lived
    user token refreshes through the app (``login: facebook``)."""
    user_token, expires_at = _meta_user_token(grant)
    for page in _pages(grant, user_token):
        ig = page.get("instagram_business_account")
        if isinstance(ig, dict) and _named(grant.handle, ig.get("username"), ig.get("id")):
            creds = {"access_token": user_token, "user_id": str(ig["id"]), "login": "facebook",
                     "app_id": grant.app.client_id, "app_secret": _secret(grant), "expires_at": expires_at}
            return {k: v for k, v in creds.items() if v}
    raise UserError(f"connect: no Page of the Facebook user who signed in is linked to the Instagram "
                    f"account {shown(grant.handle)}")


def _threads(grant: Grant) -> dict[str, Any]:
    """Threads' short-lived token (1 hour) exchanged for a long-lived one (60 days)."""
    url = f"{_api(grant, 'https://graph.threads.net')}/access_token"
    long = grant.get(url, {"grant_type": "th_exchange_token", "client_secret": _secret(grant),
                           "access_token": grant.body["access_token"]}, "the long-lived token exchange")
    if not isinstance(long.get("access_token"), str):
        raise UserError("connect: threads answered the exchange without a token")
    creds = {"access_token": long["access_token"], "user_id": str(grant.body.get("user_id") or ""),
             "expires_at": grant.expires_at(long.get("expires_in"))}
    return {k: v for k, v in creds.items() if v}


def _linkedin(grant: Grant) -> dict[str, Any]:
    """A member token; the refresh token (apps approved for it) with the app that refreshes it. A
    handle that is not a URN posts as the member who signed in (``author``, from userinfo)."""
    body = grant.body
    creds: dict[str, Any] = {"access_token": body["access_token"],
                             "expires_at": grant.expires_at(body.get("expires_in"))}
    if body.get("refresh_token"):
        creds.update(refresh_token=body["refresh_token"], client_id=grant.app.client_id,
                     client_secret=_secret(grant),
                     refresh_expires_at=grant.expires_at(body.get("refresh_token_expires_in")))
    if not grant.handle.startswith("urn:li:"):
        try:
            answer = requests.get(f"{_api(grant, 'https://api.linkedin.com')}/v2/userinfo",
                                  headers={"Authorization": f"Bearer {body['access_token']}"},
                                  timeout=grant.timeout, allow_redirects=False)
            sub = answer.json().get("sub") if answer.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError):
            sub = None
        if not isinstance(sub, str) or not sub:
            raise UserError("connect: linkedin did not say who signed in (userinfo)")
        creds["author"] = f"urn:li:person:{sub}"
    return {k: v for k, v in creds.items() if v}


def _youtube(grant: Grant) -> dict[str, Any]:
    if not grant.body.get("refresh_token"):
        # Without it the account would stop within the hour; prompt=consent should always give one.
        raise UserError("connect: Google granted no refresh token; remove crosspost's access in the Google "
                        "account's security settings and connect again")
    return {"access_token": grant.body["access_token"], "refresh_token": grant.body["refresh_token"],
            "client_id": grant.app.client_id, "client_secret": _secret(grant),
            "expires_at": grant.expires_at(grant.body.get("expires_in"))}


def _tiktok(grant: Grant) -> dict[str, Any]:
    body = grant.body
    if not body.get("refresh_token"):
        raise UserError("connect: TikTok granted no refresh token")
    creds = {"access_token": body["access_token"], "refresh_token": body["refresh_token"],
             "client_key": grant.app.client_id, "client_secret": _secret(grant),
             "open_id": body.get("open_id"), "expires_at": grant.expires_at(body.get("expires_in")),
             "refresh_expires_at": grant.expires_at(body.get("refresh_expires_in"))}
    return {k: v for k, v in creds.items() if v}


# A LinkedIn Page is posted to through the Community Management API's scopes.
_ORGANIZATION_SCOPES = ("w_organization_social", "r_organization_social", "rw_organization_admin")

FLOWS: dict[str, Flow] = {f.platform: f for f in (
    Flow("x", ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access"), _x,
         needs_secret=False),
    Flow("mastodon", ("read", "write"), _mastodon, client_auth="form"),
    # Facebook Login: no PKCE in the manual web flow; scopes separated by commas.
    Flow("facebook", ("pages_show_list", "pages_read_engagement", "pages_manage_posts", "publish_video"),
         _facebook,
         scope_sep=",", pkce=False, client_auth="form"),
    Flow("instagram", ("pages_show_list", "pages_read_engagement", "instagram_basic",
                       "instagram_content_publish"), _instagram,
         scope_sep=",", pkce=False, client_auth="form"),
    Flow("threads", ("threads_basic", "threads_content_publish", "threads_manage_insights"), _threads,
         scope_sep=",", pkce=False, client_auth="form"),
    Flow("linkedin", ("openid", "profile", "w_member_social"), _linkedin, pkce=False, client_auth="form",
         more_scopes=lambda h: _ORGANIZATION_SCOPES if h.startswith("urn:li:organization:") else ()),
    Flow("youtube", ("https://www.googleapis.com/auth/youtube.upload",
                     "https://www.googleapis.com/auth/youtube.readonly"), _youtube, client_auth="form",
         extra={"access_type": "offline", "prompt": "consent"}),
    # Login Kit for Web has no PKCE (only desktop and mobile apps send a challenge, hex-encoded on
    # desktop): a web app proves itself with the client secret (platforms.md 9.1).
    Flow("tiktok", ("user.info.basic", "user.info.stats", "video.publish", "video.upload"), _tiktok,
         scope_sep=",", pkce=False, client_auth="form", client_param="client_key"),
)}
