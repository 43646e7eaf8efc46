"""Which segment to transcribe next: the queue policy shared by vad's outbox and asr's intake.

- a live `final` goes first, always, and is never dropped;
- then a `speculative` final (the final an utterance will have if its silence lasts; see
  vad/segmenter.py): only the newest per utterance, and void once a partial or the final of
  that utterance arrives;
- of the partials of one utterance only the newest is kept (older ones are superseded, and
  counted), and a final of that utterance drops its queued partial; among streams, a
  `wordless` partial (its utterance has no words yet: the user waits for the first) goes
  first, then the partial of the stream served longest ago, so no stream starves however
  often the others send;
- file-job segments (all finals) are taken round-robin across jobs, so a short file is not
  stuck behind a long one; partials and job segments alternate so neither starves the other.

`put()` returns what the new segment displaced (a superseded partial, a voided guess), so a
caller that owes its sender an answer for each segment can give it; `put_back()` returns a
segment to the head of its line (a broker redelivering what a dead worker held).
`peek()` names the next item without taking it (a sender tries to send it first), `pop()`
takes exactly that item, `get()` does both; each takes an optional `skip(item)` that passes
over items a caller cannot start now (asr: a stream with work in flight). `drop_oldest()`
and `take_all()` serve a sender that must shed load or stop.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bus.schemas import Segment

STREAMS_REMEMBERED = 4096  # streams whose last served partial time is kept (for fairness)


@dataclass
class Queued:
    segment: Segment
    received: float = field(default_factory=time.monotonic)


Skip = Callable[[Queued], bool] | None


def lane(segment: Segment) -> tuple[str, str] | None:
    """The lane a live segment occupies: its stream's finals (and guesses) or its partials.
    A stream has at most one segment in flight per lane."""
    if segment.stream is None:
        return None
    return segment.stream, "partial" if segment.kind == "partial" else "final"


def is_urgent(segment: Segment) -> bool:
    """A decode someone waits on now: a live final, its guess, or the first words of an utterance.
    The rest (worded partials, soon replaced, and file jobs) are drafts; a worker's reserved slot
    takes only urgent segments."""
    return segment.stream is not None and (segment.kind != "partial" or segment.wordless)


class SegmentQueue:
    def __init__(self) -> None:
        self.live_finals: deque[Queued] = deque()
        self.speculative: OrderedDict[tuple[str, int], Queued] = OrderedDict()
        self.partials: OrderedDict[tuple[str, int], Queued] = OrderedDict()
        self.jobs: OrderedDict[str, deque[Queued]] = OrderedDict()
        self.partials_superseded = 0
        self.speculations_voided = 0
        self.pcm_bytes = 0
        self._last_was_partial = False
        self._partial_served: OrderedDict[str, float] = OrderedDict()  # stream → when its last partial went

    def __len__(self) -> int:
        return len(self.live_finals) + len(self.speculative) + len(self.partials) + self.job_segments

    @property
    def job_segments(self) -> int:
        return sum(map(len, self.jobs.values()))

    def put(self, segment: Segment, received: float | None = None) -> list[Segment]:
        """Queue a segment; return the queued segments it displaced (superseded or voided)."""
        item = Queued(segment, received if received is not None else time.monotonic())
        self.pcm_bytes += len(segment.pcm)
        if segment.job is not None:
            self.jobs.setdefault(segment.job, deque()).append(item)
            return []
        key = (segment.stream or "", segment.utt)
        displaced = []
        if key in self.speculative:  # speech went on (a partial) or ended (the final): the guess is stale
            displaced.append(self.speculative.pop(key).segment)
            self.speculations_voided += 1
        if key in self.partials:
            # Whatever arrives now for this utterance covers at least as much audio.
            displaced.append(self.partials.pop(key).segment)
            self.partials_superseded += 1
        self.pcm_bytes -= sum(len(old.pcm) for old in displaced)
        if segment.kind == "final":
            self.live_finals.append(item)
        elif segment.kind == "speculative":
            self.speculative[key] = item
        else:
            self.partials[key] = item
        return displaced

    def put_back(self, segment: Segment, received: float | None = None) -> None:
        """A final or job piece back at the head of its line (it was taken before the ones queued)."""
        if segment.kind != "final":
            raise ValueError(f"only a final or a job piece goes back to the head of the queue, not a {segment.kind}")
        item = Queued(segment, received if received is not None else time.monotonic())
        self.pcm_bytes += len(segment.pcm)
        if segment.job is None:
            self.live_finals.appendleft(item)
            return
        line = self.jobs.setdefault(segment.job, deque())
        line.appendleft(item)
        self.jobs.move_to_end(segment.job, last=False)

    def _choose(self, skip: Skip) -> tuple[str, object] | None:
        """(where, key) of the next item that `skip` does not pass over."""
        ok = (lambda item: True) if skip is None else (lambda item: not skip(item))
        final = next((i for i, item in enumerate(self.live_finals) if ok(item)), None)
        if final is not None:
            return "final", final
        guess = next((key for key, item in self.speculative.items() if ok(item)), None)
        if guess is not None:
            return "speculative", guess
        partial = self._fairest_partial(ok)
        job = next((name for name, items in self.jobs.items() if ok(items[0])), None)
        if partial is not None and (job is None or not self._last_was_partial):
            return "partial", partial
        return ("job", job) if job is not None else None

    def _fairest_partial(self, ok) -> tuple[str, int] | None:
        candidates = [(not item.segment.wordless, self._partial_served.get(key[0], 0.0), item.received, key)
                      for key, item in self.partials.items() if ok(item)]
        return min(candidates)[-1] if candidates else None

    def peek(self, skip: Skip = None) -> Queued | None:
        chosen = self._choose(skip)
        if chosen is None:
            return None
        where, key = chosen
        if where == "final":
            return self.live_finals[key]
        if where == "job":
            return self.jobs[key][0]
        return (self.speculative if where == "speculative" else self.partials)[key]

    def pop(self, skip: Skip = None) -> Queued | None:
        """Take the item `peek(skip)` returned."""
        chosen = self._choose(skip)
        if chosen is None:
            return None
        where, key = chosen
        if where == "final":
            item = self.live_finals[key]
            del self.live_finals[key]
        elif where == "speculative":
            item = self.speculative.pop(key)
        elif where == "partial":
            self._last_was_partial = True
            item = self.partials.pop(key)
            self._served(key[0])
        else:
            self._last_was_partial = False
            items = self.jobs.pop(key)
            item = items.popleft()
            if items:  # back of the line: round-robin across jobs
                self.jobs[key] = items
        self.pcm_bytes -= len(item.segment.pcm)
        return item

    def get(self, skip: Skip = None) -> Queued | None:
        """The next segment to transcribe, or None when nothing can start."""
        return self.pop(skip)

    def _served(self, stream: str) -> None:
        self._partial_served[stream] = time.monotonic()
        self._partial_served.move_to_end(stream)
        while len(self._partial_served) > STREAMS_REMEMBERED:
            self._partial_served.popitem(last=False)

    def drop_oldest(self) -> Queued | None:
        """Shed load: a stale speculation or the oldest partial first (each is soon superseded
        anyway), else the oldest live final or job piece by arrival. None when empty."""
        if self.speculative or self.partials:
            item = (self.speculative or self.partials).popitem(last=False)[1]
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
