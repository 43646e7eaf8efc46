"""Live utterances so far, per stream, so that a partial needs to carry only its new audio.

vad sends the one asr worker there is each partial's new audio only (a `delta`: `offset` past
`utt_offset`). `UtteranceAudio.complete(segment)` gives back the whole utterance so far, as
vad used to send it, so the rest of asr sees what it always saw. A delta that does not join
what this worker holds (a second worker took the earlier audio, or this worker restarted)
cannot be completed: it is counted and dropped, which is harmless for a partial; a final
always carries its whole utterance.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from bus.pcm import BYTES_PER_SAMPLE
from bus.schemas import Segment

MAX_STREAMS = 1024  # streams whose utterance in progress is held (least recently used go first)


@dataclass
class _Held:
    utt: int
    start: int  # the utterance's first sample
    pcm: bytearray

    @property
    def end(self) -> int:
        return self.start + len(self.pcm) // BYTES_PER_SAMPLE


class UtteranceAudio:
    def __init__(self, max_streams: int = MAX_STREAMS):
        self.max_streams = max_streams
        self.held: OrderedDict[str, _Held] = OrderedDict()
        self.gaps = 0  # deltas that did not join the audio held

    def complete(self, segment: Segment) -> Segment | None:
        """The segment with its utterance's audio from the start, or None for a delta that cannot be."""
        if segment.stream is None or segment.utt_offset is None:
            return segment  # a file job's piece: whole already
        stream = segment.stream
        if segment.kind == "final":
            self.held.pop(stream, None)
            return segment
        # A partial or a speculation: both are the utterance so far, from its first sample.
        held = self.held.get(stream)
        if not segment.is_delta:
            self._hold(stream, _Held(segment.utt, segment.offset, bytearray(segment.pcm)))
            return segment
        if held is None or held.utt != segment.utt or held.start != segment.utt_offset or held.end != segment.offset:
            self.gaps += 1
            self.held.pop(stream, None)
            return None
        held.pcm += segment.pcm  # (a speculation ends where its final will: held to there, then trimmed back)
        self.held.move_to_end(stream)
        return dataclasses.replace(segment, offset=held.start, pcm=bytes(held.pcm))

    def forget(self, stream: str) -> None:
        self.held.pop(stream, None)

    def _hold(self, stream: str, held: _Held) -> None:
        self.held[stream] = held
        self.held.move_to_end(stream)
        while len(self.held) > self.max_streams:
            self.held.popitem(last=False)
