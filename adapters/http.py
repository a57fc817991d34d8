"""One way to speak HTTP to a platform: timeouts, a user agent, HTTP status -> typed error,
Retry-After, and no credential ever copied into an error text."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3

from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient

USER_AGENT = "crosspost/0.1 (+https://github.com/crosspost)"
DEFAULT_TIMEOUT = 30.0
# urllib3 logs request lines (with a Telegram bot token in the path) at DEBUG.
logging.getLogger("urllib3").setLevel(logging.WARNING)


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    # No automatic retries: whether a retry is safe is the scheduler's decision.
    adapter = requests.adapters.HTTPAdapter(max_retries=urllib3.Retry(total=0, connect=0, read=0,
                                                                      redirect=3, status=0))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``, also where it appears percent-encoded
    (an error page quoting the request URL)."""
    for secret in secrets:
        if secret:
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret))):
                text = text.replace(form, "***")
    return text


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit reset given as Unix seconds or an ISO-8601 time."""
    if not value:
        return None
    now = now if now is not None else time.time()
    try:
        return max(0.0, float(value) - now)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _describe(method: str, url: str) -> str:
    # Only the host and the last path segment: a Telegram URL carries the bot token in its path.
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{method} (an invalid URL)"
    return f"{method} {parts.netloc}/…/{parts.path.rsplit('/', 1)[-1]}"


def _sent(exc: BaseException) -> bool:
    """Whether the request may have reached the server before ``exc``."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return False
        seen = seen.__cause__ or seen.__context__ or (
            seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
    return True


def default_error(response: requests.Response, platform: str, detail: str) -> AdapterError:
    status = response.status_code
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(f"{platform}: rate limited (429){detail}", wait if wait is not None else 60.0,
                           status=status)
    if status >= 500:
        return Transient(f"{platform}: server error {status}{detail}", status=status, maybe_sent=True)
    if status == 401:
        return AuthExpired(f"{platform}: credentials refused (401){detail}", status=status)
    return Rejected(f"{platform}: refused with {status}{detail}", status=status)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    platform: str,
    classify: Callable[[requests.Response], Exception | None] | None = None,
    timeout: float | None = None,
    secrets: Iterable[str] = (),
    **kwargs: Any,
) -> requests.Response:
    """Send one request; return the response if it succeeded (2xx), else raise a typed error."""
    secrets = list(secrets)
    try:
        response = session.request(method, url, timeout=timeout or DEFAULT_TIMEOUT, **kwargs)
    except requests.Timeout as exc:
        sent = _sent(exc)
        raise Transient(f"{platform}: timed out on {scrub(_describe(method, url), secrets)}",
                        maybe_sent=sent) from None
    except requests.ConnectionError as exc:
        sent = _sent(exc)
        what = "connection dropped" if sent else "could not connect"
        raise Transient(f"{platform}: {what} on {scrub(_describe(method, url), secrets)}",
                        maybe_sent=sent) from None
    except requests.RequestException as exc:
        # InvalidURL and friends quote the whole URL, which may carry a token: name only the kind.
        raise Rejected(f"{platform}: cannot send {scrub(_describe(method, url), secrets)}: "
                       f"{type(exc).__name__}") from None
    if response.ok:
        return response
    # Scrub the whole body before anything reads it: a classifier that cuts the text first could
    # leave half a token behind the cut.
    response._content = scrub(response.text, secrets).encode("utf-8")
    response.encoding = "utf-8"
    error = classify(response) if classify else None
    if error is None:
        body = response.text[:300].strip()
        error = default_error(response, platform, f": {body}" if body else "")
    if isinstance(error, AdapterError):
        error.reason = scrub(error.reason, secrets)
        error.args = (error.reason,)
    raise error
