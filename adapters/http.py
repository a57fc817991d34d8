"""One way to speak HTTP to a platform: timeouts, a user agent, no redirects, HTTP status -> typed
error, Retry-After, and no credential ever copied into an error text.

What differs between platforms is declared once per adapter as :class:`Rules` (where the error
message lives, which headers say when a rate limit resets, what a documented unknown outcome looks
like); :func:`send` does the rest. The rule "was it maybe sent?" lives in :func:`maybe_sent` alone.
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import logging
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


class PlatformSession(requests.Session):
    """requests' Session without the per-request merging of settings this project never sets on a
    session: auth, query parameters, cookies (refused, below) and, unless the environment names a
    proxy, proxies. Those merges, each with requests' runtime ``isinstance`` checks against typing
    Protocols, were about half of what requests itself spends preparing a request (bench/RESULTS.md).
    Whatever does need merging (a proxy, an auth or cookies on the request) takes requests' own path."""

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if (self.trust_env or self.auth or self.params or any(self.hooks.values()) or request.auth
                or request.cookies):
            return super().prepare_request(request)
        headers = requests.structures.CaseInsensitiveDict(self.headers)
        for name, value in (request.headers or {}).items():
            # As requests merges them: a header set to None on the request removes the session's.
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        prepared = requests.PreparedRequest()
        prepared.prepare(method=(request.method or "GET").upper(), url=request.url, files=request.files,
                         data=request.data, json=request.json, headers=headers, params=request.params,
                         auth=None, cookies=self.cookies, hooks=request.hooks)
        return prepared

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if self.trust_env or proxies or self.proxies:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {"proxies": {}, "stream": self.stream if stream is None else stream,
                "verify": self.verify if verify is None else verify,
                "cert": self.cert if cert is None else cert}


def new_session() -> requests.Session:
    session = PlatformSession()
    session.headers["User-Agent"] = USER_AGENT
    # A session is kept alive and shared by every account of a platform on one thread
    # (``adapters.get_adapter``): a cookie one account's answer set must never ride on another's request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # With trust_env, requests reads the proxy variables and ~/.netrc again on every request (a third of
    # its own CPU per publish); that is needed only when a proxy is configured.
    session.trust_env = bool(urllib.request.getproxies())
    # No automatic retries: whether a retry is safe is the scheduler's decision.
    # Redirects are never followed either (send() passes allow_redirects=False): a followed 30x can
    # turn a POST into a GET or carry a token to another host.
    adapter = requests.adapters.HTTPAdapter(max_retries=urllib3.Retry(total=0, connect=0, read=0,
                                                                      redirect=0, status=0))
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


# Requests that change nothing: a failed one never leaves anything behind.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def body_of(response: requests.Response) -> Any:
    """The parsed JSON of ``response``, or None when it is not JSON."""
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def object_of(response: requests.Response) -> dict[str, Any]:
    """The JSON object in ``response``, or ``{}`` for anything else: for reading error bodies and
    envelopes, where a missing object is handled by the caller."""
    body = body_of(response)
    return body if isinstance(body, dict) else {}


def common_words(body: Any) -> str | None:
    """The platform's own words in an error body of the common shapes: ``{"error": "...",
    "error_description": "..."}`` (OAuth, Mastodon), ``{"error": {"message": ...}}`` (Google, Graph),
    ``{"message": ...}``, ``{"detail"|"title"|"description": ...}``."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    words: list[str] = []
    if isinstance(error, dict):
        words += [str(error[k]) for k in ("code", "message") if error.get(k)]
    elif error:
        words.append(str(error))
    words += [str(body[k]) for k in ("error_description", "title", "message", "detail", "description")
              if body.get(k) and not isinstance(body[k], dict | list)]
    return ": ".join(dict.fromkeys(words)) or None


def _never(body: Any) -> bool:
    return False


@dataclass(frozen=True)
class Rules:
    """How one platform words a failed answer, declared once per adapter (``Adapter.rules``)."""

    # The platform's own words in a failed answer's JSON body; None when the body is not its envelope.
    words: Callable[[Any], str | None] = common_words
    # Headers giving the reset of an exhausted rate limit (Unix seconds or ISO-8601), read with
    # Retry-After on a 429; the longest wait wins, as the one certainly honoured.
    reset_headers: tuple[str, ...] = ()
    # Seconds to wait on a 429 that names no time (a callable for daily windows).
    default_wait: float | Callable[[], float] = 60.0
    rate_scope: str = "account"
    # A refusal in the platform's own words that platforms.md documents as an unknown outcome
    # (Graph ``is_transient`` and codes 1/2 on a create): maybe sent, although not a 5xx.
    unknown_outcome: Callable[[Any], bool] = _never
    # 5xx statuses after which platforms.md documents that the request had no effect (none so far).
    harmless_5xx: frozenset[int] = frozenset()
    # 3xx statuses that are an answer of this API, not a redirect (YouTube's 308 Resume Incomplete).
    answers_3xx: frozenset[int] = frozenset()
    # What an operator does about a refused credential, where the platform has no refresh.
    auth_hint: str = ""


DEFAULT_RULES = Rules()


def maybe_sent(method: str, status: int | None, rules: Rules = DEFAULT_RULES, body: Any = None, *,
               reached: bool = True) -> bool:
    """Whether a failed request may have done its work, the one rule for every platform: a request
    that changes nothing never did; an answer in the platform's own words (3xx, 4xx, 429) is
    definite unless documented as an unknown outcome; silence after sending (``status`` None,
    ``reached``) and 5xx may have, unless documented harmless."""
    if method.upper() in SAFE_METHODS:
        return False
    if status is None:
        return reached
    if status < 500:
        return rules.unknown_outcome(body)
    return status not in rules.harmless_5xx


def rate_wait(response: requests.Response, rules: Rules = DEFAULT_RULES) -> float:
    waits = [w for w in (parse_retry_after(response.headers.get("Retry-After")),
                         *(parse_reset(response.headers.get(h)) for h in rules.reset_headers))
             if w is not None]
    if waits:
        return max(waits)
    return rules.default_wait() if callable(rules.default_wait) else rules.default_wait


def default_error(response: requests.Response, platform: str, detail: str,
                  rules: Rules = DEFAULT_RULES) -> AdapterError:
    """The error for a failed answer that the adapter's ``classify`` left to the defaults."""
    status = response.status_code
    if 300 <= status < 400:
        return redirect_error(response, platform)
    if status == 429:
        return RateLimited(f"{platform}: rate limited (429){detail}", rate_wait(response, rules),
                           status=status, scope=rules.rate_scope)
    if status >= 500:
        return Transient(f"{platform}: server error {status}{detail}", status=status, maybe_sent=True)
    if status == 401:
        hint = f"; {rules.auth_hint}" if rules.auth_hint else ""
        return AuthExpired(f"{platform}: credentials refused (401){detail}{hint}", status=status)
    return Rejected(f"{platform}: refused with {status}{detail}", status=status)


