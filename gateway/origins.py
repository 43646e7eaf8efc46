"""Who may reach the gateway from a browser: the Host names it answers to, the pages that may stream.

Any web page can open a WebSocket or an EventSource to an address the visitor's browser
reaches, http://127.0.0.1:8000 included (CORS does not cover WebSockets, and SSE needs
no preflight); the Origin header is the only sign of whose page it is. /stream and
/events therefore serve requests without an Origin (programs, not browsers), pages of
the gateway's own origin, and gateway.allowed_origins. The Host check stops DNS
rebinding (a hostile name that resolves to 127.0.0.1): on a loopback address only
loopback names are answered; bound to a LAN address it must answer to its IP, so any.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # Starlette keeps an IPv6 literal's brackets
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, configured: Sequence[str]) -> list[str]:
    """gateway.allowed_hosts, or when it is empty: loopback names on a loopback address, else any."""
    if configured:
        return [pattern.lower() for pattern in configured]
    return list(LOOPBACK_HOSTS) if is_loopback(host) else ["*"]


def host_pattern_problems(patterns: Sequence[str]) -> list[str]:
    """Starlette's TrustedHostMiddleware asserts on these; say it in one line each instead."""
    return [f"gateway.allowed_hosts: {pattern!r} is not a host name, '*' or '*.domain'"
            for pattern in patterns
            if not pattern or "*" in pattern[1:] or (pattern.startswith("*") and pattern != "*" and not pattern.startswith("*."))]


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = DEFAULT_PORTS.get(scheme)
    return netloc[: -len(default) - 1] if default and netloc.endswith(f":{default}") else netloc


def is_listed(origin: str, allowed_origins: Sequence[str]) -> bool:
    """Whether gateway.allowed_origins names this Origin (or is "*"); case and a trailing slash do not matter."""
    allowed = {o.strip().rstrip("/").lower() for o in allowed_origins}
    return "*" in allowed or origin.strip().rstrip("/").lower() in allowed


def origin_refusal(headers: Mapping[str, str], allowed_origins: Sequence[str]) -> str | None:
    """None when the request may go on, else the reason it may not."""
    origin = headers.get("origin")
    if origin is None or is_listed(origin, allowed_origins):
        return None
    wanted = origin.strip().rstrip("/").lower()
    host = headers.get("host", "")
    parts = urlsplit(wanted)
    if parts.scheme in ("http", "https") and host and \
            _netloc(parts.scheme, parts.netloc) == _netloc(parts.scheme, host):
        return None
    return (f"pages from {origin} may not use this endpoint: only the gateway's own pages ({host or 'no Host'}), "
            f"clients that send no Origin, and origins listed in gateway.allowed_origins may")
