"""The bus process forwards everything, in order, over ipc:// and tcp://, and stops cleanly."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from bus import schemas, sockets
from bus.proxy import ForwardStats, ipc_in_use
from config import load_config

PEERS = str(Path(__file__).with_name("peers.py"))
PUBLISHERS = 3
SUBSCRIBERS = 2
FRAMES = 1000          # per publisher: 10 s at 100 frames/s
RATE = 100.0


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---- ForwardStats: a unit test of one class ----------------------------------------

def test_forward_stats_counts_families_and_subscriptions():
    stats = ForwardStats()
    stats.message([b"audio/mic1/", b"x" * 10])
    stats.message([b"text/mic1/", b"y"])
    stats.message([b"weird", b"a", b"b"])
    stats.subscription(b"\x01audio/")
    stats.subscription(b"\x00audio/")
    counters = stats.counters()
    assert counters["forwarded"] == 3 and counters["bytes"] == (11 + 10) + (10 + 1) + (5 + 1 + 1)
    assert counters["forwarded_audio"] == 1 and counters["forwarded_text"] == 1
    assert counters["forwarded_other"] == 1 and counters["not_two_frames"] == 1
    assert counters["subscribes"] == 1 and counters["unsubscribes"] == 1


# ---- the real bus process ------------------------------------------------------------

def transport_env(kind: str, run_dir: Path, free_port) -> dict:
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir))
    if kind == "tcp":
        env["VOXBUS_BUS__PUBLISH"] = f'"tcp://127.0.0.1:{free_port()}"'
        env["VOXBUS_BUS__SUBSCRIBE"] = f'"tcp://127.0.0.1:{free_port()}"'
        env["VOXBUS_BUS__PLAIN_TCP"] = "true"  # tcp without CURVE is an explicit choice (tests/bus/test_curve.py)
    return env


@pytest.mark.slow
def test_three_publishers_two_subscribers_lose_nothing_over_ipc_and_tcp(spawn, free_port):
    """Both transports at once (≈ 15 s): 3 × 100 frames/s for 10 s reach both subscribers, in order, intact."""
    run_dirs = {kind: Path(tempfile.mkdtemp(prefix=f"vb-{kind}-", dir="/tmp")) for kind in ("ipc", "tcp")}
    try:
        envs = {kind: transport_env(kind, d, free_port) for kind, d in run_dirs.items()}
        buses = {kind: spawn(["-m", "bus"], env=env, name=f"bus-{kind}") for kind, env in envs.items()}
        subs = {kind: [spawn([PEERS, "sub", "--expect", str(PUBLISHERS * FRAMES), "--ready",
                              str(run_dirs[kind] / f"ready{i}")], env=env, name=f"sub-{kind}{i}")
                       for i in range(SUBSCRIBERS)] for kind, env in envs.items()}
        wait_for(lambda: all((d / f"ready{i}").exists() for d in run_dirs.values() for i in range(SUBSCRIBERS)),
                 30, "subscribers to hear the bus heartbeat")
        pubs = [spawn([PEERS, "pub", "--stream", f"p{i}", "--count", str(FRAMES), "--rate", str(RATE)],
                      env=env, name=f"pub-{kind}{i}") for kind, env in envs.items() for i in range(PUBLISHERS)]
        for proc in pubs:
            assert proc.popen.wait(60) == 0, proc.output()
        for kind, procs in subs.items():
            for proc in procs:
                assert proc.popen.wait(30) == 0, proc.output()
                result = json.loads(proc.output().strip().splitlines()[-1])
                assert result["bad"] == 0, (kind, result)
                assert sorted(result["streams"]) == [f"p{i}" for i in range(PUBLISHERS)], (kind, result)
                for stream, tally in result["streams"].items():
                    assert tally == {"count": FRAMES, "last": FRAMES - 1, "in_order": True, "intact": True}, \
                        (kind, stream, tally)
        for kind, bus in buses.items():
            assert bus.stop() == 0, bus.output()
            assert "bus closed" in bus.output()
        assert not list(run_dirs["ipc"].glob("bus-*")), "the bus left its ipc files behind"
    finally:
        for d in run_dirs.values():
            shutil.rmtree(d, ignore_errors=True)


def test_bus_heartbeats_with_counters_and_stops_on_sigterm(spawn, run_dir):
    bus = spawn(["-m", "bus"], name="bus")
    cfg = load_config()
    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, cfg.bus, [b"health/bus/"])
    try:
        assert sub.poll(30000), bus.output()
        beat = schemas.unpack(sub.recv_multipart())
        assert isinstance(beat, schemas.Heartbeat) and beat.ok and beat.pid == bus.pid
        assert {"forwarded", "bytes", "subscribes", "forwarded_audio"} <= set(beat.counters)
    finally:
        sub.close(linger=0)
        ctx.term()
    assert (run_dir / "bus-publish").exists() and ipc_in_use(cfg.bus.publish)
    assert bus.stop() == 0   # 0, not -9: it left on SIGTERM before stop() resorted to SIGKILL
    assert not (run_dir / "bus-publish").exists() and not (run_dir / "bus-subscribe").exists()


def test_a_second_bus_refuses_to_steal_the_endpoint(spawn, run_dir):
    first = spawn(["-m", "bus"], name="bus1")
    wait_for(lambda: (run_dir / "bus-subscribe").exists(), 30, "the first bus to bind")
    second = subprocess.run([sys.executable, "-m", "bus"], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "another bus is already bound at ipc://" in second.stderr
    assert first.popen.poll() is None and (run_dir / "bus-publish").exists()


def test_tcp_port_in_use_is_a_clear_error(run_dir, free_port):
    port = free_port()
    ctx = zmq.Context()
    blocker = ctx.socket(zmq.PULL)
    blocker.bind(f"tcp://127.0.0.1:{port}")
    try:
        env = dict(os.environ, VOXBUS_BUS__PUBLISH=f'"tcp://127.0.0.1:{port}"', VOXBUS_BUS__PLAIN_TCP="true")
        result = subprocess.run([sys.executable, "-m", "bus"], env=env, capture_output=True, text=True, timeout=30)
    finally:
        blocker.close(linger=0)
        ctx.term()
    assert result.returncode == 1
    assert f"cannot bind tcp://127.0.0.1:{port}" in result.stderr
