"""One row of test data per platform: what the contract suite (test_contract.py) needs to run every
shared case against that platform's adapter and stand-in. An 11th platform adds an adapter, a stand-in
and one row here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.base import Media, Post
from adapters.errors import RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from tests.adapters.helpers import mp4

LINK = "https://news.example.com/2026/11/28/tram-line"
CDN = "https://media.news.example"
ORG = "urn:li:organization:2414183"


def _graph_error(message: str, code: int = 100, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Ab",
                      **extra}}


def _telegram_error(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    return {"ok": False, "error_code": status, "description": description,
            **({"parameters": parameters} if parameters else {})}


def _tiktok_error(code: str) -> dict[str, Any]:
    return {"data": {}, "error": {"code": code, "message": "words", "log_id": "L1"}}


# (fault on the create, then on the follower read; the error both raise; maybe_sent of the create)
Answer = tuple[Fault, type[Exception], bool | None]


@dataclass(frozen=True)
class Platform:
    name: str
    # A handle the stand-in accepts for a new account (made unique per test where the form allows).
    handle: Callable[[str], str]
    # Where the request that makes the post visible goes, and where followers are read (substrings
    # of the request path, as Fault.path matches).
    create_path: str
    followers_path: str
    # A 4xx body in the platform's own shape carrying ``message`` where its error text lives.
    error_body: Callable[[str], Any]
    # The credential that authenticates requests (the auth case spoils it).
    token: str = "access_token"
    # Whether ``refresh`` can mint new credentials (else the account needs an operator).
    refreshable: bool = True
    # Media a post needs to be publishable at all (YouTube and TikTok: a video; Instagram: an image).
    media: Callable[[Path], tuple[Media, ...]] = lambda tmp: ()
    # The text limit the check enforces for ``media`` posts, when not the declared caps.text_limit.
    text_limit: int | None = None
    # What the platform answers when the access token has expired, where the stand-in's injected
    # 401 is not already shaped that way.
    expired_body: Any = None
    # How the platform states a wait: Meta in whole minutes (X-Business-Use-Case-Usage), others seconds.
    wait_unit: float = 1.0
    # Statuses that are this platform's protocol, not a redirect (YouTube: 308 Resume Incomplete).
    not_redirects: tuple[int, ...] = ()
    # Anything the stand-in needs before ``refresh`` may succeed (Instagram: a token a day old).
    ready_to_refresh: Callable[[Any, Any], None] = lambda standin, account: None
    # How ``normalize_handle`` reads what an operator types: (typed, stored), None where it refuses.
    handles: tuple[tuple[str, str | None], ...] = ()
    # Answers in the platform's own words beyond the generic ones the contract suite sends.
    answers: tuple[Answer, ...] = ()

    def post(self, tmp: Path, text: str = "Council approves the new tram line", **kwargs: Any) -> Post:
        return Post(text=text, created_at=datetime.now(UTC), media=self.media(tmp), **kwargs)

    def __str__(self) -> str:  # the test id
        return self.name


PLATFORMS: tuple[Platform, ...] = (
    Platform("mastodon", handle=lambda n: n, create_path="/api/v1/statuses",
             followers_path="/verify_credentials", refreshable=False,
             error_body=lambda m: {"error": m},
             handles=(("newsroom", "newsroom"), ("@newsroom", "newsroom"), (" @NewsRoom ", "newsroom"),
                      ("@newsroom@Example.Social", "newsroom@example.social"),
                      ("news.room_1", "news.room_1"), ("", None), ("news room", None), ("@", None),
                      ("news/room", None)),
             answers=(
                 (Fault(status=422, body={"error": "Validation failed: Text can't be blank"}), Rejected,
                  None),
                 (Fault(status=403, body={"error": "This action is outside the authorized scopes"}), Rejected,
                  None),
             )),
    Platform("bluesky", handle=lambda n: f"{n}.test", create_path="com.atproto.repo.putRecord",
             followers_path="app.bsky.actor.getProfile", token="accessJwt",
             error_body=lambda m: {"error": "InvalidRequest", "message": m},
             handles=(("@News.Bsky.Social", "news.bsky.social"), ("news.example.com", "news.example.com"),
                      ("did:plc:abc123", "did:plc:abc123"), ("newsroom", None),
                      ("news room.bsky.social", None), ("", None))),
    Platform("telegram", handle=lambda n: f"@{n}", create_path="/sendMessage",
             followers_path="/getChatMemberCount", token="bot_token", refreshable=False,
             error_body=lambda m: {"ok": False, "error_code": 400, "description": f"Bad Request: {m}"},
             handles=(("@Newsroom", "@newsroom"), ("newsroom", "@newsroom"), (" @newsroom ", "@newsroom"),
                      ("-1001234567890", "-1001234567890"), ("@abc", None), ("@news room", None), ("", None),
                      ("@1abcde", None)),
             answers=(
                 (Fault(status=403, body=_telegram_error(
                     403, "Forbidden: bot is not a member of the channel chat")), Rejected, None),
                 # Telegram's own refusal behind a 200 (a proxy rewrote the status) is still a refusal.
                 (Fault(status=200, body=_telegram_error(400, "Bad Request: message is too long")), Rejected,
                  None),
                 (Fault(status=429, body=_telegram_error(429, "Too Many Requests: retry after 3",
                                                         retry_after=3)), RateLimited, None),
                 # A gateway's 503 may follow a message that went out: the chaos run's case.
                 (Fault(status=503, body="<html>503 Service Temporarily Unavailable</html>"), Transient,
                  True),
             )),
    Platform("facebook", handle=lambda n: n, create_path="/feed", followers_path="",
             error_body=_graph_error, wait_unit=60,
             handles=(("@NewsRoom", "newsroom"), ("news.room", "news.room"), ("1234567", "1234567"),
                      ("news room", None), ("", None)),
             answers=(
                 (Fault(status=400, body=_graph_error("duplicate", 506)), Rejected, None),
                 # platforms.md 5.7 documents these as an unknown outcome for a create, whatever the status.
                 (Fault(status=400, body=_graph_error("retry", 2, is_transient=True)), Transient, True),
             )),
    Platform("instagram", handle=lambda n: n, create_path="/media_publish", followers_path="",
             error_body=_graph_error, wait_unit=60,
             ready_to_refresh=lambda standin, account: standin.age_token(
                 account.credentials.get("access_token"), 2 * 86400),
             media=lambda tmp: (Media("image", "/media/photo.jpg", "image/jpeg", 200_000, 1080, 1080,
                                      url=f"{CDN}/photo.jpg"),),
             answers=(
                 # platforms.md 6.8: "An unknown error occurred" leaves a publish's outcome unknown.
                 (Fault(status=400, body=_graph_error("An unknown error occurred", 1, error_subcode=2207001)),
                  Transient, True),
             )),
    Platform("x", handle=lambda n: n, create_path="/2/tweets", followers_path="/2/users/me",
             error_body=lambda m: {"detail": m, "title": "Invalid Request", "status": 400,
                                   "type": "https://api.twitter.com/2/problems/invalid-request"},
             handles=(("@NewsRoom", "newsroom"), ("news_room_1", "news_room_1"), ("@", None),
                      ("a" * 16, None), ("news-room", None))),
    Platform("threads", handle=lambda n: n, create_path="/threads_publish",
             followers_path="/threads_insights", error_body=_graph_error, wait_unit=60,
             expired_body={"error": {"message": "Error validating access token: Session has expired",
                                     "type": "OAuthException", "code": 190, "fbtrace_id": "Ab"}},
             answers=(
                 (Fault(status=500, body=_graph_error("Please retry", 2, is_transient=True)), Transient,
                  True),
             )),
    Platform("linkedin", handle=lambda n: ORG, create_path="/rest/posts",
             followers_path="/rest/networkSizes",
             error_body=lambda m: {"status": 400, "code": "INVALID_ARGUMENT", "message": m},
             handles=((ORG, ORG), ("urn:li:person:AbC-1", "urn:li:person:AbC-1"), ("@NewsRoom", "newsroom"),
                      (" Ana  Reporter ", "ana reporter"), ("urn:li:company:1", None), ("  ", None))),
    Platform("youtube", handle=lambda n: n, create_path="/videos/resumable", followers_path="/channels",
             not_redirects=(308,),
             error_body=lambda m: {"error": {"code": 400, "message": m, "errors": [
                 {"domain": "global", "reason": "badRequest", "message": m}]}},
             media=lambda tmp: (mp4(tmp / "clip.mp4", 200_000),),
             handles=(("@NewsRoom", "@newsroom"), ("newsroom", "@newsroom"),
                      ("UC" + "a" * 22, "UC" + "a" * 22), ("ab", None), ("news room", None))),
    Platform("tiktok", handle=lambda n: n, create_path="/v2/post/publish/video/init/",
             followers_path="/v2/user/info/",
             error_body=lambda m: {"error": {"code": "invalid_params", "message": m, "log_id": "1"}},
             media=lambda tmp: (mp4(tmp / "clip.mp4", 200_000),), text_limit=2200,
             expired_body={"data": {}, "error": {"code": "access_token_invalid", "log_id": "1",
                                                 "message": "The access token is invalid or not found."}},
             handles=(("@NewsRoom", "newsroom"), ("news.room_1", "news.room_1"), ("n", None),
                      ("news room", None)),
             answers=(
                 (Fault(status=200, body=_tiktok_error("spam_risk_too_many_posts")), RateLimited, None),
                 # platforms.md 9.8: internal_error leaves the init's outcome open, even behind a 2xx.
                 (Fault(status=200, body=_tiktok_error("internal_error")), Transient, True),
                 (Fault(status=429, body=_tiktok_error("rate_limit_exceeded")), RateLimited, None),
             )),
)
