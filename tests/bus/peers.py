"""Bus peers run as real processes by the bus tests: `python tests/bus/peers.py pub|sub|blast ...`.

Endpoints come from the voxbus config (so $VOXBUS_RUN_DIR and VOXBUS_BUS__* apply).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import zmq

from bus import schemas, sockets
from config import load_config

FRAME_BYTES = 640   # 20 ms of 16 kHz int16


def frame_pcm(seq: int) -> bytes:
    """Deterministic content, so a subscriber can check every payload arrived unchanged."""
    return seq.to_bytes(4, "little") * (FRAME_BYTES // 4)


def wait_until_routed(ctx, cfg, pub, stream: str, timeout: float = 15.0) -> None:
    """Slow joiner: send `open` on ctl/<stream>/ until our own SUB hears it through the bus.

    Once that works, the bus has also handed this PUB every earlier subscription.
    """
    probe = sockets.subscriber(ctx, cfg.bus, [f"ctl/{stream}/"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sockets.publish(pub, schemas.Open(stream=stream, source="peers"))
            if probe.poll(50):
                return
        raise SystemExit(f"peers: the bus never routed ctl/{stream}/ within {timeout} s")
    finally:
        probe.close(linger=0)


def run_pub(args, cfg, ctx, stopping) -> None:
    pub = sockets.publisher(ctx, cfg.bus)
    wait_until_routed(ctx, cfg, pub, args.stream)
    start = time.monotonic()
    for seq in range(args.count):
        delay = start + seq / args.rate - time.monotonic()
        if delay > 0 and stopping.wait(delay):
            break
        sockets.publish(pub, schemas.Audio(stream=args.stream, seq=seq, offset=seq * FRAME_BYTES // 2,
                                           pcm=frame_pcm(seq), ts=time.time()))
    pub.close(linger=5000)


class Tally:
    """Per stream: how many frames, whether in order, whether every payload was intact."""

    def __init__(self):
        self.streams: dict[str, dict] = {}
        self.bad = 0

    def see(self, msg: schemas.Audio) -> None:
        s = self.streams.setdefault(msg.stream, {"count": 0, "last": -1, "in_order": True, "intact": True})
        s["count"] += 1
        s["in_order"] &= msg.seq == s["last"] + 1
        s["intact"] &= msg.pcm == frame_pcm(msg.seq)
        s["last"] = msg.seq

    def total(self) -> int:
        return sum(s["count"] for s in self.streams.values())


def run_sub(args, cfg, ctx, stopping) -> None:
    sub = sockets.subscriber(ctx, cfg.bus, [b"audio/", b"health/bus/"])
    ready_deadline = time.monotonic() + 15
    while not sub.poll(100) or not sub.recv_multipart()[0].startswith(b"health/bus/"):
        if time.monotonic() > ready_deadline:
            raise SystemExit("peers: no bus heartbeat within 15 s")
    open(args.ready, "w").close()   # our subscription has reached the bus
    tally, last_seen, deadline = Tally(), time.monotonic(), time.monotonic() + args.max_seconds
    first_seen = None
    while not stopping.is_set() and tally.total() < args.expect and time.monotonic() < deadline:
        if not sub.poll(100):
            if tally.total() and time.monotonic() - last_seen > args.idle:
                break
            continue
        frames = sub.recv_multipart()
        if frames[0].startswith(b"health/"):
            continue
        try:
            tally.see(schemas.unpack(frames))
        except schemas.SchemaError:
            tally.bad += 1
        last_seen = time.monotonic()
        first_seen = first_seen or last_seen
    sub.close(linger=0)
    elapsed = last_seen - first_seen if first_seen else 0.0
    sys.stdout.write(json.dumps({"streams": tally.streams, "bad": tally.bad, "total": tally.total(),
                                 "elapsed_s": round(elapsed, 3)}) + "\n")


def run_blast(args, cfg, ctx, stopping) -> None:
    """Publish `count` frames as fast as possible (throughput measurement)."""
    pub = sockets.publisher(ctx, cfg.bus)
    wait_until_routed(ctx, cfg, pub, args.stream)
    for seq in range(args.count):
        if stopping.is_set():
            break
        sockets.publish(pub, schemas.Audio(stream=args.stream, seq=seq, offset=seq * 320, pcm=frame_pcm(seq)))
    pub.close(linger=10000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("pub", "sub", "blast"))
    parser.add_argument("--stream", default="p0")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--expect", type=int, default=3000)
    parser.add_argument("--ready", default="")
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    cfg = load_config(check_cores=False)
    ctx = zmq.Context()
    try:
        {"pub": run_pub, "sub": run_sub, "blast": run_blast}[args.mode](args, cfg, ctx, stopping)
    finally:
        ctx.destroy(linger=5000)


if __name__ == "__main__":
    main()
