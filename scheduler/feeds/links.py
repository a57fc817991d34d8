"""Article links: the canonical form two feeds agree on (the cross-feed dedupe key), and UTM tagging."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that say who sent the reader, never which article: dropped from the canonical form.
TRACKING = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wt.mc_id",
    "spm", "scm", "from", "share_token", "ref_src", "ref_url", "cmpid", "ocid", "s_cid",
})


def _tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING


def canonical(url: str) -> str:
    """``url`` as the same article under any of its spellings: http and https alike, the host in lower
    case without a default port, tracking parameters (``utm_*`` and the like) and the fragment
    dropped, the other parameters sorted, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _tracking(k))
    return urlunsplit(("https", netloc, path, urlencode(query), ""))


def link_key(url: str | None) -> str | None:
    """The fixed-size dedupe key of an article link (None for an item without one)."""
    if not url:
        return None
    return hashlib.sha256(canonical(url).encode("utf-8")).hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# utm_content names the account, so the centre can tell what each account of the matrix brings back.
DEFAULT_UTM = {"utm_source": "{platform}", "utm_medium": "social", "utm_campaign": "feed-{feed}",
               "utm_content": "{account}"}


UNFILLED = re.compile(r"\{(platform|feed|account)\}")


def utm_values(config: dict[str, str], **names: str) -> dict[str, str]:
    """The UTM parameters for one post: ``config`` (a feed's, over the defaults; an empty value drops
    a parameter) with ``{platform}``, ``{feed}`` and the other ``names`` filled in."""
    merged = {**DEFAULT_UTM, **config}
    values = {}
    for key, template in merged.items():
        value = template
        for name, filled in names.items():
            value = value.replace("{" + name + "}", filled)
        # A parameter naming what this post does not have (the story-wide text has no account) is left out.
        if value and not UNFILLED.search(value):
            values[key] = value
    return values


def with_utm(url: str, params: dict[str, str]) -> str:
    """``url`` carrying ``params``, replacing any UTM parameters it had; the rest kept in order."""
    if not params:
        return url
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))
