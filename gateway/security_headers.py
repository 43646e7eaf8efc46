"""Headers every HTTP response carries, and CORS for the origins gateway.allowed_origins names.

The CSP is what the web page (gateway/static) needs and no more: its own scripts, styles,
worklet and WebSocket ('self' covers ws:// and wss:// to the same host), the blob: URLs of
its downloads; nothing inline, no frames. A page of another origin may read responses only
when that origin is configured; nothing else gets an Access-Control-Allow-Origin.
"""
from __future__ import annotations

from typing import Sequence

from gateway import origins, request_ids

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; media-src 'self' blob:; worker-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
FIXED = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "microphone=(self), camera=(), geolocation=()"),
)
CORS_ALLOW_HEADERS = "authorization, x-api-key, content-type, x-request-id"
CORS_EXPOSE_HEADERS = "x-request-id, retry-after"
CORS_MAX_AGE_S = "600"


def for_response(request_id: str | None) -> list[tuple[str, str]]:
    """The security headers plus the request id."""
    return [*FIXED, *([(request_ids.HEADER, request_id)] if request_id else [])]


def for_error() -> dict[str, str]:
    """The same, as a dict for a Response made outside the guard (Starlette's 500 handler)."""
    return dict(for_response(request_ids.current()))


def allowed_origin(origin: str | None, allowed: Sequence[str]) -> str | None:
    """The Origin to echo in Access-Control-Allow-Origin, or None (then no CORS header at all)."""
    return origin if origin is not None and origins.is_listed(origin, allowed) else None


def cors(origin: str) -> list[tuple[str, str]]:
    return [("access-control-allow-origin", origin), ("vary", "origin"),
            ("access-control-expose-headers", CORS_EXPOSE_HEADERS)]


def preflight(origin: str, methods: str) -> list[tuple[str, str]]:
    return [*cors(origin), ("access-control-allow-methods", methods),
            ("access-control-allow-headers", CORS_ALLOW_HEADERS), ("access-control-max-age", CORS_MAX_AGE_S)]
