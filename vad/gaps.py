"""Audio frames lost on PUB/SUB, per stream: vad, the one receiver of audio, counts them from `seq`."""
from __future__ import annotations


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
