"""Heartbeats: every process publishes health/<stage>/ at 1 Hz with its counters."""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Callable

import zmq

from bus import schemas, sockets


class Heartbeater:
    """Publishes a heartbeat when `tick()` finds the interval has passed.

    Call `tick()` from the loop that owns the PUB socket (sockets are not thread-safe).
    `state()` returns (ok, status, counters) at each beat.
    """

    def __init__(self, pub: zmq.Socket, stage: str, state: Callable[[], tuple[bool, str, dict]],
                 interval_s: float = 1.0, instance: str = "",
                 model: Callable[[], schemas.ModelStatus | None] | None = None):
        self.pub = pub
        self.stage = stage
        self.state = state
        self.model = model  # asr: what it serves, sent as the heartbeat's typed `model` field
        self.interval_s = interval_s
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.started = time.monotonic()
        self.next_beat = 0.0

    def tick(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now < self.next_beat:
            return False
        self.next_beat = now + self.interval_s
        ok, status, counters = self.state()
        model = self.model() if self.model is not None else None
        sockets.publish(self.pub, schemas.Heartbeat(
            stage=self.stage, pid=os.getpid(), host=socket.gethostname(),
            uptime_s=round(now - self.started, 3), ok=ok, status=status, instance=self.instance,
            counters=counters, model=dataclasses.asdict(model) if model is not None else None, ts=time.time()))
        return True
