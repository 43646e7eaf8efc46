"""A stand-in for an asr worker: numbered Finals on the bus at a rate, its history ROUTER, heartbeats.

`python -m tests.store.fake_producer --count N --rate R --worker W --history ENDPOINT` publishes
N finals round-robin over four live streams and one file job, R per second, with `seq` 1..N, and
heartbeats whose counters carry `history` and `final_seq`, as asr/main.py will. It keeps serving
its history until SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
import time

import zmq

from asr.history import FinalHistory, HistoryServer
from bus import schemas, sockets
from config import load_config
from tests.store.helpers import final

STREAMS = ("cam1", "cam2", "mic1", "mic2")


def message(seq: int, worker: str) -> schemas.Final:
    if seq % 5 == 0:
        return final(seq, f"job piece {seq} budget figures", job="job1", worker=worker, wall=time.time())
    return final(seq, f"utterance {seq} about the weather", stream=STREAMS[seq % 5 % 4], worker=worker,
                 wall=time.time())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--worker", default="fake1")
    parser.add_argument("--history", required=True)
    parser.add_argument("--origin", type=int, default=1, help="the first seq (a restarted run numbers on)")
    args = parser.parse_args()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    cfg = load_config()
    ctx = zmq.Context()
    pub = sockets.publisher(ctx, cfg.bus)
    history = FinalHistory(args.worker)
    server = HistoryServer.bind(ctx, args.history, history, cfg.bus)
    seq, next_beat, started = 0, 0.0, time.monotonic()
    try:
        while not stopping.is_set():
            server.serve()
            due = min(args.count, int((time.monotonic() - started) * args.rate))
            while seq < due:
                seq += 1
                msg = message(seq + args.origin - 1, args.worker)
                sockets.publish(pub, msg)
                history.add(msg)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + 0.5
                sockets.publish(pub, schemas.Heartbeat(
                    stage="asr", pid=os.getpid(), host="test", uptime_s=0.0, ok=True, instance=args.worker,
                    counters={"history": server.endpoint, "final_seq": history.last}, ts=time.time()))
            time.sleep(0.002)
    finally:
        server.close()
        pub.close(linger=0)
        ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
