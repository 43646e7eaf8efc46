"""The asr worker's local queue: what to transcribe next.

The worker drains its PULL socket into this queue before each inference, so it
can choose well:
- a live `final` goes first, always, and is never dropped;
- of the partials of one utterance only the newest is kept (older ones are
  superseded), and a final of that utterance drops its queued partial;
- file-job segments (all finals) are taken round-robin across jobs, so a short
  file is not stuck behind a long one; partials and job segments alternate so
  neither starves the other.
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
        self._last_was_partial = False

    def __len__(self) -> int:
        return len(self.live_finals) + len(self.partials) + sum(map(len, self.jobs.values()))

    def put(self, segment: Segment, received: float | None = None) -> None:
        item = Queued(segment, received if received is not None else time.monotonic())
        if segment.job is not None:
            self.jobs.setdefault(segment.job, deque()).append(item)
            return
        key = (segment.stream or "", segment.utt)
        if key in self.partials:
            # Whatever arrives now for this utterance covers at least as much audio.
            del self.partials[key]
            self.partials_superseded += 1
        if segment.kind == "final":
            self.live_finals.append(item)
        else:
            self.partials[key] = item

    def get(self) -> Queued | None:
        """The next segment to transcribe, or None when empty."""
        if self.live_finals:
            return self.live_finals.popleft()
        take_partial = bool(self.partials) and (not self.jobs or not self._last_was_partial)
        if take_partial:
            self._last_was_partial = True
            return self.partials.popitem(last=False)[1]
        self._last_was_partial = False
        if not self.jobs:
            return None
        job, items = next(iter(self.jobs.items()))
        item = items.popleft()
        del self.jobs[job]
        if items:  # back of the line: round-robin across jobs
            self.jobs[job] = items
        return item
