"""A live stream's continuity across a vad restart, on the source's side (gateway sessions, capture).

vad keeps a stream's state (its options, the utterance in progress, the numbering) only in
memory. A source that keeps what vad may still need can rebuild it when vad comes back:

- `VadWatch` tells a restarted vad from the one before by its heartbeat's `instance`
  (host-pid); the first vad a source hears counts as new too (its `open` may have gone to
  nobody: the slow joiner).
- `StreamReplay` keeps the stream's `open` and the audio vad has not acknowledged (vad's
  `ack`: audio before `offset` is done with), bounded to `capacity` samples. When vad
  restarts, `resend()` gives the `open` again (with `resume_utt`: the numbering goes on), the
  audio from the last acknowledged offset, and the `flush` if one was sent and not answered.

Pure: no sockets, no clocks. The source publishes what the methods return, in order, on the
PUB socket its audio goes through.
"""
from __future__ import annotations

import dataclasses
from collections import deque

from bus import schemas


class VadWatch:
    """Which vad instance is serving; `restarted(heartbeat)` is True once per new instance."""

    def __init__(self, instance: str | None = None):
        self.instance = instance
        self.restarts = 0

    def restarted(self, heartbeat: schemas.Heartbeat) -> bool:
        if heartbeat.stage != "vad" or not heartbeat.instance or heartbeat.instance == self.instance:
            return False
        self.instance = heartbeat.instance
        self.restarts += 1
        return True


class StreamReplay:
    """One stream's `open`, its unacknowledged audio and its unanswered flush."""

    def __init__(self, capacity_samples: int):
        self.capacity = capacity_samples
        self.opened: schemas.Open | None = None
        self.frames: deque[schemas.Audio] = deque()
        self.samples = 0              # held in `frames`
        self.acked_offset = 0
        self.resume_utt: int | None = None   # from vad's last ack
        self.flush_pending = 0        # flushes that went out and vad has not answered
        self.overflow_samples = 0     # audio dropped unacknowledged because the buffer was full
        self.resends = 0

    def open(self, msg: schemas.Open, vad_instance: str | None) -> schemas.Open:
        """Remember the stream's options; returns the open to publish: marked as replaying, with the vad
        the source has heard (a new vad holds back a stream announced to another until it is resent)."""
        self.opened = dataclasses.replace(msg, replays=True, resume_utt=None, replay_end=None, vad=vad_instance or "")
        return self.opened

    def sent(self, frame: schemas.Audio) -> None:
        if frame.offset + len(frame.pcm) // 2 <= self.acked_offset:
            return
        self.frames.append(frame)
        self.samples += len(frame.pcm) // 2
        while self.samples > self.capacity and len(self.frames) > 1:
            dropped = self.frames.popleft()
            self.samples -= len(dropped.pcm) // 2
            self.overflow_samples += len(dropped.pcm) // 2

    def flushed(self) -> None:
        """A flush went out: it is resent after a restart until vad answers it."""
        self.flush_pending += 1

    def answered(self, msg: schemas.Flushed) -> bool:
        """vad answered a flush; True when that was the last one outstanding."""
        self.flush_pending = max(0, self.flush_pending - 1)
        return self.flush_pending == 0

    def acked(self, ack: schemas.Ack) -> None:
        """vad is done with the audio before `ack.offset`: drop it."""
        if ack.offset < self.acked_offset:
            return  # an older ack overtaken by a newer one
        self.acked_offset, self.resume_utt = ack.offset, ack.utt
        while self.frames and self.frames[0].offset + len(self.frames[0].pcm) // 2 <= ack.offset:
            self.samples -= len(self.frames.popleft().pcm) // 2

    def resend(self) -> list[schemas.Message]:
        """What a restarted vad needs for this stream: open (numbering on), unacked audio, pending flush."""
        if self.opened is None:
            return []
        self.resends += 1
        end = self.frames[-1].offset + len(self.frames[-1].pcm) // 2 if self.frames else None
        out: list[schemas.Message] = [dataclasses.replace(self.opened, resume_utt=self.resume_utt or 0,
                                                          replay_end=end)]
        out += self.frames
        if self.flush_pending:  # the ones before the restart will never be answered: one stands for all
            self.flush_pending = 1
            out.append(schemas.Flush(stream=self.opened.stream))
        return out

    def counters(self) -> dict:
        return {"replay_samples": self.samples, "replay_overflow_samples": self.overflow_samples,
                "replay_resends": self.resends}
