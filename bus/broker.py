"""The segment broker: vad hands segments to asr workers that ask for them, and takes back
what a dead worker held (the zguide's load-balancing broker, with Paranoid Pirate heartbeats).

Pure logic, no sockets: the owner feeds it segments, workers' messages (bus/worker_protocol.py),
finals seen on the bus and the clock, and sends what it returns. vad wires it to a ROUTER
(vad/main.py); a test drives it with a fake clock.

- **Credit, not round-robin.** A worker's `ready` grants the decode slots it has free; each
  segment given takes one, each `done` gives one back. Segments wait here, in the shared
  queue order (bus/segment_queue.py: live finals first, fair partials, superseded partials
  skipped), never in a busy worker's pipe; a fast worker comes back sooner and takes more.
  The last `reserved` credits of a worker take only urgent segments (`is_urgent`: a live
  final, its guess, an utterance's first words), so drafts never leave those waiting.
- **Models.** A segment names the model that must decode it and a worker's `ready` the model
  it serves; a segment goes only to a worker serving its model (either side empty: any), and
  waits while none with credit does. Workers report their recent real-time factor in their
  heartbeats (for status; credit already gives a fast worker more).
- **Lanes.** At most one partial and one final (or speculation) per stream are out at a time,
  across all workers: a stream's finals go out in order and a partial never waits behind its
  own stream's older one. A stream goes back to the worker that had it last when that worker
  has credit (its speculation and the audio of the utterance so far are there).
- **Ledger and redelivery.** Every segment given is in the ledger under its `ticket` until its
  `done`. A worker silent for `liveness` heartbeat intervals, one that says `bye`, or an
  earlier life of a worker that says `ready` again (same name, host and pid) is dropped: its
  finals and file-job pieces go back to the head of the queue for another worker; its
  partials and speculations are dropped (newer audio, or the final, supersedes them).
- **Exactly one final.** A worker publishes a final, then says `done`. If it dies in
  between, the final is on the bus: the owner passes every final it sees (text/ and job/) to
  `final_seen`, which marks its ticket answered, and an answered ticket is never given out
  again. A worker that was only slow (dropped, then heard again) is told `reset: expired` at
  once, and must not publish the segments it held: another worker has them.
"""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass

from bus.schemas import Segment
from bus.segment_queue import SegmentQueue, is_urgent, lane
from bus.worker_protocol import Bye, Done, Ready, Reset, WorkerHeartbeat, WorkerMessage

REMEMBERED = 65536  # answered tickets, finals' tickets by key, streams' last worker, dropped peers


def final_key(stream: str | None, job: str | None, utt: int, index: int | None) -> tuple:
    """What a final answers: a live utterance, or a file job's piece."""
    return ("job", job, index) if job is not None else ("stream", stream, utt)


@dataclass
class WorkerState:
    identity: bytes
    name: str
    host: str
    pid: int
    model: str
    credit: int
    last_heard: float
    reserved: int = 0         # of its credit, slots for urgent segments only (is_urgent)
    given: int = 0            # segments given, over its life
    last_given: float = 0.0
    rtf: float = 0.0          # its recent real-time factor, from its heartbeats
    joined: float = 0.0       # when it first said ready

    def serves(self, model: str) -> bool:
        return not model or not self.model or model == self.model

    def can_take(self, segment: Segment) -> bool:
        """A free slot for it: a draft does not take the last `reserved` ones."""
        return self.credit > (0 if is_urgent(segment) else self.reserved) and self.serves(segment.model)


@dataclass(frozen=True)
class Delivery:
    """Send `segment` to `worker` (the segment already carries its ticket)."""
    worker: bytes
    segment: Segment


@dataclass(frozen=True)
class Reply:
    """Send a control message (heartbeat, reset) to `worker`."""
    worker: bytes
    message: WorkerHeartbeat | Reset


@dataclass
class _Out:
    segment: Segment
    worker: bytes


