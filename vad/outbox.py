"""Segments waiting for an asr worker: finals first, never dropped.

PUSH blocks when no worker is connected or every worker is behind, and the vad
loop must keep reading audio meanwhile, so segments wait here. Finals (and file
job pieces) are kept in order, all of them. A queued partial is replaced by a
newer partial or the final of the same utterance — asr would discard the older
one anyway (ARCHITECTURE.md §5.4) — and each replacement is counted.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from bus.schemas import Segment


@dataclass
class OutboxCounters:
    queued: int = 0
    sent: int = 0
    partials_superseded: int = 0
    blocked: int = 0          # times a send found no worker ready
    max_depth: int = 0


class SegmentOutbox:
    def __init__(self):
        self.finals: deque[Segment] = deque()
        self.partials: OrderedDict[tuple, Segment] = OrderedDict()
        self.counters = OutboxCounters()

    def __len__(self) -> int:
        return len(self.finals) + len(self.partials)

    def add(self, segment: Segment) -> None:
        key = (segment.stream, segment.job, segment.utt)
        if key in self.partials:
            del self.partials[key]
            self.counters.partials_superseded += 1
        if segment.kind == "partial":
            self.partials[key] = segment
        else:
            self.finals.append(segment)
        self.counters.queued += 1
        self.counters.max_depth = max(self.counters.max_depth, len(self))

    def peek(self) -> Segment | None:
        if self.finals:
            return self.finals[0]
        if self.partials:
            return next(iter(self.partials.values()))
        return None

    def pop(self) -> Segment:
        """Remove what `peek` returned, once it has been sent."""
        self.counters.sent += 1
        if self.finals:
            return self.finals.popleft()
        return self.partials.popitem(last=False)[1]
