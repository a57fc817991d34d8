"""The Facebook Pages adapter against the Graph stand-in (a real local HTTP server), and the stand-in's
own strictness. Each table row: what the stand-in is told or sent, what we expect back."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.facebook import FacebookAdapter
from adapters.graph import GRAPH_VERSION
from adapters.standins.base import Fault
from adapters.standins.facebook import FacebookStandIn
from tests.adapters.helpers import account_on, unique
from tests.adapters.helpers import finish_counted as finish

LINK = "https://news.example.com/2026/11/28/tram-line"
_n = itertools.count(1)


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "facebook"


def make_account(standin: FacebookStandIn, followers: int = 10, **kwargs: Any) -> AccountRef:
    return account_on(standin, PLATFORM, unique(), followers, **kwargs)


def story(text: str = "Council approves the new tram line", link: str | None = LINK, media: tuple = (),
          created_at: datetime | None = None) -> Post:
    return Post(text=f"{text} ({next(_n)})", link=link, media=media,
                created_at=created_at or datetime.now(UTC))


def jpeg(tmp_path: Path, name: str = "photo.jpg", size: tuple[int, int] = (64, 48)) -> Media:
    path = tmp_path / name
    Image.new("RGB", size, (200, 30, 30)).save(path, "JPEG")
    return Media("image", str(path), "image/jpeg", path.stat().st_size, *size, alt="A red square")


def mp4(tmp_path: Path, url: str | None = "https://media.example.com/clip.mp4") -> Media:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4000)
    return Media("video", str(path), "video/mp4", path.stat().st_size, 1280, 720, url=url)


# -- check ---------------------------------------------------------------------------------------------
def _media(kind: str, mime: str, size: int = 1000) -> Media:
    return Media(kind, "/nowhere", mime, size)


CHECKS: list[tuple[str, Post, list[str]]] = [
    ("long text fits", Post(text="a" * 63_206), []),
    ("one over the limit", Post(text="é" * 63_207),
     ["facebook: text: is 63207 characters long; the limit is 63206"]),
    ("empty", Post(text="  "), ["facebook: text: is empty"]),
    ("ten photos", Post(text="x", media=(_media("image", "image/png"),) * 10), []),
    ("eleven photos", Post(text="x", media=(_media("image", "image/jpeg"),) * 11),
     ["facebook: media: 11 images; the limit is 10"]),
    ("webp is not a Page photo type", Post(text="x", media=(_media("image", "image/webp"),)),
     ["facebook: media: image type image/webp is not one of image/bmp, image/gif, image/jpeg, image/png, "
      "image/tiff"]),
    ("photo over 4 MB", Post(text="x", media=(_media("image", "image/jpeg", 5 * 1024 * 1024),)),
     ["facebook: media: image is 5242880 bytes; the limit is 4194304"]),
    ("two videos", Post(text="x", media=(_media("video", "video/mp4"),) * 2),
     ["facebook: media: 2 videos; the limit is 1"]),
    ("photo with video", Post(text="x", media=(_media("video", "video/mp4"), _media("image", "image/png"))),
     ["facebook: media: images and a video cannot go in one post"]),
]


@pytest.mark.parametrize(("case", "post", "problems"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(adapter: FacebookAdapter, case: str, post: Post, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(post)] == problems


def test_caps(adapter: FacebookAdapter) -> None:
    caps = adapter.caps
    assert caps.can_find and not caps.idempotent and not caps.requires_media and not caps.threads


# -- publish -------------------------------------------------------------------------------------------
def test_text_post(standin: FacebookStandIn, adapter: FacebookAdapter, account: AccountRef) -> None:
    post = story(link=None)
    published = adapter.publish(account, post, "d1")
    [created] = standin.posts("post")
    assert created.data == {"account": account.handle, "text": post.text, "link": "", "photos": [],
                            "kind": "feed"}
    page = account.credentials.get("page_id")
    assert published.remote_id == created.id and created.id.startswith(f"{page}_")
    assert published.url == f"https://www.facebook.com/{page}/posts/{created.id.split('_')[1]}"
    [call] = [r for r in standin.requests if r["method"] == "POST"]
    assert call["path"] == f"/{GRAPH_VERSION}/{page}/feed"


def test_link_post_sends_the_link_apart(standin: FacebookStandIn, adapter: FacebookAdapter,
                                        account: AccountRef) -> None:
    post = story()
    adapter.publish(account, post, "d1")
    [created] = standin.posts("post")
    assert created.data["text"] == post.text and created.data["link"] == LINK


def test_one_photo_is_uploaded_with_its_caption(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                account: AccountRef, tmp_path: Path) -> None:
    image = jpeg(tmp_path)
    post = story(media=(image,))
    published = adapter.publish(account, post, "d1")
    [created] = standin.posts("post")
    assert created.data["kind"] == "photo" and created.data["text"] == post.body  # the link rides along
    [photo] = created.data["photos"]
    assert standin.photos[photo]["bytes"] == image.size and standin.photos[photo]["alt"] == "A red square"
    assert published.remote_id == created.id and standin.uploads == 1


def test_several_photos_go_unpublished_then_into_one_post(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                          account: AccountRef, tmp_path: Path) -> None:
    images = tuple(jpeg(tmp_path, f"p{i}.jpg") for i in range(3))
    progress = Progress()
    adapter.publish(account, story(media=images), "d1", progress)
    [created] = standin.posts("post")
    assert created.data["photos"] == progress.get("photos") and len(created.data["photos"]) == 3
    assert all(not standin.photos[p]["published"] for p in created.data["photos"])
    assert standin.uploads == 3


def test_photos_resume_after_a_failure_without_uploading_again(standin: FacebookStandIn,
                                                               adapter: FacebookAdapter, account: AccountRef,
                                                               tmp_path: Path) -> None:
    images = tuple(jpeg(tmp_path, f"p{i}.jpg") for i in range(3))
    post, progress = story(media=images), Progress()
    standin.inject(Fault(status=503, path="/photos"))  # the first upload fails: nothing saved yet
    with pytest.raises(Transient):
        adapter.publish(account, post, "d1", progress)
    standin.inject(Fault(drop=True, path="/feed"))  # all photos in, the post is lost on the way
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d1", progress)
    assert err.value.maybe_sent and len(progress.get("photos")) == 3 and standin.uploads == 3
    adapter.publish(account, post, "d1", progress)
    assert standin.uploads == 3 and len(standin.posts("post")) == 1 and standin.duplicates() == 0


@pytest.mark.parametrize("by_url", [True, False])
def test_video_waits_for_processing_and_uploads_once(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                     account: AccountRef, tmp_path: Path,
                                                     by_url: bool) -> None:
    video = mp4(tmp_path, url="https://media.example.com/clip.mp4" if by_url else None)
    post, progress = replace(story(media=(video,)), title="Tram line, explained"), Progress()
    with pytest.raises(InProgress) as wait:
        adapter.publish(account, post, "d1", progress)
    assert "processing" in str(wait.value) and progress.get("video_id")
    published, waits = finish(adapter, account, post, progress)
    assert waits == 1 and standin.uploads == 1  # processing took two status reads, one upload
    [created] = standin.posts("video")
    assert published.remote_id == created.id == progress.get("video_id")
    assert published.url == f"https://www.facebook.com/{account.credentials.get('page_id')}/videos/{created.id}/"
    assert created.data["text"] == post.body and created.data["title"] == "Tram line, explained"
    if by_url:
        assert created.data["file_url"] == video.url and created.data["bytes"] == 0
    else:
        assert created.data["file_url"] is None and created.data["bytes"] == video.size


def test_video_processing_error_is_rejected_and_forgotten(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                          account: AccountRef, tmp_path: Path) -> None:
    standin.video_polls, standin.next_video_error = 0, "The video could not be decoded"
    progress = Progress()
    with pytest.raises(Rejected, match="could not be decoded"):
        adapter.publish(account, story(media=(mp4(tmp_path),)), "d1", progress)
    assert progress.get("video_id") is None


def test_missing_media_file_is_rejected(adapter: FacebookAdapter, account: AccountRef,
                                        tmp_path: Path) -> None:
    gone = replace(jpeg(tmp_path), path=str(tmp_path / "gone.jpg"))
    with pytest.raises(Rejected, match=r"cannot read the image file gone\.jpg"):
        adapter.publish(account, story(media=(gone,)), "d1")


# -- errors ----------------------------------------------------------------------------------------------
def _graph(code: int, message: str, subcode: int | None = None, transient: bool = False) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": code, "is_transient": transient,
             "fbtrace_id": "AbCdEf"}
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


# (case, fault, error type, wait, scope or maybe_sent, words)
FAULTS: list[tuple[str, Fault, type[AdapterError], float | None, Any, str]] = [
    ("BUC limit with its regain time", Fault(status=429, retry_after=120), RateLimited, 120.0, "account",
     "code 80001"),
    ("app limit, no usage header",
     Fault(status=400, body=_graph(4, "(#4) Application request limit reached")), RateLimited, 300.0, "app",
     "Application request limit reached"),
    ("user limit", Fault(status=400, body=_graph(17, "(#17) User request limit reached")), RateLimited, 300.0,
     "account", "code 17"),
    ("posting too fast", Fault(status=400, body=_graph(368, "It looks like you were misusing this feature",
                                                       subcode=1390008)), RateLimited, 3600.0, "account",
     "misusing"),
    ("policy block", Fault(status=400, body=_graph(368, "The action attempted has been deemed abusive")),
     Rejected, None, None, "deemed abusive"),
    ("server error", Fault(status=503), Transient, None, True, "unexpected error"),
    ("unknown error, code 1", Fault(status=500, body=_graph(1, "An unknown error occurred")), Transient, None,
     True, "code 1"),
    ("is_transient", Fault(status=400, body=_graph(6000, "Temporary issue", transient=True)), Transient, None,
     True, "Temporary issue"),
    ("expired token", Fault(status=401), AuthExpired, None, None, "code 190/463"),
    ("permission", Fault(status=403), Rejected, None, None, "lacks a permission"),
]


@pytest.mark.parametrize(("case", "fault", "error", "wait", "extra", "words"), FAULTS,
                         ids=[f[0] for f in FAULTS])
def test_faults_map_to_typed_errors(standin: FacebookStandIn, adapter: FacebookAdapter, account: AccountRef,
                                    case: str, fault: Fault, error: type[AdapterError], wait: float | None,
                                    extra: Any, words: str) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, story(), "d1")
    assert type(err.value) is error and words in str(err.value)
    if isinstance(err.value, RateLimited):
        assert err.value.retry_after == wait and err.value.scope == extra
    if isinstance(err.value, Transient):
        assert err.value.maybe_sent is extra


def test_refusals_from_the_page(standin: FacebookStandIn, adapter: FacebookAdapter,
                                account: AccountRef) -> None:
    post = story(link=None)
    adapter.publish(account, post, "d1")
    with pytest.raises(Rejected, match=r"Duplicate status message .*code 506.*duplicate"):
        adapter.publish(account, post, "d2")
    standin.unreachable_links.add(LINK)
    with pytest.raises(Rejected, match="code 100/1609005"):
        adapter.publish(account, story(), "d3")
    reader = make_account(standin, scopes=("pages_read_engagement",))
    with pytest.raises(Rejected, match=r"pages_manage_posts.*lacks a permission"):
        adapter.publish(reader, story(), "d4")
    assert len(standin.posts()) == 1


def test_revoked_page_token_is_derived_again(standin: FacebookStandIn, adapter: FacebookAdapter,
                                             account: AccountRef) -> None:
    old = account.credentials.reveal()
    standin.invalidate(old["access_token"])
    with pytest.raises(AuthExpired, match="code 190/460"):
        adapter.publish(account, story(), "d1")
    fresh = adapter.refresh(account)
    values = fresh.reveal()
    assert values["access_token"] != old["access_token"]
    assert {k: values[k] for k in ("page_id", "user_access_token")} == {
        k: old[k] for k in ("page_id", "user_access_token")}
    account.credentials = fresh
    adapter.publish(account, story(), "d1")
    assert len(standin.posts()) == 1


def test_refresh_needs_a_living_user_token(standin: FacebookStandIn, adapter: FacebookAdapter,
                                           account: AccountRef) -> None:
    values = account.credentials.reveal()
    standin.invalidate(values["user_access_token"], "expired")
    with pytest.raises(AuthExpired, match=r"Session has expired.*re-authorise"):
        adapter.refresh(account)
    without = replace(account, credentials=Credentials({"access_token": values["access_token"],
                                                        "page_id": values["page_id"]}))
    with pytest.raises(AuthExpired, match="no user token is stored"):
        adapter.refresh(without)


def test_dropped_answer_may_have_posted_and_find_tells(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                       account: AccountRef) -> None:
    post = story()
    standin.inject(Fault(drop=True, commit=True, path="/feed"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d1")
    assert err.value.maybe_sent is True
    found = adapter.find_published(account, post, "d1")
    assert found is not None and found.remote_id == standin.posts("post")[0].id


# -- followers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 7, 1_234_567])
def test_followers(standin: FacebookStandIn, adapter: FacebookAdapter, count: int) -> None:
    assert adapter.followers(make_account(standin, followers=count)) == count


def test_followers_rate_limited(standin: FacebookStandIn, adapter: FacebookAdapter,
                                account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=600))
    with pytest.raises(RateLimited) as err:
        adapter.followers(account)
    assert err.value.retry_after == 600.0


# -- find_published --------------------------------------------------------------------------------------
NOW = datetime.now(UTC)


@pytest.mark.parametrize(("case", "kind", "looked_for", "since", "found"), [
    ("link post by its text", "link", "same", NOW, True),
    ("photo post by its caption", "photo", "same", NOW, True),
    ("no first-attempt time", "link", "same", None, True),
    ("posted before the first attempt", "link", "same", NOW + timedelta(minutes=5), False),
    ("other text", "link", "other", NOW, False),
])
def test_find_published(standin: FacebookStandIn, adapter: FacebookAdapter, account: AccountRef,
                        tmp_path: Path, case: str, kind: str, looked_for: str, since: datetime | None,
                        found: bool) -> None:
    media = (jpeg(tmp_path),) if kind == "photo" else ()
    post = story(media=media, created_at=NOW)
    published = adapter.publish(account, post, "d1")
    wanted = replace(post, created_at=since, text=post.text if looked_for == "same" else "Rates raised")
    result = adapter.find_published(account, wanted, "d1")
    assert (result is not None) is found
    if found:
        assert result.remote_id == published.remote_id and result.url == published.url
        assert result.published_at is not None


def test_find_published_pages_past_newer_posts(standin: FacebookStandIn, adapter: FacebookAdapter,
                                               account: AccountRef) -> None:
    post = story(created_at=NOW)
    published = adapter.publish(account, post, "d1")
    for _ in range(30):
        adapter.publish(account, story(link=None), "dx")
    standin.requests.clear()
    assert adapter.find_published(account, post, "d1") == replace(published, published_at=ANY_TIME)
    assert [r["path"].rsplit("/", 1)[-1] for r in standin.requests] == ["published_posts"] * 2


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, datetime)


ANY_TIME: Any = _AnyTime()


# -- credentials never leak -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_error_texts_scrub_the_tokens(standin: FacebookStandIn, adapter: FacebookAdapter,
                                      account: AccountRef, status: int) -> None:
    values = account.credentials.reveal()
    echo = f"bad {values['access_token']} / {values['user_access_token']}"
    for call in (lambda: adapter.publish(account, story(), "d1"), lambda: adapter.refresh(account)):
        standin.inject(Fault(status=status, body=_graph(190 if status == 401 else 100, echo)))
        with pytest.raises(AdapterError) as err:
            call()
        for secret in (values["access_token"], values["user_access_token"]):
            assert secret not in str(err.value) and secret not in repr(err.value)
    assert values["access_token"] not in repr(account)


# -- the stand-in is as strict as Graph ------------------------------------------------------------------
V = f"/{GRAPH_VERSION}"
# (case, method, path, token, body kind, body, status, code, words)
STRICT: list[tuple[str, str, str, str, str, Any, int, int | None, str]] = [
    ("unversioned path", "POST", "/{page}/feed", "page", "form", {"message": "hi"}, 400, 2500,
     "Unknown path components"),
    ("retired version", "POST", "/v19.0/{page}/feed", "page", "form", {"message": "hi"}, 400, 2635,
     "deprecated version"),
    ("no token", "POST", V + "/{page}/feed", "none", "form", {"message": "hi"}, 400, 104,
     "access token is required"),
    ("unknown token", "POST", V + "/{page}/feed", "bad", "form", {"message": "hi"}, 400, 190,
     "Cannot parse access token"),
    ("user token cannot post as the Page", "POST", V + "/{page}/feed", "user", "form", {"message": "hi"}, 400,
     200, "pages_manage_posts"),
    ("token as a query parameter", "POST", V + "/{page}/feed", "query", "form", {"message": "hi"}, 200, None,
     '"id"'),
    ("nothing to post", "POST", V + "/{page}/feed", "page", "form", {"message": " "}, 400, 100,
     "Missing message or attachment"),
    ("too long", "POST", V + "/{page}/feed", "page", "json", {"message": "a" * 63_207}, 400, 100,
     "at most 63206"),
    ("not a URL", "POST", V + "/{page}/feed", "page", "form", {"message": "hi", "link": "news.example"}, 400,
     100, "Invalid URL"),
    ("unknown attached photo", "POST", V + "/{page}/feed", "page", "json",
     {"message": "hi", "attached_media": [{"media_fbid": "42"}]}, 400, 100, "attached_media[0]"),
    ("link with attached media", "POST", V + "/{page}/feed", "page", "form",
     {"message": "hi", "link": LINK, "attached_media[0]": json.dumps({"media_fbid": "42"})}, 400, 100,
     "attached_media[0]"),
    ("photo without a file", "POST", V + "/{page}/photos", "page", "form", {"caption": "hi"}, 400, 324,
     "Requires upload file"),
    ("photo that is no image", "POST", V + "/{page}/photos", "page", "file", b"GIF? no, text", 400, 100,
     "smaller than 4 MB"),
    ("video that is no MP4", "POST", V + "/{page}/videos", "page", "file", b"not a video at all", 400, 352,
     "format that we don't support"),
    ("unknown object", "GET", V + "/123456", "page", "none", None, 400, 100, "does not exist"),
    ("followers", "GET", V + "/{page}?fields=followers_count", "page", "none", None, 200, None,
     '"followers_count": 10'),
    ("a user's token reads the Page token", "GET", V + "/{page}?fields=access_token", "user", "none", None,
     200, None, '"access_token"'),
]


@pytest.mark.parametrize(("case", "method", "path", "auth", "kind", "body", "status", "code", "words"),
                         STRICT, ids=[s[0] for s in STRICT])
def test_standin_checks_like_graph(standin: FacebookStandIn, account: AccountRef, case: str, method: str,
                                   path: str, auth: str, kind: str, body: Any, status: int, code: int | None,
                                   words: str) -> None:
    values = account.credentials.reveal()
    url = standin.url + path.format(page=values["page_id"])
    headers, params = {}, {}
    if auth in ("page", "user"):
        name = "access_token" if auth == "page" else "user_access_token"
        headers["Authorization"] = f"Bearer {values[name]}"
    elif auth == "bad":
        headers["Authorization"] = "OAuth nope"
    elif auth == "query":
        params["access_token"] = values["access_token"]
    kwargs: dict[str, Any] = {"json": body} if kind == "json" else {"data": body} if kind == "form" else {}
    if kind == "file":
        kwargs = {"files": {"source": ("x.bin", body, "application/octet-stream")}}
    answer = requests.request(method, url, headers=headers, params=params, timeout=5, **kwargs)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    if code is not None:
        error = answer.json()["error"]
        assert error["code"] == code and error["fbtrace_id"] and error["type"]


def test_standin_rate_limit_answer_is_graphs(standin: FacebookStandIn, account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=90))
    answer = requests.get(f"{standin.url}{V}/{account.credentials.get('page_id')}", timeout=5,
                          params={"access_token": account.credentials.get("access_token")})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == 80001
    usage = json.loads(answer.headers["X-Business-Use-Case-Usage"])
    assert [entry["estimated_time_to_regain_access"] for entry in usage["0"]] == [2]


def test_standin_attached_photo_is_used_once(standin: FacebookStandIn, adapter: FacebookAdapter,
                                             account: AccountRef, tmp_path: Path) -> None:
    progress = Progress()
    adapter.publish(account, story(media=(jpeg(tmp_path), jpeg(tmp_path, "b.jpg"))), "d1", progress)
    answer = requests.post(f"{standin.url}{V}/{account.credentials.get('page_id')}/feed", timeout=5,
                           headers={"Authorization": f"Bearer {account.credentials.get('access_token')}"},
                           json={"message": "again",
                                 "attached_media": [{"media_fbid": progress.get("photos")[0]}]})
    assert answer.status_code == 400 and "attached_media[0]" in answer.json()["error"]["message"]


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"page_id": 1234, "access_token": "EAAPage-12345678"}, []),
    ({"page_id": "12a4", "access_token": "EAAPage 1"},
     ["facebook: credentials: page_id: is not in the expected format",
      "facebook: credentials: access_token: is not a token (at least 8 visible characters, no spaces)"]),
    ({"page_token": "EAAPage-12345678"},
     ["facebook: credentials: access_token: is required",
      "facebook: credentials: page_token: is not a field of these credentials (expected: page_id, "
      "access_token, user_access_token)"]),
])
def test_credentials_model(standin: FacebookStandIn, data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        creds = validate_credentials("facebook", data)
        assert creds.get("page_id") == "1234" and creds.secrets() == ["EAAPage-12345678"]
        given = standin.add_account("modelpage")
        assert validate_credentials("facebook", given).reveal() == given
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("facebook", data)
    assert str(err.value).splitlines() == lines and "EAAPage" not in str(err.value)


def test_whoami_names_the_page_of_the_token(standin: FacebookStandIn, adapter: FacebookAdapter,
                                            account: AccountRef) -> None:
    me = adapter.whoami(account)
    assert me.handle == account.handle and me.remote_id == account.credentials.get("page_id")
    assert adapter.same_account(account.handle.upper(), me) and adapter.same_account(me.remote_id, me)
    other = make_account(standin)
    borrowed = replace(account, credentials=other.credentials)
    assert not adapter.same_account(account.handle, adapter.whoami(borrowed))


def test_publish_fences_the_post(standin: FacebookStandIn, adapter: FacebookAdapter,
                                 account: AccountRef) -> None:
    saved: list[dict[str, Any]] = []
    adapter.publish(account, story(), "d-fence", Progress(saver=saved.append))
    assert [s["fence"]["step"] for s in saved if "fence" in s] == ["post"]


@pytest.mark.parametrize("url", [None, "https://media.example.com/clip.mp4"])
def test_a_video_whose_upload_answer_was_lost_is_found(standin: FacebookStandIn, adapter: FacebookAdapter,
                                                       account: AccountRef, tmp_path: Path,
                                                       url: str | None) -> None:
    # The double post: the video went out on upload, the answer never came back.
    post = story(media=(mp4(tmp_path, url=url),), link=None)
    standin.inject(Fault(commit=True, drop=True, path="/videos"))
    saved: list[dict[str, Any]] = []
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d-video", Progress(saver=saved.append))
    assert err.value.maybe_sent and saved[-1]["fence"]["step"] == "video"
    found = adapter.find_published(account, post, "d-video", Progress(saved[-1]))
    [created] = standin.posts("video")
    assert found is not None and found.remote_id == created.id
    assert found.url == f"https://www.facebook.com/{account.credentials.get('page_id')}/videos/{created.id}"
    # Another story's video is not taken for this one.
    assert adapter.find_published(account, story(media=(mp4(tmp_path),), link=None), "d-other") is None


def test_scrubbing_takes_its_secret_fields_from_the_model() -> None:
    stored = Credentials.from_json('{"page_id": "123456789", "access_token": "EAAPage-12345678", '
                                   '"user_access_token": "EAAUser-12345678"}')
    account = AccountRef(id=1, platform="facebook", handle="newsroom", credentials=stored)
    # The Page id is no secret: scrubbing it would only hide which Page an error is about.
    assert sorted(account.credentials.secrets()) == ["EAAPage-12345678", "EAAUser-12345678"]
    assert Credentials.from_json('{"page_id": "123456789"}').secrets() == ["123456789"]  # no model: all
