"""The Instagram adapter against the Graph stand-in (a real local HTTP server), and the stand-in's own
strictness. Each table row: what the stand-in is told or sent, what we expect back."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.graph import GRAPH_VERSION
from adapters.instagram import InstagramAdapter
from adapters.standins.base import Fault
from adapters.standins.instagram import InstagramStandIn
from tests.adapters.helpers import account_on, unique
from tests.adapters.helpers import finish_counted as finish

LINK = "https://news.example.com/2026/11/28/tram-line"
CDN = "https://media.example.com"
_n = itertools.count(1)


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "instagram"


def make_account(standin: InstagramStandIn, followers: int = 10, **kwargs: Any) -> AccountRef:
    return account_on(standin, PLATFORM, unique(), followers, **kwargs)


def image(name: str = "photo", width: int = 1080, height: int = 1080, url: bool = True) -> Media:
    # Instagram fetches by URL: the local file is never read, so it need not exist.
    return Media("image", f"/media/{name}.jpg", "image/jpeg", 200_000, width, height, alt=f"{name} alt",
                 url=f"{CDN}/{name}.jpg" if url else None)


def video(name: str = "clip") -> Media:
    return Media("video", f"/media/{name}.mp4", "video/mp4", 2_000_000, 1080, 1920, url=f"{CDN}/{name}.mp4")


def story(text: str = "Council approves the new tram line #tram", media: tuple[Media, ...] | None = None,
          created_at: datetime | None = None) -> Post:
    return Post(text=f"{text} ({next(_n)})", link=LINK, media=(image(),) if media is None else media,
                created_at=created_at or datetime.now(UTC))


def token(account: AccountRef) -> str:
    return account.credentials.require("access_token", "instagram")


# -- check ---------------------------------------------------------------------------------------------
CHECKS: list[tuple[str, Post, list[str]]] = [
    ("image with caption", Post(text="a" * 2200, media=(image(),)), []),
    ("text only", Post(text="Just words"),
     ["instagram: media: this platform publishes only with an image or a video"]),
    ("caption one over", Post(text="é" * 2201, media=(image(),)),
     ["instagram: text: is 2201 characters long; the limit is 2200"]),
    ("PNG", Post(text="x", media=(replace(image(), mime="image/png"),)),
     ["instagram: media: image type image/png is not one of image/jpeg"]),
    ("30 hashtags fit", Post(text=" ".join(f"#t{i}" for i in range(30)), media=(image(),)), []),
    ("31 hashtags", Post(text=" ".join(f"#t{i}" for i in range(31)), media=(image(),)),
     ["instagram: text: has 31 hashtags; the limit is 30"]),
    ("a link's #fragment is no hashtag", Post(text=" ".join(f"#t{i}" for i in range(30)),
                                              link="https://news.example/a#top", media=(image(),)), []),
    ("21 mentions", Post(text=" ".join(f"@user.{i}" for i in range(21)), media=(image(),)),
     ["instagram: text: has 21 mentions; the limit is 20"]),
    ("an e-mail address is no mention",
     Post(text=" ".join(f"@u{i}" for i in range(20)) + " desk@news.example", media=(image(),)), []),
    ("portrait 4:5 fits", Post(text="x", media=(image(width=1080, height=1350),)), []),
    ("too tall", Post(text="x", media=(image(width=1080, height=1920),)),
     ["instagram: media: image 1 is 1080x1920 (aspect 0.56); feed images must be 4:5 to 1.91:1"]),
    ("too wide", Post(text="x", media=(image(width=2000, height=1000),)),
     ["instagram: media: image 1 is 2000x1000 (aspect 2.00); feed images must be 4:5 to 1.91:1"]),
    ("ten items, mixed", Post(text="x", media=(image(),) * 6 + (video(),) * 4), []),
    ("eleven items", Post(text="x", media=(image(),) * 6 + (video(),) * 5),
     ["instagram: media: 11 items; a carousel holds at most 10"]),
]


@pytest.mark.parametrize(("case", "post", "problems"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(adapter: InstagramAdapter, case: str, post: Post, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(post)] == problems


# -- publish -------------------------------------------------------------------------------------------
def test_single_image(standin: InstagramStandIn, adapter: InstagramAdapter, account: AccountRef) -> None:
    post = story()
    published = adapter.publish(account, post, "d1")
    [created] = standin.posts("media")
    assert created.data == {"account": account.handle, "text": post.body, "media_type": "IMAGE", "items": 1,
                            "urls": [f"{CDN}/photo.jpg"]}
    assert published.remote_id == created.id and published.url.startswith("https://www.instagram.com/p/")
    assert published.published_at is not None
    [container] = standin.containers.values()
    assert container.params["alt_text"] == "photo alt" and container.params["caption"] == post.body
    user = account.credentials.get("user_id")
    posts = [r["path"] for r in standin.requests if r["method"] == "POST"]
    assert posts == [f"/{GRAPH_VERSION}/{user}/media", f"/{GRAPH_VERSION}/{user}/media_publish"]


def test_reel_waits_for_processing_and_is_created_once(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                       account: AccountRef) -> None:
    post, progress = story(media=(video(),)), Progress()
    with pytest.raises(InProgress) as wait:
        adapter.publish(account, post, "d1", progress)
    assert wait.value.after == 60 and progress.get("container")
    published, waits = finish(adapter, account, post, progress)
    assert waits == 1 and standin.uploads() == standin.uploads("REELS") == 1
    [container] = standin.containers.values()
    assert container.params["share_to_feed"] == "true" and container.params["video_url"] == f"{CDN}/clip.mp4"
    assert published.remote_id == standin.posts("media")[0].id == progress.get("media_id")
    # Once published, a repeated call answers from progress and creates nothing.
    assert adapter.publish(account, post, "d1", progress) == published
    assert len(standin.posts()) == 1 and standin.uploads() == 1


def test_carousel_of_images_and_a_video(standin: InstagramStandIn, adapter: InstagramAdapter,
                                        account: AccountRef) -> None:
    items = (image("a"), video("b"), image("c"))
    post, progress = story(media=items), Progress()
    published, waits = finish(adapter, account, post, progress)
    assert waits == 2  # the video child processes over two status reads
    [created] = standin.posts("media")
    assert created.data["media_type"] == "CAROUSEL" and created.data["items"] == 3
    assert created.data["urls"] == [m.url for m in items] and created.data["text"] == post.body
    children = [standin.containers[c] for c in progress.get("children")]
    assert [c.media_type for c in children] == ["IMAGE", "VIDEO", "IMAGE"]
    assert all(c.params["is_carousel_item"] and "caption" not in c.params for c in children)
    assert standin.uploads() == 4 and published.remote_id == created.id


def test_carousel_resumes_after_a_failed_child(standin: InstagramStandIn, adapter: InstagramAdapter,
                                               account: AccountRef) -> None:
    post, progress = story(media=(image("a"), image("b"), image("c"))), Progress()
    standin.inject(Fault(status=503, path="/media"), Fault(status=503, path="/media"))
    with pytest.raises(Transient):
        adapter.publish(account, post, "d1", progress)
    standin.faults.clear()
    adapter.publish(account, post, "d1", progress)
    assert standin.uploads() == 4 and len(standin.posts()) == 1


def test_without_public_urls_nothing_is_sent(standin: InstagramStandIn, adapter: InstagramAdapter,
                                             account: AccountRef) -> None:
    with pytest.raises(Rejected, match="CROSSPOST_MEDIA_PUBLIC_URL"):
        adapter.publish(account, story(media=(image(url=False),)), "d1")
    assert standin.requests == []


def test_lost_publish_answer_is_recovered_from_the_container(standin: InstagramStandIn,
                                                             adapter: InstagramAdapter,
                                                             account: AccountRef) -> None:
    post, progress = story(), Progress()
    standin.inject(Fault(drop=True, commit=True, path="media_publish"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d1", progress)
    assert err.value.maybe_sent
    published = adapter.publish(account, post, "d1", progress)  # the container says PUBLISHED
    assert published.remote_id == standin.posts("media")[0].id == progress.get("media_id")
    assert len(standin.posts()) == 1 and standin.uploads() == 1 and standin.duplicates() == 0


def test_publish_that_never_arrived_reuses_the_container(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                         account: AccountRef) -> None:
    post, progress = story(), Progress()
    standin.inject(Fault(drop=True, path="media_publish"))
    with pytest.raises(Transient):
        adapter.publish(account, post, "d1", progress)
    adapter.publish(account, post, "d1", progress)
    assert len(standin.posts()) == 1 and standin.uploads() == 1


def test_expired_container_is_created_again(standin: InstagramStandIn, adapter: InstagramAdapter,
                                            account: AccountRef) -> None:
    post, progress = story(media=(video(),)), Progress()
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d1", progress)
    first = progress.get("container")
    standin.expire_containers()
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d1", progress)
    assert progress.get("container") != first
    finish(adapter, account, post, progress)
    assert standin.uploads() == 2 and len(standin.posts()) == 1


def test_failed_processing_is_rejected_and_forgotten(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                     account: AccountRef) -> None:
    standin.broken_urls.add(f"{CDN}/clip.mp4")
    progress = Progress()
    with pytest.raises(Rejected, match=r"media processing failed: Error: 2207003"):
        finish(adapter, account, story(media=(video(),)), progress)
    assert progress.get("container") is None and standin.posts() == []


def test_media_not_ready_at_publish_means_come_back(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                    account: AccountRef) -> None:
    body = {"error": {"message": "Media ID is not available", "type": "OAuthException", "code": 9007,
                      "error_subcode": 2207027, "fbtrace_id": "Ab"}}
    standin.inject(Fault(status=400, body=body, path="media_publish"))
    progress = Progress()
    with pytest.raises(InProgress, match="not ready"):
        adapter.publish(account, story(), "d1", progress)
    adapter.publish(account, story(), "d1", progress)
    assert standin.uploads() == 1


# -- quota and errors -----------------------------------------------------------------------------------
def test_quota_is_read_before_creating_anything(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                account: AccountRef) -> None:
    standin.quota_total = 1
    adapter.publish(account, story(), "d1")
    with pytest.raises(RateLimited, match="1 of 1 posts") as err:
        adapter.publish(account, story(), "d2")
    assert err.value.retry_after == 3600 and standin.uploads() == 1


def test_quota_reached_at_publish(standin: InstagramStandIn, adapter: InstagramAdapter,
                                  account: AccountRef) -> None:
    post, progress = story(media=(video(),)), Progress()
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d1", progress)
    standin.quota_total = 0
    with pytest.raises(RateLimited, match=r"code 9/2207042.*quota") as err:
        finish(adapter, account, post, progress)
    assert err.value.retry_after == 3600 and progress.get("container")


def _graph(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Ab"}
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


# (case, fault, error type, wait or maybe_sent, words)
FAULTS: list[tuple[str, Fault, type[AdapterError], Any, str]] = [
    ("BUC limit with its regain time", Fault(status=429, retry_after=300), RateLimited, 300.0, "code 80002"),
    ("call limit 613", Fault(status=400, body=_graph(613, "Calls to this api have exceeded the rate limit.")),
     RateLimited, 300.0, "exceeded the rate limit"),
    ("server error", Fault(status=502), Transient, True, "unexpected error"),
    ("unknown error subcode", Fault(status=400, body=_graph(1, "An unknown error occurred", 2207001)),
     Transient, True, "2207001"),
    ("media fetch failed", Fault(status=400, body=_graph(9004, "The media could not be fetched", 2207052)),
     Rejected, None, "CROSSPOST_MEDIA_PUBLIC_URL"),
    ("expired session", Fault(status=401), AuthExpired, None, "code 190/463"),
]


@pytest.mark.parametrize(("case", "fault", "error", "extra", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_map_to_typed_errors(standin: InstagramStandIn, adapter: InstagramAdapter, account: AccountRef,
                                    case: str, fault: Fault, error: type[AdapterError], extra: Any,
                                    words: str) -> None:
    fault.path = "/media"
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, story(), "d1")
    assert type(err.value) is error and words in str(err.value)
    if isinstance(err.value, RateLimited):
        assert err.value.retry_after == extra
    if isinstance(err.value, Transient):
        assert err.value.maybe_sent is extra


def test_refusals_from_instagram(standin: InstagramStandIn, adapter: InstagramAdapter) -> None:
    reader = make_account(standin, scopes=("instagram_business_basic",))
    with pytest.raises(Rejected, match=r"\(#10\) Application does not have permission"):
        adapter.publish(reader, story(), "d1")
    account = make_account(standin)
    # Past check(): the platform itself refuses a long caption.
    with pytest.raises(Rejected, match=r"2201 characters.*code 100/2207010"):
        adapter.publish(account, Post(text="a" * 2201, media=(image(),)), "d2")
    with pytest.raises(Rejected, match="CROSSPOST_MEDIA_PUBLIC_URL"):
        adapter.publish(account, story(media=(replace(image(), url="ftp://media.example.com/a.jpg"),)), "d3")
    assert standin.posts() == []


def test_revoked_token_cannot_be_refreshed(standin: InstagramStandIn, adapter: InstagramAdapter,
                                           account: AccountRef) -> None:
    standin.invalidate(token(account))
    with pytest.raises(AuthExpired, match="code 190/460"):
        adapter.publish(account, story(), "d1")
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(account)


def test_refresh_with_instagram_login_rotates_and_dates(standin: InstagramStandIn, adapter: InstagramAdapter,
                                                        account: AccountRef) -> None:
    old = account.credentials.reveal()
    standin.age_token(old["access_token"], 59 * 24 * 3600)  # a day left
    fresh = adapter.refresh(account)
    values = fresh.reveal()
    assert values["access_token"] != old["access_token"] and values["user_id"] == old["user_id"]
    expires = datetime.fromisoformat(values["expires_at"])
    assert expires.tzinfo is not None
    assert abs(expires - datetime.now(UTC) - timedelta(days=60)) < timedelta(minutes=1)
    assert standin.refreshes == 1
    account.credentials = fresh
    adapter.publish(account, story(), "d1")
    assert len(standin.posts()) == 1


def test_refresh_of_a_young_token_is_refused(standin: InstagramStandIn, adapter: InstagramAdapter,
                                             account: AccountRef) -> None:
    with pytest.raises(Rejected, match="less than 24 hours old"):
        adapter.refresh(account)


def test_refresh_of_an_expired_token_needs_reauthorisation(standin: InstagramStandIn,
                                                           adapter: InstagramAdapter,
                                                           account: AccountRef) -> None:
    standin.age_token(token(account), 61 * 24 * 3600)
    with pytest.raises(AuthExpired, match="Session has expired"):
        adapter.followers(account)
    with pytest.raises(AuthExpired, match=r"code 190/463.*re-authorise"):
        adapter.refresh(account)


def test_facebook_login_flavour(standin: InstagramStandIn, adapter: InstagramAdapter) -> None:
    account = make_account(standin, login="facebook")
    adapter.publish(account, story(), "d1")
    old = account.credentials.reveal()
    fresh = adapter.refresh(account).reveal()  # fb_exchange_token: no minimum age
    assert fresh["access_token"] != old["access_token"] and fresh["expires_at"]
    assert {k: fresh[k] for k in ("app_id", "app_secret", "login")} == {
        k: old[k] for k in ("app_id", "app_secret", "login")}
    [call] = [r for r in standin.requests if r["path"].endswith("/oauth/access_token")]
    assert call["path"] == f"/{GRAPH_VERSION}/oauth/access_token"
    without = replace(account, credentials=Credentials({k: v for k, v in old.items() if k != "app_secret"}))
    with pytest.raises(AuthExpired, match="app_id and app_secret"):
        adapter.refresh(without)
    wrong = replace(account, credentials=account.credentials.merged(app_secret="0" * 32))
    with pytest.raises(Rejected, match="code 101"):
        adapter.refresh(wrong)


def test_facebook_login_uses_the_facebook_host(adapter: InstagramAdapter) -> None:
    ig = AccountRef(1, "instagram", "desk", credentials=Credentials({"access_token": "t" * 10}))
    fb = replace(ig, credentials=Credentials({"access_token": "t" * 10, "login": "facebook"}))
    assert adapter.graph_url(ig, "1/media") == f"https://graph.instagram.com/{GRAPH_VERSION}/1/media"
    assert adapter.graph_url(fb, "1/media") == f"https://graph.facebook.com/{GRAPH_VERSION}/1/media"


# -- followers and find_published ----------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 3, 2_500_000])
def test_followers(standin: InstagramStandIn, adapter: InstagramAdapter, count: int) -> None:
    assert adapter.followers(make_account(standin, followers=count)) == count


NOW = datetime.now(UTC)


@pytest.mark.parametrize(("case", "looked_for", "since", "found"), [
    ("same caption", "same", NOW, True),
    ("no first-attempt time", "same", None, True),
    ("posted before the first attempt", "same", NOW + timedelta(minutes=5), False),
    ("other caption", "other", NOW, False),
])
def test_find_published(standin: InstagramStandIn, adapter: InstagramAdapter, account: AccountRef, case: str,
                        looked_for: str, since: datetime | None, found: bool) -> None:
    post = story(created_at=NOW)
    published = adapter.publish(account, post, "d1")
    wanted = replace(post, created_at=since, text=post.text if looked_for == "same" else "Rates raised")
    assert adapter.find_published(account, wanted, "d1") == (published if found else None)


def test_find_published_pages_past_newer_media(standin: InstagramStandIn, adapter: InstagramAdapter,
                                               account: AccountRef) -> None:
    post = story(created_at=NOW)
    published = adapter.publish(account, post, "d1")
    for _ in range(26):
        adapter.publish(account, story(), "dx")
    standin.requests.clear()
    assert adapter.find_published(account, post, "d1") == published
    assert [r["path"].rsplit("/", 1)[-1] for r in standin.requests] == ["media", "media"]


# -- credentials never leak -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_error_texts_scrub_the_token(standin: InstagramStandIn, adapter: InstagramAdapter,
                                     account: AccountRef, status: int) -> None:
    secret = token(account)
    standin.age_token(secret, 2 * 24 * 3600)
    body = _graph(190 if status == 401 else 100, f"bad token {secret}")
    for call in (lambda: adapter.publish(account, story(), "d1"), lambda: adapter.refresh(account),
                 lambda: adapter.followers(account)):
        standin.inject(Fault(status=status, body=body))
        with pytest.raises(AdapterError) as err:
            call()
        assert secret not in str(err.value) and secret not in repr(err.value) and "***" in str(err.value)


# -- the stand-in is as strict as Graph ------------------------------------------------------------------
V = f"/{GRAPH_VERSION}"
# (case, method, path, body, status, code, words)
STRICT: list[tuple[str, str, str, dict[str, Any], int, int | None, str]] = [
    ("unversioned path", "POST", "/{user}/media", {"image_url": f"{CDN}/a.jpg"}, 400, 2500,
     "Unknown path components"),
    ("another user's id", "POST", V + "/999/media", {"image_url": f"{CDN}/a.jpg"}, 400, 100,
     "does not exist"),
    ("nothing to post", "POST", V + "/{user}/media", {"caption": "hi"}, 400, 100, "image_url or media_type"),
    ("VIDEO outside a carousel", "POST", V + "/{user}/media",
     {"media_type": "VIDEO", "video_url": f"{CDN}/v.mp4"}, 400, 100, "publish single videos as REELS"),
    ("REELS as a carousel item", "POST", V + "/{user}/media",
     {"media_type": "REELS", "video_url": f"{CDN}/v.mp4", "is_carousel_item": "true"}, 400, 100,
     "use media_type=VIDEO"),
    ("URL Meta cannot fetch", "POST", V + "/{user}/media", {"image_url": "file:///etc/passwd"}, 400, 9004,
     "could not be fetched"),
    ("31 hashtags", "POST", V + "/{user}/media",
     {"image_url": f"{CDN}/a.jpg", "caption": " ".join(f"#t{i}" for i in range(31))}, 400, 100,
     "31 hashtags"),
    ("carousel of one", "POST", V + "/{user}/media", {"media_type": "CAROUSEL", "children": "{item}"}, 400,
     100, "2 to 10 different children"),
    ("unknown media type", "POST", V + "/{user}/media", {"media_type": "GIF", "image_url": f"{CDN}/a.gif"},
     400, 100, "Unsupported media_type"),
    ("publish without creation_id", "POST", V + "/{user}/media_publish", {}, 400, 100, "creation_id"),
    ("publish a carousel item", "POST", V + "/{user}/media_publish", {"creation_id": "{item}"}, 400, 100,
     "cannot be published on its own"),
    ("publish an unknown container", "POST", V + "/{user}/media_publish", {"creation_id": "1"}, 400, 9007,
     "Media ID is not available"),
    ("quota", "GET", V + "/{user}/content_publishing_limit?fields=config,quota_usage", {}, 200, None,
     '"quota_total": 100'),
    ("refresh with the wrong grant", "GET", "/refresh_access_token?grant_type=th_refresh_token", {}, 400, 100,
     "ig_refresh_token"),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "code", "words"), STRICT,
                         ids=[s[0] for s in STRICT])
def test_standin_checks_like_graph(standin: InstagramStandIn, account: AccountRef, case: str, method: str,
                                   path: str, body: dict[str, Any], status: int, code: int | None,
                                   words: str) -> None:
    user = account.credentials.get("user_id")
    item = requests.post(f"{standin.url}{V}/{user}/media", params={"access_token": token(account)}, timeout=5,
                         data={"image_url": f"{CDN}/i.jpg", "is_carousel_item": "true"}).json()["id"]
    fill = {"user": user, "item": item}
    data = {k: v.format(**fill) for k, v in body.items()}
    answer = requests.request(method, standin.url + path.format(**fill), data=data or None, timeout=5,
                              headers={"Authorization": f"Bearer {token(account)}"})
    assert answer.status_code == status, answer.text
    assert words in answer.text
    if code is not None:
        error = answer.json()["error"]
        assert error["code"] == code and error["fbtrace_id"] and error["type"]


def test_standin_carousel_children_must_be_finished(standin: InstagramStandIn, account: AccountRef) -> None:
    url = f"{standin.url}{V}/{account.credentials.get('user_id')}/media"
    auth = {"Authorization": f"Bearer {token(account)}"}
    children = [requests.post(url, headers=auth, timeout=5, data=data).json()["id"] for data in (
        {"image_url": f"{CDN}/a.jpg", "is_carousel_item": "true"},
        {"media_type": "VIDEO", "video_url": f"{CDN}/b.mp4", "is_carousel_item": "true"})]
    answer = requests.post(url, headers=auth, timeout=5,
                           data={"media_type": "CAROUSEL", "children": ",".join(children)})
    assert answer.status_code == 400 and answer.json()["error"]["error_subcode"] == 2207027
    too_many = requests.post(url, headers=auth, timeout=5,
                             data={"media_type": "CAROUSEL", "children": ",".join(str(i) for i in range(11))})
    assert "2 to 10" in too_many.json()["error"]["message"]


def test_standin_rate_limit_answer_is_graphs(standin: InstagramStandIn, account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=61))
    answer = requests.get(f"{standin.url}{V}/{account.credentials.get('user_id')}", timeout=5,
                          params={"fields": "followers_count", "access_token": token(account)})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == 80002
    usage = json.loads(answer.headers["X-Business-Use-Case-Usage"])
    assert usage["0"][0]["estimated_time_to_regain_access"] == 2 and usage["0"][0]["type"] == "instagram"


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "IGAA-12345678", "user_id": "17841400000000000"}, []),
    ({"access_token": "IGAA-12345678", "login": "facebook", "app_id": "1234", "app_secret": "sec-12345678"},
     []),
    ({"access_token": "IGAA-12345678", "login": "twitter"},
     ["instagram: credentials: login: Input should be 'instagram' or 'facebook'"]),
    ({"access_token": "IGAA-12345678", "expires_at": "next week"},
     ["instagram: credentials: expires_at: is not an ISO-8601 time such as 2026-12-01T10:00:00Z"]),
])
def test_credentials_model(standin: InstagramStandIn, data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        creds = validate_credentials("instagram", data)
        assert set(creds.secrets()) == {v for k, v in data.items() if k in ("access_token", "app_secret")}
        for login in ("instagram", "facebook"):
            given = standin.add_account(f"model{login}", login=login)
            assert validate_credentials("instagram", given).get("access_token") == given["access_token"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("instagram", data)
    assert str(err.value).splitlines() == lines and "IGAA" not in str(err.value)


@pytest.mark.parametrize("login", ["instagram", "facebook"])
def test_whoami_names_the_account_of_the_token(standin: InstagramStandIn, adapter: InstagramAdapter,
                                               login: str) -> None:
    account = make_account(standin, login=login)
    me = adapter.whoami(account)
    assert me.handle == account.handle and me.remote_id == account.credentials.get("user_id")
    other = make_account(standin, login=login)
    if login == "instagram":
        # ``me`` answers for whoever the token belongs to: another account is told apart.
        assert not adapter.same_account(account.handle, adapter.whoami(replace(account,
                                                                               credentials=other.credentials)))
    else:
        # The Instagram account is asked by id, and Graph refuses a token that does not manage it.
        mixed = account.credentials.merged(access_token=other.credentials.get("access_token"))
        with pytest.raises(Rejected):
            adapter.whoami(replace(account, credentials=mixed))
