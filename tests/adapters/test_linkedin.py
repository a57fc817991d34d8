"""LinkedIn adapter against the LinkedIn stand-in (Posts, Images and Videos APIs, OAuth refresh),
plus the little-text escaping that keeps a post from being silently cut."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.linkedin import LinkedInAdapter, _until_midnight, escape_little_text, post_url
from adapters.standins.base import Fault
from adapters.standins.linkedin import LinkedInStandIn, render_little_text

ORG = "urn:li:organization:2414183"
LINK = "https://news.example/stories/42"
TRICKY = "Budget (2027) passes: cuts_to *arts* ~5% <draft> {v2} [a|b] @city \\o/ #culture # no #1"


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "linkedin"
FOLLOWERS = 1234
HANDLE = ORG


def member(standin: LinkedInStandIn, scopes: tuple[str, ...] | None = None) -> AccountRef:
    creds = standin.add_account("Ana Reporter", followers=77, scopes=scopes)
    return AccountRef(id=2, platform="linkedin", handle="Ana Reporter", base_url=standin.url,
                      credentials=Credentials(creds))


def post(text: str = "Council approves the tram line", link: str | None = LINK,
         media: tuple[Media, ...] = (), title: str | None = None) -> Post:
    return Post(text=text, link=link, created_at=datetime.now(UTC), media=media, title=title)


def png(tmp_path: Path, name: str = "a.png", alt: str = "") -> Media:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return Media(kind="image", path=str(path), mime="image/png", size=path.stat().st_size, width=64,
                 height=48, alt=alt)


def mp4(tmp_path: Path, size: int = 100_000, valid: bool = True) -> Media:
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" if valid else b"RIFF\x00\x00\x00\x00AVI "
    path = tmp_path / "clip.mp4"
    path.write_bytes(head + bytes(range(256)) * ((size - len(head)) // 256 + 1))
    path.write_bytes(path.read_bytes()[:size])
    return Media(kind="video", path=str(path), mime="video/mp4", size=size, width=1280, height=720)


def finish(adapter: LinkedInAdapter, account: AccountRef, story: Post, progress: Progress) -> tuple[Any, int]:
    for waits in range(10):
        try:
            return adapter.publish(account, story, "d1", progress), waits
        except InProgress as wait:
            assert wait.after > 0
    raise AssertionError("still in progress")


# -- little text ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "escaped"), [
    ("plain words", "plain words"),
    ("a (b) [c] {d} <e> f|g h*i j_k l~m n@o p\\q",
     "a \\(b\\) \\[c\\] \\{d\\} \\<e\\> f\\|g h\\*i j\\_k l\\~m n\\@o p\\\\q"),
    ("#culture and #1 stay tags; a#b, # and #_x do not",
     "#culture and #1 stay tags; a\\#b, \\# and \\#\\_x do not"),
    # A URL never ends in ')' (as everywhere in crosspost): that one is text, escaped.
    ("see (https://en.example/wiki/A_(b)) now", "see \\(https://en.example/wiki/A_(b\\)\\) now"),
    ("https://x.example/a_b#frag~1 ok", "https://x.example/a_b#frag~1 ok"),
    ("日本語 #選挙 @東京", "日本語 #選挙 \\@東京"),
    ("", ""),
])
def test_escape_little_text(text: str, escaped: str) -> None:
    assert escape_little_text(text) == escaped
    assert render_little_text(escaped) == text


def test_unescaped_text_is_silently_cut_by_the_standin() -> None:
    # Why escaping matters: LinkedIn stops at the first bare reserved character.
    assert render_little_text("Budget (2027) passes") == "Budget "
    assert render_little_text("a \\q b") == "a "
    assert render_little_text("hi @[Ana](urn:li:person:abc)!") == "hi Ana!"


PIECES = st.sampled_from(["https://x.example/a_(b)", "http://y.example/p?q=1#f", " ", "\n", "#tag", "#", "@",
                          "\\", "(", ")", ".", "é", "😀", "#1", "_", "a", "Z"])


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES | st.text(max_size=3), max_size=30).map("".join))
def test_escaped_text_always_renders_back_whole(text: str) -> None:
    assert render_little_text(escape_little_text(text)) == text


@pytest.mark.parametrize(("story", "problems"), [
    (post("(" * 2990, link=None), []),  # 5980 characters once escaped: the unescaped text counts
    (post("a" * 3001, link=None), ["linkedin: text: is 3001 UTF-16 code units long; the limit is 3000"]),
    (post("😀" * 1501, link=None), ["linkedin: text: is 3002 UTF-16 code units long; the limit is 3000"]),
    (post(media=tuple(Media(kind="image", path=f"/m/{i}.png", mime="image/png", size=10) for i in range(21))),
     ["linkedin: media: 21 images; the limit is 20"]),
    (post(media=(Media(kind="image", path="/m/a.png", mime="image/png", size=10, width=8000, height=5000),)),
     ["linkedin: media: image is 8000x5000; LinkedIn takes fewer than 36152320 pixels"]),
    (post(media=(Media(kind="video", path="/m/v.mp4", mime="video/mp4", size=1000, width=720, height=1920),)),
     ["linkedin: media: video is 1000 bytes; the least is 76800",
      "linkedin: media: video is 720x1920; the aspect ratio must be between 1:2.4 and 2.4:1"]),
    (post(media=(Media(kind="video", path="/m/v.mp4", mime="video/mp4", size=80_000),
                 Media(kind="image", path="/m/a.png", mime="image/png", size=10))),
     ["linkedin: media: images and a video cannot go in one post"]),
])
def test_check(adapter: LinkedInAdapter, story: Post, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(story)] == problems


# -- publish ----------------------------------------------------------------------------------------
def test_text_post_keeps_every_reserved_character(adapter: LinkedInAdapter, account: AccountRef,
                                                  standin: LinkedInStandIn) -> None:
    story = post(TRICKY, link=None)
    published = adapter.publish(account, story, "d1")
    [created] = standin.posts("post")
    assert created.data["text"] == TRICKY  # nothing was cut
    assert created.data["commentary"] == escape_little_text(TRICKY)
    assert created.data["content"] is None and created.data["account"] == ORG
    assert created.data["version"] == "202605"
    assert published.remote_id == created.id and published.url == post_url(created.id)
    assert created.id.startswith("urn:li:share:")


def test_link_post_carries_an_article_card(adapter: LinkedInAdapter, account: AccountRef,
                                           standin: LinkedInStandIn) -> None:
    adapter.publish(account, post("Tram line approved\nMore below"), "d1")
    adapter.publish(account, post("Another story", title="Trams: the vote"), "d2")
    first, second = standin.posts("post")
    assert first.data["text"] == f"Tram line approved\nMore below\n\n{LINK}"
    assert first.data["content"] == {"article": {"source": LINK, "title": "Tram line approved"}}
    assert second.data["content"]["article"]["title"] == "Trams: the vote"


@pytest.mark.parametrize("count", [1, 3])
def test_images_are_uploaded_once_and_attached(adapter: LinkedInAdapter, account: AccountRef,
                                               standin: LinkedInStandIn, tmp_path: Path, count: int) -> None:
    images = tuple(png(tmp_path, f"{i}.png", alt=f"photo {i}") for i in range(count))
    progress = Progress()
    adapter.publish(account, post(media=images), "d1", progress)
    [created] = standin.posts("post")
    content = created.data["content"]
    items = [content["media"]] if count == 1 else content["multiImage"]["images"]
    assert [i["id"] for i in items] == progress.get("images")
    assert [i["altText"] for i in items] == [f"photo {i}" for i in range(count)]
    assert standin.uploads == count
    assert all(standin.media[i["id"]].owner == ORG for i in items)


def test_video_upload_processing_and_resume(adapter: LinkedInAdapter, account: AccountRef,
                                            standin: LinkedInStandIn, tmp_path: Path) -> None:
    standin.part_size = 32 * 1024
    clip = mp4(tmp_path)

    def saver(state: dict[str, Any]) -> None:
        if len((state.get("video") or {}).get("etags") or []) == 2:
            standin.inject(Fault(status=503, path="/dms-uploads/video"))

    progress = Progress(saver=saver)
    story = post("Watch the vote", media=(clip,), title="The vote")
    with pytest.raises(Transient):
        adapter.publish(account, story, "d1", progress)
    assert standin.uploads == 2
    published, waits = finish(adapter, account, story, progress)
    assert waits == 2 and standin.uploads == 4  # parts 3 and 4 only, then two status reads
    [created] = standin.posts("post")
    assert created.data["content"] == {"media": {"id": progress.get("video")["urn"], "title": "The vote"}}
    assert published.remote_id == created.id
    data = b"".join(standin.media[progress.get("video")["urn"]].data[n] for n in range(4))
    assert data == Path(clip.path).read_bytes()


def test_a_lost_finalize_answer_is_not_finalized_again(adapter: LinkedInAdapter, account: AccountRef,
                                                       standin: LinkedInStandIn, tmp_path: Path) -> None:
    armed = []

    def saver(state: dict[str, Any]) -> None:
        if (state.get("video") or {}).get("finalizing") and not armed:
            armed.append(True)
            standin.inject(Fault(commit=True, drop=True, path="/rest/videos"))

    progress = Progress(saver=saver)
    story = post("Finalized once", media=(mp4(tmp_path),))
    with pytest.raises(Transient):
        adapter.publish(account, story, "d1", progress)
    assert standin.media[progress.get("video")["urn"]].status == "PROCESSING"  # it went through
    finish(adapter, account, story, progress)
    assert len(standin.posts("post")) == 1 and standin.uploads == 1


def test_failed_video_processing_is_rejected(adapter: LinkedInAdapter, account: AccountRef,
                                             standin: LinkedInStandIn, tmp_path: Path) -> None:
    with pytest.raises(Rejected, match="video processing failed: Video format is not supported"):
        finish(adapter, account, post(media=(mp4(tmp_path, valid=False),)), Progress())
    assert standin.posts() == []


def test_a_lost_answer_is_recovered_from_the_duplicate_refusal(adapter: LinkedInAdapter, account: AccountRef,
                                                               standin: LinkedInStandIn) -> None:
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="/rest/posts"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, post(), "d1", progress)
    assert err.value.maybe_sent
    again = adapter.publish(account, post(), "d1", progress)
    [created] = standin.posts("post")
    assert again.remote_id == created.id and progress.get("post") == created.id
    assert adapter.publish(account, post(), "d1", progress) == again  # saved: no call at all
    # Another delivery with the same content is a real duplicate: refused, naming the first post.
    with pytest.raises(Rejected, match=f"duplicate of {created.id}.*change the text"):
        adapter.publish(account, post(), "d2")
    assert standin.duplicates() == 0


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, retry_after=30, path="/rest/posts"), RateLimited, lambda e: e.retry_after == 30),
    (Fault(status=429, path="/rest/posts"), RateLimited,
     lambda e: abs(e.retry_after - _until_midnight()) < 5 and "TOO_MANY_REQUESTS" in e.reason),
    (Fault(status=500, path="/rest/posts"), Transient, lambda e: e.maybe_sent and e.status == 500),
    (Fault(status=504, path="/rest/posts", body="<html>gateway</html>"), Transient, lambda e: e.maybe_sent),
    (Fault(drop=True, path="/rest/posts"), Transient, lambda e: e.maybe_sent),
    (Fault(status=403, path="/rest/posts", body={"status": 403, "code": "ACCESS_DENIED",
                                                 "message": "Not enough permissions"}), Rejected,
     lambda e: "ACCESS_DENIED" in e.reason and "permission" in e.reason),
])
def test_faults_map_to_typed_errors(adapter: LinkedInAdapter, account: AccountRef, standin: LinkedInStandIn,
                                    fault: Fault, error: type, check: Any) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, post(), "d1")
    assert check(err.value), err.value
    assert err.value.reason.startswith("linkedin: ")


def test_midnight_utc() -> None:
    assert _until_midnight(datetime(2026, 11, 28, 23, 0, tzinfo=UTC)) == 3600
    assert _until_midnight(datetime(2026, 12, 31, 0, 0, 1, tzinfo=UTC)) == 86399


def test_content_and_permission_refusals(adapter: LinkedInAdapter, account: AccountRef,
                                         standin: LinkedInStandIn) -> None:
    with pytest.raises(Rejected, match="exceeds the maximum allowed length of 3000"):
        adapter.publish(account, post("a" * 3001, link=None), "d1")  # check() skipped
    stranger = member(standin)
    account.credentials = stranger.credentials  # a member who is not an administrator of the page
    with pytest.raises(Rejected, match="ACCESS_DENIED"):
        adapter.publish(account, post(), "d1")
    standin.version_months = 0  # every version sunset
    with pytest.raises(Rejected, match="update crosspost"):
        adapter.publish(stranger, post(), "d1")
    assert standin.posts() == []


def test_author_comes_from_the_handle_or_the_credentials(adapter: LinkedInAdapter, standin: LinkedInStandIn,
                                                         account: AccountRef) -> None:
    ana = member(standin)
    adapter.publish(ana, post("From Ana"), "d1")
    assert standin.posts()[0].data["account"] == ana.credentials.get("author")
    account.handle = "The Newsroom page"
    with pytest.raises(Rejected, match="urn:li:organization"):
        adapter.publish(account, post(), "d1")


# -- tokens -----------------------------------------------------------------------------------------
def test_expired_token_then_refresh(adapter: LinkedInAdapter, account: AccountRef, standin: LinkedInStandIn,
                                    creds: dict[str, str]) -> None:
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired, match="EXPIRED_ACCESS_TOKEN"):
        adapter.publish(account, post(), "d1")
    fresh = adapter.refresh(account)
    values = fresh.reveal()
    assert values["access_token"] != creds["access_token"]
    # The refresh token is the same and keeps counting down from its first grant.
    assert values["refresh_token"] == creds["refresh_token"]
    before, after = creds["refresh_expires_at"], values["refresh_expires_at"]
    assert abs(datetime.fromisoformat(after) - datetime.fromisoformat(before)) <= timedelta(seconds=2)
    expires = datetime.fromisoformat(values["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=60))) < timedelta(minutes=1)
    account.credentials = fresh
    adapter.publish(account, post(), "d1")
    assert len(standin.posts()) == 1


@pytest.mark.parametrize("change", ["no refresh token", "revoked", "wrong secret"])
def test_refresh_failures_need_reauthorisation(adapter: LinkedInAdapter, account: AccountRef,
                                               standin: LinkedInStandIn, creds: dict[str, str],
                                               change: str) -> None:
    if change == "no refresh token":
        account.credentials = Credentials({k: v for k, v in creds.items() if not k.startswith("refresh")})
    elif change == "revoked":
        standin.revoke_refresh_tokens()
    else:
        account.credentials = account.credentials.merged(client_secret="not-the-secret")
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(account)


# -- followers and find_published -------------------------------------------------------------------
def test_followers(adapter: LinkedInAdapter, account: AccountRef, standin: LinkedInStandIn) -> None:
    assert adapter.followers(account) == 1234
    assert standin.requests[-1]["path"] == "/rest/networkSizes/urn%3Ali%3Aorganization%3A2414183"
    with pytest.raises(Rejected, match="ACCESS_DENIED"):
        adapter.followers(member(standin))  # self-serve member scopes give no follower count
    analyst = member(standin, scopes=("w_member_social", "r_member_profileAnalytics"))
    assert adapter.followers(analyst) == 77


def test_find_published(adapter: LinkedInAdapter, account: AccountRef, standin: LinkedInStandIn) -> None:
    story = post(TRICKY)
    assert adapter.find_published(account, story, "d1") is None
    published = adapter.publish(account, story, "d1")
    found = adapter.find_published(account, story, "d1")
    assert found is not None and found.remote_id == published.remote_id
    assert adapter.find_published(account, post("Other"), "d1") is None
    later = Post(text=story.text, link=story.link, created_at=datetime.now(UTC) + timedelta(hours=1))
    assert adapter.find_published(account, later, "d1") is None
    # Members cannot list their posts without a restricted scope: "cannot tell", not an error.
    assert adapter.find_published(member(standin), story, "d1") is None


# -- the stand-in is as strict as the API -----------------------------------------------------------
def test_standin_checks_rest_headers_and_uploads(standin: LinkedInStandIn, creds: dict[str, str],
                                                 tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {creds['access_token']}"}
    rest = {**auth, "LinkedIn-Version": "202605", "X-Restli-Protocol-Version": "2.0.0"}
    body = {"author": ORG, "commentary": "x", "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED"}, "lifecycleState": "PUBLISHED"}
    url = f"{standin.url}/rest/posts"
    missing = requests.post(url, json=body, headers=auth, timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (400, "VERSION_MISSING")
    old = requests.post(url, json=body, headers={**rest, "LinkedIn-Version": "202401"}, timeout=5)
    assert (old.status_code, old.json()["code"]) == (426, "NONEXISTENT_VERSION")
    v1 = requests.post(url, json=body, headers={**auth, "LinkedIn-Version": "202605"}, timeout=5)
    assert v1.status_code == 400
    bad = requests.post(url, json={**body, "content": {"media": {"id": "urn:li:image:nope"}}}, headers=rest,
                        timeout=5)
    assert bad.status_code == 422 and bad.json()["errorDetails"]["inputErrors"][0]["code"] == "INVALID_VALUE"
    init = requests.post(f"{standin.url}/rest/videos", params={"action": "initializeUpload"}, headers=rest,
                         json={"initializeUploadRequest": {"owner": ORG, "fileSizeBytes": 80_000}}, timeout=5)
    value = init.json()["value"]
    raw = requests.get(f"{standin.url}/rest/videos/{value['video']}", headers=rest, timeout=5)
    assert raw.status_code == 400 and "URL-encoded" in raw.json()["message"]
    [part] = value["uploadInstructions"]
    short = requests.put(part["uploadUrl"], data=b"x" * 10, timeout=5)
    assert short.status_code == 400
    finalize = requests.post(f"{standin.url}/rest/videos", params={"action": "finalizeUpload"}, headers=rest,
                             json={"finalizeUploadRequest": {"video": value["video"], "uploadToken": "",
                                                             "uploadedPartIds": ["made-up"]}}, timeout=5)
    assert finalize.status_code == 400 and "uploadedPartIds" in finalize.json()["message"]
    image = requests.post(f"{standin.url}/rest/images", params={"action": "initializeUpload"}, headers=rest,
                          json={"initializeUploadRequest": {"owner": ORG}}, timeout=5).json()["value"]
    no_auth = requests.put(image["uploadUrl"], data=Path(png(tmp_path).path).read_bytes(), timeout=5)
    assert no_auth.status_code == 401 and standin.uploads == 0


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "AQV-12345678"}, []),
    ({"access_token": "AQV-12345678", "author": "urn:li:person:abc-123"}, []),
    ({"access_token": "AQV-12345678", "refresh_token": "AQX-12345678", "client_id": "app"},
     ["linkedin: credentials: client_id and client_secret: are required with a refresh_token"]),
    ({"access_token": "AQV-12345678", "author": "urn:li:company:1"},
     ["linkedin: credentials: author: is not in the expected format"]),
])
def test_credentials_model(standin: LinkedInStandIn, data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        assert "AQV-12345678" in validate_credentials("linkedin", data).secrets()
        for handle, refreshable in ((ORG, True), ("newsroom", False)):
            given = standin.add_account(handle, refreshable=refreshable)
            assert validate_credentials("linkedin", given).get("access_token") == given["access_token"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("linkedin", data)
    assert str(err.value).splitlines() == lines and "AQV" not in str(err.value)


def test_whoami_for_an_organisation_needs_a_posting_role(standin: LinkedInStandIn, adapter: LinkedInAdapter,
                                                         account: AccountRef) -> None:
    me = adapter.whoami(account)
    assert (me.handle, me.remote_id) == (ORG, ORG) and adapter.same_account(ORG, me)
    # Another organisation's administrator is not one of ours.
    other = Credentials(standin.add_account("urn:li:organization:999"))
    with pytest.raises(Rejected, match=f"has no posting role in {ORG}"):
        adapter.whoami(AccountRef(id=2, platform="linkedin", handle=ORG, base_url=standin.url,
                                  credentials=other))


def test_whoami_for_a_member(standin: LinkedInStandIn, adapter: LinkedInAdapter) -> None:
    acct = member(standin)
    me = adapter.whoami(acct)
    assert me.remote_id == acct.credentials.get("author") and me.handle == "ana reporter"
    stranger = member(standin)
    mixed = acct.credentials.merged(access_token=stranger.credentials.get("access_token"))
    with pytest.raises(Rejected, match="the token belongs to urn:li:person:"):
        adapter.whoami(AccountRef(id=3, platform="linkedin", handle=acct.handle, base_url=standin.url,
                                  credentials=mixed))
