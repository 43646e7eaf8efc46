"""Speculative finals: decoded while vad's endpointing still waits, published when vad confirms.

vad sends a `speculative` segment once the silence after an utterance holds the tail its
final keeps (vad/segmenter.py): the final's audio, if the silence lasts. asr decodes it with
the final's options, ahead. When the real final arrives with the same audio (same utterance,
first sample and length), the decode already done, or under way, is its transcript: the same
text a fresh decode of the final gives, since audio, options and prompt are the same. A
partial of the utterance (speech went on) or a final with other audio voids the guess.

Pure bookkeeping, no sockets and no model: `AsrLoop` asks it what to do with each segment
that arrives and each speculative result that comes back.
"""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass

from bus import pcm
from bus.schemas import Segment, Transcript

MAX_HELD = 1024  # guesses held (one per stream at most)


def _audio_key(segment: Segment) -> tuple[int, int, int]:
    return segment.utt, segment.offset, pcm.samples(segment.pcm)


@dataclass
class _Guess:
    key: tuple[int, int, int]
    result: Transcript | None = None   # the decode, once done
    confirmed: Segment | None = None   # the final that matched, while the decode is not done


@dataclass
class SpeculationCounters:
    offered: int = 0
    confirmed: int = 0     # finals answered from a guess
    voided: int = 0        # guesses that speech (or another final) made useless
    refused: int = 0       # guesses not taken: the stream's previous final still waited on its guess
    saved_ms: float = 0.0  # decode time finals did not wait for (summed)


class Speculations:
    def __init__(self, max_held: int = MAX_HELD):
        self.held: OrderedDict[str, _Guess] = OrderedDict()  # stream → its newest guess
        self.counters = SpeculationCounters()
        self.max_held = max_held

    def offer(self, segment: Segment) -> bool:
        """A speculative segment: True to decode it. False while the stream's held guess has a
        final waiting on it: replacing that guess would lose the final, so the new one is refused."""
        held = self.held.get(segment.stream)
        if held is not None and held.confirmed is not None:
            self.counters.refused += 1
            return False
        self.counters.offered += 1
        self.held[segment.stream] = _Guess(_audio_key(segment))
        self.held.move_to_end(segment.stream)
        while len(self.held) > self.max_held:
            self.held.popitem(last=False)
        return True

    def on_partial(self, segment: Segment) -> None:
        """Speech goes on: a guess for this utterance is void."""
        guess = self.held.get(segment.stream)
        if guess is not None and guess.key[0] == segment.utt:
            self._void(segment.stream)

    def on_final(self, segment: Segment) -> Transcript | None | bool:
        """What to do with a live final: a Transcript to publish now (the guess is done), True to
        wait for the guess under way, or False to decode the final as usual."""
        guess = self.held.get(segment.stream)
        if guess is None:
            return False
        if guess.key != _audio_key(segment):
            self._void(segment.stream)
            return False
        if guess.result is None:
            guess.confirmed = segment
            return True
        del self.held[segment.stream]
        return self._confirm(guess.result, segment)

    def on_result(self, segment: Segment, result: Transcript) -> Transcript | bool:
        """A speculative decode finished: the Final to publish if its final came meanwhile; True
        when it is held for its final (still the newest guess); False when it was voided."""
        guess = self.held.get(segment.stream)
        if guess is None or guess.key != _audio_key(segment):
            return False  # voided meanwhile (or replaced by a newer guess)
        if guess.confirmed is None:
            guess.result = result
            return True
        del self.held[segment.stream]
        return self._confirm(result, guess.confirmed)

    def on_failure(self, segment: Segment) -> Segment | None:
        """A speculative decode failed: forget it; the final that waited on it (if any) is returned
        to be decoded as usual."""
        guess = self.held.get(segment.stream)
        if guess is None or guess.key != _audio_key(segment):
            return None
        self._void(segment.stream)
        return guess.confirmed

    def _confirm(self, result: Transcript, final: Segment) -> Transcript:
        """The guess's transcript as the final's own: stamped when it goes out, marked speech-final."""
        self.counters.confirmed += 1
        self.counters.saved_ms += result.encode_ms + result.decode_ms
        return dataclasses.replace(result, is_speech_final=True, ts=time.time(),
                                   ts_end_of_speech=final.ts_end_of_speech)

    def _void(self, stream: str) -> None:
        self.counters.voided += 1
        del self.held[stream]
