"""Live endpointing for one stream: frames in, speech events and utterance audio out.

`StreamSegmenter.feed(pcm, offset, now)` takes PCM of any length (bus frames are
20 ms, webrtcvad wants 10/20/30 ms), re-frames it, and returns events:

- `SpeechStarted`  once an utterance has `min_speech_ms` of voiced span
- `UtteranceAudio` kind "partial" once `first_partial_ms` of speech is in, then every
  `partial_interval_ms` of new speech (every `wordless_partial_interval_ms` until asr's
  first words of the utterance come back: a first partial often has none yet), but none
  once a pause's speculation went; kind "speculative" once the silence after the
  last voiced frame reaches the tail the final keeps (`tail_ms`): that is the final's
  audio already, if the silence lasts, so asr can decode it while endpointing still
  waits; and kind "final" when the utterance ends
- `SpeechEnded`    after `end_silence_ms` of silence, at `max_utterance_s`, or on flush

The endpoint adapts to what was said (`hear`): when asr's newest text for the utterance
covers all its speech and ends a sentence, `sentence_end_factor` × end_silence_ms of
silence close it; text that stops mid-sentence waits `open_sentence_factor` × as long,
so a pause inside a sentence does not split it.

Everything is on the stream's sample timeline; `now` (wall clock) is only carried
through as `ts_end_of_speech` for latency measurement.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from config.schema import VadConfig
from vad.detector import BYTES_PER_SAMPLE, VoiceDetector

MAX_GAP_FILL_S = 1.0  # lost audio up to this long is replaced by silence; longer gaps restart the timeline


SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")


def ends_sentence(text: str) -> bool:
    """Whether a transcript ends a sentence ("..." trails off: it does not)."""
    text = text.rstrip().rstrip("\"')»”’")
    return text.endswith(SENTENCE_ENDS) and not text.endswith("..")


@dataclass(frozen=True)
class SegmenterSettings:
    frame_ms: int = 30
    start_window_ms: int = 300
    start_ratio: float = 0.6
    pre_roll_ms: int = 300
    tail_ms: int = 150
    end_silence_ms: int = 800
    min_speech_ms: int = 250
    max_utterance_s: float = 30.0
    partial_interval_ms: int = 500
    first_partial_ms: int = 500
    wordless_partial_interval_ms: int = 200
    partials: bool = True
    speculate: bool = True
    adaptive: bool = True
    sentence_end_factor: float = 0.6
    open_sentence_factor: float = 1.5

    @classmethod
    def from_config(cls, cfg: VadConfig, end_silence_ms: int | None = None, partials: bool = True):
        return cls(frame_ms=cfg.frame_ms, start_window_ms=cfg.start_window_ms, start_ratio=cfg.start_ratio,
                   pre_roll_ms=cfg.pre_roll_ms, tail_ms=cfg.tail_ms, end_silence_ms=end_silence_ms or cfg.end_silence_ms,
                   min_speech_ms=cfg.min_speech_ms, max_utterance_s=cfg.max_utterance_s,
                   partial_interval_ms=cfg.partial_interval_ms, first_partial_ms=cfg.first_partial_ms,
                   wordless_partial_interval_ms=cfg.wordless_partial_interval_ms,
                   partials=partials, speculate=cfg.speculative_finals, adaptive=cfg.adaptive_endpointing,
                   sentence_end_factor=cfg.sentence_end_factor, open_sentence_factor=cfg.open_sentence_factor)

    def frames(self, ms: float) -> int:
        """A duration in whole frames, at least one."""
        return max(1, math.ceil(ms / self.frame_ms))


@dataclass(frozen=True)
class SpeechStarted:
    utt: int
    offset: int  # first voiced sample


@dataclass(frozen=True)
class SpeechEnded:
    utt: int
    offset: int  # sample after the last voiced frame (or the split point)
    reason: str  # silence | max_length | flush | resync


@dataclass(frozen=True)
class UtteranceAudio:
    utt: int
    kind: str  # partial | final
    offset: int  # first sample of pcm (includes pre-roll)
    pcm: bytes
    ts_end_of_speech: float | None = None
    voiced: bytes = b""  # one byte per frame of pcm: 1 where webrtcvad heard speech
    wordless: bool = False  # asr has sent no words of this utterance yet


@dataclass
class _Frame:
    offset: int
    pcm: bytes
    voiced: bool
    level: float
    now: float


@dataclass
class _Utterance:
    frames: list[_Frame]
    first_voiced: int
    last_voiced: int
    confirmed: bool = False
    trailing_silence: int = 0
    since_partial: int = 0
    partial_upto: int = -1  # frame index the last partial reached
    heard: tuple[int, bool] | None = None  # asr's newest text: (sample it covers to, ends a sentence)
    worded: bool = False  # asr has sent words of this utterance


@dataclass
class SegmenterCounters:
    frames: int = 0
    voiced_frames: int = 0
    utterances: int = 0
    blips_dropped: int = 0
    splits: int = 0
    gap_fills: int = 0
    resyncs: int = 0


class StreamSegmenter:
    """Per-stream state machine: idle → candidate (start seen) → speech (confirmed) → idle."""

    def __init__(self, settings: SegmenterSettings, detector: VoiceDetector):
        if detector.frame_ms != settings.frame_ms:
            raise ValueError(f"detector frames are {detector.frame_ms} ms, settings say {settings.frame_ms} ms")
        self.s = settings
        self.detector = detector
        self.window = settings.frames(settings.start_window_ms)
        self.needed = max(1, math.ceil(settings.start_ratio * self.window))
        self.pre_roll = settings.frames(settings.pre_roll_ms) if settings.pre_roll_ms else 0
        self.tail = settings.frames(settings.tail_ms) if settings.tail_ms else 0
        self.end_silence = settings.frames(settings.end_silence_ms)
        self.min_speech = settings.frames(settings.min_speech_ms) if settings.min_speech_ms else 1
        self.max_frames = int(settings.max_utterance_s * 1000 // settings.frame_ms)
        self.partial_every = settings.frames(settings.partial_interval_ms)
        self.first_partial = settings.frames(settings.first_partial_ms)
        self.wordless_partial_every = min(self.partial_every, settings.frames(settings.wordless_partial_interval_ms))
        # A speculation when the silence holds all the tail the final keeps (and endpointing still waits).
        self.speculate_at = max(1, self.tail) if settings.speculate and self.end_silence > max(1, self.tail) \
            else None
        # Endpoints that adapt to the text; never shorter than the speculation, which brings the text.
        self.sentence_end_silence = max(self.speculate_at or 1, round(self.end_silence * settings.sentence_end_factor))
        self.open_sentence_silence = max(self.end_silence, round(self.end_silence * settings.open_sentence_factor))
        self.split_lookback = settings.frames(1000)
        self.history: deque[_Frame] = deque(maxlen=self.window + self.pre_roll)
        self.utt: _Utterance | None = None
        self.next_utt = 0
        self.pending = bytearray()
        self.pending_offset: int | None = None
        self.counters = SegmenterCounters()

    @property
    def in_speech(self) -> bool:
        return self.utt is not None and self.utt.confirmed

    def expected_offset(self) -> int | None:
        if self.pending_offset is None:
            return None
        return self.pending_offset + len(self.pending) // BYTES_PER_SAMPLE

    def feed(self, pcm: bytes, offset: int, now: float = 0.0) -> list:
        """Add audio that starts at sample `offset`; return the events it caused."""
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError(f"PCM of {len(pcm)} bytes is not whole int16 samples")
        events: list = []
        expected = self.expected_offset()
        if expected is None:
            self.pending_offset = offset
        elif offset != expected:
            events += self._realign(offset, expected, now)
        self.pending += pcm
        size = self.detector.frame_bytes
        while len(self.pending) >= size:
            frame = bytes(self.pending[:size])
            del self.pending[:size]
            frame_offset = self.pending_offset
            self.pending_offset += size // BYTES_PER_SAMPLE
            events += self._step(frame, frame_offset, now)
        return events

    def flush(self, now: float = 0.0, reason: str = "flush") -> list:
        """Finish the open utterance now (a short tail is padded to a whole frame)."""
        events: list = []
        if self.pending and self.utt is not None:
            size = self.detector.frame_bytes
            frame = bytes(self.pending) + bytes(size - len(self.pending))
            frame_offset = self.pending_offset
            self.pending_offset += len(self.pending) // BYTES_PER_SAMPLE
            self.pending.clear()
            events += self._step(frame, frame_offset, now)
        utt = self.utt
        if utt is None:
            return events
        span = utt.last_voiced - utt.first_voiced + 1
        if not utt.confirmed and span >= self.min_speech:
            events += self._confirm(utt)
        if utt.confirmed:
            return events + self._finish(utt, len(utt.frames), reason)
        self.counters.blips_dropped += 1
        self._to_idle(utt)
        return events

    def _realign(self, offset: int, expected: int, now: float) -> list:
        """Audio went missing (fill it with silence) or the source restarted its timeline."""
        gap = offset - expected
        if 0 < gap <= MAX_GAP_FILL_S * 16000:
            self.counters.gap_fills += 1
            filler = bytes(gap * BYTES_PER_SAMPLE)
            return self.feed(filler, expected, now)
        self.counters.resyncs += 1
        events = self.flush(now, reason="resync")
        self.pending.clear()
        self.pending_offset = offset
        self.history.clear()
        return events

    def _step(self, pcm: bytes, offset: int, now: float) -> list:
        voiced, level = self.detector.classify(pcm)
        frame = _Frame(offset, pcm, voiced, level, now)
        self.counters.frames += 1
        self.counters.voiced_frames += voiced
        if self.utt is None:
            return self._idle_step(frame)
        return self._speech_step(self.utt, frame)

    def _idle_step(self, frame: _Frame) -> list:
        self.history.append(frame)
        recent = list(self.history)[-self.window:]
        if sum(f.voiced for f in recent) < self.needed:
            return []
        frames = list(self.history)
        first = len(frames) - len(recent) + next(i for i, f in enumerate(recent) if f.voiced)
        begin = max(0, first - self.pre_roll)
        last = max(i for i, f in enumerate(frames) if f.voiced)
        self.utt = _Utterance(frames[begin:], first - begin, last - begin,
                              trailing_silence=len(frames) - 1 - last)
        self.history.clear()
        return self._check_confirm(self.utt)

    def _speech_step(self, utt: _Utterance, frame: _Frame) -> list:
        utt.frames.append(frame)
        if frame.voiced:
            utt.last_voiced = len(utt.frames) - 1
            utt.trailing_silence = 0
        else:
            utt.trailing_silence += 1
        events = self._check_confirm(utt)
        if utt.confirmed and utt.trailing_silence == self.speculate_at:
            events.append(self._audio(utt, "speculative", utt.last_voiced + 1 + self.tail))
        if utt.trailing_silence >= (self._end_silence(utt) if utt.confirmed else self.end_silence):
            if utt.confirmed:
                return events + self._finish(utt, utt.last_voiced + 1, "silence")
            self.counters.blips_dropped += 1
            self._to_idle(utt)
            return events
        if utt.confirmed:
            utt.since_partial += 1
            if len(utt.frames) >= self.max_frames:
                return events + self._split(utt)
            # Only when speech went on since the last partial: a pause adds no new words. And not once
            # the speculation went: it holds all the speech, and a partial would void it.
            every = self.partial_every if utt.worded else self.wordless_partial_every
            guessed = self.speculate_at is not None and utt.trailing_silence >= self.speculate_at
            if self.s.partials and utt.since_partial >= every and utt.last_voiced > utt.partial_upto \
                    and not guessed:
                utt.since_partial = 0
                utt.partial_upto = len(utt.frames) - 1
                events.append(self._audio(utt, "partial", len(utt.frames)))
        return events

    def hear(self, utt: int, text: str, upto: int, now: float = 0.0) -> list:
        """asr's text for utterance `utt` so far, covering its audio up to sample `upto`: the
        endpoint adapts to it (the events of an utterance this closes are returned)."""
        current = self.utt
        if current is None or not current.confirmed or utt != self.next_utt:
            return []
        current.worded = current.worded or bool(text.strip())
        if not self.s.adaptive:
            return []
        if current.heard is not None and current.heard[0] > upto:
            return []  # an older text (a partial overtaken by the speculation's)
        current.heard = (upto, ends_sentence(text))
        if current.trailing_silence and current.trailing_silence >= self._end_silence(current):
            return self._finish(current, current.last_voiced + 1, "silence")
        return []

    def _end_silence(self, utt: _Utterance) -> int:
        """Frames of silence that end this (confirmed) utterance now."""
        if not self.s.adaptive or utt.heard is None:
            return self.end_silence
        upto, ended = utt.heard
        if upto < utt.frames[utt.last_voiced].offset + self.detector.frame_samples:
            return self.end_silence  # the text is older than the last speech
        return self.sentence_end_silence if ended else self.open_sentence_silence

    def _check_confirm(self, utt: _Utterance) -> list:
        if utt.confirmed or utt.last_voiced - utt.first_voiced + 1 < self.min_speech:
            return []
        return self._confirm(utt)

    def _confirm(self, utt: _Utterance) -> list:
        utt.confirmed = True
        # The first partial once first_partial_ms of the utterance is in; then, until asr sends words,
        # every wordless_partial_every.
        utt.since_partial = len(utt.frames) - utt.first_voiced + self.wordless_partial_every - self.first_partial
        self.counters.utterances += 1
        return [SpeechStarted(self.next_utt, utt.frames[utt.first_voiced].offset)]

    def _finish(self, utt: _Utterance, speech_end: int, reason: str) -> list:
        """Final segment: speech up to frame index `speech_end` plus the tail (tail_ms of what followed)."""
        tail = min(len(utt.frames), speech_end + self.tail)
        final = self._audio(utt, "final", tail)
        end_offset = utt.frames[speech_end - 1].offset + self.detector.frame_samples
        events = [final, SpeechEnded(self.next_utt, end_offset, reason)]
        self.next_utt += 1
        self._to_idle(utt)
        return events

    def _split(self, utt: _Utterance) -> list:
        """At max length: cut at the quietest frame of the last second, keep the rest as a new utterance."""
        self.counters.splits += 1
        lookback = range(max(1, len(utt.frames) - self.split_lookback), len(utt.frames))
        quietest = min(lookback, key=lambda i: (utt.frames[i].voiced, utt.frames[i].level, -i))
        cut = quietest + 1
        final = self._audio(utt, "final", cut)
        events = [final, SpeechEnded(self.next_utt, utt.frames[cut - 1].offset + self.detector.frame_samples,
                                     "max_length")]
        self.next_utt += 1
        rest = utt.frames[cut:]
        if not rest:
            self._to_idle(utt)
            return events
        voiced = [i for i, f in enumerate(rest) if f.voiced] or [0]
        self.utt = _Utterance(rest, voiced[0], voiced[-1], trailing_silence=len(rest) - 1 - voiced[-1])
        self.counters.utterances += 1
        self.utt.confirmed = True
        events.append(SpeechStarted(self.next_utt, rest[0].offset))
        return events

    def _audio(self, utt: _Utterance, kind: str, upto: int) -> UtteranceAudio:
        frames = utt.frames[:upto]
        return UtteranceAudio(self.next_utt, kind, frames[0].offset, b"".join(f.pcm for f in frames),
                              utt.frames[utt.last_voiced].now, bytes(f.voiced for f in frames), not utt.worded)

    def _to_idle(self, utt: _Utterance) -> None:
        """Keep only the silence after the last voiced frame, so it cannot retrigger a start."""
        self.utt = None
        self.history.clear()
        self.history.extend(utt.frames[utt.last_voiced + 1:])