def redirect_error(response: requests.Response, platform: str) -> Rejected:
    try:
        host = urlsplit(response.headers.get("Location", "")).hostname or "no location"
    except ValueError:
        host = "an invalid location"
    return Rejected(f"{platform}: answered {response.status_code}, a redirect to {host}; adapters never "
                    "follow redirects (check the account's base URL)", status=response.status_code)


def json_object(response: requests.Response, platform: str) -> dict[str, Any]:
    """The JSON object of a successful answer: ``{}`` for an empty body or another JSON value, and
    Transient for a body that is not JSON (maybe sent only when the request could change something)."""
    if not response.content:
        return {}
    body = json_body(response, platform, None)
    return body if isinstance(body, dict) else {}


def json_body(response: requests.Response, platform: str, kind: type | None = dict) -> Any:
    """The JSON of a successful answer, of ``kind`` (dict, list, or None for any). An answer without
    it is Transient; maybe sent only when the request could have changed something."""
    body = body_of(response)
    if body is None or (kind is not None and not isinstance(body, kind)):
        method = getattr(response.request, "method", None) or "GET"
        what = f"a JSON {kind.__name__}" if kind is not None else "JSON"
        raise Transient(f"{platform}: {_describe(method, response.url or '')} answered "
                        f"{response.status_code} without {what}", status=response.status_code,
                        maybe_sent=maybe_sent(method, None))
    return body


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    platform: str,
    classify: Callable[[requests.Response], Exception | None] | None = None,
    timeout: float | None = None,
    secrets: Iterable[str] = (),
    rules: Rules = DEFAULT_RULES,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; return the response if it succeeded (2xx, or a 3xx the rules call an
    answer), else raise a typed error."""
    secrets = list(secrets)
    kwargs["allow_redirects"] = False
    try:
        response = session.request(method, url, timeout=timeout or DEFAULT_TIMEOUT, **kwargs)
    except requests.Timeout as exc:
        raise Transient(f"{platform}: timed out on {scrub(_describe(method, url), secrets)}",
                        maybe_sent=maybe_sent(method, None, reached=_sent(exc))) from None
    except requests.ConnectionError as exc:
        sent = _sent(exc)
        what = "connection dropped" if sent else "could not connect"
        raise Transient(f"{platform}: {what} on {scrub(_describe(method, url), secrets)}",
                        maybe_sent=maybe_sent(method, None, reached=sent)) from None
    except requests.RequestException as exc:
        # InvalidURL and friends quote the whole URL, which may carry a token: name only the kind.
        raise Rejected(f"{platform}: cannot send {scrub(_describe(method, url), secrets)}: "
                       f"{type(exc).__name__}") from None
    status = response.status_code
    if 200 <= status < 300 or status in rules.answers_3xx:
        return response
    # Scrub the whole body before anything reads it: a classifier that cuts the text first could
    # leave half a token behind the cut.
    response._content = scrub(response.text, secrets).encode("utf-8")
    response.encoding = "utf-8"
    if 300 <= status < 400:
        error: Exception | None = redirect_error(response, platform)
    else:
        error = classify(response) if classify else None
    body = body_of(response)
    if error is None:
        words = rules.words(body) or response.text[:300].strip()
        error = default_error(response, platform, f": {words}" if words else "", rules)
    if isinstance(error, Transient):
        # Whatever the adapter's classify said, "maybe sent" follows the one rule.
        error.maybe_sent = maybe_sent(method, status, rules, body)
    if isinstance(error, AdapterError):
        error.reason = scrub(error.reason, secrets)
        error.args = (error.reason,)
    raise error
