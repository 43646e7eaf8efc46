"""Every live stream vad knows: messages in, bus messages out (no sockets here).

`StreamTable.handle(msg, now)` takes a decoded `open`, `audio`, `flush` or `close`
and returns the messages it causes: `SpeechStart`/`SpeechEnd`/`Error` to publish
and `Segment`s to push. `now` is wall-clock time, carried only into
`ts_end_of_speech` for latency measurement; the TTL runs on `clock` (monotonic).
Bad input is counted and logged, never raised: audio for a stream never opened
opens it with defaults (a subscriber that joins late misses the `open`),
odd-length PCM and audio of a stream whose `open` named another sample rate are
dropped. Sources repeat their `open` (vad may have restarted or joined late): an
`open` equal to the stream's current one changes nothing.

Across a vad restart (bus/replay.py): sources that replay mark their `open` `replays`. For
`resume_grace_s` after start vad holds back audio of streams it knows nothing of, and of
streams a plain `open` announced, until the source's resend (an `open` with `resume_utt`, then
the audio from the last `ack`) rebuilds them: numbering, options and the utterance in progress
as they were. A resend to a stream vad already serves is harmless: the audio it has already
seen is skipped (`replayed_frames_skipped`). `acks()` says, per stream, from where a source
would have to replay: the start of the oldest utterance whose final asr has not published
(vad reads text/), else of the one in progress, else of the audio the start detector looks at.

Utterance numbers go on across a reopen and a close: (stream, utt) never repeats
within the process. Closed streams' next numbers are remembered for the last
`CLOSED_REMEMBERED` streams; a stream not remembered starts at a floor above every
number a forgotten stream reached, so the guarantee holds with bounded memory.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from bus import schemas
from vad.gaps import GapCounter
from config.schema import VadConfig
from vad.detector import SAMPLE_RATE, VoiceDetector
from vad.segmenter import SegmenterSettings, SpeechEnded, SpeechStarted, StreamSegmenter, UtteranceAudio

log = logging.getLogger(__name__)
LOG_EVERY = 1000  # a repeated problem is logged at its 1st, 1001st, ... occurrence per stream
CLOSED_REMEMBERED = 4096  # closed streams whose next utterance number is kept
LOSS_REPORT_EVERY_S = 5.0  # at most one audio_lost error per stream this often (the count covers the rest)
PENDING_FINALS_MAX = 256  # per stream: finals vad waits to hear from asr before it acknowledges their audio
NO_STREAM = "-"  # problems of streams vad holds no state for are counted here, not per id


@dataclass
class StreamState:
    options: schemas.Open
    segmenter: StreamSegmenter | None  # None: rejected (bad open) until a valid open arrives
    last_audio: float  # monotonic
    implicit: bool = False
    next_utt: int = 0  # kept while rejected, so a healing open numbers on
    provisional: bool = False  # a replaying source's plain open during the grace: its resend will follow
    skip_until: int = 0  # audio before this offset was seen already (a resend to a stream vad serves)
    catch_up_until: int = 0  # a resend's replayed audio ends here: its utterances get finals only
    unreported_loss: int = 0  # frames lost on the bus since the last audio_lost report
    loss_reported_at: float = float("-inf")
    pending_finals: dict[int, int] = field(default_factory=dict)  # utt → first sample, final not yet heard
    last_final_utt: int | None = None


class StreamTable:
    def __init__(self, cfg: VadConfig, clock=time.monotonic, instance: str = ""):
        self.cfg = cfg
        self.clock = clock
        self.instance = instance  # this vad's heartbeat instance, named in its acks
        self.grace_until = clock() + cfg.resume_grace_s
        self.streams: dict[str, StreamState] = {}
        self.gaps = GapCounter()
        self.counters: Counter[str] = Counter()
        self._problems: dict[str, Counter[str]] = {}
        self._closed_next_utt: OrderedDict[str, int] = OrderedDict()
        self._utt_floor = 0

    def handle(self, msg: schemas.Message, now: float) -> list[schemas.Message]:
        if isinstance(msg, schemas.Audio):
            return self.on_audio(msg, now)
        if isinstance(msg, schemas.Open):
            return self.on_open(msg, now)
        if isinstance(msg, schemas.Flush):
            return self.on_flush(msg.stream, now)
        if isinstance(msg, schemas.Close):
            return self.on_close(msg.stream, now)
        if isinstance(msg, schemas.Transcript):
            return self.on_transcript(msg, now)
        if isinstance(msg, schemas.Error):
            return self.on_error(msg)
        self._problem(getattr(msg, "stream", None) or "-", "unexpected_message", f"ignored a {msg.TYPE} message")
        return []

    def in_grace(self) -> bool:
        return self.clock() < self.grace_until

    def on_open(self, msg: schemas.Open, now: float) -> list[schemas.Message]:
        old = self.streams.get(msg.stream)
        if msg.resume_utt is not None and msg.sample_rate == SAMPLE_RATE:
            if old is None or old.implicit or old.provisional:
                return self._resume(msg, old)
            if old.segmenter is not None:
                old.skip_until = old.segmenter.expected_offset() or 0
            self.counters["resends_to_live_streams"] += 1
        heard = msg.vad
        msg = msg.settings()
        out: list[schemas.Message] = []
        if old is not None and old.options == msg and not old.implicit:
            self.counters["repeated_opens"] += 1  # the periodic re-announcement: nothing changed
            return out
        next_utt = self._next_utt(msg.stream, old)
        if old is not None and old.segmenter is not None:
            out += self._finish(msg.stream, old, now, "reopen")
            next_utt = old.segmenter.next_utt
            self.counters["reopens"] += 1
        if msg.sample_rate != SAMPLE_RATE:
            self.counters["bad_opens"] += 1
            log.error("open rejected: audio on the bus must be 16000 Hz",
                      extra={"stream": msg.stream, "sample_rate": msg.sample_rate})
            self.streams[msg.stream] = StreamState(msg, None, self.clock(), next_utt=next_utt)
            return out + [schemas.Error(code="bad_sample_rate", stream=msg.stream, permanent=True, stage="vad",
                                        message=f"open says sample_rate={msg.sample_rate}; the bus carries "
                                                f"16000 Hz mono int16 only")]
        # A replaying source that has not heard this vad yet will resend the stream when it does: until
        # then (within the grace) its audio waits. One that has heard this vad opens a new stream.
        provisional = msg.replays and old is None and self.in_grace() and heard != self.instance
        self.streams[msg.stream] = StreamState(msg, self._segmenter(msg, next_utt), self.clock(),
                                               provisional=provisional)
        self.gaps.forget(msg.stream)
        self.counters["opens"] += 1
        log.info("stream opened", extra={"stream": msg.stream, "source": msg.source, "language": msg.language,
                                         "partials": msg.partials, "end_silence_ms": msg.end_silence_ms})
        return out

    def _resume(self, msg: schemas.Open, old: StreamState | None) -> list[schemas.Message]:
        """A replaying source's resend after a restart: the stream starts afresh at its own numbering
        (what a provisional or implicit state held is replaced: the replay covers the same audio)."""
        options = msg.settings()
        self.streams[msg.stream] = StreamState(options, self._segmenter(options, msg.resume_utt), self.clock(),
                                               catch_up_until=msg.replay_end or 0)
        self.gaps.forget(msg.stream)
        self.counters["resumes"] += 1
        log.info("stream resumed", extra={"stream": msg.stream, "utt": msg.resume_utt,
                                          "replaced": "none" if old is None else "implicit" if old.implicit
                                          else "provisional"})
        return []

    def on_audio(self, msg: schemas.Audio, now: float) -> list[schemas.Message]:
        self.counters["frames"] += 1
        state = self.streams.get(msg.stream)
        if (state is None or state.provisional) and self.in_grace():
            self.counters["held_for_resend"] += 1  # its source will resend it with the stream's state
            return []
        lost = self.gaps.see(msg.stream, msg.seq)
        if lost:
            self.counters["lost_frames"] += lost
            self._problem(msg.stream, "lost_frames", f"{lost} audio frame(s) lost before seq {msg.seq}")
        if state is None:
            state = self._open_implicitly(msg.stream)
        report = self._report_loss(msg, state, lost) if lost else []
        state.provisional = False
        if state.skip_until:
            msg = self._unseen_part(state, msg)
            if msg is None:
                return []
        state.last_audio = self.clock()
        if state.segmenter is None:
            self.counters["rejected_frames"] += 1
            self._problem(msg.stream, "rejected_frames", "audio dropped: this stream's open was rejected")
            return []
        if len(msg.pcm) % 2:
            self.counters["bad_pcm"] += 1
            self._problem(msg.stream, "bad_pcm", f"audio dropped: {len(msg.pcm)} bytes is not whole int16 samples")
            return []
        events = state.segmenter.feed(msg.pcm, msg.offset, now)
        if msg.offset < state.catch_up_until:
            # Replayed, arriving in a burst: the client saw its partials; a final alone is what is owed.
            events = [e for e in events if not (isinstance(e, UtteranceAudio) and e.kind != "final")]
        return report + self._messages(msg.stream, state, events)

    def _report_loss(self, msg: schemas.Audio, state: StreamState, lost: int) -> list[schemas.Message]:
        """Audio lost on the bus (a restart of the bus proxy, an overload) is told to the stream's
        listeners: at most one `audio_lost` error per stream every LOSS_REPORT_EVERY_S, with the count."""
        state.unreported_loss += lost
        if self.clock() < state.loss_reported_at + LOSS_REPORT_EVERY_S:
            return []
        state.loss_reported_at = self.clock()
        frames, state.unreported_loss = state.unreported_loss, 0
        self.counters["loss_reports"] += 1
        return [schemas.Error(code="audio_lost", stream=msg.stream, permanent=False, stage="vad",
                              message=f"{frames} audio frame(s) lost on the bus before sample {msg.offset} "
                                      f"(up to 1 s is bridged with silence; a longer gap ends the utterance)")]

    def _unseen_part(self, state: StreamState, msg: schemas.Audio) -> schemas.Audio | None:
        """A resent frame: only what vad has not fed yet (None when all of it was)."""
        skip = state.skip_until - msg.offset
        if skip <= 0:
            state.skip_until = 0
            return msg
        self.counters["replayed_frames_skipped"] += 1
        if skip * 2 >= len(msg.pcm):
            return None
        state.skip_until = 0
        return dataclasses.replace(msg, offset=msg.offset + skip, pcm=msg.pcm[skip * 2:])

    def on_error(self, msg: schemas.Error) -> list[schemas.Message]:
        """An utterance that will get no final (asr refused it, or vad's outbox dropped it): done with."""
        state = self.streams.get(msg.stream) if msg.stream is not None else None
        if state is not None and msg.utt is not None:
            self._final_heard(state, msg.utt)
        return []

    def _final_heard(self, state: StreamState, utt: int) -> None:
        # A stream's finals are published in order (asr: one final per stream in flight).
        for done in [u for u in state.pending_finals if u <= utt]:
            del state.pending_finals[done]

    def on_transcript(self, msg: schemas.Transcript, now: float) -> list[schemas.Message]:
        """asr's text of a live utterance: the stream's endpoint adapts to it (vad/segmenter.py)."""
        state = self.streams.get(msg.stream) if msg.stream is not None else None
        if state is not None and msg.kind == "final":
            self._final_heard(state, msg.utt)
            return []
        if state is None or state.segmenter is None or msg.kind != "partial":
            return []
        self.counters["texts_heard"] += 1
        upto = round(msg.end * SAMPLE_RATE)
        return self._messages(msg.stream, state, state.segmenter.hear(msg.utt, msg.text, upto, now))

    def on_flush(self, stream: str, now: float) -> list[schemas.Message]:
        state = self.streams.get(stream)
        if state is None or state.segmenter is None:
            self._problem(stream, "unknown_stream_ctl", "flush for a stream that is not open")
            return []
        if state.provisional and self.in_grace():
            self.counters["held_for_resend"] += 1  # unanswered: the source resends it after the stream's audio
            return []
        self.counters["flushes"] += 1
        out = self._messages(stream, state, state.segmenter.flush(now))
        return out + [schemas.Flushed(stream=stream, utt=state.last_final_utt)]

    def on_close(self, stream: str, now: float, reason: str = "close") -> list[schemas.Message]:
        state = self.streams.pop(stream, None)
        self.gaps.forget(stream)
        if state is None:
            self._problem(stream, "unknown_stream_ctl", "close for a stream that is not open")
            return []
        self._problems.pop(stream, None)
        self.counters["closes"] += 1
        log.info("stream closed", extra={"stream": stream, "reason": reason})
        out = self._finish(stream, state, now, reason) if state.segmenter else []
        self._remember_next_utt(stream, state.segmenter.next_utt if state.segmenter else state.next_utt)
        return out

    def flush_all(self, now: float) -> list[schemas.Message]:
        """Finish every open utterance (on shutdown), keeping the streams."""
        out: list[schemas.Message] = []
        for stream, state in list(self.streams.items()):
            if state.segmenter is not None and state.segmenter.utt is not None:
                out += self.on_flush(stream, now)
        return out

    def expire(self, now: float | None = None) -> list[schemas.Message]:
        """Close streams that sent no audio for `stream_ttl_s` (on the monotonic clock)."""
        mono = self.clock()
        wall = time.time() if now is None else now
        out: list[schemas.Message] = []
        for stream in [s for s, st in self.streams.items() if mono - st.last_audio > self.cfg.stream_ttl_s]:
            self.counters["ttl_closed"] += 1
            out += self.on_close(stream, wall, reason="ttl")
        return out

    def _finish(self, stream: str, state: StreamState, now: float, reason: str) -> list[schemas.Message]:
        return self._messages(stream, state, state.segmenter.flush(now, reason=reason))

    def _segmenter(self, msg: schemas.Open, next_utt: int) -> StreamSegmenter:
        settings = SegmenterSettings.from_config(self.cfg, msg.end_silence_ms, msg.partials)
        detector = VoiceDetector(self.cfg.aggressiveness, self.cfg.frame_ms, self.cfg.energy_gate_dbfs)
        segmenter = StreamSegmenter(settings, detector)
        segmenter.next_utt = next_utt
        return segmenter

    def _next_utt(self, stream: str, state: StreamState | None) -> int:
        """Where a (re)opened stream's utterance numbers go on."""
        if state is not None:
            return state.segmenter.next_utt if state.segmenter else state.next_utt
        return self._closed_next_utt.pop(stream, self._utt_floor)

    def _remember_next_utt(self, stream: str, next_utt: int) -> None:
        if next_utt <= self._utt_floor:
            return  # a stream not remembered starts at the floor anyway
        self._closed_next_utt[stream] = next_utt
        while len(self._closed_next_utt) > CLOSED_REMEMBERED:
            _, forgotten = self._closed_next_utt.popitem(last=False)
            self._utt_floor = max(self._utt_floor, forgotten)

    def _open_implicitly(self, stream: str) -> StreamState:
        self.counters["implicit_opens"] += 1
        log.warning("audio for a stream never opened: opening it with defaults",
                    extra={"stream": stream})
        options = schemas.Open(stream=stream, source="implicit")
        state = StreamState(options, self._segmenter(options, self._next_utt(stream, None)), self.clock(),
                            implicit=True)
        self.streams[stream] = state
        return state

    def _messages(self, stream: str, state: StreamState, events: list) -> list[schemas.Message]:
        opts = state.options
        out: list[schemas.Message] = []
        for event in events:
            if isinstance(event, SpeechStarted):
                out.append(schemas.SpeechStart(stream=stream, utt=event.utt, offset=event.offset, ts=time.time()))
            elif isinstance(event, SpeechEnded):
                out.append(schemas.SpeechEnd(stream=stream, utt=event.utt, offset=event.offset, ts=time.time()))
            elif isinstance(event, UtteranceAudio):
                if event.kind == "speculative" and state.pending_finals:
                    # asr decodes a stream's finals one at a time, so this guess would wait behind the
                    # earlier final anyway, and asr keeps one guess per stream: a newer one would
                    # replace a guess whose final is already waiting on it, and that final would be lost.
                    self.counters["speculations_withheld"] += 1
                    continue
                self.counters[f"{event.kind}s"] += 1
                if event.kind == "final":
                    self._final_made(state, event.utt, event.offset)
                out.append(schemas.Segment(utt=event.utt, kind=event.kind, offset=event.offset, pcm=event.pcm,
                                           stream=stream, language=opts.language, task=opts.task,
                                           prompt=opts.prompt, ts_end_of_speech=event.ts_end_of_speech,
                                           voiced=event.voiced, voiced_frame_ms=self.cfg.frame_ms,
                                           utt_offset=event.offset, model=opts.model,
                                           wordless=event.kind == "partial" and event.wordless))
        return out

    def _final_made(self, state: StreamState, utt: int, offset: int) -> None:
        state.last_final_utt = utt
        state.pending_finals[utt] = offset
        while len(state.pending_finals) > PENDING_FINALS_MAX:  # asr gone for long: the oldest are given up
            del state.pending_finals[min(state.pending_finals)]

    def acks(self) -> list[schemas.Ack]:
        """Per stream: audio before `offset` is no longer needed, and the utterance there is `utt`."""
        out = []
        for stream, state in self.streams.items():
            point = self._ack_point(state)
            if point is not None:
                out.append(schemas.Ack(stream=stream, offset=point[0], utt=point[1], vad=self.instance))
        return out

    def _ack_point(self, state: StreamState) -> tuple[int, int] | None:
        seg = state.segmenter
        if seg is None or seg.pending_offset is None or state.provisional:
            return None
        points = [(offset, utt) for utt, offset in state.pending_finals.items()]
        if seg.utt is not None:
            points.append((seg.utt.frames[0].offset, seg.next_utt))
        if points:
            return min(points)
        start = seg.history[0].offset if seg.history else seg.pending_offset
        return min(start, seg.pending_offset), seg.next_utt

    def _problem(self, stream: str, kind: str, message: str) -> None:
        # Per stream only while vad holds the stream (pruned on close): ids of bad input never pile up.
        key = stream if stream in self.streams else NO_STREAM
        problems = self._problems.setdefault(key, Counter())
        problems[kind] += 1
        count = problems[kind]
        if count % LOG_EVERY == 1:
            log.warning(message, extra={"stream": stream, "problem": kind, "occurrences": count})

    def snapshot(self) -> dict:
        """Counters for the heartbeat, with per-stream detail."""
        counters = dict(self.counters)
        counters["streams"] = len(self.streams)
        counters["per_stream"] = {
            name: {"lost_frames": self.gaps.lost.get(name, 0), "in_speech": bool(st.segmenter and st.segmenter.in_speech),
                   "implicit": st.implicit, "rejected": st.segmenter is None,
                   **({"blips_dropped": st.segmenter.counters.blips_dropped, "splits": st.segmenter.counters.splits}
                      if st.segmenter else {})}
            for name, st in list(self.streams.items())[:64]}
        return counters

