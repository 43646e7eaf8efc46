"""CURVE on tcp endpoints (bus/curve.py) with keys from `voxbus keys curve` (bus/curve_keys.py): real
sockets on loopback; an allowed worker's messages arrive, anyone else's never do and are logged."""
from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import pytest
import zmq
import zmq.auth

from bus import curve, sockets
from config import load_config
from tests.conftest import REPO


def keys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "keys", "curve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def stack_keys(tmp_path):
    stack = tmp_path / "stack"
    assert keys("--dir", str(stack), "server").returncode == 0
    made = keys("--dir", str(stack), "worker", "pi1", "--out", str(tmp_path / "pi1"))
    assert made.returncode == 0, made.stderr
    return stack


def bus_cfg(curve_dir, **changes):
    return dataclasses.replace(load_config(env={}).bus, curve_dir=str(curve_dir), linger_ms=0, **changes)


def test_keys_cli_refuses_what_would_go_wrong(tmp_path, stack_keys):
    assert "make the server keypair first" in keys("--dir", str(tmp_path / "none"), "worker", "a",
                                                   "--out", str(tmp_path / "a")).stderr
    again = keys("--dir", str(stack_keys), "server")
    assert again.returncode == 1 and "--force replaces it" in again.stderr
    twice = keys("--dir", str(stack_keys), "worker", "pi1", "--out", str(tmp_path / "x"))
    assert twice.returncode == 1 and "allowed already" in twice.stderr
    assert keys("--dir", str(stack_keys), "list").stdout.startswith("pi1\t")
    assert keys("--dir", str(stack_keys), "revoke", "nobody").returncode == 1


def test_tcp_without_keys_is_refused_unless_plain_tcp_is_chosen(tmp_path, free_port):
    ctx = zmq.Context()
    try:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        with pytest.raises(OSError, match=r"voxbus keys curve.*bus.plain_tcp = true"):
            sockets.router(ctx, endpoint, bus_cfg(tmp_path / "nothing"), hwm=10)
        sockets.router(ctx, endpoint, bus_cfg(tmp_path / "nothing", plain_tcp=True), hwm=10).close(linger=0)
        ipc = sockets.router(ctx, f"ipc://{tmp_path}/s", bus_cfg(tmp_path / "nothing"), hwm=10)  # ipc: as it was
        ipc.close(linger=0)
    finally:
        curve.Gatekeepers.stop_all()
        ctx.term()


def exchange(ctx, endpoint, worker_cfg, router) -> bytes | None:
    dealer = sockets.dealer(ctx, endpoint, worker_cfg, hwm=10)
    dealer.sndtimeo = 3000  # a refused handshake leaves no pipe to send on
    try:
        try:
            dealer.send(b"ready")
        except zmq.Again:
            return None
        if router.poll(3000):
            return router.recv_multipart()[1]
        return None
    finally:
        dealer.close(linger=0)


def refused_seen_by_the_worker(ctx, endpoint, worker_cfg) -> bool:
    """The worker's own side logs the refusal too (its socket monitor: bus.curve.HandshakeWatch)."""
    dealer = sockets.dealer(ctx, endpoint, worker_cfg, hwm=10)
    watch = curve.watch(dealer, endpoint, worker_cfg)
    try:
        for _ in range(100):
            watch.check()
            if watch.refused:
                return True
            watch.monitor.poll(50)
        return False
    finally:
        watch.close(dealer)
        dealer.close(linger=0)


def test_only_allowed_keys_get_through_and_refusals_are_logged(tmp_path, stack_keys, free_port, caplog):
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    zmq.auth.create_certificates(rogue, curve.WORKER)
    (rogue / "server.key").write_bytes((stack_keys / "server.key").read_bytes())
    ctx = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    router = sockets.router(ctx, f"ipc://{tmp_path}/local", bus_cfg(stack_keys), hwm=10)
    sockets.bind_remote(router, endpoint, bus_cfg(stack_keys))
    try:
        with caplog.at_level(logging.WARNING, logger="bus.curve"):
            assert exchange(ctx, endpoint, bus_cfg(tmp_path / "pi1"), router) == b"ready"
            assert exchange(ctx, endpoint, bus_cfg(rogue), router) is None
            assert refused_seen_by_the_worker(ctx, endpoint, bus_cfg(rogue))
            assert exchange(ctx, f"ipc://{tmp_path}/local", bus_cfg(rogue), router) == b"ready"  # ipc: no CURVE
            assert keys("--dir", str(stack_keys), "revoke", "pi1").returncode == 0
            assert exchange(ctx, endpoint, bus_cfg(tmp_path / "pi1"), router) is None  # revoked: next connection
        refused = [r for r in caplog.records if r.getMessage() == "CURVE key refused: not in the allow-list"]
        assert len(refused) >= 2
        assert any("refused this worker's CURVE key" in r.getMessage() for r in caplog.records)
    finally:
        router.close(linger=0)
        curve.Gatekeepers.stop_all()
        ctx.term()
