"""Speakers of live streams: each stream's recent audio kept from audio/<s>/, and each final of
text/<s>/ labelled with the stream's speakers (speaker/diarize/online.py) as it comes.

No sockets here: the process feeds it messages (`take`) and runs `label` off its loop thread.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from bus import pcm, schemas
from speaker.diarize.online import OnlineSpeakers
from speaker.diarize.pipeline import DiarizeOptions, Embedder
from speaker.voices import VoiceBook

MAX_STREAMS = 64  # streams followed at once; the least recently heard is dropped beyond


@dataclass
class StreamAudio:
    """The last ``keep_s`` seconds of one stream, addressed by sample offset on its timeline."""

    keep_samples: int
    start: int = 0  # offset of chunks[0]
    chunks: list[np.ndarray] = field(default_factory=list)
    size: int = 0

    def add(self, offset: int, samples: np.ndarray) -> None:
        if self.chunks and offset != self.start + self.size:  # a gap (dropped frames) or a restart
            self.chunks, self.size = [], 0
        if not self.chunks:
            self.start = offset
        self.chunks.append(samples)
        self.size += len(samples)
        while self.chunks and self.size - len(self.chunks[0]) >= self.keep_samples:
            self.start += len(self.chunks[0])
            self.size -= len(self.chunks.pop(0))

    def span(self, first: int, end: int) -> np.ndarray | None:
        """Samples [first, end) if all of them are still here."""
        if first < self.start or end > self.start + self.size or end <= first:
            return None
        return np.concatenate(self.chunks)[first - self.start:end - self.start]


@dataclass(frozen=True)
class Utterance:
    stream: str
    utt: int
    start_s: float
    audio: np.ndarray  # float
    speakers: OnlineSpeakers  # its stream's


class LiveSpeakers:
    def __init__(self, encoder: Embedder | None, options: DiarizeOptions, keep_s: float,
                 voices: VoiceBook | None = None, name_threshold: float = 1.0):
        self.voices = voices  # enrolled voices: a stream's speaker that matches one carries its name
        self.name_threshold = name_threshold
        self.encoder = encoder  # None while the model is not loaded: finals go unlabelled (counted)
        self.options = options
        self.keep_samples = int(keep_s * pcm.SAMPLE_RATE)
        self.audio: OrderedDict[str, StreamAudio] = OrderedDict()
        self.speakers: dict[str, OnlineSpeakers] = {}
        self.last_utt: dict[str, int] = {}
        self.missed = 0  # finals whose audio had already left the buffer (or never came)

    def counters(self) -> dict:
        """For the heartbeat: speakers heard so far per followed stream, and finals without their audio."""
        return {"per_stream": {s: self.speakers[s].next_label if s in self.speakers else 0 for s in self.audio},
                "live_missed": self.missed}

    def take(self, msg: schemas.Message) -> Utterance | None:
        """Keep audio, forget closed streams; a final of a followed stream gives its utterance."""
        if isinstance(msg, schemas.Audio):
            self._stream(msg.stream).add(msg.offset, np.frombuffer(msg.pcm, dtype=pcm.DTYPE))
        elif isinstance(msg, schemas.Open):
            self._stream(msg.stream)
        elif isinstance(msg, schemas.Close):
            for table in (self.audio, self.speakers, self.last_utt):
                table.pop(msg.stream, None)
        elif isinstance(msg, schemas.Final) and msg.stream in self.audio:
            return self._utterance(msg)
        return None

    def _stream(self, stream: str) -> StreamAudio:
        if stream not in self.audio:
            self.audio[stream] = StreamAudio(self.keep_samples)
            while len(self.audio) > MAX_STREAMS:
                gone, _ = self.audio.popitem(last=False)
                self.speakers.pop(gone, None)
                self.last_utt.pop(gone, None)
        self.audio.move_to_end(stream)
        return self.audio[stream]

    def _utterance(self, final: schemas.Final) -> Utterance | None:
        if final.utt <= self.last_utt.get(final.stream, -1):
            return None  # this utterance is labelled already
        self.last_utt[final.stream] = final.utt
        first = int(round(final.start * pcm.SAMPLE_RATE))
        samples = self.audio[final.stream].span(first, int(round(final.end * pcm.SAMPLE_RATE)))
        if samples is None or self.encoder is None:
            self.missed += 1
            return None
        online = self.speakers.setdefault(final.stream, OnlineSpeakers(self.encoder, self.options))
        return Utterance(final.stream, final.utt, final.start, pcm.to_float(samples), online)

    def label(self, utterance: Utterance, worker: str) -> schemas.Speakers:
        """The utterance's turns among its stream's speakers (runs off the loop thread, one at a time)."""
        online = utterance.speakers
        turns = [{"start": t.start, "end": t.end, "speaker": t.speaker}
                 for t in online.assign(utterance.audio, utterance.start_s)]
        if self.voices is not None and self.voices.voices:
            turns = self.voices.name_turns(turns, online.centroids(), self.name_threshold)
        return schemas.Speakers(stream=utterance.stream, utt=utterance.utt, count=online.next_label, worker=worker,
                                turns=turns)
