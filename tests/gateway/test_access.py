"""API keys, scopes, origins, rate limits, security headers and request ids on the real gateway app
(in-process, over the real bus with the scripted pipeline; tests/gateway/conftest.py)."""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway import access, keys, request_ids, security_headers
from gateway.app import build_app
from tests.gateway.conftest import gateway_cfg, wait_healthy
from tests.gateway.helpers import WAV, tone

SCOPED = ("transcribe", "read", "admin", "metrics")
WAV_B64 = base64.b64encode(WAV).decode()
UPLOAD = {"files": {"file": ("a.wav", WAV, "audio/wav")}}

# (method, path, what it needs, request kwargs): every route the gateway serves, and one it does not.
ENDPOINTS = [
    ("GET", "/", "", {}),
    ("GET", "/health", "", {}),
    ("GET", "/ui/", "", {}),
    ("GET", "/ui/app.js", "", {}),
    ("GET", "/stream", "", {}),
    ("GET", "/docs", "", {}),
    ("GET", "/openapi.json", "", {}),
    ("GET", "/model/info", "*", {}),
    ("GET", "/v1/models", "*", {}),
    ("POST", "/transcribe", "transcribe", {"files": {"audio_file": ("a.wav", WAV, "audio/wav")}}),
    ("POST", "/transcribe/base64", "transcribe", {"json": {"audio_base64": WAV_B64}}),
    ("POST", "/inference", "transcribe", UPLOAD),
    ("POST", "/v1/audio/transcriptions", "transcribe", {**UPLOAD, "data": {"model": "whisper-1"}}),
    ("POST", "/v1/audio/translations", "transcribe", {**UPLOAD, "data": {"model": "whisper-1"}}),
    ("GET", "/events?bogus=1", "read", {}),       # past the guard, the handler refuses the parameter: 400
    ("GET", "/metrics", "metrics", {}),
    ("GET", "/v1/transcripts", "read", {}),
    ("GET", "/v1/transcripts/7", "read", {}),
    ("GET", "/v1/streams", "read", {}),
    ("GET", "/v1/streams/mic1/export", "read", {}),
    ("DELETE", "/v1/transcripts?stream=mic1", "admin", {}),
    ("DELETE", "/v1/transcripts/7", "admin", {}),
    ("GET", "/v1/alerts", "admin", {}),
    ("POST", "/v1/alerts", "admin", {"json": {"keywords": ["fire"]}}),
    ("DELETE", "/v1/alerts/x", "admin", {}),
    ("GET", "/v1/alerts/fired", "admin", {}),
    ("GET", "/v1/speakers", "read", {}),            # the speaker stage is off here: past the guard, a 503
    ("POST", "/v1/speakers", "admin", {**UPLOAD, "data": {"name": "ann"}}),
    ("DELETE", "/v1/speakers/ann", "admin", {}),
    ("GET", "/no/such/route", "admin", {}),        # not listed: closed by default
]
HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options",
           "x-request-id")


def _keyed_cfg(base_cfg, path, **limits):
    """Keys from `path`, the store off (its routes answer 503 at once, past the guard)."""
    cfg = dataclasses.replace(base_cfg, auth=dataclasses.replace(base_cfg.auth, keys_file=str(path)),
                              store=dataclasses.replace(base_cfg.store, enabled=False),
                              limits=dataclasses.replace(base_cfg.limits, **limits))
    return gateway_cfg(cfg)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    made = {scope: keys.add_key(path, scope, (scope,)) for scope in SCOPED}
    made["revoked"] = keys.add_key(path, "gone", ("admin",))
    keys.revoke_key(path, "gone")
    return path, made


@pytest.fixture(scope="module")
def keyed(base_cfg, pipeline, key_file):
    path, made = key_file
    app = build_app(_keyed_cfg(base_cfg, path))

    async def boom(request):
        raise RuntimeError("a bug")
    app.router.routes.append(Route("/boom", boom))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_healthy(client)
        yield client, made


