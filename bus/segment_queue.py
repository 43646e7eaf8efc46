"""Which segment to transcribe next: the queue policy shared by vad's outbox and asr's intake.

- a live `final` goes first, always, and is never dropped;
- of the partials of one utterance only the newest is kept (older ones are
  superseded, and counted), and a final of that utterance drops its queued partial;
- file-job segments (all finals) are taken round-robin across jobs, so a short
  file is not stuck behind a long one; partials and job segments alternate so
  neither starves the other.

`peek()` names the next item without taking it (a sender tries to send it first),
`pop()` takes exactly that item, `get()` does both; `drop_oldest()` and `take_all()`
serve a sender that must shed load or stop.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bus.schemas import Segment


@dataclass
class Queued:
    segment: Segment
    received: float = field(default_factory=time.monotonic)


class SegmentQueue:
    def __init__(self) -> None:
        self.live_finals: deque[Queued] = deque()
        self.partials: OrderedDict[tuple[str, int], Queued] = OrderedDict()
        self.jobs: OrderedDict[str, deque[Queued]] = OrderedDict()
        self.partials_superseded = 0
        self.pcm_bytes = 0
        self._last_was_partial = False

    def __len__(self) -> int:
        return len(self.live_finals) + len(self.partials) + self.job_segments

    @property
    def job_segments(self) -> int:
        return sum(map(len, self.jobs.values()))

    def put(self, segment: Segment, received: float | None = None) -> None:
        item = Queued(segment, received if received is not None else time.monotonic())
        self.pcm_bytes += len(segment.pcm)
        if segment.job is not None:
            self.jobs.setdefault(segment.job, deque()).append(item)
            return
        key = (segment.stream or "", segment.utt)
        if key in self.partials:
            # Whatever arrives now for this utterance covers at least as much audio.
            self.pcm_bytes -= len(self.partials.pop(key).segment.pcm)
            self.partials_superseded += 1
        if segment.kind == "final":
            self.live_finals.append(item)
        else:
            self.partials[key] = item

    def _next_source(self) -> str | None:
        if self.live_finals:
            return "final"
        if self.partials and (not self.jobs or not self._last_was_partial):
            return "partial"
        return "job" if self.jobs else None

    def peek(self) -> Queued | None:
        source = self._next_source()
        if source == "final":
            return self.live_finals[0]
        if source == "partial":
            return next(iter(self.partials.values()))
        if source == "job":
            return next(iter(self.jobs.values()))[0]
        return None

    def pop(self) -> Queued | None:
        """Take the item `peek()` returned."""
        source = self._next_source()
        if source is None:
            return None
        if source == "final":
            item = self.live_finals.popleft()
        elif source == "partial":
            self._last_was_partial = True
            item = self.partials.popitem(last=False)[1]
        else:
            self._last_was_partial = False
            job, items = next(iter(self.jobs.items()))
            item = items.popleft()
            del self.jobs[job]
            if items:  # back of the line: round-robin across jobs
                self.jobs[job] = items
        self.pcm_bytes -= len(item.segment.pcm)
        return item

    def get(self) -> Queued | None:
        """The next segment to transcribe, or None when empty."""
        return self.pop()

    def drop_oldest(self) -> Queued | None:
        """Shed load: the oldest partial if any (it is soon superseded anyway), else the oldest
        live final or job piece by arrival. None when empty."""
        if self.partials:
            item = self.partials.popitem(last=False)[1]
        else:
            heads = [(self.live_finals[0].received, None)] if self.live_finals else []
            heads += [(items[0].received, job) for job, items in self.jobs.items()]
            if not heads:
                return None
            _, job = min(heads, key=lambda head: head[0])
            if job is None:
                item = self.live_finals.popleft()
            else:
                item = self.jobs[job].popleft()
                if not self.jobs[job]:
                    del self.jobs[job]
        self.pcm_bytes -= len(item.segment.pcm)
        return item

    def take_all(self) -> list[Queued]:
        """Empty the queue, in the order it would have served."""
        items = []
        while (item := self.pop()) is not None:
            items.append(item)
        return items
