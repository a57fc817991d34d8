"""A Bluesky PDS stand-in: app-password sessions, post records with images, video and replies,
blobs, handle resolution, profiles.

Answers are shaped like the reference PDS (``@atproto/pds`` 0.5.35, measured on loopback, see
``../shared/peers/bluesky`` and ``tests/peer/test_bluesky_peer.py``): status codes,
``{"error", "message"}`` bodies and messages, blob CIDs, the blob type sniffed from the bytes. It is
stricter than the PDS in a few places, on purpose, each a mistake the PDS stores and clients then
show wrong: a refresh token is revoked as soon as it is used (the PDS allows ``refresh_grace``
seconds, 2 hours, answering the same new pair); facets must lie inside the text on UTF-8 character
boundaries with a known feature type; an embed must be of a known type; a reply's root and parent must
be records that exist, with their current CID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import time
from datetime import datetime
from typing import Any

import regex

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn

POST = "app.bsky.feed.post"
_TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_RKEY_RE = re.compile(r"^[A-Za-z0-9._:~-]{1,512}$")
_DATETIME_RE = re.compile(
    r"^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,20})?(Z|[+-][0-2][0-9]:[0-5][0-9])$")
_URI_RE = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$", re.IGNORECASE)
_DID_RE = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]{1,2048}$")
# The lexicon's "language" format: a BCP-47 tag (the atproto validator's pattern, less the
# grandfathered irregular tags).
_LANGUAGE_RE = re.compile(
    r"^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}(?:-[A-Za-z]{3}){0,2})?|[A-Za-z]{4}|[A-Za-z]{5,8})"
    r"(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-x(?:-[A-Za-z0-9]{1,8})+)?|x(?:-[A-Za-z0-9]{1,8})+)$"
)
_FEATURES = {"app.bsky.richtext.facet#link": ("uri", _URI_RE, "uri"),
             "app.bsky.richtext.facet#tag": ("tag", None, "string"),
             "app.bsky.richtext.facet#mention": ("did", _DID_RE, "did")}
_B32_SORT = "234567abcdefghijklmnopqrstuvwxyz"
_ACCESS_SCOPES = ("com.atproto.access", "com.atproto.appPass")
_AT_URI_RE = re.compile(r"^at://(did:[a-z]+:[A-Za-z0-9._:%-]+|[A-Za-z0-9.-]+)(/[a-zA-Z0-9.-]+(/[^/\s]+)?)?$")
_CID_RE = re.compile(r"^b[a-z2-7]{58}$")
_LABEL = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_HANDLE_RE = re.compile(rf"^({_LABEL}\.)+[a-zA-Z]([a-zA-Z0-9-]{{0,61}}[a-zA-Z0-9])?$")
# What uploadBlob recognises from the first bytes (the PDS uses the file-type package); anything else
# keeps the declared Content-Type.
_SIGNATURES = ((0, b"\xff\xd8\xff", "image/jpeg"), (0, b"\x89PNG\r\n\x1a\n", "image/png"),
               (0, b"GIF8", "image/gif"), (8, b"WEBP", "image/webp"), (4, b"ftyp", "video/mp4"))
# Lexicon blob limits of PDS 0.5.35 (app.bsky.embed.images says 2,000,000, not the 1,000,000 older
# lexicons and the official client use).
IMAGE_MAX_BYTES = 2_000_000
_BLOB_MATCH = (("mimeType", "InvalidMimeType", "Mimetype"), ("size", "InvalidSize", "Size"))
VIDEO_MAX_BYTES = 300_000_000


def _error(status: int, name: str, message: str) -> HttpError:
    return HttpError(status, {"error": name, "message": message})


def _invalid(message: str) -> HttpError:
    return _error(400, "InvalidRequest", message)


_LINK_FEATURE = "app.bsky.richtext.facet#link"


def _cut_in_parentheses(covered: str, rest: bytes) -> bool:
    """Whether a link covering ``covered`` stops right before the ``)`` that closes a ``(`` it
    opened (``.../Hangzhou_(disambiguation`` followed by ``)``)."""
    return covered.count("(") > covered.count(")") and rest.startswith(b")")


def _graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def cid_of(record: dict[str, Any]) -> str:
    """A stand-in CID: the same record (whatever its key order) always gets the same one, like the
    DAG-CBOR hash the PDS computes."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")