@dataclass
class BrokerCounters:
    given: int = 0
    redelivered: int = 0             # finals and job pieces given again after their worker was dropped
    duplicates_suppressed: int = 0   # queued again, then answered on the bus after all: not given again
    partials_dropped: int = 0        # partials and speculations held by a dropped worker
    answered_on_bus: int = 0         # finals seen on the bus before their worker's done
    workers_joined: int = 0
    workers_expired: int = 0         # silent for `liveness` intervals
    workers_left: int = 0            # said bye, or came back as a new life
    unknown_peers: int = 0           # messages from a peer that had not said ready
    last_redelivery_s: float = 0.0   # worker's last sign of life → its segments back in the queue


class SegmentBroker:
    def __init__(self, queue: SegmentQueue, interval_s: float, liveness: int,
                 clock=time.monotonic, first_ticket: int | None = None):
        if interval_s <= 0 or liveness < 1:
            raise ValueError(f"heartbeat interval {interval_s} s and liveness {liveness}: expected > 0 and ≥ 1")
        self.queue = queue
        self.interval_s = interval_s
        self.liveness = liveness
        self.clock = clock
        self.workers: dict[bytes, WorkerState] = {}
        self.ledger: OrderedDict[int, _Out] = OrderedDict()   # ticket → segment out at a worker
        self.busy_lanes: set[tuple[str, str]] = set()
        self.counters = BrokerCounters()
        # Tickets are unique across broker restarts (a worker may still hold an old one).
        self._next_ticket = first_ticket if first_ticket is not None else int(time.time() * 1e6)
        self._finals: OrderedDict[tuple, int] = OrderedDict()     # final key → ticket, until done
        self._answered: OrderedDict[int, None] = OrderedDict()    # tickets whose final is on the bus
        self._affinity: OrderedDict[str, bytes] = OrderedDict()   # stream → the worker that had it last
        self._dropped: OrderedDict[bytes, None] = OrderedDict()   # identities given up on
        self._next_beat = clock()

    # ---- segments in ----------------------------------------------------------------

    def ticketed(self, segment: Segment) -> Segment:
        """The segment with its ticket; queue that (the owner's queue bounds memory)."""
        ticket = self._next_ticket
        self._next_ticket += 1
        if segment.kind == "final":
            self._remember(self._finals, final_key(segment.stream, segment.job, segment.utt, segment.index), ticket)
        return dataclasses.replace(segment, ticket=ticket)

    def final_seen(self, stream: str | None, job: str | None, utt: int, index: int | None) -> None:
        """A final on the bus: whatever worker holds its segment, it is answered."""
        ticket = self._finals.pop(final_key(stream, job, utt, index), None)
        if ticket is None:
            return
        self._remember(self._answered, ticket, None)
        out = self.ledger.pop(ticket, None)
        if out is not None:
            self.counters.answered_on_bus += 1
            self._free_lane(out.segment)

    # ---- workers ----------------------------------------------------------------------

    def on_message(self, identity: bytes, msg: WorkerMessage) -> list[Reply]:
        now = self.clock()
        if isinstance(msg, Ready):
            return self._ready(identity, msg, now)
        worker = self.workers.get(identity)
        if worker is None:
            self.counters.unknown_peers += 1
            return [Reply(identity, Reset("expired" if identity in self._dropped else "unknown"))]
        worker.last_heard = now
        if isinstance(msg, WorkerHeartbeat):
            worker.rtf = msg.rtf or worker.rtf
        elif isinstance(msg, Done):
            worker.credit += 1
            out = self.ledger.pop(msg.ticket, None)
            if out is not None:
                self._free_lane(out.segment)
                if self._finals.get(key := final_key(out.segment.stream, out.segment.job, out.segment.utt,
                                                      out.segment.index)) == msg.ticket:
                    del self._finals[key]
        elif isinstance(msg, Bye):
            self.counters.workers_left += 1
            return self._drop(identity, now)
        return []

    def _ready(self, identity: bytes, msg: Ready, now: float) -> list[Reply]:
        replies = []
        for old in [w for w in self.workers.values() if w.identity != identity
                    and (w.name, w.host, w.pid) == (msg.worker, msg.host, msg.pid)]:
            self.counters.workers_left += 1  # the same process on a new connection: its old one is dead
            replies += self._drop(old.identity, now)
        known = self.workers.get(identity)
        if known is not None:
            known.credit, known.reserved, known.last_heard = msg.credit, msg.reserved, now
        else:
            self._dropped.pop(identity, None)
            self.counters.workers_joined += 1
            self.workers[identity] = WorkerState(identity, msg.worker, msg.host, msg.pid, msg.model,
                                                 msg.credit, now, reserved=msg.reserved, joined=now)
        return replies

    def _drop(self, identity: bytes, now: float) -> list[Reply]:
        """Forget a worker; its finals go back to the head of the queue, in the order given."""
        worker = self.workers.pop(identity)
        self._remember(self._dropped, identity, None)
        held = [(ticket, out) for ticket, out in self.ledger.items() if out.worker == identity]
        for ticket, out in reversed(held):
            del self.ledger[ticket]
            self._free_lane(out.segment)
            if out.segment.kind != "final":
                self.counters.partials_dropped += 1
            else:  # (a final seen on the bus left the ledger then: `final_seen`)
                self.queue.put_back(out.segment)
                self.counters.redelivered += 1
        if held:
            self.counters.last_redelivery_s = round(now - worker.last_heard, 3)
        for stream in [s for s, w in self._affinity.items() if w == identity]:
            del self._affinity[stream]
        return [Reply(identity, Reset("expired"))]  # if it is only slow, it must not publish what it held

    def tick(self) -> list[Reply]:
        """Drop workers silent too long; heartbeat the others when due."""
        now = self.clock()
        replies = []
        deadline = self.interval_s * self.liveness
        for worker in [w for w in self.workers.values() if now - w.last_heard > deadline]:
            self.counters.workers_expired += 1
            replies += self._drop(worker.identity, now)
        if now >= self._next_beat:
            self._next_beat = now + self.interval_s
            replies += [Reply(identity, WorkerHeartbeat()) for identity in self.workers]
        return replies

    def wait_s(self) -> float:
        """Seconds until `tick` has something to do (at most one interval)."""
        return max(0.0, min(self.interval_s, self._next_beat - self.clock()))

    # ---- segments out -----------------------------------------------------------------

    def dispatch(self) -> list[Delivery]:
        """Give queued segments to workers with credit, in the queue's order."""
        out: list[Delivery] = []
        now = self.clock()
        while any(w.credit > 0 for w in self.workers.values()):
            item = self.queue.get(skip=lambda queued: lane(queued.segment) in self.busy_lanes
                                  or not any(w.can_take(queued.segment) for w in self.workers.values()))
            if item is None:
                break
            segment = item.segment
            if segment.ticket in self._answered:
                self.counters.duplicates_suppressed += 1
                continue
            worker = self._choose(segment)
            worker.credit -= 1
            worker.given += 1
            worker.last_given = now
            self.ledger[segment.ticket] = _Out(segment, worker.identity)
            if (busy := lane(segment)) is not None:
                self.busy_lanes.add(busy)
                self._remember(self._affinity, segment.stream, worker.identity)
            self.counters.given += 1
            out.append(Delivery(worker.identity, segment))
        return out

    def _choose(self, segment: Segment) -> WorkerState:
        if segment.stream is not None:
            last = self.workers.get(self._affinity.get(segment.stream, b""))
            if last is not None and last.can_take(segment):
                return last
        # The most free slots; among equals, the one given work longest ago.
        return max((w for w in self.workers.values() if w.can_take(segment)),
                   key=lambda w: (w.credit - w.reserved, -w.last_given))

    def _free_lane(self, segment: Segment) -> None:
        if (busy := lane(segment)) is not None:
            self.busy_lanes.discard(busy)

    @staticmethod
    def _remember(table: OrderedDict, key, value) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > REMEMBERED:
            table.popitem(last=False)

    def snapshot(self) -> dict:
        """Counters for the owner's heartbeat."""
        return {**vars(self.counters), "workers": len(self.workers), "in_flight": len(self.ledger),
                "credit": sum(w.credit for w in self.workers.values())}

    def roster(self) -> list[dict]:
        """Every worker now: who, where, which model, how fast, how much it took (status, logs)."""
        return [{"worker": w.name, "host": w.host, "pid": w.pid, "model": w.model, "rtf": round(w.rtf, 3),
                 "credit": w.credit, "given": w.given} for w in self.workers.values()]
