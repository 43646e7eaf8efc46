"""The /stream WebSocket protocol as a state machine, with no sockets: messages in, messages out.

A session is CONNECTED (ready sent, config may still change, nothing on the bus),
STREAMING (`open` published, audio flowing), DRAINING (`eof` received: flushed,
waiting for the last final) or CLOSED. Client input becomes bus messages; bus
messages become client events. An illegal step raises IllegalTransition naming
the state it needs and the state it found. A session that hands out resume tokens
(gateway/ws_resume.py) puts the newest in `ready`, each `final` and each `pong`, and
sends each utterance's final once.
"""
from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass
from typing import Any, Mapping

from bus import schemas
from bus.pcm import SAMPLE_RATE
from bus.replay import StreamReplay, VadWatch
from config.schema import GatewayConfig
from gateway.audio import AudioError, PcmConverter
from gateway.events import client_event
from gateway.languages import language_code
from gateway.params import PROMPT_MAX_CHARS, loads, shown

DRAIN_MAX_S = 30.0     # after eof, the longest wait for vad's `flushed` and the last final
REPLAY_DEFAULT_S = 60.0  # bus.replay_buffer_s's default, for sessions built without the config
MIN_RATE, MAX_RATE = 8000, 192000
# Audio on the bus is PUB/SUB, which drops at its high-water mark: a client sending far faster
# than real time (a file pushed as fast as the network allows) is slowed to this pace after a burst.
MAX_SPEED = 4.0
BURST_S = 10.0
# Compressed audio a browser's MediaRecorder makes (WebM/Opus, Ogg/Opus): decoded by an ffmpeg
# subprocess (gateway.ws_decoding) into 16 kHz s16, which the session then takes as PCM.
CONTAINER_ENCODINGS = ("webm", "ogg")


class SessionState(enum.Enum):
    CONNECTED = "connected"
    STREAMING = "streaming"
    DRAINING = "draining"
    CLOSED = "closed"


class ProtocolError(Exception):
    """A client mistake; `close_code` set means the session ends (else it is only reported)."""

    def __init__(self, code: str, message: str, close_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code

    def event(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message, "timestamp": round(time.time(), 3)}


class IllegalTransition(ProtocolError):
    def __init__(self, action: str, expected: tuple[SessionState, ...], actual: SessionState):
        names = " or ".join(s.value for s in expected)
        super().__init__("illegal_state", f"{action} needs the session to be {names}, but it is {actual.value}")


@dataclass(frozen=True)
class SessionConfig:
    language: str = "auto"
    task: str = "transcribe"
    sample_rate: int = SAMPLE_RATE
    encoding: str = "f32"
    partials: bool = True
    end_silence_ms: int | None = None
    prompt: str | None = None
    model: str | None = None  # a served model (gateway.models); None: the default
    speakers: bool = False    # finals carry the speaker stage's live labels (gateway/ws_speakers.py)


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(SessionConfig))


def _bad(key: str, value: Any, expected: str) -> ProtocolError:
    return ProtocolError("bad_config", f"{key} {shown(value)}: expected {expected}", close_code=1008)


