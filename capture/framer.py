"""Cuts a 16 kHz mono int16 byte stream into fixed frames with sequence numbers and sample offsets."""
from __future__ import annotations

from dataclasses import dataclass

from bus.pcm import SAMPLE_RATE


@dataclass(frozen=True)
class Frame:
    seq: int      # +1 per frame, never reset while the process runs
    offset: int   # first sample on the stream's timeline
    pcm: bytes


class Framer:
    def __init__(self, frame_ms: int = 20, rate: int = SAMPLE_RATE):
        self.frame_samples = rate * frame_ms // 1000
        self.frame_bytes = self.frame_samples * 2
        self.seq = 0
        self.offset = 0
        self._buf = bytearray()

    def push(self, pcm: bytes) -> list[Frame]:
        self._buf += pcm
        frames = []
        while len(self._buf) >= self.frame_bytes:
            frames.append(self._take(bytes(self._buf[:self.frame_bytes])))
            del self._buf[:self.frame_bytes]
        return frames

    def flush(self) -> list[Frame]:
        """The tail as one last frame, zero-padded to full length (none if empty)."""
        if len(self._buf) < 2:
            self._buf.clear()
            return []
        pcm = bytes(self._buf[:len(self._buf) - len(self._buf) % 2]).ljust(self.frame_bytes, b"\0")
        self._buf.clear()
        return [self._take(pcm)]

    def _take(self, pcm: bytes) -> Frame:
        frame = Frame(self.seq, self.offset, pcm)
        self.seq += 1
        self.offset += self.frame_samples
        return frame
