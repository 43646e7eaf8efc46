"""Browser guards: Origin on /stream and /events, the Host names the gateway answers to."""
from __future__ import annotations

import pytest
from starlette.testclient import WebSocketDenialResponse

from gateway import origins

EVIL = {"origin": "http://evil.example"}


@pytest.mark.parametrize("headers,allowed,ok", [
    ({"host": "127.0.0.1:8000"}, (), True),                                        # no Origin: not a browser
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, (), True),     # the gateway's own page
    ({"host": "Box.local:8000", "origin": "http://box.local:8000/"}, (), True),
    ({"host": "box", "origin": "http://box:80"}, (), True),                        # default ports are equal
    ({"host": "box:443", "origin": "https://box"}, (), True),
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9000"}, (), False),    # another port is another site
    ({"host": "127.0.0.1:8000", "origin": "http://evil.example"}, (), False),
    ({"host": "127.0.0.1:8000", "origin": "null"}, (), False),                     # sandboxed frames, file://
    ({"host": "127.0.0.1:8000", "origin": "https://app.example"}, ("https://APP.example/",), True),
    ({"host": "127.0.0.1:8000", "origin": "https://app.example"}, ("*",), True),
])
def test_origin_rule(headers, allowed, ok):
    refusal = origins.origin_refusal(headers, allowed)
    assert (refusal is None) == ok, refusal
    if not ok:
        assert headers["origin"] in refusal and "gateway.allowed_origins" in refusal


def test_host_defaults_follow_the_bind_address():
    assert origins.allowed_hosts("127.0.0.1", ()) == ["127.0.0.1", "localhost", "[::1]"]
    assert origins.allowed_hosts("::1", ()) == ["127.0.0.1", "localhost", "[::1]"]
    assert origins.allowed_hosts("0.0.0.0", ()) == ["*"]        # a LAN box must answer to its IP
    assert origins.allowed_hosts("192.168.1.20", ()) == ["*"]
    assert origins.allowed_hosts("0.0.0.0", ("Box.local",)) == ["box.local"]
    assert origins.host_pattern_problems(["*", "*.local", "box", "10.0.0.2"]) == []
    assert origins.host_pattern_problems(["box*", "*box", ""]) == [
        "gateway.allowed_hosts: 'box*' is not a host name, '*' or '*.domain'",
        "gateway.allowed_hosts: '*box' is not a host name, '*' or '*.domain'",
        "gateway.allowed_hosts: '' is not a host name, '*' or '*.domain'"]


def test_cross_origin_websocket_is_refused_with_403(client):
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/stream", headers=EVIL):
            pass
    assert denied.value.status_code == 403
    error = denied.value.json()["error"]
    assert error["code"] == "origin_not_allowed" and "http://evil.example" in error["message"]


@pytest.mark.parametrize("headers", [{}, {"origin": "http://testserver"}])
def test_same_origin_and_non_browser_websockets_are_accepted(client, headers):
    with client.websocket_connect("/stream", headers=headers) as ws:
        assert ws.receive_json()["type"] == "ready"


def test_listed_origin_is_accepted(make_client, pipeline):
    with make_client(allowed_origins=("http://evil.example",)) as c:
        with c.websocket_connect("/stream", headers=EVIL) as ws:
            assert ws.receive_json()["type"] == "ready"


def test_cross_origin_event_stream_is_refused(client):
    r = client.get("/events", headers=EVIL)
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"


def test_only_loopback_host_names_on_a_loopback_address(make_client, pipeline):
    with make_client(healthy=False, allowed_hosts=()) as c:   # the default for host 127.0.0.1
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
            assert c.get("/", headers={"host": host}).status_code == 200, host
        refused = c.get("/health", headers={"host": "rebound.evil.example:8000"})
        assert refused.status_code == 400 and refused.text == "Invalid host header"  # Starlette's words
        with pytest.raises(WebSocketDenialResponse):
            with c.websocket_connect("/stream", headers={"host": "rebound.evil.example:8000"}):
                pass


def test_any_host_name_on_a_lan_address(make_client, pipeline):
    with make_client(healthy=False, host="0.0.0.0", allowed_hosts=()) as c:
        assert c.get("/", headers={"host": "192.168.1.20:8000"}).status_code == 200
        assert c.get("/", headers={"host": "voxbus.local"}).status_code == 200
