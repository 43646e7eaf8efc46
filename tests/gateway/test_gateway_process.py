"""`python -m gateway` as a real process: serving, SSE, the web page's files, clean SIGTERM, bad config."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import websockets

from tests.conftest import REPO, find_free_port
from tests.gateway.helpers import tone, until

pytestmark = pytest.mark.slow


def start_gateway(run_dir, tmp_path, **env_extra):
    port = find_free_port()
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_GATEWAY__PORT=str(port), **env_extra)
    env.setdefault("VOXBUS_WYOMING__ENABLED", "false")  # a fixed port (10300) would clash between test runs
    env.pop("VOXBUS_CONFIG", None)
    log = open(tmp_path / f"gateway-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    return proc, f"127.0.0.1:{port}", tmp_path / f"gateway-{port}.log"


def wait_healthy(base: str, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"http://{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("gateway never became healthy")


@pytest.fixture(scope="module")
def gateway(bus_run_dir, pipeline, tmp_path_factory):
    proc, base, log = start_gateway(bus_run_dir, tmp_path_factory.mktemp("gw"))
    try:
        wait_healthy(base, proc)
        yield proc, base, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def collect_sse(url: str, events: list, stop: threading.Event, headers: dict | None = None) -> None:
    """("status", code), ("listening", None) once the server has registered the listener, then events."""
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5, read=30)) as r:
            events.append(("status", r.status_code))
            for line in r.iter_lines():
                if line == ": voxbus events":  # sent after the listener is registered
                    events.append(("listening", None))
                if line.startswith("data: "):
                    events.append(("event", json.loads(line[6:])))
                if stop.is_set():
                    return
    except httpx.HTTPError as exc:  # the server stopping ends the stream
        events.append(("closed", str(exc)))


def listening(*event_lists: list, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(("listening", None) in events for events in event_lists):
            return
        time.sleep(0.02)
    raise AssertionError(f"SSE listener(s) never started: {event_lists}")


async def speak(base: str) -> tuple[str, list[dict]]:
    async with websockets.connect(f"ws://{base}/stream?sample_rate=16000") as ws:
        ready = json.loads(await ws.recv())
        for _ in range(8):
            await ws.send(tone(0.1))
        events = []
        while not events or events[-1]["type"] != "partial":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        await ws.send(json.dumps({"type": "eof"}))
        events += [json.loads(m) async for m in ws]
        assert ws.close_code == 1000
    return ready["session"], events


def test_ws_and_sse_over_a_real_server(gateway):
    _, base, _ = gateway
    sse_all, sse_other, stop = [], [], threading.Event()
    threads = [threading.Thread(target=collect_sse, args=(f"http://{base}/events", sse_all, stop), daemon=True),
               threading.Thread(target=collect_sse, args=(f"http://{base}/events?stream=ws-nobody", sse_other, stop),
                                daemon=True)]
    for t in threads:
        t.start()
    listening(sse_all, sse_other)
    stream, events = asyncio.run(speak(base))
    assert [e["type"] for e in events][-1] == "final" and "partial" in [e["type"] for e in events]
    assert until(lambda: any(e[0] == "event" and e[1]["type"] == "final" for e in sse_all)), sse_all
    stop.set()
    mine = [e for kind, e in sse_all if kind == "event" and e.get("stream") == stream]
    assert {"vad", "partial", "final"} <= {e["type"] for e in mine}
    assert sse_all[0] == ("status", 200) and not [e for e in sse_other if e[0] == "event"]
    assert httpx.get(f"http://{base}/events?color=red").status_code == 400
    bad = httpx.get(f"http://{base}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_last_event_id"


def test_a_resume_takes_over_a_connection_the_gateway_still_holds(gateway, bus_run_dir):
    """The client's network dropped and the gateway has not noticed: the resumed connection takes the
    session over, the old one ends, and vad is never told to close the stream meanwhile."""
    from bus import schemas
    from tests.kit import BusClient

    _, base, _ = gateway
    bus = BusClient(bus_run_dir, prefixes=[schemas.prefix("ctl")])

    async def main():
        async with websockets.connect(f"ws://{base}/stream?sample_rate=16000") as old:
            ready = json.loads(await old.recv())
            await old.send(tone(0.2))
            async with websockets.connect(f"ws://{base}/stream?resume={ready['resume']}") as new:
                again = json.loads(await new.recv())
                await old.wait_closed()
                await new.send(tone(0.2))
                taken_over = [m for m in bus.drain(0.5) if isinstance(m, schemas.Close)]
                await new.send(json.dumps({"type": "eof"}))
                async for _ in new:
                    pass
            return ready, again, old.close_code, old.close_reason, taken_over

    ready, again, code, _, closes_meanwhile = asyncio.run(main())
    assert again["session"] == ready["session"] and again["config"] == ready["config"] and again["resume"]
    assert code == 1006   # dropped without a close frame: to a connection that broke, it could take long to send
    assert not [m for m in closes_meanwhile if m.stream == ready["session"]]
    assert bus.wait(lambda m: isinstance(m, schemas.Close) and m.stream == ready["session"], 10, "the close")
    bus.close()


def test_cross_origin_pages_are_refused_and_same_origin_served(gateway):
    _, base, _ = gateway

    async def connect(origin: str | None) -> str:
        headers = {"Origin": origin} if origin else {}
        async with websockets.connect(f"ws://{base}/stream", additional_headers=headers) as ws:
            return json.loads(await ws.recv())["type"]

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(connect("http://evil.example"))
    assert refused.value.response.status_code == 403
    assert b"origin_not_allowed" in refused.value.response.body
    assert asyncio.run(connect(f"http://{base}")) == "ready" and asyncio.run(connect(None)) == "ready"
    assert httpx.get(f"http://{base}/events", headers={"Origin": "http://evil.example"}).status_code == 403
    events, stop = [], threading.Event()
    same = threading.Thread(target=collect_sse, args=(f"http://{base}/events", events, stop,
                                                      {"Origin": f"http://{base}"}), daemon=True)
    same.start()
    listening(events)
    stop.set()
    assert events[0] == ("status", 200)


def test_web_page_files_are_served(gateway):
    _, base, _ = gateway
    assert httpx.get(f"http://{base}/ui").headers["location"].endswith("/ui/")
    page = httpx.get(f"http://{base}/ui/")
    assert page.status_code == 200 and "<title>voxbus</title>" in page.text
    for name, kind in (("app.js", "javascript"), ("worklet.js", "javascript"), ("style.css", "text/css")):
        r = httpx.get(f"http://{base}/ui/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, nothing external


def test_sigterm_stops_cleanly(gateway):
    """Even with an SSE client attached, the stop is prompt (streams see the shutdown flag)."""
    proc, base, log = gateway
    events, stop = [], threading.Event()
    listener = threading.Thread(target=collect_sse, args=(f"http://{base}/events", events, stop), daemon=True)
    listener.start()
    listening(events)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0  # uvicorn alone would wait its 5 s grace for the open stream, then cancel it
    listener.join(30)
    assert events[0] == ("status", 200) and not listener.is_alive()
    assert not [e for e in events if e[0] == "closed"], events  # ended cleanly, not cut off after the grace
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "stopped" and line["stage"] == "gateway" for line in lines)


def test_bad_config_is_one_clear_line(bus_run_dir, tmp_path):
    proc, _, log = start_gateway(bus_run_dir, tmp_path, VOXBUS_GATEWAY__MAX_SESSIONS="0")
    assert proc.wait(20) == 2
    assert "gateway.max_sessions = 0: expected an integer from 1 to 10000" in log.read_text()


def test_bad_host_pattern_is_one_clear_line(bus_run_dir, tmp_path):
    proc, _, log = start_gateway(bus_run_dir, tmp_path, VOXBUS_GATEWAY__ALLOWED_HOSTS='["box*"]')
    assert proc.wait(20) != 0
    assert "gateway.allowed_hosts: 'box*' is not a host name, '*' or '*.domain'" in log.read_text()


def test_port_in_use_fails_fast(bus_run_dir, tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, _, log = start_gateway(bus_run_dir, tmp_path)
        proc.kill()
        proc.wait()
        env = dict(os.environ, VOXBUS_RUN_DIR=str(bus_run_dir), VOXBUS_GATEWAY__PORT=str(port),
                   VOXBUS_WYOMING__ENABLED="false")
        done = subprocess.run([sys.executable, "-m", "gateway"], env=env, cwd=REPO, capture_output=True, timeout=30)
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in done.stderr.decode().lower()


def test_listener_gets_tcp_nodelay():
    """asyncio only sets TCP_NODELAY on accepted sockets of proto IPPROTO_TCP; without it small
    responses and WebSocket events wait for delayed ACKs."""
    import socket
    from gateway.server import bind_listener
    sock = bind_listener("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()

