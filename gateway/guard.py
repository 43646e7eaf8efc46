"""The gateway's outermost middleware: request id, security headers, CORS, origins, keys, rate limits, body size.

Every HTTP request and WebSocket passes here first, in this order:
1. a request id (X-Request-ID, gateway/request_ids.py), echoed on the response;
2. a CORS preflight is answered (configured origins only);
3. a state-changing request (POST, PUT, PATCH, DELETE) from a page of a foreign origin is refused
   (403): a multipart POST needs no preflight, so without this any web page could use the server;
4. the key (gateway/access.py): 401 for none, a wrong, revoked or second one; 403 for a missing scope;
5. rate limits (gateway/rate_limits.py): 429 with Retry-After;
6. a body declared longer than the route's limit: 413 before a byte of it is read.
Refusals are our JSON errors (WebSocket: accepted, an error event, then close 4401 / 4403 / 4429).
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter

from gateway import access, origins, request_ids, security_headers
from gateway.access import Access, Principal, Unauthorized
from gateway.errors import ApiError, error_body
from gateway.keys import KeyFileError
from gateway.rate_limits import METER, Limiter, retry_header

log = logging.getLogger(__name__)

UNAUTHORIZED = ("a valid API key is needed for this endpoint: send it as 'Authorization: Bearer KEY' or "
                "'X-API-Key: KEY' (WebSocket: the api_key query parameter or the subprotocol voxbus-key.KEY)")
WS_CLOSE = {401: 4401, 403: 4403, 429: 4429}


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class Guard:
    def __init__(self, app, cfg, access_: Access, limiter: Limiter, counters: Counter):
        self.app = app
        self.cfg = cfg
        self.access = access_
        self.limiter = limiter
        self.counters = counters  # refusals, for the heartbeat and /metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        rid = request_ids.choose(headers.get(request_ids.HEADER))
        request_ids.CURRENT.set(rid)
        scope["query_string"], query = access.without_key(scope.get("query_string", b""))
        websocket = scope["type"] == "websocket"
        allowed = security_headers.allowed_origin(headers.get("origin"), self.cfg.gateway.allowed_origins)
        send = _decorating(send, rid, allowed, access.chosen_subprotocol(headers) if websocket else None)
        try:
            if not websocket and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await self._preflight(send, headers, allowed)
                return
            principal, who = self._admit(scope, headers, query, websocket)
        except Refusal as refusal:
            self.counters[f"refused_{refusal.status}"] += 1
            log.info("refused", extra={"path": scope["path"], "status": refusal.status, "code": refusal.code,
                                       "client": (scope.get("client") or ("?",))[0]})
            await (_refuse_websocket(receive, send, refusal) if websocket else _refuse_http(send, refusal))
            return
        scope["voxbus.principal"] = principal
        if who is not None and access.takes_audio(scope["path"], websocket):
            METER.set(self.limiter.meter(who))
        if not websocket:  # uploads check their own bodies (gateway/uploads.py: gateway.max_upload_mb)
            upload = access.UPLOAD_PATH.fullmatch(scope["path"])
            await self.app(scope, receive if upload else _body_limited(receive, self._body_limit()), send)
            return
        if who is not None and not self.limiter.sessions.acquire(who):
            self.counters["refused_429"] += 1
            self.limiter.refused["sessions"] += 1
            await _refuse_websocket(receive, send, Refusal(
                429, "rate_limited", f"this caller already has {self.limiter.sessions.limit} /stream sessions "
                                     "open (limits.ws_sessions)"))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if who is not None:
                self.limiter.sessions.release(who)

    def _admit(self, scope, headers, query, websocket: bool) -> tuple[Principal, str | None]:
        """The caller's principal and rate-limit identity; Refusal when it may not go on."""
        method = "GET" if websocket else scope["method"]
        if method in access.STATE_CHANGING:
            refusal = origins.origin_refusal(headers, self.cfg.gateway.allowed_origins)
            if refusal is not None:
                self.counters["origins_refused_rest"] += 1
                raise Refusal(403, "origin_not_allowed", refusal)
        try:
            self.access.store.reload()
        except KeyFileError as exc:  # the keys in force stay so; say why the change was not taken
            log.error("keys file not reloaded", extra={"error": str(exc)})
        needed = access.required_scope(scope["path"], method, websocket)
        try:
            principal = self.access.principal(access.presented_keys(headers, query))
        except Unauthorized:
            raise Refusal(401, "unauthorized", UNAUTHORIZED, {"WWW-Authenticate": "Bearer"}) from None
        if not principal.may(needed):
            if principal.name is None:
                raise Refusal(401, "unauthorized", UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            raise Refusal(403, "forbidden", f"this key ({principal.name}) may not use {method} {scope['path']}: "
                                            f"it needs the {'any' if needed == access.ANY_KEY else needed} scope")
        client = scope.get("client") or (None, 0)
        who = self.limiter.caller(principal.name, client[0], origins.is_loopback(client[0] or ""))
        if who is not None and needed != access.PUBLIC:
            refused = self.limiter.admit(who, access.takes_audio(scope["path"], websocket))
            if refused is not None:
                which, wait = refused
                what = ("requests per minute (limits.requests_per_min)" if which == "requests"
                        else "seconds of audio per minute (limits.audio_s_per_min)")
                raise Refusal(429, "rate_limited", f"too many {what}; try again in {retry_header(wait)} s",
                              {"Retry-After": retry_header(wait)})
        declared = headers.get("content-length", "")
        if not websocket and not access.UPLOAD_PATH.fullmatch(scope["path"]) and declared.isdigit() \
                and int(declared) > self._body_limit():
            raise Refusal(413, "too_large", f"the request body ({declared} bytes) is larger than this endpoint's "
                                            f"limit of {self._body_limit()} bytes (limits.max_body_kb)",
                          {"Connection": "close"})
        return principal, who

    def _body_limit(self) -> int:
        """Bodies of routes that take no audio (alerts, queries)."""
        return self.cfg.limits.max_body_kb * 1024

    async def _preflight(self, send, headers, allowed: str | None) -> None:
        if allowed is None:
            raise Refusal(403, "origin_not_allowed", f"pages from {headers.get('origin')} may not use this server "
                                                     "(gateway.allowed_origins)")
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(k.encode(), v.encode()) for k, v in
                                security_headers.preflight(allowed, "GET, POST, DELETE, OPTIONS")]})
        await send({"type": "http.response.body", "body": b""})


