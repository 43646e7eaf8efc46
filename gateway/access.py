"""Who may call what: the scope each route needs, where a key is read from, whether keys are enforced.

Keys are enforced with `auth.mode = "keys"`, or in "auto" (the default) once the keys file
holds an active key; "none" never. Unenforced, every caller may do everything (the gateway
is then on loopback, or its operator said so). A route not listed in RULES needs `admin`:
a new route is closed until someone decides who may use it.

A key is read from `Authorization: Bearer`, `X-API-Key`, the `api_key` query parameter, or
(browsers' WebSockets, which cannot set headers) a `Sec-WebSocket-Protocol` entry
`voxbus-key.<key>`. Two different keys in one request are refused like a wrong one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from gateway import keys, origins

PUBLIC = ""     # no key needed
ANY_KEY = "*"   # any valid key, whatever its scopes
QUERY_PARAM = "api_key"
SUBPROTOCOL_MARK = "voxbus"            # the subprotocol the gateway answers with
SUBPROTOCOL_PREFIX = "voxbus-key."     # the entry that carries the key
READ_METHODS = frozenset({"GET", "HEAD"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Rule:
    path: re.Pattern
    scope: str
    methods: frozenset[str] | None = None   # None: any
    websocket: bool | None = None            # None: both kinds


def _rule(path: str, scope: str, methods=None, websocket=None) -> Rule:
    return Rule(re.compile(path), scope, frozenset(methods) if methods else None, websocket)


UPLOADS = r"/(transcribe|transcribe/base64|inference|v1/audio/transcriptions|v1/audio/translations)"
RULES = (
    _rule(r"/ui(/.*)?", PUBLIC, READ_METHODS),
    _rule(r"/", PUBLIC, READ_METHODS),                 # service info; stage details only with a key
    _rule(r"/health", PUBLIC, READ_METHODS),           # ok / not ok; details only with a key
    _rule(r"/(docs|openapi\.json)", PUBLIC, READ_METHODS),  # what the API is, not what it holds
    _rule(r"/stream", PUBLIC, READ_METHODS, websocket=False),  # the 426 "use a WebSocket" answer
    _rule(r"/stream", "transcribe", websocket=True),
    _rule(UPLOADS, "transcribe", {"POST"}),
    _rule(r"/(model/info|v1/models)", ANY_KEY, READ_METHODS),
    _rule(r"/events", "read", READ_METHODS),
    _rule(r"/metrics", "metrics", READ_METHODS),
    _rule(r"/v1/alerts(/.*)?", "admin"),
    _rule(r"/v1/(transcripts|streams)(/.*)?", "read", READ_METHODS),
    _rule(r"/v1/(transcripts|streams)(/.*)?", "admin", {"DELETE"}),
    _rule(r"/v1/speakers", "read", READ_METHODS),        # the enrolled names
    _rule(r"/v1/speakers(/.*)?", "admin", {"POST", "DELETE"}),  # a voice in, a voice out
)
DEFAULT_SCOPE = "admin"
UPLOAD_PATH = re.compile(UPLOADS)


def rule_for(path: str, method: str, websocket: bool) -> Rule | None:
    for rule in RULES:
        if rule.websocket is not None and rule.websocket != websocket:
            continue
        if rule.methods is not None and not websocket and method not in rule.methods:
            continue
        if rule.path.fullmatch(path):
            return rule
    return None


def required_scope(path: str, method: str, websocket: bool) -> str:
    rule = rule_for(path, method, websocket)
    return rule.scope if rule is not None else DEFAULT_SCOPE


def takes_audio(path: str, websocket: bool) -> bool:
    return (websocket and path == "/stream") or bool(UPLOAD_PATH.fullmatch(path))


@dataclass(frozen=True)
class Principal:
    """The caller as authorised: `name` of its key (None: no key), what it may do."""
    name: str | None
    grants: frozenset[str]

    def may(self, scope: str) -> bool:
        if scope == PUBLIC:
            return True
        if scope == ANY_KEY:
            return bool(self.grants)
        return scope in self.grants


OPEN = Principal(None, frozenset(keys.SCOPES))   # keys not enforced: everything
ANONYMOUS = Principal(None, frozenset())


def sees_details(scope) -> bool:
    """Whether this request may see stage details (/health, /): with a valid key, or when keys are not enforced."""
    principal = scope.get("voxbus.principal")
    return principal is not None and bool(principal.grants)


class Unauthorized(Exception):
    """No key, a wrong or revoked one, or two different ones: one message for all, no hint which."""


def presented_keys(headers: dict[str, str], query: list[tuple[str, str]]) -> set[str]:
    found = set()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        found.add(auth[7:].strip())
    if headers.get("x-api-key"):
        found.add(headers["x-api-key"].strip())
    found.update(value for name, value in query if name == QUERY_PARAM)
    for entry in headers.get("sec-websocket-protocol", "").split(","):
        if entry.strip().startswith(SUBPROTOCOL_PREFIX):
            found.add(entry.strip()[len(SUBPROTOCOL_PREFIX):])
    return found


def without_key(query_string: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """The query string with any api_key removed (handlers refuse unknown parameters; logs never see it)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if not any(name == QUERY_PARAM for name, _ in pairs):
        return query_string, pairs
    return urlencode([(n, v) for n, v in pairs if n != QUERY_PARAM]).encode("latin-1"), pairs


