"""Segments waiting for an asr worker, in the shared queue order, bounded in memory.

The segment broker (bus/broker.py) gives a segment out only to a worker with a free slot,
and the vad loop must keep reading audio meanwhile, so segments wait here, ordered by `bus.segment_queue.SegmentQueue`: live finals
first, only the newest partial per utterance, file-job pieces round-robin across
jobs. The outbox holds at most `max_bytes` of PCM: past that the oldest partials
go first, then the oldest finals and job pieces; every dropped final is returned
to the caller (which reports it on the bus) and counted — never dropped silently.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bus.schemas import Segment
from bus.segment_queue import SegmentQueue

STALL_S = 5.0  # segments waiting this long with no successful send: no asr worker, or all stuck


@dataclass
class OutboxCounters:
    queued: int = 0
    sent: int = 0
    partials_superseded: int = 0
    max_depth: int = 0
    dropped_partials: int = 0  # over max_bytes
    dropped_finals: int = 0    # over max_bytes: each one reported as an `overloaded` error


class SegmentOutbox:
    def __init__(self, max_bytes: int = 256 * 1024 * 1024, clock=time.monotonic):
        self.queue = SegmentQueue()
        self.max_bytes = max_bytes
        self.counters = OutboxCounters()
        self._clock = clock
        self._progress = clock()  # last successful send, or when the outbox last became non-empty

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def pcm_bytes(self) -> int:
        return self.queue.pcm_bytes

    def add(self, segment: Segment) -> list[Segment]:
        """Queue a segment; return the finals (and job pieces) dropped to stay under max_bytes."""
        if not self.queue:
            self._progress = self._clock()
        self.queue.put(segment, self._clock())
        self.counters.queued += 1
        self.counters.partials_superseded = self.queue.partials_superseded
        self.counters.max_depth = max(self.counters.max_depth, len(self.queue))
        dropped: list[Segment] = []
        while self.queue.pcm_bytes > self.max_bytes and self.queue:
            item = self.queue.drop_oldest()
            if item.segment.kind != "final":  # a partial or a speculation: superseded soon anyway
                self.counters.dropped_partials += 1
            else:
                self.counters.dropped_finals += 1
                dropped.append(item.segment)
        return dropped

    def peek(self) -> Segment | None:
        item = self.queue.peek()
        return item.segment if item is not None else None

    def pop(self) -> Segment:
        """Remove what `peek` returned, once it has been sent."""
        item = self.queue.pop()
        if item is None:
            raise IndexError("pop from an empty outbox")
        self.counters.sent += 1
        self._progress = self._clock()
        return item.segment

    def given(self) -> None:
        """The broker gave one segment of this queue to a worker."""
        self.counters.sent += 1
        self._progress = self._clock()

    def take_all(self) -> list[Segment]:
        """Empty the outbox without counting anything as sent (on shutdown, to report what is left)."""
        return [item.segment for item in self.queue.take_all()]

    def stalled_for(self) -> float:
        """Seconds segments have waited without a successful send (0 when empty)."""
        return self._clock() - self._progress if self.queue else 0.0
