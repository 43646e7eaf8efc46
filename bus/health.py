"""Heartbeats: every process publishes health/<stage>/ at 1 Hz with its counters."""
from __future__ import annotations

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
                 interval_s: float = 1.0, instance: str = ""):
        self.pub = pub
        self.stage = stage
        self.state = state
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
        sockets.publish(self.pub, schemas.Heartbeat(
            stage=self.stage, pid=os.getpid(), host=socket.gethostname(),
            uptime_s=round(now - self.started, 3), ok=ok, status=status, instance=self.instance,
            counters=counters, ts=time.time()))
        return True


class GapCounter:
    """Counts audio frames lost on PUB/SUB per stream from their sequence numbers."""

    def __init__(self):
        self.last_seq: dict[str, int] = {}
        self.lost: dict[str, int] = {}

    def see(self, stream: str, seq: int) -> int:
        """Record a frame; return how many frames went missing just before it."""
        last = self.last_seq.get(stream)
        self.last_seq[stream] = seq
        if last is None or seq <= last:  # first frame, or the source restarted its count
            return 0
        gap = seq - last - 1
        if gap:
            self.lost[stream] = self.lost.get(stream, 0) + gap
        return gap

    def forget(self, stream: str) -> None:
        """Drop everything about a stream that has ended, so per-id state does not pile up."""
        self.last_seq.pop(stream, None)
        self.lost.pop(stream, None)

    @property
    def total(self) -> int:
        return sum(self.lost.values())