def _as_int(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise _bad(key, value, f"an integer from {low} to {high}")
    return number


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _bad(key, value, "true or false")


def _language(key: str, value: Any) -> str:
    code = language_code(str(value))
    if code is None:
        raise _bad(key, value, "a Whisper language code (en, de, ...) or auto")
    return code


def _choice(*allowed: str):
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise _bad(key, value, " or ".join(allowed))
        return value
    return check


def _model(key: str, value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 200:
        raise _bad(key, value, "a served model's name (GET /v1/models)")
    return value.strip() or None


def _prompt(key: str, value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > PROMPT_MAX_CHARS:
        raise _bad(key, value, f"a string of at most {PROMPT_MAX_CHARS} characters")
    return value or None


def _validators(gw: GatewayConfig) -> dict:
    return {"language": _language, "task": _choice(*schemas.TASKS),
            "encoding": _choice(*PcmConverter.ENCODINGS, *CONTAINER_ENCODINGS), "partials": _as_bool,
            "speakers": _as_bool,
            "prompt": _prompt, "model": _model,
            "sample_rate": lambda k, v: _as_int(k, v, MIN_RATE, MAX_RATE),
            "end_silence_ms": lambda k, v: _as_int(k, v, gw.min_end_silence_ms, gw.max_end_silence_ms)}


def parse_config(fields: Mapping[str, Any], base: SessionConfig, gw: GatewayConfig) -> SessionConfig:
    """Query parameters or a config message → a SessionConfig; ProtocolError names any bad key."""
    unknown = sorted(set(fields) - set(CONFIG_KEYS))
    if unknown:
        raise ProtocolError("bad_config", f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(CONFIG_KEYS)})",
                            close_code=1008)
    validators = _validators(gw)
    return dataclasses.replace(base, **{key: validators[key](key, value) for key, value in fields.items()})


class Session:
    """One stream's protocol state; the handler publishes what the methods return."""

    def __init__(self, stream: str, config: SessionConfig, gw: GatewayConfig, frame_samples: int,
                 check=lambda config: None):
        # raises ProtocolError when the served models cannot do `config`, else names the model (gateway.models)
        self.check = check
        self.stream = stream
        self.config = config
        self.gw = gw
        self.frame_samples = frame_samples
        self.state = SessionState.CONNECTED
        self.converter: PcmConverter | None = None
        self.opened = False              # `open` went out on the bus, so `close` must follow
        self.seq = 0
        self.samples = 0
        self.started: set[int] = set()   # utterances vad opened
        self.finished: set[int] = set()  # utterances with their final
        self.ended: set[int] = set()     # utterances vad ended
        self.eof_at: float | None = None
        self.first_audio_at: float | None = None
        self.start_samples = 0           # the stream's offset when this connection began (a resumed one's > 0)
        self.resume = None               # gateway/ws_resume.ResumeBook: the tokens this session hands out
        # continuity across a vad restart: what the session resends (bus/replay.py)
        self.replay = StreamReplay(int(REPLAY_DEFAULT_S * SAMPLE_RATE))  # keep_for_vad_restarts sets both
        self.vad = VadWatch()
        self.flushed: schemas.Flushed | None = None  # vad's answer to the eof's flush
        self.duplicate_finals = 0

    def keep_for_vad_restarts(self, replay_samples: int, vad_instance: str | None) -> None:
        """How much unacknowledged audio to keep for a vad that restarts, and which vad serves now."""
        self.replay.capacity = replay_samples
        self.vad.instance = vad_instance

    def _expect(self, action: str, *states: SessionState) -> None:
        if self.state not in states:
            raise IllegalTransition(action, states, self.state)

    def configure(self, fields: Mapping[str, Any]) -> dict:
        self._expect("config", SessionState.CONNECTED)
        config = parse_config(fields, self.config, self.gw)
        self.check(config)
        self.config = config
        return {"type": "config", "session": self.stream, "config": dataclasses.asdict(self.config)}

    def _open(self) -> list[schemas.Message]:
        if self.state is not SessionState.CONNECTED:
            return []
        self.state = SessionState.STREAMING
        self.opened = True
        decoded = self.config.encoding in CONTAINER_ENCODINGS  # what ffmpeg hands on: 16 kHz s16
        self.converter = PcmConverter(SAMPLE_RATE if decoded else self.config.sample_rate,
                                      "s16" if decoded else self.config.encoding, self.frame_samples)
        c = self.config
        return [self.replay.open(schemas.Open(stream=self.stream, language=c.language, task=c.task,
                                              partials=c.partials, prompt=c.prompt, source="ws",
                                              end_silence_ms=c.end_silence_ms, model=self.check(c) or ""),
                                 self.vad.instance)]

    def _frames(self, frames: list[bytes]) -> list[schemas.Message]:
        out = []
        for pcm in frames:
            out.append(schemas.Audio(stream=self.stream, seq=self.seq, offset=self.samples, pcm=pcm, ts=time.time()))
            self.replay.sent(out[-1])
            self.seq += 1
            self.samples += len(pcm) // 2
        return out

    def audio(self, data: bytes) -> list[schemas.Message]:
        self._expect("audio", SessionState.CONNECTED, SessionState.STREAMING)
        if len(data) > self.gw.ws_max_frame_bytes:
            raise ProtocolError("frame_too_large", f"binary frame of {len(data)} bytes is over the limit of "
                                                   f"{self.gw.ws_max_frame_bytes} (gateway.ws_max_frame_bytes)",
                                close_code=1009)
        out = self._open()
        try:
            return out + self._frames(self.converter.feed(data))
        except AudioError as exc:
            raise ProtocolError(exc.code, exc.message) from None

    def pace_delay(self, now: float) -> float:
        """Seconds to wait before reading more audio, so the stream stays under MAX_SPEED × real time."""
        if self.first_audio_at is None:
            self.first_audio_at = now
        allowed = BURST_S + (now - self.first_audio_at) * MAX_SPEED
        ahead = (self.samples - self.start_samples) / schemas.SAMPLE_RATE - allowed
        return ahead / MAX_SPEED if ahead > 0 else 0.0

    def flush(self) -> list[schemas.Message]:
        self._expect("flush", SessionState.CONNECTED, SessionState.STREAMING)
        if not self.opened:
            return []  # nothing sent yet: nothing to finalise
        self.replay.flushed()  # resent after a vad restart until vad answers it
        return self._frames(self.converter.drain()) + [schemas.Flush(stream=self.stream)]

    def eof(self, now: float) -> list[schemas.Message]:
        self._expect("eof", SessionState.CONNECTED, SessionState.STREAMING)
        out = self.flush()
        self.state = SessionState.DRAINING
        self.eof_at = now
        return out

    def close(self) -> list[schemas.Message]:
        """Free the stream on the bus; safe to call in any state, more than once."""
        opened, self.opened = self.opened, False
        self.state = SessionState.CLOSED
        return [schemas.Close(stream=self.stream)] if opened else []

    def text_message(self, raw: str, now: float) -> tuple[list[schemas.Message], list[dict]]:
        """A JSON control message → (bus messages, client events)."""
        try:
            body = loads(raw)
        except ValueError as exc:
            raise ProtocolError("bad_json", f"text frame is not JSON ({exc}): {shown(raw)}") from None
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "flush":
            return self.flush(), []
        if kind == "eof":
            return self.eof(now), []
        if kind == "ping":
            return [], [self._with_token({"type": "pong", "timestamp": round(time.time(), 3)})]
        if kind == "config":
            return [], [self.configure({k: v for k, v in body.items() if k != "type"})]
        raise ProtocolError("unknown_message",
                            f"unknown message type {shown(kind)} (expected flush, eof, config, ping)")

    def ready_event(self) -> dict:
        return self._with_token({"type": "ready", "session": self.stream, "config": dataclasses.asdict(self.config)})

    def _with_token(self, event: dict) -> dict:
        """`resume`: the token that continues this session on a new connection (gateway/ws_resume.py)."""
        if self.resume is not None:
            event["resume"] = self.resume.token(self, time.time())
        return event

    def on_bus(self, msg: schemas.Message) -> dict | None:
        """A bus message for this stream → the client event, or None when it is stale or unwanted."""
        if isinstance(msg, schemas.Ack):
            self.replay.acked(msg)
            return None
        if isinstance(msg, schemas.Flushed):
            if self.replay.answered(msg) and self.eof_at is not None:
                self.flushed = msg  # the answer to the eof's flush (any earlier flush was answered first)
            return None
        if isinstance(msg, (schemas.SpeechStart, schemas.SpeechEnd)):
            seen = self.started if isinstance(msg, schemas.SpeechStart) else self.ended
            if msg.utt in seen:  # shown again by a vad that restarted and was resent the utterance
                return None
            seen.add(msg.utt)
        elif isinstance(msg, schemas.Transcript):
            if msg.kind == "final":
                if msg.utt in self.finished:  # delivered already: replayed on resume, or resent by a new vad
                    self.duplicate_finals += 1
                    return None
                self.finished.add(msg.utt)
                if self.resume is not None:
                    self.resume.delivered(msg)
                    return self._with_token(client_event(msg))
            elif msg.utt in self.finished or not self.config.partials:
                return None  # a partial that lost the race with its own final
        elif isinstance(msg, schemas.Error) and msg.utt is not None:
            self.finished.add(msg.utt)  # no final will follow: do not wait for it
        return client_event(msg)

    def on_vad(self, heartbeat: schemas.Heartbeat) -> list[schemas.Message]:
        """A vad heartbeat: when it is a new vad, what it needs to rebuild this stream (else nothing)."""
        if not self.vad.restarted(heartbeat) or self.state is SessionState.CLOSED:
            return []
        return self.replay.resend()

    def drained(self, now: float) -> bool:
        """After eof: vad answered the flush and every utterance up to the one it named has its final
        (or an error), or the waiting is over (`drain_timed_out`)."""
        if self.eof_at is None:
            return False
        if self.replay.opened is None:
            return True  # nothing was sent: nothing to wait for
        if self.drain_timed_out(now):
            return True
        if self.flushed is None or self.started - self.finished:
            return False
        return self.flushed.utt is None or self.flushed.utt in self.finished

    def drain_timed_out(self, now: float) -> bool:
        return self.eof_at is not None and now - self.eof_at >= DRAIN_MAX_S

    def unfinished(self) -> list[int]:
        """Utterances still without their final (for the error a timed-out drain reports)."""
        waiting = set(self.started - self.finished)
        if self.flushed is not None and self.flushed.utt is not None and self.flushed.utt not in self.finished:
            waiting.add(self.flushed.utt)
        return sorted(waiting)
