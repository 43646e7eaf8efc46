"""asr's side of the segment broker (bus/broker.py, bus/worker_protocol.py): a DEALER to vad.segments.

The link says `ready` with the credit this worker has (its decode slots less the segments it
holds), heartbeats, and says `done` once for every segment it was given (`took`), whatever came
of it: each `done` gives the broker back one credit. It counts the broker as gone after twice
the broker's own patience (the broker drops a silent worker sooner, and a restarted vad answers
the old socket's next heartbeat with `reset: unknown` anyway) and then reconnects on a fresh
socket. The loop thread that owns it calls `receive()` when the poller says so and `tick()`
every turn.
"""
from __future__ import annotations

import logging
import os
import socket
import time

import zmq

from bus import curve, schemas, sockets, worker_protocol
from bus.worker_protocol import BrokerLiveness, Bye, Done, Ready, Reset, WorkerHeartbeat
from config import Config

log = logging.getLogger(__name__)
HWM = 1000
MAX_BATCH = 500


class BrokerLink:
    def __init__(self, ctx: zmq.Context, cfg: Config, worker: str, slots: int, model: str,
                 clock=time.monotonic, rtf=lambda: 0.0, reserved: int = 0):
        self.ctx = ctx
        self.cfg = cfg
        self.worker = worker
        self.slots = slots
        self.reserved = reserved  # of the slots, those for urgent segments only
        self.model = model
        self.rtf = rtf  # this worker's recent real-time factor, in every heartbeat
        interval = cfg.vad.worker_heartbeat_ms / 1000
        self.liveness = BrokerLiveness(interval, 2 * cfg.vad.worker_liveness, clock)
        self.outstanding: set[int] = set()   # tickets taken and not yet done
        self.counters = {"broker_resets": 0, "broker_reconnects": 0, "bad_messages": 0, "broker_unsent": 0}
        self.sock: zmq.Socket | None = None
        self.handshakes: curve.HandshakeWatch | None = None  # on tcp: a refused CURVE key is logged here too

    def connect(self) -> zmq.Socket:
        """A fresh DEALER (a new identity to the broker) and `ready`."""
        self.sock = sockets.dealer(self.ctx, self.cfg.vad.segments, self.cfg.bus, hwm=HWM)
        self.handshakes = curve.watch(self.sock, self.cfg.vad.segments, self.cfg.bus,
                                      self.counters.get("curve_refused", 0))
        self.liveness.heard()
        self.ready()
        return self.sock

    def ready(self) -> None:
        self._send(Ready(worker=self.worker, credit=max(0, self.slots - len(self.outstanding)),
                         pid=os.getpid(), host=socket.gethostname(), model=self.model, reserved=self.reserved))

    def receive(self):
        """The broker's segments and resets waiting now (heartbeats only keep it alive)."""
        for _ in range(MAX_BATCH):
            try:
                data = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.liveness.heard()
            try:
                msg = worker_protocol.decode_from_broker(data)
            except schemas.SchemaError as exc:
                self.counters["bad_messages"] += 1
                log.warning("bad message from the segment broker: %s", exc)
                continue
            if isinstance(msg, WorkerHeartbeat):
                continue
            if isinstance(msg, schemas.Segment) and msg.ticket is not None:
                self.outstanding.add(msg.ticket)
            if isinstance(msg, Reset):
                self.counters["broker_resets"] += 1
            yield msg

    def done(self, segment: schemas.Segment) -> None:
        """The segment's life here is over (answered, superseded, dropped): one credit back."""
        if segment.ticket in self.outstanding:
            self.outstanding.discard(segment.ticket)
            self._send(Done(ticket=segment.ticket))

    def forget(self, tickets) -> None:
        """Tickets the broker took back (`reset: expired`) that will never end here: no `done` is owed."""
        self.outstanding.difference_update(tickets)

    def tick(self) -> None:
        if self.handshakes is not None:
            self.handshakes.check()
            self.counters["curve_refused"] = self.handshakes.refused
        if self.liveness.broker_lost():
            log.warning("no word from the segment broker: reconnecting", extra={"endpoint": self.cfg.vad.segments})
            self.counters["broker_reconnects"] += 1
            self._close_socket()
            self.connect()
        elif self.liveness.heartbeat_due():
            self._send(WorkerHeartbeat(rtf=min(worker_protocol.MAX_RTF, self.rtf())))

    def wait_ms(self) -> int:
        return int(self.liveness.wait_s() * 1000) + 1

    def close(self) -> None:
        """`bye` (the broker gives what this worker held to others at once), then close."""
        if self.sock is not None:
            self._send(Bye())
            self._close_socket(linger=100)

    def _close_socket(self, linger: int = 0) -> None:
        if self.handshakes is not None:
            self.handshakes.close(self.sock)
            self.handshakes = None
        self.sock.close(linger=linger)
        self.sock = None

    def _send(self, msg) -> None:
        try:
            self.sock.send(worker_protocol.encode(msg), zmq.NOBLOCK)
        except zmq.Again:  # the pipe to a broker that is gone is full: counted; its silence makes us reconnect
            self.counters["broker_unsent"] += 1
            return
        self.liveness.sent()
