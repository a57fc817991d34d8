"""Threads (Meta): a container is created, processed and published, one per post (platforms.md §4).

Credentials: ``access_token`` (long-lived, 60 days), ``user_id`` (the Threads user id; ``me`` when
absent) and ``expires_at``. Meta fetches media by URL, so every Media needs ``url``.

Errors are Meta's Graph envelope, mapped by :mod:`adapters.graph` (shared with Facebook and
Instagram); only the publishing quota and "container not ready" are Threads' own.

Nothing here is idempotent, so every step is saved in the delivery's progress: the container being
published (``container``), carousel children (``children``) and the media id of every part of a
reply chain that went out (``posted``). A retry looks at the saved container's status before doing
anything: FINISHED is published, PUBLISHED is found on the profile, EXPIRED is made again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import regex
import requests

from adapters import graph, http
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
    parse_time,
    part_step,
)
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.graph import GraphAdapter, container_state
from adapters.text import URL_RE, split_thread

MAX_LINKS = 5
MAX_CAROUSEL = 20
# Meta suggests ~30 s for media processing and polling about once a minute.
POLL_AFTER = 30.0
# Rolling 24 h publishing quota (250 posts): the oldest post leaves the window at an unknown time.
QUOTA_WAIT = 3600.0
_CLOCK_SKEW = timedelta(minutes=2)
_LIST_LIMIT = 25
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")
_QUOTA_SUBCODES = {2207042}


def threads_length(text: str) -> int:
    """Meta's 500: code points, except that an emoji counts its UTF-8 bytes (the docs' wording; the
    stricter reading, so a post we accept is never refused for its emoji)."""
    return sum(len(g.encode()) if _EMOJI.search(g) else len(g) for g in regex.findall(r"\X", text))


def links(text: str, attachment: str | None = None) -> set[str]:
    found = set(URL_RE.findall(text))
    return found | {attachment} if attachment else found


class ThreadsCredentials(CredentialsModel):
    """A long-lived Threads token (60 days; refresh writes the new one and its expiry)."""

    access_token: Token
    user_id: NumericId | None = None
    expires_at: datetime | None = None


class ThreadsAdapter(GraphAdapter):
    platform: ClassVar[str] = "threads"
    default_base_url: ClassVar[str] = "https://graph.threads.net"
    api_version: ClassVar[str] = "v1.0"

    # -- caps ---------------------------------------------------------------------------------
    # One image or video, or a carousel of 2-20 mixing both; Meta's specs (platforms.md §4.4).
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=500, count=threads_length, unit="characters (emoji count their UTF-8 bytes)",
        can_find=True, max_images=MAX_CAROUSEL, image_types=frozenset({"image/jpeg", "image/png"}),
        max_image_bytes=8 * 1024 * 1024, max_videos=MAX_CAROUSEL,
        video_types=frozenset({"video/mp4", "video/quicktime"}), max_video_bytes=1024 ** 3,
        images_with_video=True, threads=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = ThreadsCredentials
    identity_fields: ClassVar[str] = "id,username"

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems = []
        for i, part in enumerate(self._parts(post), 1):
            found = len(links(part, post.link if i == 1 and not post.media else None))
            if found > MAX_LINKS:
                where = f"part {i} has" if post.thread else "has"
                problems.append(Problem(self.platform, "text",
                                        f"{where} {found} links; the limit is {MAX_LINKS}"))
        if len(post.media) > MAX_CAROUSEL:
            problems.append(Problem(self.platform, "media", f"{len(post.media)} items; a carousel holds at "
                                                            f"most {MAX_CAROUSEL}"))
        for m in post.media:
            if m.width and m.height and max(m.width / m.height, m.height / m.width) > 10:
                problems.append(Problem(self.platform, "media", f"{m.kind} is {m.width}x{m.height}; the "
                                                                "aspect ratio may be at most 10:1"))
            if m.kind == "video" and m.width and m.width > 1920:
                problems.append(Problem(self.platform, "media", f"video is {m.width} px wide; the limit "
                                                                "is 1920"))
        return problems

    # -- publish ------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` cannot be sent anywhere: the saved container id is what makes a retry safe.
        progress = progress if progress is not None else Progress()
        parts = self._parts(post)
        posted: list[str] = list(progress.get("posted") or [])
        while len(posted) < len(parts):
            posted.append(self._publish_part(account, post, parts, len(posted), posted, progress))
            progress.save(posted=list(posted), container=None)
        return self._published(account, posted[0])

    def _publish_part(self, account: AccountRef, post: Post, parts: list[str], i: int, posted: list[str],
                      progress: Progress) -> str:
        container = progress.get("container")
        if container is None:
            params = self._container_params(account, post, parts[i], i, posted, progress)
            container = self._create(account, params)
            progress.save(container=container)
            if params["media_type"] == "TEXT":
                return self._publish_container(account, container, part_step(i, len(parts)), progress)
        status = container_state(self.platform, *self._status(account, container), after=POLL_AFTER)
        if status == "FINISHED":
            return self._publish_container(account, container, part_step(i, len(parts)), progress)
        if status == "PUBLISHED":
            # The publish went out but its answer was lost: find the post it made.
            found = self._find(account, parts[i], reply=i > 0, since=None)
            if found is None:
                raise Transient(f"threads: container {container} is published but its post is not listed "
                                "yet", maybe_sent=True)
            return found.remote_id
        # EXPIRED: unpublished containers (and their children) live 24 h; make them again.
        progress.save(container=None, children=None)
        return self._publish_part(account, post, parts, i, posted, progress)

    def _container_params(self, account: AccountRef, post: Post, text: str, i: int, posted: list[str],
                          progress: Progress) -> dict[str, str]:
        params = {"text": text}
        if i > 0:
            params["reply_to_id"] = posted[-1]
        if i > 0 or not post.media:
            params["media_type"] = "TEXT"
            if post.link and i == 0:
                params["link_attachment"] = post.link
        elif len(post.media) == 1:
            params.update(_media_params(post.media[0]))
        else:
            children = self._children(account, post.media, progress)
            params.update(media_type="CAROUSEL", children=",".join(children))
        return params

    def _children(self, account: AccountRef, media: tuple[Media, ...], progress: Progress) -> list[str]:
        children: list[str] = list(progress.get("children") or [])
        for m in media[len(children):]:
            children.append(self._create(account, {**_media_params(m), "is_carousel_item": "true"}))
            progress.save(children=list(children))
        # Every item is read each time, so items processing side by side count down together.
        statuses = [self._status(account, child) for child in children]
        if any(status == "EXPIRED" for status, _ in statuses):
            progress.save(children=None)
            return self._children(account, media, progress)
        for status, message in statuses:
            container_state(self.platform, status, message, after=POLL_AFTER)
        return children

    def _create(self, account: AccountRef, params: dict[str, str]) -> str:
        answer = self._call(account, "POST", f"{self._user(account)}/threads", data=params)
        return _id(answer, "a container")

    def _status(self, account: AccountRef, container: str) -> tuple[str, str]:
        answer = self._call(account, "GET", container, params={"fields": "id,status,error_message"})
        return str(answer.get("status") or ""), str(answer.get("error_message") or "")

    def _publish_container(self, account: AccountRef, container: str, step: str, progress: Progress) -> str:
        with progress.sending(step):
            answer = self._call(account, "POST", f"{self._user(account)}/threads_publish",
                                data={"creation_id": container})
        return _id(answer, "a media id")

    def _published(self, account: AccountRef, media_id: str) -> Published:
        answer = self._call(account, "GET", media_id, params={"fields": "id,permalink,timestamp"})
        return Published(remote_id=media_id, url=answer.get("permalink"),
                         published_at=parse_time(answer.get("timestamp")))

    # -- followers ----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        """``followers_count`` from the user insights (needs threads_manage_insights). The answer's
        shape is not pinned down in what we read: ``total_value.value`` as insights pages document for
        totals, else the last of ``values``."""
        answer = self._call(account, "GET", f"{self._user(account)}/threads_insights",
                            params={"metric": "followers_count"})
        for metric in answer.get("data") or []:
            if not isinstance(metric, dict) or metric.get("name") != "followers_count":
                continue
            total = metric.get("total_value")
            values = [v for v in metric.get("values") or [] if isinstance(v, dict)] or [{}]
            value = total.get("value") if isinstance(total, dict) else values[-1].get("value")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        raise Transient("threads: threads_insights answered without followers_count")

    # -- refresh ------------------------------------------------------------------------------
    def refresh(self, account: AccountRef) -> Credentials:
        """A new 60-day token from the current one (it must be at least 24 h old and not expired; an
        expired one cannot be refreshed: the account must be authorised again)."""
        token = account.credentials.require("access_token", self.platform)
        try:
            response = self.request(account, "GET", f"{self.base_url(account)}/refresh_access_token",
                                    params={"grant_type": "th_refresh_token", "access_token": token})
        except (AuthExpired, Rejected) as exc:
            raise AuthExpired(f"{exc.reason}; re-authorise the account", status=exc.status) from None
        data = _json(response)
        if not data.get("access_token"):
            raise Transient("threads: refresh answered without an access token")
        expires = datetime.now(UTC) + timedelta(seconds=float(data.get("expires_in") or 5_184_000))
        return account.credentials.merged(access_token=data["access_token"],
                                          expires_at=expires.isoformat(timespec="seconds"))

    # -- find_published -----------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The first part of ``post`` among the profile's latest posts, made no earlier than the
        delivery's first attempt. A later part behind a fence needs no lookup here: its container
        id was saved before the fence, and publish's retry asks the container whether it went out
        (PUBLISHED) before publishing anything."""
        if progress is not None and (progress.fenced_part or 0) > 0:
            return None
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        found = self._find(account, self._parts(post)[0], reply=False, since=since)
        return self._published(account, found.remote_id) if found else None

    def _find(self, account: AccountRef, text: str, reply: bool, since: datetime | None) -> Published | None:
        edge = "replies" if reply else "threads"
        answer = self._call(account, "GET", f"{self._user(account)}/{edge}",
                            params={"fields": "id,text,timestamp,permalink", "limit": _LIST_LIMIT})
        items = answer.get("data")
        if not isinstance(items, list):
            raise Transient(f"threads: the profile's {edge} were not a list")
        for item in items:
            when = parse_time(item.get("timestamp"))
            if since and when and when < since:
                return None  # newest first
            if " ".join(str(item.get("text") or "").split()) == " ".join(text.split()):
                return Published(remote_id=str(item["id"]), url=item.get("permalink"), published_at=when)
        return None

    # -- classify -----------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        """Meta's Graph envelope, as :func:`adapters.graph.classify` maps it for every Graph platform,
        except for what only Threads says: the publishing quota and a container not ready yet."""
        error = graph.parse_error(response)
        if error is not None and (error.subcode in _QUOTA_SUBCODES
                                  or (error.code == 9 and "limit" in error.message.lower())):
            return RateLimited(f"threads: {error.describe()}; the 24 h publishing quota is used up",
                               QUOTA_WAIT, status=response.status_code)
        if error is not None and error.code == 9007:
            return InProgress(f"threads: {error.describe()}", after=POLL_AFTER)
        return graph.classify(response, self.platform)

    # -- helpers ------------------------------------------------------------------------------
    def _parts(self, post: Post) -> list[str]:
        body = post.body
        if post.thread and self.caps.count(body) > self.caps.text_limit:
            return split_thread(body, self.caps.text_limit, self.caps.count)
        return [body]

    def _user(self, account: AccountRef) -> str:
        return account.credentials.get("user_id") or "me"

    def _call(self, account: AccountRef, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call(account, method, path, account.credentials.require("access_token", self.platform),
                         **kwargs)


def _media_params(m: Media) -> dict[str, str]:
    if not m.url:
        raise Rejected(f"threads: {m.kind} {m.path} has no public URL; Meta fetches media by URL, so set "
                       "CROSSPOST_MEDIA_PUBLIC_URL to where the media directory is served")
    kind = "IMAGE" if m.kind == "image" else "VIDEO"
    params = {"media_type": kind, f"{kind.lower()}_url": m.url}
    return {**params, "alt_text": m.alt} if m.alt else params


def _id(answer: dict[str, Any], what: str) -> str:
    if not answer.get("id"):
        raise Transient(f"threads: the answer carried no id for {what}", maybe_sent=True)
    return str(answer["id"])


def _json(response: requests.Response) -> dict[str, Any]:
    return http.json_object(response, "threads")
