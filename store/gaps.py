"""Which numbered finals the store is missing, per producer (the Clone pattern's client-side books).

Pure: no sockets, no SQLite, no clock of its own. The store tells it what it stored (`stored`),
what a producer says it has published (`announced`: a heartbeat's `final_seq`, or a history
reply's `last`), and what a producer can no longer give (`forgotten`: a reply's `first`);
`requests(now)` says which producers to ask for which seqs, at most once per `retry_s`.
Missing seqs are kept as inclusive ranges, so a long outage costs two integers, not a set.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Producer:
    high: int = 0                                          # newest seq stored or announced
    missing: list[list[int]] = field(default_factory=list)  # sorted, disjoint [low, high] ranges
    endpoint: str = ""                                     # its history ROUTER, once a heartbeat names it
    asked_at: float = float("-inf")

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.missing)


@dataclass(frozen=True)
class Ask:
    """Ask `producer` at `endpoint` for its finals after seq `after`."""
    producer: str
    endpoint: str
    after: int


class GapTracker:
    def __init__(self, stored_high: dict[str, int] | None = None, retry_s: float = 1.0):
        """`stored_high`: the newest seq already stored per producer (from SQLite, after a restart)."""
        self.producers: dict[str, Producer] = {w: Producer(high=s) for w, s in (stored_high or {}).items()}
        self.retry_s = retry_s
        self.duplicates = 0    # finals seen again (resync overlap, a replayed message)
        self.lost = 0          # seqs the producer no longer held when asked

    def _get(self, worker: str) -> Producer:
        return self.producers.setdefault(worker, Producer())

    def stored(self, worker: str, seq: int) -> bool:
        """Record a final seen with `seq`; False when it was already stored (a duplicate)."""
        p = self._get(worker)
        if seq > p.high:
            if seq > p.high + 1:
                p.missing.append([p.high + 1, seq - 1])
            p.high = seq
            return True
        if self._remove(p, seq):
            return True
        self.duplicates += 1
        return False

    def announced(self, worker: str, last: int, endpoint: str = "") -> None:
        """The producer says it has published up to `last`: anything above our high is missing."""
        p = self._get(worker)
        if endpoint:
            p.endpoint = endpoint
        if last > p.high:
            p.missing.append([p.high + 1, last])
            p.high = last

    def forgotten(self, worker: str, first: int, origin: int = 0) -> int:
        """The producer holds nothing before `first`: those missing seqs are lost. Returns how many.

        Seqs below `origin` (where this run of the producer started numbering) are not counted:
        they are the gap between an earlier run's last final and this run's first, mostly numbers
        no final ever had (a restarted producer numbers on from the wall clock)."""
        p = self._get(worker)
        gone = 0
        kept = []
        for lo, hi in p.missing:
            gone += max(0, min(hi, first - 1) - max(lo, origin) + 1)
            if hi >= first:
                kept.append([max(lo, first), hi])
        p.missing = kept
        self.lost += gone
        return gone

    def _remove(self, p: Producer, seq: int) -> bool:
        for i, (lo, hi) in enumerate(p.missing):
            if lo <= seq <= hi:
                pieces = [r for r in ([lo, seq - 1], [seq + 1, hi]) if r[0] <= r[1]]
                p.missing[i:i + 1] = pieces
                return True
        return False

    def requests(self, now: float) -> list[Ask]:
        """Producers with missing seqs and a known endpoint, not asked within retry_s."""
        asks = []
        for worker, p in self.producers.items():
            if p.missing and p.endpoint and now - p.asked_at >= self.retry_s:
                p.asked_at = now
                asks.append(Ask(worker, p.endpoint, p.missing[0][0] - 1))
        return asks

    def answered(self, worker: str, progress: bool) -> None:
        """A reply came: with progress (finals, or seqs given up) and more missing, ask again at once."""
        p = self._get(worker)
        if progress and p.missing:
            p.asked_at = float("-inf")

    def restore(self, worker: str, ranges: list[tuple[int, int]]) -> None:
        """Missing ranges as the last commit saved them (after a restart)."""
        p = self._get(worker)
        for lo, hi in ranges:
            if lo <= hi <= p.high:
                p.missing.append([lo, hi])
        p.missing.sort()

    def missing(self) -> int:
        return sum(p.count() for p in self.producers.values())

    def snapshot(self) -> tuple[dict[str, int], dict[str, list]]:
        """(high, missing) per producer: what a commit saves so a restart resumes the books."""
        return ({w: p.high for w, p in self.producers.items()},
                {w: [tuple(r) for r in p.missing] for w, p in self.producers.items() if p.missing})
