"""What the segment broker costs on the vad → asr hop, against the PUSH/PULL pipe it replaced.

Two processes over ipc:// on this host. The sender stamps each segment with CLOCK_MONOTONIC
(system-wide on Linux) and hands it over: PUSH → `send`; broker → `ticketed`, the queue,
`dispatch`, ROUTER `send` (what vad does). The receiver (PULL, or a DEALER worker that said
`ready` and answers `done` at once, like asr) decodes it and takes the difference. One segment
at a time, 2 ms apart, so this is the hop on an idle path, message codec included.

usage: python -m tests.bench broker_hop -- [--count 2000] [--seconds 1,5]
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus import schemas, worker_protocol  # noqa: E402
from bus.broker import SegmentBroker  # noqa: E402
from bus.segment_queue import SegmentQueue  # noqa: E402
from bus.worker_protocol import Done, Ready  # noqa: E402
from tests.bench.common import print_table, write_json  # noqa: E402

GAP_S = 0.002


def segment(seconds: float, i: int) -> schemas.Segment:
    return schemas.Segment(utt=i, kind="final", offset=0, pcm=b"\1\0" * int(16000 * seconds), stream="hop",
                           utt_offset=0, ts_end_of_speech=time.monotonic())


def receive_pull(endpoint: str, count: int, out) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)
    late = []
    for _ in range(count):
        msg = schemas.decode(pull.recv())
        late.append(time.monotonic() - msg.ts_end_of_speech)
    out.send(late)
    pull.close(0)
    ctx.term()


def receive_dealer(endpoint: str, count: int, out) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    dealer.send(worker_protocol.encode(Ready(worker="hop", credit=1)))
    late = []
    while len(late) < count:
        msg = worker_protocol.decode_from_broker(dealer.recv())
        if isinstance(msg, schemas.Segment):
            late.append(time.monotonic() - msg.ts_end_of_speech)
            dealer.send(worker_protocol.encode(Done(ticket=msg.ticket)))
    out.send(late)
    dealer.close(0)
    ctx.term()


def run_push(endpoint: str, count: int, seconds: float) -> list[float]:
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(endpoint)
    mine, theirs = multiprocessing.Pipe()
    peer = multiprocessing.Process(target=receive_pull, args=(endpoint, count, theirs))
    peer.start()
    time.sleep(0.5)
    for i in range(count):
        push.send(schemas.encode(segment(seconds, i)))
        time.sleep(GAP_S)
    late = mine.recv()
    peer.join()
    push.close(0)
    ctx.term()
    return late


def run_broker(endpoint: str, count: int, seconds: float) -> list[float]:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    broker = SegmentBroker(SegmentQueue(), interval_s=60, liveness=3)
    mine, theirs = multiprocessing.Pipe()
    peer = multiprocessing.Process(target=receive_dealer, args=(endpoint, count, theirs))
    peer.start()
    sent = 0
    while sent < count or broker.ledger:
        if router.poll(1):
            identity, data = router.recv_multipart()
            broker.on_message(identity, worker_protocol.decode_from_worker(data))
        if sent < count and not broker.ledger and broker.workers:
            time.sleep(GAP_S)
            broker.queue.put(broker.ticketed(segment(seconds, sent)))
            sent += 1
            for delivery in broker.dispatch():
                router.send_multipart([delivery.worker, worker_protocol.encode(delivery.segment)], copy=False)
    late = mine.recv()
    peer.join()
    router.close(0)
    ctx.term()
    return late


def summary(late: list[float]) -> dict:
    us = sorted(x * 1e6 for x in late)
    return {"median µs": round(statistics.median(us)), "p95 µs": round(us[int(len(us) * 0.95)]),
            "p99 µs": round(us[int(len(us) * 0.99)])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench broker_hop")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", default="1,5", help="segment lengths, seconds of audio")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in [float(s) for s in args.seconds.split(",")]:
            push = summary(run_push(f"ipc://{tmp}/push", args.count, seconds))
            broker = summary(run_broker(f"ipc://{tmp}/broker", args.count, seconds))
            rows.append({"segment": f"{seconds:g} s", "path": "PUSH/PULL", **push, "added median µs": "-"})
            rows.append({"segment": f"{seconds:g} s", "path": "broker (ROUTER/DEALER)", **broker,
                         "added median µs": broker["median µs"] - push["median µs"]})
    print_table("vad → asr hop, one segment at a time (send → decoded at the worker)", rows)
    write_json("broker_hop_bench", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