def blob_cid(data: bytes) -> str:
    """The CID the PDS gives a blob: CIDv1, raw codec, SHA-256, base32."""
    digest = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(digest).decode().lower().rstrip("=")


def _sniff(data: bytes, declared: str) -> str:
    for offset, signature, mime in _SIGNATURES:
        riff = mime != "image/webp" or data[:4] == b"RIFF"
        if data[offset:offset + len(signature)] == signature and riff:
            return mime
    return declared.split(";")[0].strip()


def _now_tid() -> str:
    value = int(time.time() * 1_000_000) << 10 | secrets.randbelow(1024)
    return "".join(_B32_SORT[(value >> shift) & 31] for shift in range(60, -1, -5))


class BlueskyStandIn(StandIn):
    platform = "bluesky"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.access_ttl = 7200.0
        self.refresh_ttl = 90 * 86400.0
        self.refresh_grace = 0.0
        self.accounts: dict[str, dict[str, Any]] = {}  # did -> handle, password, followers
        self.tokens: dict[str, dict[str, Any]] = {}  # jwt -> did, scope, exp, (refresh) used_at, next
        self.repos: dict[str, dict[str, dict[str, Any]]] = {}  # did -> rkey -> record, cid
        self.blobs: dict[str, dict[str, dict[str, Any]]] = {}  # did -> cid -> mimeType, size, temp
        # The reference PDS's default upload limit (PDS_BLOB_UPLOAD_LIMIT); Bluesky's own allow 50 MiB.
        self.blob_limit = 5 * 1024 * 1024
        self.refresh_calls = 0
        self.login_calls = 0
        self.uploads = 0
        self.resolves = 0

    # -- routes ---------------------------------------------------------------------------------
    def register(self) -> None:
        procedures = {
            "com.atproto.server.createSession": self._create_session,
            "com.atproto.server.refreshSession": self._refresh_session,
            "com.atproto.repo.putRecord": lambda req: self._write(req, put=True),
            "com.atproto.repo.createRecord": lambda req: self._write(req, put=False),
            "com.atproto.repo.uploadBlob": self._upload_blob,
        }
        queries = {
            "com.atproto.repo.getRecord": self._get_record,
            "com.atproto.repo.listRecords": self._list_records,
            "app.bsky.actor.getProfile": self._get_profile,
            "com.atproto.server.getSession": self._get_session,
            "com.atproto.identity.resolveHandle": self._resolve_handle,
        }
        for methods, expected in ((procedures, "POST"), (queries, "GET")):
            for nsid, handler in methods.items():
                self.route(expected, f"/xrpc/{re.escape(nsid)}", handler)
                self.route("GET" if expected == "POST" else "POST", f"/xrpc/{re.escape(nsid)}",
                           lambda req, expected=expected: self._wrong_method(req, expected))
        for method in ("GET", "POST"):
            self.route(method, "/xrpc/([^/]+)", lambda req: self._no_service(req))

    def _wrong_method(self, req: Request, expected: str) -> Response:
        raise _invalid(f"Incorrect HTTP method ({req.method}) expected {expected}")

    def _no_service(self, req: Request) -> Response:
        nsid = req.match.group(1) if req.match else req.path
        raise _invalid(f"No service configured for {nsid}")

    # -- accounts and tokens --------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0) -> dict[str, str]:
        handle = handle.lower().lstrip("@")
        digest = base64.b32encode(hashlib.sha256(handle.encode()).digest()).decode().lower()
        did = f"did:plc:{digest[:24]}"
        with self.lock:
            account = self.accounts.setdefault(did, {
                "handle": handle,
                "password": "-".join(secrets.token_hex(2) for _ in range(4)),
            })
            account["followers"] = followers
            access, refresh = self._issue(did)
        return {"identifier": handle, "password": account["password"], "accessJwt": access,
                "refreshJwt": refresh, "did": did}

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 400 ExpiredToken from now on."""
        with self.lock:
            for token in self.tokens.values():
                if token["scope"] in _ACCESS_SCOPES:
                    token["exp"] = 0.0

    def expire_refresh_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                if token["scope"] == "com.atproto.refresh":
                    token["exp"] = 0.0

    def _issue(self, did: str) -> tuple[str, str]:
        now = time.time()
        pair = []
        # Every stand-in session is an app-password session, like crosspost's: scope appPass.
        for scope, typ, ttl in (("com.atproto.appPass", "at+jwt", self.access_ttl),
                                ("com.atproto.refresh", "refresh+jwt", self.refresh_ttl)):
            claims = {"scope": scope, "aud": "did:web:localhost", "sub": did, "iat": int(now),
                      "exp": int(now + ttl), "jti": secrets.token_urlsafe(16)}
            jwt = f"{_b64({'typ': typ, 'alg': 'HS256'})}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
            self.tokens[jwt] = {"did": did, "scope": scope, "exp": now + ttl, "used_at": None, "next": None}
            pair.append(jwt)
        return pair[0], pair[1]

    def _token(self, req: Request, *scopes: str) -> dict[str, Any]:
        value = req.headers.get("authorization")
        if not value:
            raise _error(401, "AuthMissing", "Authentication Required")
        if not value.startswith("Bearer "):
            raise _error(400, "InvalidToken", "Unexpected authorization type")
        jwt = value[len("Bearer "):]
        token = self.tokens.get(jwt)
        if token is None or token["scope"] not in scopes:
            raise _error(400, "InvalidToken", "Token could not be verified")
        if token["exp"] <= time.time():
            raise _error(400, "ExpiredToken", "Token has expired")
        return token

    def _account(self, identifier: str) -> tuple[str, dict[str, Any]] | None:
        identifier = identifier.lower()
        for did, account in self.accounts.items():
            if identifier in (did, account["handle"]):
                return did, account
        return None

    def scope(self, request: Request) -> str:
        # Bluesky limits writes per account (DID), whichever token of the account is used.
        token = self.tokens.get(request.bearer() or "")
        return token["did"] if token else super().scope(request)

    def _session(self, did: str, access: str, refresh: str) -> dict[str, Any]:
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.accounts[did]["handle"],
                "did": did, "didDoc": {"id": did, "service": [{"id": "#atproto_pds",
                                                                "type": "AtprotoPersonalDataServer",
                                                                "serviceEndpoint": self.url}]},
                "emailConfirmed": True, "active": True}

    # -- com.atproto.server ---------------------------------------------------------------------
    def _create_session(self, req: Request) -> Response:
        with self.lock:
            self.login_calls += 1
        body = self._input(req, ("identifier", "password"))
        with self.lock:
            found = self._account(str(body["identifier"]))
            if found is None or found[1]["password"] != body["password"]:
                raise _error(401, "AuthenticationRequired", "Invalid identifier or password")
            did = found[0]
            return Response(200, self._session(did, *self._issue(did)))

    def _get_session(self, req: Request) -> Response:
        """Who the access token belongs to: the session without its tokens."""
        with self.lock:
            token = self._token(req, *_ACCESS_SCOPES)
            did = token["did"]
            return Response(200, {"handle": self.accounts[did]["handle"], "did": did, "active": True,
                                  "emailConfirmed": True})

    def _refresh_session(self, req: Request) -> Response:
        with self.lock:
            self.refresh_calls += 1
            token = self._token(req, "com.atproto.refresh")
            now = time.time()
            if token["used_at"] is not None:
                if now - token["used_at"] >= self.refresh_grace:
                    raise _error(400, "ExpiredToken", "Token has been revoked")
                return Response(200, self._session(token["did"], *token["next"]))
            token["used_at"], token["next"] = now, self._issue(token["did"])
            return Response(200, self._session(token["did"], *token["next"]))

    # -- com.atproto.repo -----------------------------------------------------------------------
    def _write(self, req: Request, put: bool) -> Response:
        with self.lock:
            token = self._token(req, *_ACCESS_SCOPES)
        required = ("repo", "collection", "rkey", "record") if put else ("repo", "collection", "record")
        body = self._input(req, required)
        with self.lock:
            found = self._account(str(body["repo"]))
            if found is None:
                raise _error(403, "AccountNotFound", "Account not found")
            did, account = found
            if did != token["did"]:
                raise _error(401, "AuthenticationRequired", "Authentication Required")
            collection, record = body["collection"], body["record"]
            if not isinstance(record, dict):
                raise _invalid(f"Expected object value type (got {json.dumps(record)}) at $.record")
            if record.get("$type", collection) != collection:
                raise _invalid(f"Invalid $type: expected {collection}, got {record['$type']}")
            record = {**record, "$type": collection}
            if collection != POST:
                raise _invalid(f"this stand-in stores only {POST} records, not {collection}")
            rkey = body.get("rkey") or _now_tid()
            if not isinstance(rkey, str) or not _RKEY_RE.match(rkey) or rkey in (".", ".."):
                raise _invalid(f"Invalid record key: {rkey}")
            if not _TID_RE.match(rkey):
                raise _invalid(f"Invalid record key for {POST}: Invalid TID string "
                               f"(got {json.dumps(rkey)}) at $")
            self._validate_post(record)
            self._check_refs(did, record)
            uri, cid = f"at://{did}/{POST}/{rkey}", cid_of(record)
            repo = self.repos.setdefault(did, {})
            current = repo.get(rkey)
            if current is not None and not put:
                # What the PDS answers (its log says "There is already a value at key").
                raise _error(500, "InternalServerError", "Internal Server Error")
            if current is not None and current["cid"] == cid:
                return Response(200, {"uri": uri, "cid": cid, "validationStatus": "valid"})
            repo[rkey] = {"record": record, "cid": cid}
            for blob in _blobs_of(record):
                self.blobs[did][blob["ref"]["$link"]]["temp"] = False
            self.record("post" if current is None else "edit",
                        {"account": account["handle"], "text": record["text"], "record": record, "uri": uri},
                        key=rkey, id=uri)
            rev = _now_tid()
            return Response(200, {"uri": uri, "cid": cid, "commit": {"cid": cid_of({"rev": rev}), "rev": rev},
                                  "validationStatus": "valid"})

    def _upload_blob(self, req: Request) -> Response:
        with self.lock:
            token = self._token(req, *_ACCESS_SCOPES)
        declared = req.headers.get("content-type")
        if not declared:
            raise _invalid("Request encoding (Content-Type) required but not provided")
        if len(req.body) > self.blob_limit:
            raise _error(413, "PayloadTooLarge", "request entity too large")
        cid, mime = blob_cid(req.body), _sniff(req.body, declared)
        with self.lock:
            self.uploads += 1
            stored = self.blobs.setdefault(token["did"], {}).setdefault(
                cid, {"mimeType": mime, "size": len(req.body), "temp": True})
        return Response(200, {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": stored["mimeType"],
                                       "size": stored["size"]}})

    def forget_unused_blobs(self) -> None:
        """What the PDS does to blobs no record uses, after a while: they are gone."""
        with self.lock:
            for blobs in self.blobs.values():
                for cid in [c for c, b in blobs.items() if b["temp"]]:
                    del blobs[cid]

    def _get_record(self, req: Request) -> Response:
        params = self._params(req, "com.atproto.repo.getRecord", ("repo", "collection", "rkey"))
        with self.lock:
            found = self._account(params["repo"])
            if found is None:
                raise _invalid("Could not locate record")
            did = found[0]
            uri = f"at://{did}/{params['collection']}/{params['rkey']}"
            stored = self.repos.get(did, {}).get(params["rkey"]) if params["collection"] == POST else None
            if stored is None or params.get("cid", stored["cid"]) != stored["cid"]:
                raise _error(400, "RecordNotFound", f"Could not locate record: {uri}")
            return Response(200, {"uri": uri, "cid": stored["cid"], "value": stored["record"]})

    def _list_records(self, req: Request) -> Response:
        params = self._params(req, "com.atproto.repo.listRecords", ("repo", "collection"))
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            raise _invalid("Invalid com.atproto.repo.listRecords params: Expected integer value type "
                           f"(got {json.dumps(params['limit'])})") from None
        if not 1 <= limit <= 100:
            bound = "small (minimum 1" if limit < 1 else "big (maximum 100"
            raise _invalid(f"Invalid com.atproto.repo.listRecords params: integer too {bound}, got {limit})")
        reverse = params.get("reverse") == "true"
        with self.lock:
            found = self._account(params["repo"])
            if found is None:
                raise _invalid(f"Could not find repo: {params['repo']}")
            did = found[0]
            repo = self.repos.get(did, {}) if params["collection"] == POST else {}
            keys = sorted(repo, reverse=not reverse)
            if "cursor" in params:
                keys = [k for k in keys if (k > params["cursor"] if reverse else k < params["cursor"])]
            page = keys[:limit]
            records = [{"uri": f"at://{did}/{POST}/{k}", "cid": repo[k]["cid"], "value": repo[k]["record"]}
                       for k in page]
        answer: dict[str, Any] = {"records": records}
        if len(page) == limit:
            answer["cursor"] = page[-1]
        return Response(200, answer)

    # -- com.atproto.identity --------------------------------------------------------------------
    def _resolve_handle(self, req: Request) -> Response:
        nsid = "com.atproto.identity.resolveHandle"
        handle = self._params(req, nsid, ("handle",))["handle"]
        if len(handle) > 253 or not _HANDLE_RE.match(handle):
            raise _invalid(f"Invalid {nsid} params: Invalid handle (got {json.dumps(handle)})")
        with self.lock:
            self.resolves += 1
            found = self._account(handle)
        if found is not None:
            return Response(200, {"did": found[0]})
        if handle.lower().endswith(".test"):  # this server's handle domain
            raise _error(400, "HandleNotFound", "Unable to resolve handle")
        raise _invalid("Unable to resolve handle")  # another domain: no DNS or HTTPS well-known here

    # -- app.bsky.actor -------------------------------------------------------------------------
    def _get_profile(self, req: Request) -> Response:
        with self.lock:
            self._token(req, *_ACCESS_SCOPES)
        params = self._params(req, "app.bsky.actor.getProfile", ("actor",))
        with self.lock:
            found = self._account(params["actor"])
            if found is None:
                raise _invalid("Profile not found")
            did, account = found
            return Response(200, {"did": did, "handle": account["handle"],
                                  "followersCount": account["followers"], "followsCount": 0,
                                  "postsCount": len(self.repos.get(did, {}))})

    # -- checks ---------------------------------------------------------------------------------
    def _input(self, req: Request, required: tuple[str, ...]) -> dict[str, Any]:
        ctype = req.headers.get("content-type")
        if not req.body or not ctype:
            raise _invalid("Request encoding (Content-Type) required but not provided")
        if not ctype.startswith("application/json"):
            raise _invalid(f"Wrong request encoding (Content-Type): {ctype}")
        body = req.json()
        if not isinstance(body, dict):
            raise _invalid(f"Expected object value type (got {json.dumps(body)[:40]}) at $")
        for key in required:
            if key not in body:
                raise _invalid(f'Missing required key "{key}" at $')
        return body

    def _params(self, req: Request, nsid: str, required: tuple[str, ...]) -> dict[str, str]:
        for key in required:
            if not req.query.get(key):
                raise _invalid(f'Invalid {nsid} params: Missing required key "{key}"')
        return req.query

    def _validate_post(self, record: dict[str, Any]) -> None:
        """The app.bsky.feed.post lexicon (text, createdAt, facets, langs) as the PDS checks it,
        plus the facet range checks the PDS leaves to clients."""

        def bad(issue: str, path: str) -> HttpError:
            return _invalid(f"Invalid {POST} record: {issue} at $.record{path}")

        for key in ("text", "createdAt"):
            if key not in record:
                raise bad(f'Missing required key "{key}"', "")
        text, created = record["text"], record["createdAt"]
        if not isinstance(text, str):
            raise bad(f"Expected string value type (got {json.dumps(text)})", ".text")
        size = len(text.encode("utf-8"))
        if size > 3000:
            raise bad(f"string too big (maximum 3000, got {size})", ".text")
        if _graphemes(text) > 300:
            raise bad(f"grapheme too big (maximum 300, got {_graphemes(text)})", ".text")
        if not isinstance(created, str) or not _valid_datetime(created):
            raise bad(f"Invalid datetime (got {json.dumps(created)})", ".createdAt")
        langs = record.get("langs", [])
        if not isinstance(langs, list) or len(langs) > 3:
            raise bad("Expected array of at most 3 languages", ".langs")
        for i, lang in enumerate(langs):
            if not isinstance(lang, str) or not _LANGUAGE_RE.match(lang):
                raise bad(f"Invalid language (got {json.dumps(lang)})", f".langs[{i}]")
        facets = record.get("facets", [])
        if not isinstance(facets, list):
            raise bad(f"Expected array value type (got {json.dumps(facets)})", ".facets")
        encoded = text.encode("utf-8")
        for i, facet in enumerate(facets):
            path = f".facets[{i}]"
            index = facet.get("index") if isinstance(facet, dict) else None
            if not isinstance(index, dict):
                raise bad('Missing required key "index"', path)
            for key in ("byteStart", "byteEnd"):
                value = index.get(key)
                if type(value) is not int:
                    raise bad(f"Expected integer value type (got {json.dumps(value)})", f"{path}.index.{key}")
                if value < 0:
                    raise bad(f"integer too small (minimum 0, got {value})", f"{path}.index.{key}")
            start, end = index["byteStart"], index["byteEnd"]
            if start >= end:
                raise bad(f"byteStart must be before byteEnd (got {start}, {end})", f"{path}.index")
            if end > len(encoded):
                raise bad(f"byteEnd past the end of the text (maximum {len(encoded)}, got {end})",
                          f"{path}.index.byteEnd")
            for key, offset in (("byteStart", start), ("byteEnd", end)):
                if offset < len(encoded) and encoded[offset] & 0xC0 == 0x80:
                    raise bad(f"offset {offset} is inside a UTF-8 character", f"{path}.index.{key}")
            features = facet.get("features")
            if not isinstance(features, list):
                raise bad('Missing required key "features"', path)
            for j, feature in enumerate(features):
                self._validate_feature(feature, f"{path}.features[{j}]", bad)
            links = [f for f in features if isinstance(f, dict) and f.get("$type") == _LINK_FEATURE]
            if links and _cut_in_parentheses(encoded[start:end].decode("utf-8"), encoded[end:]):
                # The PDS stores it; readers then follow a link that lost its closing parenthesis.
                raise bad("a link facet ends inside its URL's parentheses (the stand-in checks what the "
                          "PDS leaves to clients)", f"{path}.index.byteEnd")
        if "embed" in record:
            self._validate_embed(record["embed"], bad)
        if "reply" in record:
            reply = record["reply"]
            if not isinstance(reply, dict):
                raise bad(f"Expected object value type (got {json.dumps(reply)[:40]})", ".reply")
            for key in ("root", "parent"):
                ref = reply.get(key)
                if not isinstance(ref, dict):
                    raise bad(f'Missing required key "{key}"', ".reply")
                for field in ("uri", "cid"):
                    if field not in ref:
                        raise bad(f'Missing required key "{field}"', f".reply.{key}")
                if not isinstance(ref["uri"], str) or not _AT_URI_RE.match(ref["uri"]):
                    raise bad(f"Invalid at-uri (got {json.dumps(ref['uri'])})", f".reply.{key}.uri")
                if not isinstance(ref["cid"], str) or not _CID_RE.match(ref["cid"]):
                    raise bad(f"Invalid CID string (got {json.dumps(ref['cid'])})", f".reply.{key}.cid")

    @staticmethod
    def _validate_embed(embed: Any, bad: Any) -> None:
        """app.bsky.embed.images and app.bsky.embed.video with their blob limits."""
        if not isinstance(embed, dict) or not isinstance(embed.get("$type"), str):
            raise bad('Expected an object which includes the "$type" property value type', ".embed")
        kind = embed["$type"]
        if kind == "app.bsky.embed.images":
            images = embed.get("images")
            if not isinstance(images, list):
                raise bad('Missing required key "images"', ".embed")
            if len(images) > 4:
                raise bad(f"array too big (maximum 4, got {len(images)})", ".embed.images")
            for i, image in enumerate(images):
                path = f".embed.images[{i}]"
                if not isinstance(image, dict):
                    raise bad(f"Expected object value type (got {json.dumps(image)[:40]})", path)
                for key in ("image", "alt"):
                    if key not in image:
                        raise bad(f'Missing required key "{key}"', path)
                _validate_blob(image["image"], "image/", IMAGE_MAX_BYTES, f"{path}.image", bad)
                alt = image["alt"]
                if not isinstance(alt, str):
                    raise bad(f"Expected string value type (got {json.dumps(alt)[:40]})", f"{path}.alt")
                _validate_aspect(image.get("aspectRatio"), f"{path}.aspectRatio", bad)
        elif kind == "app.bsky.embed.video":
            if "video" not in embed:
                raise bad('Missing required key "video"', ".embed")
            _validate_blob(embed["video"], "video/mp4", VIDEO_MAX_BYTES, ".embed.video", bad)
            alt = embed.get("alt", "")
            if not isinstance(alt, str) or _graphemes(alt) > 1000:
                raise bad(f"Expected a string of at most 1000 graphemes (got {json.dumps(alt)[:40]})",
                          ".embed.alt")
            _validate_aspect(embed.get("aspectRatio"), ".embed.aspectRatio", bad)
        else:
            # The PDS stores any $type here (an open union); no client shows it, so a typo would
            # publish a post without its media.
            raise bad(f"Unknown embed type {json.dumps(kind)} (the stand-in knows images and video)",
                      ".embed")

    def _check_refs(self, did: str, record: dict[str, Any]) -> None:
        """What the PDS checks in its transaction (the blobs are this account's, and match what was
        uploaded while still unused), then replies pointing at records that exist."""
        for blob in _blobs_of(record):
            cid = blob["ref"]["$link"]
            stored = self.blobs.get(did, {}).get(cid)
            if stored is None:
                raise _error(400, "BlobNotFound", f"Could not find blob: {cid}")
            for key, name, label in _BLOB_MATCH:
                if stored["temp"] and blob[key] != stored[key]:
                    raise _error(400, name, f"Referenced {label} does not match stored blob. "
                                            f"Expected: {stored[key]}, Got: {blob[key]}")
        reply = record.get("reply")
        for key in ("root", "parent") if reply else ():
            uri, cid = reply[key]["uri"], reply[key]["cid"]
            parts = uri.removeprefix("at://").split("/")
            found = self._account(parts[0]) if len(parts) == 3 and parts[1] == POST else None
            stored = self.repos.get(found[0], {}).get(parts[2]) if found else None
            if stored is None or stored["cid"] != cid:
                what = "does not exist" if stored is None else f"has CID {stored['cid']}, not {cid}"
                raise _invalid(f"Invalid {POST} record: reply {key} {uri} {what} (the stand-in checks "
                               f"what the PDS leaves to clients) at $.record.reply.{key}")

    @staticmethod
    def _validate_feature(feature: Any, path: str, bad: Any) -> None:
        if not isinstance(feature, dict) or not isinstance(feature.get("$type"), str):
            raise bad('Expected an object which includes the "$type" property value type', path)
        kind = feature["$type"]
        if kind not in _FEATURES:
            raise bad(f"Unknown facet feature type {json.dumps(kind)}", path)
        key, pattern, fmt = _FEATURES[kind]
        value = feature.get(key)
        if value is None:
            raise bad(f'Missing required key "{key}"', path)
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise bad(f"Invalid {fmt} (got {json.dumps(value)})", f"{path}.{key}")
        if key == "tag" and (_graphemes(value) > 64 or len(value.encode("utf-8")) > 640):
            raise bad(f"grapheme too big (maximum 64, got {_graphemes(value)})", f"{path}.tag")

    # -- control --------------------------------------------------------------------------------
    def rate_limited(self, fault: Fault) -> Response:
        wait = fault.retry_after if fault.retry_after is not None else 1
        return Response(429, fault.body or {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {
            "ratelimit-limit": "3000", "ratelimit-remaining": "0",
            "ratelimit-reset": str(math.ceil(time.time() + wait)), "ratelimit-policy": "3000;w=300",
            "Retry-After": str(math.ceil(wait)),
        })

    def reset(self) -> None:
        """Forget posts and counters; accounts and their tokens stay valid."""
        super().reset()
        with self.lock:
            self.repos.clear()
            self.blobs.clear()
            self.refresh_calls = self.login_calls = self.uploads = self.resolves = 0

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"refresh_calls": self.refresh_calls, "login_calls": self.login_calls,
                    "uploads": self.uploads, "accounts": len(self.accounts)}

    def duplicates(self) -> int:
        """Posts created twice (same account and text); an edit of a record is not a second post."""
        with self.lock:
            seen: dict[tuple[str, str], int] = {}
            for c in self.posts("post"):
                ident = (str(c.data.get("account")), str(c.data.get("text")))
                seen[ident] = seen.get(ident, 0) + 1
        return sum(n - 1 for n in seen.values())


def _validate_blob(blob: Any, accept: str, max_size: int, path: str, bad: Any) -> None:
    if not (isinstance(blob, dict) and blob.get("$type") == "blob" and isinstance(blob.get("ref"), dict)
            and isinstance(blob["ref"].get("$link"), str) and _CID_RE.match(blob["ref"]["$link"])
            and isinstance(blob.get("mimeType"), str) and type(blob.get("size")) is int):
        raise bad(f"Expected blob value type (got {json.dumps(blob)[:60]})", path)
    if not blob["mimeType"].startswith(accept):
        wanted = f"{accept}*" if accept.endswith("/") else accept
        raise bad(f'Expected "{wanted}" (got {json.dumps(blob["mimeType"])})', f"{path}.mimeType")
    if blob["size"] > max_size:
        raise bad(f"blob too big (maximum {max_size}, got {blob['size']})", path)


def _validate_aspect(ratio: Any, path: str, bad: Any) -> None:
    if ratio is None:
        return  # optional
    if not isinstance(ratio, dict):
        raise bad(f"Expected object value type (got {json.dumps(ratio)[:40]})", path)
    for key in ("width", "height"):
        if key not in ratio:
            raise bad(f'Missing required key "{key}"', path)
        value = ratio[key]
        if isinstance(value, float):
            # The PDS refuses a float before lexicon checks, with this message and no record prefix.
            raise _invalid("Expected one of null, boolean, integer, string, cid, bytes, array or object "
                           f"value type (got {value}) at $.record{path}.{key}")
        if type(value) is not int:
            raise bad(f"Expected integer value type (got {json.dumps(value)[:40]})", f"{path}.{key}")
        if value < 1:
            raise bad(f"integer too small (minimum 1, got {value})", f"{path}.{key}")


def _blobs_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    embed = record.get("embed") or {}
    if embed.get("$type") == "app.bsky.embed.images":
        return [image["image"] for image in embed["images"]]
    if embed.get("$type") == "app.bsky.embed.video":
        return [embed["video"]]
    return []


def _valid_datetime(value: str) -> bool:
    if not _DATETIME_RE.match(value) or value.endswith("-00:00"):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
