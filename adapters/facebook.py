"""Facebook Pages through the Graph API (platforms.md section 5).

Credentials: ``access_token`` (a Page token, derived from a long-lived user token, so it does not
expire), optionally ``user_access_token`` (that long-lived user token, kept to derive a new Page
token) and ``page_id`` (else the account handle is the Page id).

Publishing: text and link posts on ``/{page}/feed``; one photo on ``/{page}/photos`` with its caption;
several photos uploaded unpublished, then attached to one feed post (``attached_media``); a video on
``/{page}/videos`` by ``file_url`` (Media.url) or uploaded bytes, then polled until ready. Graph has
no idempotency key: uploaded photo and video ids are kept in the delivery's progress so a retry
continues, and ``find_published`` reads the Page's recent posts to tell whether a lost post went out.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from adapters import graph
from adapters.base import (
    AccountRef,
    Capabilities,
    Credentials,
    CredentialsModel,
    Media,
    NumericId,
    Post,
    Problem,
    Progress,
    Published,
    Token,
)
from adapters.errors import AuthExpired, InProgress, Rejected, Transient

WEB = "https://www.facebook.com"
# Video processing: Meta suggests polling every 10-30 s (platforms.md 12.3).
VIDEO_POLL_SECONDS = 30.0
_CLOCK_SKEW = timedelta(minutes=1)


class FacebookCredentials(CredentialsModel):
    """A Page token; the long-lived user token it came from lets refresh derive a new one."""

    page_id: NumericId | None = None
    access_token: Token
    user_access_token: Token | None = None


class FacebookAdapter(graph.GraphAdapter):
    platform: ClassVar[str] = "facebook"
    default_base_url: ClassVar[str] = "https://graph.facebook.com"

    # -- caps -----------------------------------------------------------------------------------
    # 63,206 characters is widely cited but not in current docs (platforms.md 5.3 ⚠); counted in code
    # points, at least as many as what a reader sees. attached_media's maximum is not documented:
    # 10 is within every figure cited. 4 MB per photo (error 1366046); 1 GB per video, as for
    # non-resumable uploads.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=63_206, count=len, unit="characters", idempotent=False, can_find=True,
        max_images=10, image_types=frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp",
                                              "image/tiff"}),
        max_image_bytes=4 * 1024 * 1024, max_videos=1,
        video_types=frozenset({"video/mp4", "video/quicktime"}), max_video_bytes=1024 ** 3,
    )
    # whoami: GraphAdapter's ``me``, which for a Page token is the Page.
    credentials_model: ClassVar[type[CredentialsModel]] = FacebookCredentials

    # -- check_platform ---------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        """Nothing beyond the shared rules: hashtags and mentions are plain text on a Page, and a
        link that goes with photos rides in the message."""
        return []

    # -- publish ----------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` cannot be sent: Graph has no idempotency key (progress and find_published stand in).
        progress = progress if progress is not None else Progress()
        page, token = self._page(account), self._token(account)
        message = _message(post)
        if post.videos:
            return self._video(account, page, token, post, message, progress)
        if len(post.images) == 1:
            with progress.sending("post"):
                photo = self._photo(account, page, token, post.images[0], published=True, caption=message)
            return self._post(page, str(photo.get("post_id") or photo.get("id")))
        fields: dict[str, Any] = {"message": message}
        if post.images:
            photos = list(progress.get("photos") or [])
            for image in post.images[len(photos):]:
                photos.append(str(self._photo(account, page, token, image, published=False)["id"]))
                progress.save(photos=photos)
            fields["attached_media"] = [{"media_fbid": photo} for photo in photos]
        elif post.link:
            fields["link"] = post.link
        with progress.sending("post"):
            created = self.call(account, "POST", f"{page}/feed", token, json=fields)
        return self._post(page, _id(created, "feed"))

    # -- media upload -------------------------------------------------------------------------------
    def _photo(self, account: AccountRef, page: str, token: str, image: Media, *, published: bool,
               caption: str = "") -> dict[str, Any]:
        data = {"published": "true" if published else "false"}
        if caption:
            data["caption"] = caption
        if image.alt:
            data["alt_text_custom"] = image.alt
        with _open(image) as source:
            return self.call(account, "POST", f"{page}/photos", token, data=data,
                             files={"source": (Path(image.path).name, source, image.mime)})

    def _video(self, account: AccountRef, page: str, token: str, post: Post, message: str,
               progress: Progress) -> Published:
        video_id = progress.get("video_id")
        if not video_id:
            video = post.videos[0]
            data = {"description": message, "published": "true"}
            if post.title:
                data["title"] = post.title
            # published=true: the video goes out on upload, with no way to ask for it by a key.
            with progress.sending("video"):
                if video.url:
                    # Meta fetches it: nothing to send, nothing to resume.
                    created = self.call(account, "POST", f"{page}/videos", token,
                                        data={**data, "file_url": video.url})
                else:
                    with _open(video) as source:
                        created = self.call(account, "POST", f"{page}/videos", token, data=data,
                                            files={"source": (Path(video.path).name, source, video.mime)})
            video_id = _id(created, "videos")
            progress.save(video_id=video_id)
        node = self.call(account, "GET", video_id, token, params={"fields": "status,permalink_url"})
        status = node.get("status") if isinstance(node.get("status"), dict) else {}
        state = status.get("video_status")
        if state == "ready":
            link = str(node.get("permalink_url") or f"/{page}/videos/{video_id}")
            return Published(remote_id=video_id, url=WEB + link if link.startswith("/") else link)
        if state in ("error", "expired"):
            # A failed video is never published; forget it so that "publish again" uploads anew.
            progress.save(video_id=None)
            detail = (status.get("processing_phase") or {}).get("error", {}).get("message") or state
            raise Rejected(f"facebook: video processing failed: {detail}")
        raise InProgress(f"facebook: video {state or 'processing'}", after=VIDEO_POLL_SECONDS)

    # -- followers ----------------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        node = self.call(account, "GET", self._page(account), self._token(account),
                         params={"fields": "followers_count"})
        count = node.get("followers_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient("facebook: the Page answered without followers_count")
        return count

    # -- refresh ------------------------------------------------------------------------------------
    def refresh(self, account: AccountRef) -> Credentials:
        """A new Page token derived from the stored long-lived user token.

        A Page token from a long-lived user token has no expiry (platforms.md 5.1): when Graph refuses
        it, the user changed password, lost the Page role or removed the app. Deriving again helps
        only while the user token lives (about 60 days); after that an operator re-authorises.
        """
        user_token = account.credentials.get("user_access_token")
        if not user_token:
            raise AuthExpired("facebook: the Page token was refused and no user token is stored to derive "
                              "a new one; re-authorise the account")
        try:
            node = self.call(account, "GET", self._page(account), user_token,
                             params={"fields": "access_token"})
        except AuthExpired as exc:
            raise AuthExpired(f"{exc.reason}; re-authorise the account", status=exc.status) from None
        if not node.get("access_token"):
            raise AuthExpired("facebook: the user can no longer get a token for this Page (no role, or "
                              "the app lost pages_manage_posts); re-authorise the account")
        return account.credentials.merged(access_token=node["access_token"])

    # -- find_published -----------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The Page's own post whose message is what ``publish`` sent, created no earlier than the
        delivery's first attempt (any time when that is unknown)."""
        page, token = self._page(account), self._token(account)
        wanted = _normalise(_message(post))
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        # A video is the Page's video (publish answers its id), listed from upload on; the rest are posts.
        edge, text = ("videos", "description") if post.videos else ("published_posts", "message")
        for item, created in self.edge(account, f"{page}/{edge}", token,
                                       f"id,{text},created_time,permalink_url", stamp="created_time",
                                       since=since):
            if _normalise(str(item.get(text) or "")) == wanted:
                link = str(item.get("permalink_url") or "") or self._post(page, str(item["id"])).url
                url = WEB + link if link.startswith("/") else link
                return Published(remote_id=str(item["id"]), url=url, published_at=created)
        return None

    # -- classify -----------------------------------------------------------------------------------
    # GraphAdapter.classify: the shared Graph mapping covers every Pages code in platforms.md 5.7
    # (1609005 link, 1366046 photo and 1366051 duplicate photos are refusals like code 100).

    # -- helpers ------------------------------------------------------------------------------------
    def _page(self, account: AccountRef) -> str:
        return account.credentials.get("page_id") or account.handle.lstrip("@")

    def _token(self, account: AccountRef) -> str:
        return account.credentials.require("access_token", self.platform)

    def _post(self, page: str, post_id: str) -> Published:
        own = post_id.split("_", 1)[-1]
        return Published(remote_id=post_id, url=f"{WEB}/{page}/posts/{own}")


def _message(post: Post) -> str:
    """What the post's message is: with a link preview the link goes apart; with media (no preview
    possible) it stays in the text."""
    return post.text.strip() if post.link and not post.media else post.body


def _open(media: Media) -> BinaryIO:
    try:
        return Path(media.path).open("rb")
    except OSError as exc:
        raise Rejected(f"facebook: cannot read the {media.kind} file {Path(media.path).name}: "
                       f"{exc.strerror}") from None


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _id(body: dict[str, Any], what: str) -> str:
    if not body.get("id"):
        raise Transient(f"facebook: {what} answered without an id", maybe_sent=True)
    return str(body["id"])
