"""Issue 11's fuzz test: bad input of every kind over REST, the WebSocket and the bus, against the real
stack (tests/e2e/conftest.py's `stack`), from a fixed seed. Each REST case must be a 4xx with our JSON
error and no object repr, each WebSocket case an error event (never internal_error / 1011), each bus
message dropped and counted; no stage may restart and /health must be 200 at the end.

    VOXBUS_FUZZ_SCALE=20 pytest tests/e2e/test_fuzz.py     # the longer run (bench): 20× the cases
    VOXBUS_FUZZ_SEED=7 ...                                 # another seed (default 11)
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter

import httpx
import msgpack
import pytest
import websockets
import zmq

from bus import schemas
from config import load_config
from tests.conftest import REPO
from tests.e2e import fuzz_cases as cases

log = logging.getLogger(__name__)

SEED = int(os.environ.get("VOXBUS_FUZZ_SEED", "11"))
SCALE = float(os.environ.get("VOXBUS_FUZZ_SCALE", "1"))
REST_CASES = int(500 * SCALE)
WS_SESSIONS, WS_CASES_PER_SESSION = int(10 * SCALE), 30
BUS_PUB, BUS_PUSH_VAD, BUS_PUSH_ASR = int(250 * SCALE), int(100 * SCALE), int(100 * SCALE)
CLOSE_CODES_ALLOWED = {1000, 1001, 1008, 1009, 1013}
counts: Counter = Counter()  # cases per surface, for the report at the end of the module


def _check_error_body(r: httpx.Response, case) -> None:
    assert 400 <= r.status_code < 500, f"{case.kind} {case.path}: {r.status_code} {r.text[:300]}"
    assert " at 0x" not in r.text and "Traceback" not in r.text, r.text[:300]
    if r.status_code not in (404, 405):
        err = r.json()["error"]
        assert err["code"] and err["message"], r.text[:300]


def test_fuzz_rest(stack):
    rng = random.Random(SEED)
    kinds: Counter = Counter()
    with httpx.Client(base_url=stack.http, timeout=60) as client:
        for _ in range(REST_CASES):
            case = cases.rest_case(rng)
            r = client.request(case.method, case.path, files=case.files, data=case.data or None,
                               content=case.content, headers=case.headers)
            _check_error_body(r, case)
            kinds[case.kind] += 1
    counts["rest"] += sum(kinds.values())
    log.warning("fuzz rest cases: %s", dict(kinds))


async def _ws_session(stack, rng: random.Random) -> int:
    encoding = rng.choice(["f32", "s16"])
    done = 0
    async with websockets.connect(f"{stack.ws}/stream?encoding={encoding}", max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(b"\x00" * (640 if encoding == "s16" else 1280))  # streaming: config is now illegal
        for _ in range(WS_CASES_PER_SESSION):
            case = cases.ws_case(rng, encoding)
            await ws.send(case.payload)
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if event["type"] == "error":
                    break
            assert event["code"] == case.code, (case.kind, event)
            assert " at 0x" not in event["message"] and len(event["message"]) < 400, event
            done += 1
        await ws.send(json.dumps({"type": "eof"}))
        for _ in range(3):  # frames after eof: the first an illegal_state error, the rest dropped; the close
            await ws.send(b"\x00\x00")
        errors = []
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "error":
                errors.append(event["code"])
        assert errors == ["illegal_state"] and ws.close_code == 1000, (errors, ws.close_code)
    return done + 4


async def _ws_refusals(stack) -> int:
    done = 0
    for query in cases.BAD_QUERIES:
        async with websockets.connect(f"{stack.ws}/stream?{query}") as ws:
            event = json.loads(await ws.recv())
            assert event["type"] == "error" and event["code"] == "bad_config", (query, event)
            await ws.wait_closed()
            assert ws.close_code == 1008, (query, ws.close_code)
            done += 1
    async with websockets.connect(f"{stack.ws}/stream", max_size=None) as ws:  # a frame over the limit
        await ws.recv()
        await ws.send(b"\x00" * (1048576 + 4))
        event = json.loads(await ws.recv())
        assert event["code"] == "frame_too_large"
        await ws.wait_closed()
        assert ws.close_code == 1009
    return done + 1


async def _ws_too_many(stack) -> int:
    """Sessions up to gateway.max_sessions (16) are served (fewer if another test's are still open);
    the next is refused with too_many_sessions and 1013."""
    opened = []
    try:
        for _ in range(17):
            ws = await websockets.connect(f"{stack.ws}/stream")
            event = json.loads(await ws.recv())
            if event["type"] != "ready":
                await ws.wait_closed()
                assert event["code"] == "too_many_sessions" and ws.close_code == 1013, (event, ws.close_code)
                return 1
            opened.append(ws)
        raise AssertionError("17 sessions were served; gateway.max_sessions is 16")
    finally:
        for ws in opened:
            await ws.close()


def test_fuzz_websocket(stack):
    rng = random.Random(SEED + 1)

    async def run() -> int:
        total = await _ws_refusals(stack) + await _ws_too_many(stack)
        for _ in range(WS_SESSIONS):
            total += await _ws_session(stack, rng)
        return total

    counts["websocket"] += asyncio.run(run())


def _heartbeat_counters(sub: zmq.Socket, done, timeout: float = 15.0) -> dict[str, dict]:
    """Heartbeat counters per "stage:instance" (the latest of each) until `done(seen)` or `timeout`."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(seen):
        if sub.poll(200):
            try:
                msg = schemas.unpack(sub.recv_multipart())
            except schemas.SchemaError:
                continue  # our own fuzz on health/
            if isinstance(msg, schemas.Heartbeat) and isinstance(msg.counters, dict):
                seen[f"{msg.stage}:{msg.instance or msg.pid}"] = msg.counters
    return seen


def _bad_total(seen: dict[str, dict], stage: str, keys=("bad_messages", "route_errors", "bad_jobs")) -> int:
    return sum(c.get(k, 0) for name, c in seen.items() if name.startswith(stage + ":") for k in keys
               if isinstance(c.get(k, 0), int))


STAGES = ("gateway", "vad", "asr")


@pytest.fixture
def fuzz_asr(stack):
    """A second asr worker whose broker link connects to our own ROUTER (vad's broker is vad's alone)."""
    endpoint = f"ipc://{stack.run_dir}/fuzz-segments"
    env = dict(stack.env, VOXBUS_VAD__SEGMENTS=endpoint)
    proc = subprocess.Popen([sys.executable, "-m", "asr"], env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(stack.run_dir / "fuzz-asr.log", "wb"))
    yield endpoint, proc
    proc.terminate()
    proc.wait(15)


def test_fuzz_bus(stack, fuzz_asr):
    endpoint, asr_proc = fuzz_asr
    cfg = load_config(env=stack.env, check_cores=False)
    pids_before = stack.pids()
    ctx = zmq.Context()
    rng = random.Random(SEED + 2)
    from bus import sockets
    pub = sockets.publisher(ctx, cfg.bus)
    sub = sockets.subscriber(ctx, cfg.bus, [b"health/"])
    to_vad = sockets.pusher(ctx, cfg.vad.jobs, cfg.bus, bind=False)
    to_asr = sockets.router(ctx, endpoint, cfg.bus, hwm=10 * BUS_PUSH_ASR)  # plays vad's broker to the fuzz worker
    to_broker = sockets.dealer(ctx, cfg.vad.segments, cfg.bus, hwm=10 * BUS_PUSH_ASR)  # plays a worker to vad
    try:
        before = _heartbeat_counters(sub, lambda seen: {k.split(":")[0] for k in seen} >= set(STAGES))
        time.sleep(0.5)  # our PUB's subscription handshake with the proxy
        for _ in range(BUS_PUB):
            pub.send_multipart(cases.bus_frames(rng))
            time.sleep(0.001)
        started = time.monotonic()
        for _ in range(BUS_PUSH_VAD):
            # vad takes one job at a time (its JobWorker), so a burst waits on the pipe: slow, not stuck.
            assert to_vad.poll(30000, zmq.POLLOUT), "vad's job socket took nothing for 30 s"
            to_vad.send(cases.bus_payload(rng))
        log.warning("vad took %d junk jobs in %.1f s", BUS_PUSH_VAD, time.monotonic() - started)
        assert to_asr.poll(30000), "the fuzz asr worker never said ready"
        worker = to_asr.recv_multipart()[0]
        for _ in range(BUS_PUSH_ASR):
            to_asr.send_multipart([worker, cases.bus_payload(rng)])
            to_broker.send(cases.bus_payload(rng))
        after = _heartbeat_counters(sub, lambda seen: all(_bad_total(seen, stage) > _bad_total(before, stage)
                                                          for stage in STAGES), 30)
    finally:
        for sock in (pub, sub, to_vad, to_asr, to_broker):
            sock.close(linger=0)
        ctx.term()
    counts["bus"] += BUS_PUB + BUS_PUSH_VAD + 2 * BUS_PUSH_ASR
    assert asr_proc.poll() is None, (stack.run_dir / "fuzz-asr.log").read_text()[-2000:]
    for stage in STAGES:
        assert _bad_total(after, stage) > _bad_total(before, stage), (stage, before, after)
    assert stack.pids() == pids_before or _same_stages(stack.pids(), pids_before)
    deadline = time.monotonic() + 15
    while httpx.get(f"{stack.http}/health", timeout=5).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(f"{stack.http}/health", timeout=5).status_code == 200
    log.warning("fuzz cases per surface (seed %d, scale %g): %s", SEED, SCALE, dict(counts))


def _same_stages(now: dict, before: dict) -> bool:
    """No stage restarted: every pid seen before is still there (the fuzz asr worker may be extra)."""
    return all(set(pids) <= set(now.get(stage, [])) for stage, pids in before.items())
