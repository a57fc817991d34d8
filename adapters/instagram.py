"""Instagram through the Graph content-publishing API (platforms.md section 6).

Credentials: ``access_token``, ``user_id`` (else the handle is the IG user id), ``expires_at``, and
``login``: ``instagram`` (default; Instagram API with Instagram Login, host graph.instagram.com) or
``facebook`` (Instagram API with Facebook Login, host graph.facebook.com, which also needs
``app_id`` and ``app_secret`` to extend its token).

Every post carries media that Meta fetches by URL (Media.url): one image, one video (a Reel), or a
carousel of 2-10 images and videos. Publishing is container -> status -> ``media_publish``; container
ids are saved in the delivery's progress at once, so a retry reads the container's status (still
processing, ready, or already published) instead of creating another.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import requests

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
    Word,
    parse_time,
)
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.text import URL_RE

INSTAGRAM_HOST = "https://graph.instagram.com"
FACEBOOK_HOST = "https://graph.facebook.com"
MAX_ITEMS = 10
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
# Feed images must be between 4:5 and 1.91:1 (subcodes 2207009 / 36003).
MIN_ASPECT, MAX_ASPECT = 4 / 5, 1.91
# Meta: images are usually ready at once; videos take about a minute, poll once a minute.
IMAGE_POLL_SECONDS, VIDEO_POLL_SECONDS = 10.0, 60.0
# The publishing quota rolls over 24 h and the API does not say when a slot frees up.
QUOTA_WAIT = 3600.0
_HASHTAG_RE = re.compile(r"(?<![\w#])#\w+")
_MENTION_RE = re.compile(r"(?<![\w@])@[\w.]+")
_CLOCK_SKEW = timedelta(minutes=1)
# Meta could not fetch the media: the public media URL is wrong or unreachable.
_FETCH_FAILED = frozenset({2207003, 2207052, 2207077})


class InstagramCredentials(CredentialsModel):
    """A long-lived token (60 days; refresh writes the new one and its expiry) for the professional
    account ``user_id``: from Instagram Login, or from Facebook Login (``login: facebook``), whose
    refresh exchanges it through the app (``app_id``, ``app_secret``)."""

    access_token: Token
    user_id: NumericId | None = None
    expires_at: datetime | None = None
    login: Literal["instagram", "facebook"] | None = None
    app_id: Word | None = None
    app_secret: Token | None = None


class InstagramAdapter(graph.GraphAdapter):
    platform: ClassVar[str] = "instagram"
    default_base_url: ClassVar[str] = INSTAGRAM_HOST

    # -- caps -----------------------------------------------------------------------------------
    # Caption 2200 characters (code points), JPEG only ("the only image format supported"), 8 MB
    # images, Reels up to 1 GB. Carousels: 10 items, as the API docs say (platforms.md 6.2 notes the
    # app allows 20; a 20-item carousel the API refuses would fail at publish time, 10 never does).
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=2200, count=len, unit="characters", idempotent=False, can_find=True,
        requires_media=True, max_images=MAX_ITEMS, image_types=frozenset({"image/jpeg"}),
        max_image_bytes=8 * 1024 * 1024, max_videos=MAX_ITEMS,
        video_types=frozenset({"video/mp4", "video/quicktime"}), max_video_bytes=1024 ** 3,
        images_with_video=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = InstagramCredentials
    identity_fields: ClassVar[str] = "id,user_id,username,name"

    # -- check_platform ---------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        p, problems = self.platform, []
        if len(post.media) > MAX_ITEMS:
            problems.append(Problem(p, "media", f"{len(post.media)} items; a carousel holds at most "
                                                f"{MAX_ITEMS}"))
        words = URL_RE.sub(" ", post.body)  # a "#fragment" in a link is no hashtag
        for what, pattern, limit in (("hashtags", _HASHTAG_RE, MAX_HASHTAGS),
                                     ("mentions", _MENTION_RE, MAX_MENTIONS)):
            found = len(pattern.findall(words))
            if found > limit:
                problems.append(Problem(p, "text", f"has {found} {what}; the limit is {limit}"))
        for n, image in enumerate(post.images, 1):
            if image.width and image.height:
                aspect = image.width / image.height
                if not MIN_ASPECT - 0.005 <= aspect <= MAX_ASPECT + 0.005:
                    problems.append(Problem(p, "media", f"image {n} is {image.width}x{image.height} (aspect "
                                                        f"{aspect:.2f}); feed images must be 4:5 to 1.91:1"))
        return problems

    # -- publish ----------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` cannot be sent: Graph has no idempotency key (the saved container ids stand in).
        progress = progress if progress is not None else Progress()
        user, token = self._user(account), self._token(account)
        if progress.get("media_id"):
            return self._published(account, token, progress.get("media_id"))
        if not post.media:
            raise Rejected("instagram: a post needs an image or a video")
        for item in post.media:
            if not item.url:
                raise Rejected(f"instagram: the {item.kind} has no public URL for Instagram to fetch; set "
                               "CROSSPOST_MEDIA_PUBLIC_URL to where the media directory is served")
        after = VIDEO_POLL_SECONDS if post.videos else IMAGE_POLL_SECONDS
        container = progress.get("container")
        # No container yet is handled like an expired one: create it.
        state = self._state(account, token, container, progress, after) if container else "EXPIRED"
        if state == "PUBLISHED":
            # Published, but the answer with the media id was lost: look it up by its caption.
            found = self.find_published(account, post, key)
            if found is None:
                raise Transient("instagram: the container is published but the post is not listed yet",
                                maybe_sent=True)
            progress.save(media_id=found.remote_id)
            return found
        if state == "EXPIRED":
            if not progress.get("children"):
                self._check_quota(account, user, token)
            container = self._create(account, user, token, post, progress, after)
            self._state(account, token, container, progress, after)
        with progress.sending("media_publish"):
            created = self.call(account, "POST", f"{user}/media_publish", token,
                                data={"creation_id": container})
        if not created.get("id"):
            raise Transient("instagram: media_publish answered without an id", maybe_sent=True)
        progress.save(media_id=str(created["id"]))
        return self._published(account, token, str(created["id"]))

    # -- media containers ---------------------------------------------------------------------------
    def _create(self, account: AccountRef, user: str, token: str, post: Post, progress: Progress,
                after: float) -> str:
        """The container to publish: one item, or the carousel of the saved (or new) children."""
        if len(post.media) == 1:
            container = self._container(account, user, token, post.media[0], caption=post.body)
            progress.save(container=container, children=[])
            return container
        children = list(progress.get("children") or [])
        for item in post.media[len(children):]:
            children.append(self._container(account, user, token, item, carousel=True))
            progress.save(children=children)
        for child in children:
            if self._state(account, token, child, progress, after) != "FINISHED":
                progress.save(children=[])  # expired before the carousel was made: make them again
                raise InProgress("instagram: carousel items expired; creating them again", after=1)
        fields = {"media_type": "CAROUSEL", "children": ",".join(children), "caption": post.body}
        container = _id(self.call(account, "POST", f"{user}/media", token, data=fields), "media")
        progress.save(container=container)
        return container

    def _container(self, account: AccountRef, user: str, token: str, item: Media, *, caption: str = "",
                   carousel: bool = False) -> str:
        fields: dict[str, Any] = {"image_url": item.url} if item.kind == "image" else {
            # Single videos are Reels since 2023; VIDEO remains for carousel items only.
            "media_type": "VIDEO" if carousel else "REELS", "video_url": item.url}
        if carousel:
            fields["is_carousel_item"] = "true"
        else:
            fields["caption"] = caption
            if item.kind == "video":
                fields["share_to_feed"] = "true"
        if item.alt and item.kind == "image":
            fields["alt_text"] = item.alt
        return _id(self.call(account, "POST", f"{user}/media", token, data=fields), "media")

    def _state(self, account: AccountRef, token: str, container: str, progress: Progress,
               after: float) -> str:
        node = self.call(account, "GET", container, token, params={"fields": "status_code,status"})
        try:
            return graph.container_state(self.platform, node.get("status_code"),
                                         str(node.get("status") or ""), after=after)
        except Rejected:
            # A failed container is never published; forget it so that "publish again" starts over.
            progress.save(container=None, children=[])
            raise

    def _check_quota(self, account: AccountRef, user: str, token: str) -> None:
        """Refuse to start while the 24-hour publishing quota is used up (read, not hard-coded)."""
        body = self.call(account, "GET", f"{user}/content_publishing_limit", token,
                         params={"fields": "config,quota_usage"})
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        used, total = entry.get("quota_usage"), (entry.get("config") or {}).get("quota_total")
        if isinstance(used, int) and isinstance(total, int) and used >= total:
            raise RateLimited(f"instagram: {used} of {total} posts published in the last 24 hours (quota)",
                              QUOTA_WAIT)

    # -- followers ----------------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        node = self.call(account, "GET", self._user(account), self._token(account),
                         params={"fields": "followers_count"})
        count = node.get("followers_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient("instagram: the account answered without followers_count")
        return count

    # -- refresh ------------------------------------------------------------------------------------
    def refresh(self, account: AccountRef) -> Credentials:
        """A new 60-day token. Instagram Login: ``ig_refresh_token`` (the token must be at least 24 h
        old and unexpired). Facebook Login: ``fb_exchange_token`` with the app's id and secret. An
        expired token can be refreshed by neither: refresh before ``expires_at``."""
        credentials, token = account.credentials, self._token(account)
        if _login(account) == "facebook":
            app_id, secret = credentials.get("app_id"), credentials.get("app_secret")
            if not app_id or not secret:
                raise AuthExpired("instagram: a Facebook-Login token needs app_id and app_secret to be "
                                  "extended; re-authorise the account")
            url = self.graph_url(account, "oauth/access_token")
            params = {"grant_type": "fb_exchange_token", "client_id": app_id, "client_secret": secret,
                      "fb_exchange_token": token}
        else:
            url = f"{self.base_url(account)}/refresh_access_token"
            params = {"grant_type": "ig_refresh_token", "access_token": token}
        try:
            response = self.request(account, "GET", url, params=params)
        except AuthExpired as exc:
            raise AuthExpired(f"{exc.reason}; an expired token cannot be refreshed: re-authorise the account",
                              status=exc.status) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("access_token"):
            raise Transient("instagram: the token refresh answered without a token")
        expires_in = body.get("expires_in")
        expires_at = (datetime.now(UTC) + timedelta(seconds=int(expires_in))).isoformat(timespec="seconds") \
            if isinstance(expires_in, int | float) else None
        return credentials.merged(access_token=body["access_token"], expires_at=expires_at)

    # -- find_published -----------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The account's own media whose caption is the post's, no older than the first attempt."""
        user, token = self._user(account), self._token(account)
        wanted = " ".join(post.body.split())
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        for item, created in self.edge(account, f"{user}/media", token, "id,caption,timestamp,permalink",
                                       stamp="timestamp", since=since):
            if " ".join(str(item.get("caption") or "").split()) == wanted:
                return Published(remote_id=str(item["id"]), url=item.get("permalink"), published_at=created)
        return None

    # -- classify -----------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        error = graph.parse_error(response)
        if error is not None:
            reason = f"{self.platform}: {error.describe()}"
            if error.code == 9 or error.subcode == 2207042:
                return RateLimited(f"{reason}; the 24-hour publishing quota is used up", QUOTA_WAIT,
                                   status=response.status_code)
            if error.code == 9007 or error.subcode == 2207027:
                return InProgress(f"{reason}; the media is not ready yet", after=IMAGE_POLL_SECONDS)
            if error.subcode == 2207001:
                return Transient(reason, status=response.status_code)  # maybe sent: graph.RULES
            if error.subcode in _FETCH_FAILED:
                return Rejected(f"{reason}; Instagram could not fetch the media: the URLs under "
                                "CROSSPOST_MEDIA_PUBLIC_URL must be reachable from the internet",
                                status=response.status_code)
        return super().classify(response)

    # -- helpers ------------------------------------------------------------------------------------
    def base_url(self, account: AccountRef) -> str:
        if account.base_url:
            return account.base_url.rstrip("/")
        return FACEBOOK_HOST if _login(account) == "facebook" else INSTAGRAM_HOST

    def identity_node_of(self, account: AccountRef) -> str:
        # With Facebook Login ``me`` is the Facebook user: ask the Instagram account itself (Graph
        # refuses a token that does not manage it).
        return self._user(account) if _login(account) == "facebook" else "me"

    def _user(self, account: AccountRef) -> str:
        return account.credentials.get("user_id") or account.handle.lstrip("@")

    def _token(self, account: AccountRef) -> str:
        return account.credentials.require("access_token", self.platform)

    def _published(self, account: AccountRef, token: str, media_id: str) -> Published:
        node = self.call(account, "GET", media_id, token, params={"fields": "permalink,timestamp"})
        return Published(remote_id=media_id, url=node.get("permalink"),
                         published_at=parse_time(node.get("timestamp")))


def _login(account: AccountRef) -> str:
    return "facebook" if account.credentials.get("login") == "facebook" else "instagram"


def _id(body: dict[str, Any], what: str) -> str:
    if not body.get("id"):
        raise Transient(f"instagram: {what} answered without an id", maybe_sent=True)
    return str(body["id"])