def _bearer(secret: str) -> dict:
    return {"authorization": f"Bearer {secret}"}


def _call(client, method, path, kwargs, headers=None):
    return client.request(method, path, headers=headers or {}, **kwargs)


def _check_headers(response):
    missing = [h for h in HEADERS if h not in response.headers]
    assert not missing, (response.request.url, response.status_code, missing)
    assert response.headers["content-security-policy"] == security_headers.CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def _right_key(made, needs):
    return made["admin"] if needs in ("", "*", "admin") else made[needs]


def _wrong_scope(needs):
    """A key that lacks the scope (None when every key may)."""
    return {"transcribe": "read", "read": "transcribe", "admin": "read", "metrics": "transcribe"}.get(needs)


@pytest.mark.parametrize("method,path,needs,kwargs", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_with_no_key_wrong_key_wrong_scope_revoked_key(keyed, method, path, needs, kwargs):
    client, made = keyed
    bad = {"none": {}, "wrong": _bearer("vbk_" + "x" * 43), "revoked": _bearer(made["revoked"]),
           "two keys": {**_bearer(made["admin"]), "x-api-key": made["read"]}}
    for label, headers in bad.items():
        response = _call(client, method, path, kwargs, headers)
        _check_headers(response)
        public = needs == "" and label == "none"
        if public:
            assert response.status_code not in (401, 403), (label, response.text)
            continue
        assert response.status_code == 401, (label, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and error["request_id"] == response.headers["x-request-id"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert error["message"] == bad_message(client, made)  # the same words whatever was wrong
    if (other := _wrong_scope(needs)) is not None:
        response = _call(client, method, path, kwargs, _bearer(made[other]))
        _check_headers(response)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden" and needs in response.json()["error"]["message"]
    response = _call(client, method, path, kwargs, {"x-api-key": _right_key(made, needs)})
    _check_headers(response)
    assert response.status_code not in (401, 403), response.text
    expected = {"/events?bogus=1": 400, "/no/such/route": 404, "/stream": 426}.get(path)
    if expected is not None:
        assert response.status_code == expected, response.text
    elif path.startswith(("/v1/transcripts", "/v1/streams", "/v1/alerts")):
        assert response.json()["error"]["code"] == "store_disabled"
    elif path.startswith("/v1/speakers"):
        assert response.json()["error"]["code"] == "speaker_disabled"
    else:
        assert response.status_code == 200, response.text


def bad_message(client, made) -> str:
    return client.get("/v1/models").json()["error"]["message"]


def test_health_says_only_ok_to_an_anonymous_caller(keyed):
    client, made = keyed
    anonymous = client.get("/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert "missing" not in client.get("/").json()
    detailed = client.get("/health", headers=_bearer(made["metrics"])).json()
    assert {"vad", "asr", "gateway"} <= set(detailed["stages"]) and "board" in detailed
    assert detailed["stages"]["asr"][0]["pid"] > 0


def test_websocket_needs_the_transcribe_scope(keyed):
    client, made = keyed
    for headers, close in (({}, 4401), (_bearer("vbk_nope"), 4401), (_bearer(made["read"]), 4403)):
        with client.websocket_connect("/stream", headers=headers) as ws:
            event = ws.receive_json()
            assert event["type"] == "error" and event["code"] in ("unauthorized", "forbidden") and event["request_id"]
            closed = ws.receive()
            assert closed["type"] == "websocket.close" and closed["code"] == close
    # The three ways a browser or a program may send it: header, query parameter, subprotocol.
    with client.websocket_connect("/stream", headers={"x-api-key": made["transcribe"]}) as ws:
        assert ws.receive_json()["type"] == "ready"
    with client.websocket_connect(f"/stream?language=en&api_key={made['transcribe']}") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["config"]["language"] == "en"  # api_key was no setting
    with client.websocket_connect("/stream", subprotocols=["voxbus", f"voxbus-key.{made['admin']}"]) as ws:
        assert ws.receive_json()["type"] == "ready"
        assert ws.accepted_subprotocol == "voxbus"  # the key itself is never echoed


def test_events_take_the_key_as_a_query_parameter(keyed):
    client, made = keyed
    assert client.get(f"/events?bogus=1&api_key={made['read']}").status_code == 400  # past the guard
    assert client.get(f"/events?bogus=1&api_key={made['transcribe']}").status_code == 403


def test_headers_on_static_files_errors_and_unexpected_errors(keyed):
    client, made = keyed
    for response in (client.get("/ui/"), client.get("/ui/style.css"), client.get("/ui/nope.js"),
                     client.get("/boom", headers=_bearer(made["admin"])),
                     client.get("/health", headers={"host": "rebound.evil.example"}),
                     client.post("/v1/models", headers=_bearer(made["admin"]))):
        _check_headers(response)
        assert "access-control-allow-origin" not in response.headers
    boom = client.get("/boom", headers=_bearer(made["admin"]))
    assert boom.status_code == 500 and boom.json()["error"]["request_id"] == boom.headers["x-request-id"]
    assert "a bug" not in boom.text


def test_request_id_is_echoed_when_sane_and_made_otherwise(keyed):
    client, _ = keyed
    assert client.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"x-request-id": "bad id {json}"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    record = logging.makeLogRecord({"msg": "x"})
    token = request_ids.CURRENT.set("rid-1")
    try:
        request_ids.RequestIdFilter().filter(record)
    finally:
        request_ids.CURRENT.reset(token)
    assert record.request_id == "rid-1"


def test_state_changing_requests_from_foreign_pages_are_refused(keyed):
    client, made = keyed
    evil = {"origin": "http://evil.example", **_bearer(made["admin"])}
    for method, path, kwargs in (("POST", "/v1/audio/transcriptions", UPLOAD), ("POST", "/transcribe/base64", {}),
                                 ("DELETE", "/v1/transcripts/7", {}), ("POST", "/v1/alerts", {})):
        refused = client.request(method, path, headers=evil, **kwargs)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed", path
    own = client.post("/transcribe/base64", json={"audio_base64": WAV_B64},
                      headers={"origin": "http://testserver", **_bearer(made["transcribe"])})
    assert own.status_code == 200


def test_cors_only_for_configured_origins(base_cfg, pipeline, key_file):
    path, made = key_file
    cfg = _keyed_cfg(base_cfg, path)
    cfg = dataclasses.replace(cfg, gateway=dataclasses.replace(cfg.gateway, allowed_origins=("https://app.example",)))
    with TestClient(build_app(cfg)) as client:
        asked = {"origin": "https://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization"}
        preflight = client.options("/v1/audio/transcriptions", headers=asked)
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        foreign = client.options("/v1/audio/transcriptions", headers={**asked, "origin": "http://evil.example"})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
        listed = client.get("/v1/models", headers={"origin": "https://app.example", **_bearer(made["read"])})
        assert listed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in listed.headers["access-control-expose-headers"]


def test_body_over_the_limit_is_refused_before_it_is_read(keyed):
    client, made = keyed
    big = json.dumps({"keywords": ["x" * 2_000_000]})
    refused = client.post("/v1/alerts", content=big, headers={"content-type": "application/json",
                                                              **_bearer(made["admin"])})
    assert refused.status_code == 413 and "limits.max_body_kb" in refused.json()["error"]["message"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limits_trip_and_recover(base_cfg, pipeline, key_file):
    path, made = key_file
    cfg = _keyed_cfg(base_cfg, path, requests_per_min=3, audio_s_per_min=4.0, ws_sessions=1)
    app = build_app(cfg)
    clock = app.state.limiter.clock = Clock()
    with TestClient(app) as client:
        wait_healthy(client)
        read = _bearer(made["read"])
        assert [client.get("/v1/models", headers=read).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/v1/models", headers=read)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        _check_headers(refused)
        assert client.get("/v1/models", headers=_bearer(made["admin"])).status_code == 200  # another key
        clock.now += 61
        assert client.get("/v1/models", headers=read).status_code == 200  # recovered

        talk = _bearer(made["transcribe"])
        body = {"audio_base64": WAV_B64}  # 5 s of audio: over the 4 s budget once served
        assert client.post("/transcribe/base64", json=body, headers=talk).status_code == 200
        over = client.post("/transcribe/base64", json=body, headers=talk)
        assert over.status_code == 429 and "audio_s_per_min" in over.json()["error"]["message"]
        clock.now += 61
        with client.websocket_connect("/stream?sample_rate=16000", headers=talk) as ws:
            assert ws.receive_json()["type"] == "ready"
            with client.websocket_connect("/stream", headers=talk) as second:  # limits.ws_sessions = 1
                assert second.receive_json()["code"] == "rate_limited"
                assert second.receive()["code"] == 4429
            ws.send_bytes(tone(5.0))  # over the audio budget mid-session: the session ends with 4429
            events = []
            while (event := ws.receive())["type"] != "websocket.close":
                events.append(json.loads(event["text"]))
            assert event["code"] == 4429 and any(e.get("code") == "rate_limited" for e in events)
        clock.now += 61
        assert client.post("/transcribe/base64", json=body, headers=talk).status_code == 200


def test_callers_without_a_key_are_limited_by_address(base_cfg, pipeline, tmp_path):
    cfg = _keyed_cfg(base_cfg, tmp_path / "none.json", requests_per_min=2)  # no keys: not enforced
    app = build_app(cfg)
    app.state.limiter.clock = Clock()
    with TestClient(app) as client:
        assert [client.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/health").status_code != 429  # public routes are not counted
        assert app.state.limiter.caller(None, "127.0.0.1", loopback=True) is None  # limits.exempt_loopback


def test_the_openai_client_key_is_ignored_when_keys_are_off(client):
    """An OpenAI client always sends a key; with no keys configured it must not matter."""
    assert client.get("/v1/models", headers=_bearer("sk-anything")).status_code == 200


def test_rules_cover_every_route_of_the_app():
    """A route nobody listed in access.RULES would need admin; every route of the app is listed."""
    from starlette.routing import Mount, WebSocketRoute

    from gateway.app import ROUTES

    unlisted = []
    for route in ROUTES:
        path = re.sub(r"\{[^}]+\}", "x", route.path) + ("/index.html" if isinstance(route, Mount) else "")
        websocket = isinstance(route, WebSocketRoute)
        for method in ({"GET"} if websocket or isinstance(route, Mount) else route.methods - {"HEAD"}):
            if access.rule_for(path, method, websocket) is None:
                unlisted.append(f"{method} {route.path}")
    assert not unlisted
    assert access.required_scope("/stream", "GET", True) == "transcribe"
    assert access.required_scope("/v1/transcripts", "DELETE", False) == "admin"


def test_startup_refuses_a_public_bind_without_keys(base_cfg, tmp_path):
    store = keys.KeyStore(tmp_path / "keys.json")
    public = dataclasses.replace(base_cfg, gateway=dataclasses.replace(base_cfg.gateway, host="0.0.0.0"))
    problems = access.startup_problems(public, store)
    assert len(problems) == 1 and "voxbus keys add" in problems[0] and 'auth.mode = "none"' in problems[0]
    keys.add_key(store.path, "lan", ("transcribe",))
    store.reload()
    assert access.startup_problems(public, store) == []
    none = dataclasses.replace(public, auth=dataclasses.replace(public.auth, mode="none"))
    assert access.startup_problems(none, keys.KeyStore(tmp_path / "other.json")) == []
    wyoming = dataclasses.replace(base_cfg, wyoming=dataclasses.replace(base_cfg.wyoming, enabled=True,
                                                                       host="0.0.0.0"))
    assert "wyoming_unauthenticated" in access.startup_problems(wyoming, store)[0]