def chosen_subprotocol(headers: dict[str, str]) -> str | None:
    """What the handshake must answer: browsers fail a WebSocket whose offered protocols get no answer."""
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if SUBPROTOCOL_MARK in offered:
        return SUBPROTOCOL_MARK
    return next((p for p in offered if p.startswith(SUBPROTOCOL_PREFIX)), None)


class Access:
    """The auth config and the keys file, consulted per request."""

    def __init__(self, auth_cfg, store: keys.KeyStore):
        self.mode = auth_cfg.mode
        self.store = store

    def enforced(self) -> bool:
        return self.mode == "keys" or (self.mode == "auto" and self.store.any)

    def principal(self, presented: set[str]) -> Principal:
        """OPEN when keys are not enforced; else the key's principal, ANONYMOUS without one.
        Unauthorized for a key that is wrong, revoked, or not alone."""
        if not self.enforced():
            return OPEN
        if not presented:
            return ANONYMOUS
        if len(presented) > 1:
            raise Unauthorized()
        key = self.store.find(next(iter(presented)))
        if key is None:
            raise Unauthorized()
        return Principal(key.name, key.grants())


def startup_problems(cfg, store: keys.KeyStore) -> list[str]:
    """Reasons the gateway must not start with this config and these keys (one line each)."""
    problems = []
    auth, gw, wy = cfg.auth, cfg.gateway, cfg.wyoming
    if auth.mode != "none" and not origins.is_loopback(gw.host) and not store.any:
        problems.append(f"gateway.host = {gw.host!r} is reachable from other machines and no API key exists in "
                        f"{store.path}: add one (voxbus keys add NAME --scopes transcribe,read) or set "
                        f"auth.mode = \"none\" to serve without keys")
    if wy.enabled and not origins.is_loopback(wy.host) and auth.mode != "none" and not auth.wyoming_unauthenticated:
        problems.append(f"wyoming.host = {wy.host!r} is reachable from other machines and the Wyoming protocol has "
                        f"no authentication: set auth.wyoming_unauthenticated = true (a trusted LAN only), bind it "
                        f"to 127.0.0.1, or set wyoming.enabled = false")
    return problems


def check_startup(cfg, env) -> list[str]:
    """startup_problems with the configured keys file (an unreadable one is a problem too); used by the gateway
    and by `voxbus up` (cli/up.py), which then says it before starting anything."""
    try:
        return startup_problems(cfg, keys.KeyStore(keys.keys_path(cfg.auth, env)))
    except keys.KeyFileError as exc:
        return [str(exc)]
