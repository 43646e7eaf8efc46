"""Partial (and speculative) segments as new audio only, when one asr worker takes them all.

A partial used to carry its utterance from the start every `partial_interval_ms`: a 30 s
utterance sent ~29 MB of partial audio. When exactly one asr worker is alive (its
heartbeats say so), every partial reaches that worker, which keeps the utterance so far
(asr/utterances.py); a partial then carries only the audio pushed since the last one. With
several workers (PUSH hands segments round-robin) or none, or when the set of workers has
just changed, partials go whole, as before. Finals always carry their whole utterance, so
any worker can transcribe them and nothing depends on what a worker holds.
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
        self.pushed: OrderedDict[str, tuple[int, int, int]] = OrderedDict()  # stream → (utt, start, end sample)
        self.workers: frozenset[str] = frozenset()
        self.bytes_saved = 0

    def set_workers(self, instances: frozenset[str]) -> None:
        """The asr instances alive now; any change forgets what the old one held."""
        if instances != self.workers:
            self.workers = instances
            self.pushed.clear()

    def shape(self, segment: Segment) -> Segment:
        """What to push for `segment`: its new audio only where the one worker holds the rest."""
        if segment.kind == "final" or segment.stream is None or segment.utt_offset is None \
                or len(self.workers) != 1:
            return segment
        held = self.pushed.get(segment.stream)
        if held is None or held[:2] != (segment.utt, segment.utt_offset):
            return segment
        end = segment.offset + pcm.samples(segment.pcm)
        upto = held[2]
        if not segment.offset <= upto <= end:
            return segment
        cut = (upto - segment.offset) * pcm.BYTES_PER_SAMPLE
        return dataclasses.replace(segment, offset=upto, pcm=segment.pcm[cut:])

    def pushed_ok(self, original: Segment, sent: Segment) -> None:
        """Record a successful push (`sent` is what `shape(original)` gave)."""
        stream = original.stream
        if stream is None or original.utt_offset is None:
            return
        if original.kind == "final" or len(self.workers) != 1:
            self.pushed.pop(stream, None)
            return
        self.bytes_saved += len(original.pcm) - len(sent.pcm)
        self.pushed[stream] = (original.utt, original.utt_offset, original.offset + pcm.samples(original.pcm))
        self.pushed.move_to_end(stream)
        while len(self.pushed) > self.max_streams:
            self.pushed.popitem(last=False)