def _decorating(send, rid: str, cors_origin: str | None, subprotocol: str | None):
    """`send` with the security headers (and CORS for an allowed origin) on every response start,
    and on a WebSocket's accept the subprotocol the browser offered."""
    extra = security_headers.for_response(rid) + (security_headers.cors(cors_origin) if cors_origin else [])

    async def decorated(message) -> None:
        if message["type"] in ("http.response.start", "websocket.http.response.start"):
            present = {k.lower() for k, _ in message.get("headers", [])}
            added = [(k.encode(), v.encode()) for k, v in extra if k.encode() not in present]
            message = {**message, "headers": [*message.get("headers", []), *added]}
        elif message["type"] == "websocket.accept" and subprotocol and not message.get("subprotocol"):
            message = {**message, "subprotocol": subprotocol}
        await send(message)
    return decorated


def _body_limited(receive, limit: int):
    """`receive` that refuses a body over `limit` bytes: at once when the Content-Length says so
    (the first receive, before any of it is read), else when the bytes pass it."""
    seen = 0

    async def limited():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(413, "too_large", f"the request body is larger than this endpoint's limit of "
                                                 f"{limit} bytes (limits.max_body_kb)", headers={"Connection": "close"})
        return message
    return limited


async def _refuse_http(send, refusal: Refusal) -> None:
    body = json.dumps(error_body(refusal.status, refusal.code, refusal.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *[(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive, send, refusal: Refusal) -> None:
    """Accept, say why in an error event, close with 4401 / 4403 / 4429: a browser sees the code and reason,
    where a refused handshake would show only a failed connection."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    event = {"type": "error", "code": refusal.code, "message": refusal.message, "timestamp": round(time.time(), 3),
             "request_id": request_ids.current()}
    if "Retry-After" in refusal.headers:
        event["retry_after_s"] = int(refusal.headers["Retry-After"])
    await send({"type": "websocket.send", "text": json.dumps(event)})
    await send({"type": "websocket.close", "code": WS_CLOSE[refusal.status], "reason": refusal.code})
