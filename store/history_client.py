"""Asking producers for missed finals: one DEALER per history endpoint, one request in flight each.

The client side of bus/resync.py, Lazy Pirate style: a request not answered within
`timeout_ms` closes its socket with LINGER 0 (a late reply is never read) and the gap books
(store/gaps.py) ask again on a fresh one after their retry interval.
"""
from __future__ import annotations

import logging
import time

import zmq

from bus import resync
from store.gaps import Ask

log = logging.getLogger(__name__)


class HistoryClient:
    def __init__(self, ctx: zmq.Context, timeout_ms: int, batch: int):
        self.ctx = ctx
        self.timeout_s = timeout_ms / 1000
        self.batch = batch
        self.socks: dict[str, zmq.Socket] = {}        # producer → its DEALER while a request is out
        self.sent_at: dict[str, float] = {}
        self.timeouts = 0
        self.requests = 0
        self.bad_endpoints = 0

    def send(self, ask: Ask) -> None:
        if ask.producer in self.socks:
            return   # one request in flight per producer
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(ask.endpoint)
        except zmq.ZMQError as exc:   # a heartbeat advertised an endpoint zmq cannot use
            sock.close(linger=0)
            self.bad_endpoints += 1
            log.error("history: cannot connect", extra={"producer": ask.producer, "endpoint": ask.endpoint,
                                                        "error": str(exc)})
            return
        request = resync.HistoryRequest(producer=ask.producer, after=ask.after, limit=self.batch)
        sock.send_multipart([b"", resync.encode(request)])
        self.socks[ask.producer] = sock
        self.sent_at[ask.producer] = time.monotonic()
        self.requests += 1

    def register(self, poller: zmq.Poller) -> None:
        for sock in self.socks.values():
            poller.register(sock, zmq.POLLIN)

    def replies(self, ready: dict) -> list[resync.HistoryReply]:
        """Replies on the sockets the poller found readable; expired requests are dropped."""
        out = []
        for producer, sock in list(self.socks.items()):
            if sock in ready:
                frames = sock.recv_multipart()
                self._drop(producer)
                try:
                    out.append(resync.decode_reply(frames[-1]))
                except resync.ResyncError as exc:
                    log.warning("history: bad reply", extra={"producer": producer, "error": str(exc)})
            elif time.monotonic() - self.sent_at[producer] > self.timeout_s:
                self.timeouts += 1
                log.warning("history: no reply in time", extra={"producer": producer, "timeouts": self.timeouts})
                self._drop(producer)
        return out

    def _drop(self, producer: str) -> None:
        self.socks.pop(producer).close(linger=0)
        self.sent_at.pop(producer, None)

    def close(self) -> None:
        for producer in list(self.socks):
            self._drop(producer)
