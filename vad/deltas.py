"""Partial (and speculative) segments as new audio only, to the worker that holds the rest.

A partial used to carry its utterance from the start every `partial_interval_ms`: a 30 s
utterance sent ~29 MB of partial audio. The segment broker sends a stream back to the asr
worker that had it last (bus/broker.py), and that worker keeps the utterance so far
(asr/utterances.py); a partial given to the worker that took the utterance's previous one
then carries only the audio pushed since. A partial going to another worker (the last one
was busy or is gone) goes whole. Finals always carry their whole utterance, so any worker
can transcribe them and nothing depends on what a worker holds.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict

from bus import pcm
from bus.schemas import Segment

MAX_STREAMS = 4096


class PartialDeltas:
    def __init__(self, max_streams: int = MAX_STREAMS):
        self.max_streams = max_streams
        # stream → (worker, utt, start, end sample) of its last partial given
        self.pushed: OrderedDict[str, tuple[bytes, int, int, int]] = OrderedDict()
        self.bytes_saved = 0

    def forget_worker(self, worker: bytes) -> None:
        """A worker gone: what it held is gone with it."""
        for stream in [s for s, held in self.pushed.items() if held[0] == worker]:
            del self.pushed[stream]

    def shape(self, segment: Segment, worker: bytes) -> Segment:
        """What to send `worker` for `segment`: its new audio only where that worker holds the rest."""
        if segment.kind == "final" or segment.stream is None or segment.utt_offset is None:
            return segment
        held = self.pushed.get(segment.stream)
        if held is None or held[:3] != (worker, segment.utt, segment.utt_offset):
            return segment
        end = segment.offset + pcm.samples(segment.pcm)
        upto = held[3]
        if not segment.offset <= upto <= end:
            return segment
        cut = (upto - segment.offset) * pcm.BYTES_PER_SAMPLE
        return dataclasses.replace(segment, offset=upto, pcm=segment.pcm[cut:])

    def pushed_ok(self, original: Segment, sent: Segment, worker: bytes) -> None:
        """Record a send to `worker` (`sent` is what `shape(original, worker)` gave)."""
        stream = original.stream
        if stream is None or original.utt_offset is None:
            return
        if original.kind == "final":
            self.pushed.pop(stream, None)
            return
        self.bytes_saved += len(original.pcm) - len(sent.pcm)
        self.pushed[stream] = (worker, original.utt, original.utt_offset, original.offset + pcm.samples(original.pcm))
        self.pushed.move_to_end(stream)
        while len(self.pushed) > self.max_streams:
            self.pushed.popitem(last=False)
