"""gateway/store_api.py against a real store process (over store.query), in a Starlette app of its own."""
from __future__ import annotations

import contextlib
import os

import pytest
import zmq
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.testclient import TestClient

from config import load_config
from gateway import store_api
from gateway.errors import ApiError, api_error_handler, http_error_handler
from bus import schemas
from tests.kit import BusClient, parse_srt, parse_vtt, start_bus, wait_for
from tests.store.test_store_process import producer, seqs


def app_for(cfg):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        ctx = zmq.Context()
        store = store_api.StoreGateway(cfg, ctx)
        try:
            yield {"store": store}
        finally:
            store.close()
            ctx.destroy(linger=0)

    return Starlette(routes=store_api.ROUTES, lifespan=lifespan,
                     exception_handlers={ApiError: api_error_handler, HTTPException: http_error_handler})


@pytest.fixture
def http(spawn, run_dir, tmp_path, monkeypatch):
    path = tmp_path / "store" / "t.db"
    env = {**os.environ, "VOXBUS_RUN_DIR": str(run_dir), "VOXBUS_STORE__PATH": str(path)}
    monkeypatch.setenv("VOXBUS_STORE__QUERY_TIMEOUT_MS", "1000")
    monkeypatch.setenv("VOXBUS_STORE__QUERY_RETRIES", "1")
    start_bus(spawn, run_dir, env)
    store = spawn(["-m", "store"], env=env, name="store")
    producer(spawn, env, run_dir, count=100, rate=2000.0)
    wait_for(lambda: len(seqs(path)) == 100, what="100 finals")
    with TestClient(app_for(load_config())) as client:
        yield client, store


def test_search_get_export_delete_over_http(http):
    client, _ = http
    page = client.get("/v1/transcripts", params={"q": "budget", "limit": 7}).json()
    assert len(page["transcripts"]) == 7 and page["next_cursor"]
    rest = client.get("/v1/transcripts", params={"q": "budget", "cursor": page["next_cursor"]}).json()
    assert len(rest["transcripts"]) == 13 and rest["next_cursor"] is None
    one = page["transcripts"][0]
    assert client.get(f"/v1/transcripts/{one['id']}").json()["text"] == one["text"]
    streams = {s["stream"]: s for s in client.get("/v1/streams").json()["streams"]}
    assert streams["job1"]["finals"] == 20 and streams["job1"]["kind"] == "job"
    mic = client.get("/v1/streams/mic1/export", params={"format": "srt"})
    assert mic.status_code == 200 and mic.headers["content-disposition"] == 'attachment; filename="mic1.srt"'
    assert len(parse_srt(mic.text)) == streams["mic1"]["finals"]
    assert len(parse_vtt(client.get("/v1/streams/mic1/export?format=vtt").text)) == streams["mic1"]["finals"]
    assert client.delete(f"/v1/transcripts/{one['id']}").json() == {"deleted": 1}
    assert client.get(f"/v1/transcripts/{one['id']}").status_code == 404
    assert client.delete("/v1/transcripts", params={"stream": "cam1", "until": "2100-01-01T00:00:00"}).json() \
        == {"deleted": streams["cam1"]["finals"]}
    assert client.get("/v1/transcripts", params={"stream": "cam1"}).json()["transcripts"] == []


def test_bad_requests_are_json_errors_naming_the_argument(http):
    client, _ = http
    bad = client.get("/v1/transcripts", params={"q": '"unclosed'})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "q"
    assert client.get("/v1/transcripts", params={"since": "yesterday"}).json()["error"]["param"] == "since"
    assert client.get("/v1/transcripts", params={"limit": "-3"}).status_code == 400
    assert client.get("/v1/streams/mic1/export", params={"format": "doc"}).json()["error"]["param"] == "format"
    assert client.delete("/v1/transcripts").status_code == 400
    assert client.get("/v1/transcripts/abc").status_code == 404


def test_a_store_that_is_down_is_a_503_with_retry_after(http):
    client, store = http
    store.stop()
    down = client.get("/v1/streams")
    assert down.status_code == 503 and down.headers["retry-after"] == "2"
    assert down.json()["error"]["code"] == "store_unavailable"


