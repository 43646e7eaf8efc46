"""The two ends of vad.segments, played by a test: a worker that takes segments from the real
vad's broker, and a broker (the real SegmentBroker on a ROUTER) that feeds the real asr process.

Both speak bus/worker_protocol.py over real ZeroMQ sockets.
"""
from __future__ import annotations

import queue
import threading
import time

import zmq

from bus import schemas, worker_protocol
from bus.broker import SegmentBroker
from bus.segment_queue import SegmentQueue
from bus.worker_protocol import Done, Ready, Reset, WorkerHeartbeat

HEARTBEAT_S = 0.2


class SegmentTaker:
    """A worker with plenty of credit that answers `done` as soon as it takes a segment, and keeps
    heartbeating from its own thread. Used like the PULL socket it replaces: `poll(ms)`, then
    `recv()` gives a segment payload."""

    def __init__(self, ctx: zmq.Context, endpoint: str, credit: int = 10000):
        self.ctx = ctx
        self.endpoint = endpoint
        self.credit = credit
        self.taken: queue.Queue[bytes] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="segment-taker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        ready = worker_protocol.encode(Ready(worker="test-taker", credit=self.credit, pid=1, host="test"))
        sock.send(ready)
        last_beat = time.monotonic()
        try:
            self._serve(sock, ready, last_beat)
        except zmq.ZMQError as exc:  # the test destroyed the context under us: that is its way to stop
            if exc.errno not in (zmq.ETERM, zmq.ENOTSOCK):
                raise
        finally:
            sock.close(linger=0)

    def _serve(self, sock: zmq.Socket, ready: bytes, last_beat: float) -> None:
        while not self.stopping.is_set():
            if time.monotonic() - last_beat > HEARTBEAT_S:
                sock.send(worker_protocol.encode(WorkerHeartbeat()))
                last_beat = time.monotonic()
            if not sock.poll(20):
                continue
            data = sock.recv()
            msg = worker_protocol.decode_from_broker(data)
            if isinstance(msg, schemas.Segment):
                self.taken.put(data)
                sock.send(worker_protocol.encode(Done(ticket=msg.ticket)))
            elif isinstance(msg, Reset):
                sock.send(ready)

    def poll(self, timeout_ms: int) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while self.taken.empty() and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.taken.empty()

    def recv(self) -> bytes:
        return self.taken.get(timeout=60)

    def close(self, linger: int = 0) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


class BrokerPeer:
    """The real SegmentBroker on a ROUTER bound at `endpoint`, run in a thread: `send(segment)`
    queues a segment as vad would; `send_raw(data)` hands bytes as they are to every worker."""

    def __init__(self, ctx: zmq.Context, endpoint: str, interval_s: float = 0.5, liveness: int = 3):
        self.ctx = ctx
        self.endpoint = endpoint
        self.broker = SegmentBroker(SegmentQueue(), interval_s, liveness)
        self.inbox: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="broker-peer", daemon=True)
        self.thread.start()

    def send(self, segment: schemas.Segment) -> None:
        self.inbox.put(("segment", segment))

    def send_raw(self, data: bytes) -> None:
        self.inbox.put(("raw", data))

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.broker.workers:
            if time.monotonic() > deadline:
                raise TimeoutError("no asr worker said ready")
            time.sleep(0.05)

    def _run(self) -> None:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        try:
            while not self.stopping.is_set():
                if sock.poll(10):
                    while True:
                        try:
                            identity, data = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        for reply in self.broker.on_message(identity, worker_protocol.decode_from_worker(data)):
                            sock.send_multipart([reply.worker, worker_protocol.encode(reply.message)])
                self._take_inbox(sock)
                for delivery in self.broker.dispatch():
                    sock.send_multipart([delivery.worker, worker_protocol.encode(delivery.segment)])
                for reply in self.broker.tick():
                    sock.send_multipart([reply.worker, worker_protocol.encode(reply.message)])
        finally:
            sock.close(linger=0)

    def _take_inbox(self, sock: zmq.Socket) -> None:
        while True:
            try:
                what, item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if what == "segment":
                self.broker.queue.put(self.broker.ticketed(item))
            else:
                for identity in self.broker.workers:
                    sock.send_multipart([identity, item])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