def test_missed_finals_after_a_last_event_id_come_oldest_first(http):
    import anyio
    client, _ = http
    page = client.get("/v1/transcripts", params={"stream": "mic1", "limit": 500}).json()["transcripts"]
    oldest_first = sorted(page, key=lambda t: t["wall"])   # ids follow arrival: a resynced final comes later
    last_seen = store_api.final_of(oldest_first[2])

    async def ask():
        ctx = zmq.Context()
        gateway = store_api.StoreGateway(load_config(), ctx)
        try:
            return await store_api.missed_finals(gateway, store_api.event_id(last_seen), stream="mic1")
        finally:
            gateway.close()
            ctx.destroy(linger=0)

    missed = anyio.run(ask)
    assert [f.seq for f in missed] == [t["seq"] for t in oldest_first[3:]]
    assert missed[0].stream == "mic1" and missed[0].text == oldest_first[3]["text"]


def test_alert_rules_fire_once_per_match_and_the_webhook_gets_signed_bodies(spawn, run_dir, tmp_path, monkeypatch):
    import hashlib
    import hmac
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Voxbus-Signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "store" / "t.db"
    env = {**os.environ, "VOXBUS_RUN_DIR": str(run_dir), "VOXBUS_STORE__PATH": str(path),
           "VOXBUS_STORE__WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook",
           "VOXBUS_STORE__WEBHOOK_SECRET": "s3cret", "VOXBUS_STORE__ALERT_KEYWORDS": '["weather"]'}
    try:
        start_bus(spawn, run_dir, env)
        spawn(["-m", "store"], env=env, name="store")
        wait_for(lambda: (run_dir / "store-query").exists(), what="the store's query socket")
        bus = BusClient(run_dir, prefixes=[schemas.prefix("alert")])
        with TestClient(app_for(load_config())) as client:
            added = client.post("/v1/alerts", json={"id": "money", "keywords": ["budget"], "stream": "job1"})
            assert added.status_code == 201, added.text
            assert client.post("/v1/alerts", json={"id": "bad", "regex": "("}).json()["error"]["param"] == "regex"
            assert {r["id"] for r in client.get("/v1/alerts").json()["rules"]} == {"config-keywords", "money"}
            producer(spawn, env, run_dir, count=100, rate=2000.0)
            wait_for(lambda: len(seqs(path)) == 100, what="100 finals")
            wait_for(lambda: len(received) == 100, what="100 webhook posts (80 weather + 20 budget)")
            on_bus = bus.wait(lambda m: isinstance(m, schemas.Alert) and m.rule == "money" and m.seq == 100,
                              what="the last budget alert on alert/job1/")
            assert on_bus[0].kind == "keyword" and on_bus[0].stream == "job1" and on_bus[0].terms == ["budget"]
            fired = client.get("/v1/alerts/fired", params={"rule": "money", "limit": 500}).json()["alerts"]
            assert len(fired) == 20 and all(a["final_id"] and a["terms"] == ["budget"] for a in fired)
            assert client.delete("/v1/alerts/money").json() == {"deleted": "money"}
            assert client.delete("/v1/alerts/config-keywords").status_code == 400
        bodies = [json.loads(body) for body, _ in received]
        assert sorted(b["seq"] for b in bodies if b["rule"] == "money") == list(range(5, 101, 5))
        assert all(sig == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest() for body, sig in received)
    finally:
        server.shutdown()


def test_a_hanging_webhook_does_not_delay_finals(spawn, run_dir, tmp_path):
    import sqlite3
    import threading
    import time as clock
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hang(BaseHTTPRequestHandler):
        def do_POST(self):
            clock.sleep(5)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "store" / "t.db"
    env = {**os.environ, "VOXBUS_RUN_DIR": str(run_dir), "VOXBUS_STORE__PATH": str(path),
           "VOXBUS_STORE__WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook",
           "VOXBUS_STORE__WEBHOOK_TIMEOUT_S": "4", "VOXBUS_STORE__ALERT_KEYWORDS": '["weather", "budget"]'}
    try:
        start_bus(spawn, run_dir, env)
        spawn(["-m", "store"], env=env, name="store")
        wait_for(lambda: (run_dir / "store-query").exists(), what="the store's query socket")
        producer(spawn, env, run_dir, count=300, rate=100.0)   # every final fires an alert
        wait_for(lambda: len(seqs(path)) == 300, timeout=30, what="300 finals")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        delays = sorted(r[0] for r in conn.execute("SELECT stored_at - wall FROM finals WHERE seq > 20"))
        conn.close()
        assert delays[-1] < 1.0, f"finals waited up to {delays[-1]:.2f} s behind a hanging webhook"
    finally:
        server.shutdown()
