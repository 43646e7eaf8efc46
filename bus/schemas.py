"""Every message on the voxbus wire, built and parsed only here (ARCHITECTURE.md §3-4).

Messages are frozen dataclasses in two families: control (`open`, `flush`,
`close`) and data (audio, vad events, segments, transcripts, jobs, health).
A PUB message is `[topic, msgpack(payload)]`; a PUSH message is the payload alone.
Every payload carries `v` and `type`. Time is an integer sample offset on the
stream's own 16 kHz timeline; `ts` (wall clock, epoch seconds) is only for
measuring latency.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from bus.pcm import SAMPLE_RATE
from config.names import ID_RULE, TASKS, valid_id  # noqa: F401  (TASKS: the wire's home for them)

VERSION = 1
# partial: the utterance so far; final: the whole utterance; speculative: the final it will be if
# the silence that has begun lasts (asr may decode it ahead and publish it the moment the final comes)
SEGMENT_KINDS = ("partial", "final", "speculative")
ALERT_KINDS = ("keyword", "silence", "speech", "speaker")


class SchemaError(ValueError):
    """A payload or topic that is not a valid message of this schema version."""


def check_id(value: str, what: str = "stream") -> str:
    """Stream, job and stage ids become topic parts, so they may not contain '/'."""
    if not valid_id(value):
        raise SchemaError(f"bad {what} id {value!r}: expected {ID_RULE}")
    return value


# Every PUB topic's first part (ARCHITECTURE.md §3): the bus proxy counts traffic by these.
TOPIC_FAMILIES = ("ctl", "audio", "vad", "text", "job", "health", "alert", "speaker")


def prefix(family: str) -> bytes:
    """`alert/`: what a subscriber of one topic family subscribes to."""
    if family not in TOPIC_FAMILIES:
        raise SchemaError(f"topic family {family!r} is not one of {', '.join(TOPIC_FAMILIES)}")
    return f"{family}/".encode()


def topic(family: str, ident: str) -> bytes:
    """`audio/mic1/`: the trailing slash keeps prefix subscriptions from matching mic10."""
    return prefix(family) + f"{check_id(ident)}/".encode()


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""
    FAMILY: ClassVar[str] = "data"

    def payload(self) -> dict[str, Any]:
        body = {"v": VERSION, "type": self.TYPE}
        body.update(dataclasses.asdict(self))
        return body

    def topic(self) -> bytes:
        raise SchemaError(f"{self.TYPE} is not a PUB message")


# ---- control: ctl/<stream>/ -------------------------------------------------

@dataclass(frozen=True)
class Open(Message):
    TYPE: ClassVar[str] = "open"
    FAMILY: ClassVar[str] = "control"
    stream: str
    language: str = "auto"
    task: str = "transcribe"
    partials: bool = True
    prompt: str | None = None
    source: str = ""
    end_silence_ms: int | None = None
    sample_rate: int = SAMPLE_RATE  # what the source claims to send; vad rejects anything but 16000
    model: str = ""                 # the served model its segments need ("": asr.model)
    # Continuity across a vad restart (bus/replay.py): `replays` says the source keeps a replay buffer
    # and resends after a restart; `resume_utt` (set only on that resend) is where the stream's
    # utterance numbers go on, and the audio that follows replays from vad's last `ack` up to
    # `replay_end`, where live audio takes over. `vad`: the vad instance the source has heard ("" for
    # none yet); a new vad whose own instance it is knows the stream is new, not one to be resent.
    replays: bool = False
    resume_utt: int | None = None
    replay_end: int | None = None
    vad: str = ""

    def topic(self) -> bytes:
        return topic("ctl", self.stream)

    def settings(self) -> Open:
        """The stream's options alone: two opens that differ only in how they were sent compare equal."""
        return dataclasses.replace(self, resume_utt=None, replay_end=None, vad="")


@dataclass(frozen=True)
class Flush(Message):
    TYPE: ClassVar[str] = "flush"
    FAMILY: ClassVar[str] = "control"
    stream: str

    def topic(self) -> bytes:
        return topic("ctl", self.stream)


@dataclass(frozen=True)
class Close(Message):
    TYPE: ClassVar[str] = "close"
    FAMILY: ClassVar[str] = "control"
    stream: str

    def topic(self) -> bytes:
        return topic("ctl", self.stream)


# ---- data -------------------------------------------------------------------

@dataclass(frozen=True)
class Audio(Message):
    """One frame of 16 kHz mono little-endian int16 PCM; `seq` is +1 per frame."""
    TYPE: ClassVar[str] = "audio"
    stream: str
    seq: int
    offset: int
    pcm: bytes
    ts: float | None = None

    def topic(self) -> bytes:
        return topic("audio", self.stream)


@dataclass(frozen=True)
class SpeechStart(Message):
    TYPE: ClassVar[str] = "speech_start"
    stream: str
    utt: int
    offset: int
    ts: float | None = None

    def topic(self) -> bytes:
        return topic("vad", self.stream)


@dataclass(frozen=True)
class SpeechEnd(Message):
    TYPE: ClassVar[str] = "speech_end"
    stream: str
    utt: int
    offset: int
    ts: float | None = None

    def topic(self) -> bytes:
        return topic("vad", self.stream)


@dataclass(frozen=True)
class Flushed(Message):
    """vad's answer to a `flush` (or `close`): the flush's final segment is made; `utt` is the stream's
    last utterance with a final (None: none in this vad process). The source waits for that final."""
    TYPE: ClassVar[str] = "flushed"
    stream: str
    utt: int | None = None

    def topic(self) -> bytes:
        return topic("vad", self.stream)


@dataclass(frozen=True)
class Ack(Message):
    """vad → the stream's source: audio before `offset` is no longer needed (every utterance in it has
    its final or is dropped as no speech); were vad to restart, the source replays from `offset` and
    the first utterance there is numbered `utt`. `vad` is the instance that says so."""
    TYPE: ClassVar[str] = "ack"
    stream: str
    offset: int
    utt: int
    vad: str = ""

    def topic(self) -> bytes:
        return topic("vad", self.stream)


@dataclass(frozen=True)
class Segment(Message):
    """vad → asr over PUSH: an utterance so far (`partial`) or whole (`final`), or a file job's piece.

    `voiced` is vad's judgement, one byte per `voiced_frame_ms` frame from `utt_offset` (1 =
    speech), so asr need not run webrtcvad again. A live segment's audio starts at `utt_offset`,
    except a partial sent to the one asr worker there is, which carries only the audio from
    `offset` on: the worker holds the rest from the utterance's earlier partials.
    """
    TYPE: ClassVar[str] = "segment"
    utt: int
    kind: str
    offset: int
    pcm: bytes
    stream: str | None = None
    job: str | None = None
    language: str = "auto"
    task: str = "transcribe"
    prompt: str | None = None
    index: int | None = None
    count: int | None = None
    ts_end_of_speech: float | None = None
    options: dict = field(default_factory=dict)   # decoding options for file jobs
    voiced: bytes = b""
    voiced_frame_ms: int = 0
    utt_offset: int | None = None  # live: the utterance's first sample
    ticket: int | None = None      # the segment broker's number for it (bus/broker.py); the worker's `done` echoes it
    model: str = ""                # the model that must decode it: the broker gives it only to a worker serving it
    wordless: bool = False         # a partial of an utterance asr has sent no words of yet: it goes first

    @property
    def is_delta(self) -> bool:
        """Audio from `offset` on only: the earlier audio of the utterance was sent before."""
        return self.utt_offset is not None and self.offset > self.utt_offset


@dataclass(frozen=True)
class Job(Message):
    """gateway → vad over PUSH: a whole decoded upload to cut at silences."""
    TYPE: ClassVar[str] = "job"
    job: str
    pcm: bytes
    language: str = "auto"
    task: str = "transcribe"
    prompt: str | None = None
    options: dict = field(default_factory=dict)
    ts: float | None = None
    model: str = ""  # the served model chosen ("": asr.upload_model, else asr.model)


@dataclass(frozen=True)
class Transcript(Message):
    """asr → text/<stream>/ or job/<job>/: a `Partial` or a `Final` (the payload type says which)."""
    utt: int
    text: str
    start: float
    end: float
    stream: str | None = None
    job: str | None = None
    segments: list = field(default_factory=list)
    words: list | None = None
    language: str | None = None
    language_prob: float | None = None
    worker: str = ""
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    queue_ms: float = 0.0
    index: int | None = None
    count: int | None = None
    is_speech_final: bool = False
    ts: float | None = None
    ts_end_of_speech: float | None = None
    seq: int | None = None  # finals: +1 per final of this producer (`worker`), so a subscriber can close gaps

    @property
    def kind(self) -> str:
        """partial or final: the message type, which is also the segment kind it answers."""
        return self.TYPE

    def topic(self) -> bytes:
        return topic("job", self.job) if self.job is not None else topic("text", self.stream or "")


@dataclass(frozen=True)
class Partial(Transcript):
    TYPE: ClassVar[str] = "partial"


@dataclass(frozen=True)
class Final(Transcript):
    TYPE: ClassVar[str] = "final"


# By segment kind: a speculation is decoded into the Final it becomes once vad confirms it.
TRANSCRIPT_TYPES: dict[str, type[Transcript]] = {"partial": Partial, "final": Final, "speculative": Final}


@dataclass(frozen=True)
class JobSegments(Message):
    TYPE: ClassVar[str] = "job_segments"
    job: str
    count: int
    duration: float = 0.0

    def topic(self) -> bytes:
        return topic("job", self.job)


@dataclass(frozen=True)
class Error(Message):
    """A failure reported on the bus; `permanent` says whether retrying can help."""
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    stream: str | None = None
    job: str | None = None
    utt: int | None = None
    index: int | None = None
    permanent: bool = True
    stage: str = ""

    @classmethod
    def about(cls, segment: Segment, code: str, message: str, *, permanent: bool, stage: str) -> Error:
        """The error answering `segment`: addressed to its stream or job, utterance and index."""
        return cls(code=code, message=message, stream=segment.stream, job=segment.job, utt=segment.utt,
                   index=segment.index, permanent=permanent, stage=stage)

    def topic(self) -> bytes:
        return topic("job", self.job) if self.job is not None else topic("text", self.stream or "")


@dataclass(frozen=True)
class Alert(Message):
    """store → alert/<stream>/: a rule fired. `kind` keyword (on a final: its text, what matched,
    and the final's producer and seq), silence (no final for the rule's minutes) or speech (back)."""
    TYPE: ClassVar[str] = "alert"
    rule: str
    kind: str
    stream: str                  # the live stream, or the file job's id
    wall: float                  # when it fired (the final's publish time for keyword and speech)
    text: str = ""
    terms: list = field(default_factory=list)
    worker: str = ""
    seq: int | None = None

    def topic(self) -> bytes:
        return topic("alert", self.stream)


@dataclass(frozen=True)
class ModelStatus:
    """What an asr worker serves: the typed `model` field of its heartbeat (not a message itself)."""
    name: str
    loaded: bool
    precision: str = ""
    multilingual: bool = False
    threads: int = 0
    runtime: str = ""  # onnxruntime's version in that worker
    # What it can do, from the model's manifest (None: a worker too old to say; the gateway then
    # infers languages and translate from `multilingual`, and lets asr judge word timestamps).
    languages: list | None = None    # language codes it transcribes
    word_timestamps: bool | None = None  # the model directory has the attention decoder

    @classmethod
    def parse(cls, body: dict) -> ModelStatus:
        """SchemaError naming the field when `body` is not one."""
        return _build(cls, body, "heartbeat.model")


@dataclass(frozen=True)
class Heartbeat(Message):
    TYPE: ClassVar[str] = "heartbeat"
    stage: str
    pid: int
    host: str
    uptime_s: float
    ok: bool
    status: str = "ok"
    instance: str = ""
    counters: dict = field(default_factory=dict)
    model: dict | None = None  # asr: a ModelStatus as a map (see model_status())
    ts: float | None = None

    def model_status(self) -> ModelStatus | None:
        return ModelStatus.parse(self.model) if self.model is not None else None

    def topic(self) -> bytes:
        return topic("health", self.stage)


# ---- speaker diarization (issue 17): gateway → speaker over PUSH, speaker → job/<job>/ ------

@dataclass(frozen=True)
class DiarizeJob(Message):
    """gateway → speaker over PUSH: a decoded upload whose speakers are wanted (count hints optional)."""
    TYPE: ClassVar[str] = "diarize_job"
    job: str
    pcm: bytes
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    ts: float | None = None


@dataclass(frozen=True)
class Speakers(Message):
    """speaker → job/<job>/ (a file's turns) or speaker/<stream>/ (one live final's turns, `utt`
    naming it): who spoke when, as turns `{start, end, speaker}` (seconds, by start)."""
    TYPE: ClassVar[str] = "speakers"
    job: str | None = None
    stream: str | None = None
    utt: int | None = None
    turns: list = field(default_factory=list)
    count: int = 0  # distinct speakers: in the file, or heard on the stream so far
    compute_ms: float = 0.0
    worker: str = ""

    def topic(self) -> bytes:
        return topic("job", self.job) if self.job is not None else topic("speaker", self.stream or "")


VOICE_OPS = ("enroll", "list", "delete")


@dataclass(frozen=True)
class VoiceJob(Message):
    """gateway → speaker over PUSH (as a DiarizeJob): enrol a named voice from a decoded sample
    (`pcm`), list the enrolled voices, or delete one. Answered with `Voices` or an `Error` on job/<job>/."""
    TYPE: ClassVar[str] = "voice_job"
    job: str
    op: str
    name: str = ""
    pcm: bytes = b""
    ts: float | None = None


@dataclass(frozen=True)
class Voices(Message):
    """speaker → job/<job>/: the enrolled voices after a VoiceJob (`{name, speech_s, enrolled_at}` each)."""
    TYPE: ClassVar[str] = "voices"
    job: str
    voices: list = field(default_factory=list)
    deleted: bool = False

    def topic(self) -> bytes:
        return topic("job", self.job)


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (Open, Flush, Close, Audio, SpeechStart, SpeechEnd, Flushed, Ack, Segment, Job,
                              Partial, Final, JobSegments, Error, Heartbeat, Alert,
                              DiarizeJob, Speakers, VoiceJob, Voices)}


# ---- codec ------------------------------------------------------------------

_CHOICES = {("Open", "task"): TASKS, ("Segment", "task"): TASKS, ("Job", "task"): TASKS,
            ("Segment", "kind"): SEGMENT_KINDS, ("Alert", "kind"): ALERT_KINDS,
            ("VoiceJob", "op"): VOICE_OPS}
_ID_FIELDS = ("stream", "job", "stage")


def encode(msg: Message) -> bytes:
    """The msgpack payload of a message (PUSH sends this alone)."""
    return msgpack.packb(msg.payload(), use_bin_type=True)


def pack(msg: Message) -> list[bytes]:
    """The two frames of a PUB message: [topic, payload]."""
    return [msg.topic(), encode(msg)]


def load_body(data: bytes, error: type[SchemaError] = SchemaError, version: int = VERSION) -> dict:
    """msgpack bytes → the map of a message of `version`; `error` (a SchemaError) naming what is wrong.
    Every codec on the wire (this module, bus/resync.py, bus/store_query.py) starts here."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise error(f"not msgpack: {exc}") from None
    if not isinstance(body, dict):
        raise error(f"payload is a {type(body).__name__}, expected a map")
    if body.get("v") != version:
        raise error(f"unsupported schema version v={body.get('v')!r} (this is v{version})")
    return body


def decode(data: bytes) -> Message:
    """Parse a payload; raise SchemaError naming what is wrong."""
    body = load_body(data)
    kind = body.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"unknown message type {kind!r}")
    return _build(cls, body)


def unpack(frames: list[bytes]) -> Message:
    """Parse a PUB message and check its topic matches its payload."""
    if len(frames) != 2:
        raise SchemaError(f"expected 2 frames [topic, payload], got {len(frames)}")
    msg = decode(frames[1])
    if msg.topic() != frames[0]:
        raise SchemaError(f"topic {frames[0]!r} does not match a {msg.TYPE} for {msg.topic()!r}")
    return msg


@functools.cache
def _fields(cls) -> tuple[tuple[str, tuple, bool], ...]:
    """(name, allowed types, required) per field; resolving type hints is slow, so once per class."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, typing.get_args(hints[f.name]) or (hints[f.name],),
                  f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                 for f in dataclasses.fields(cls))


def _build(cls, body: dict, where: str | None = None):
    kwargs = {}
    for name, allowed, required in _fields(cls):
        if name in body:
            kwargs[name] = _check(cls.__name__, name, body[name], allowed)
        elif required:
            raise SchemaError(f"{where or body.get('type')}: missing field {name!r}")
    msg = cls(**kwargs)
    if isinstance(msg, Message):
        _check_message(msg)
    return msg


def _check_message(msg: Message) -> None:
    """Rules across fields, and the insides of lists, that field types alone do not catch."""
    if isinstance(msg, (Transcript, Error, Segment, Speakers)) and (msg.stream is None) == (msg.job is None):
        raise SchemaError(f"{msg.TYPE}: exactly one of stream and job is required")
    if isinstance(msg, Open) and msg.end_silence_ms is not None and not 50 <= msg.end_silence_ms <= 60000:
        raise SchemaError(f"open.end_silence_ms = {msg.end_silence_ms}: expected 50 to 60000 or none")
    if isinstance(msg, Segment):
        _check_segment(msg)
    if isinstance(msg, Heartbeat) and msg.model is not None:
        msg.model_status()
    if isinstance(msg, Speakers):
        _check_timed_items("turns", msg.turns, text_key="speaker", where="speakers")
    if isinstance(msg, DiarizeJob):
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            if getattr(msg, name) is not None and getattr(msg, name) < 1:
                raise SchemaError(f"diarize_job.{name} = {getattr(msg, name)}: expected 1 or more, or none")
    if isinstance(msg, Transcript):
        _check_timed_items("segments", msg.segments, text_key="text")
        if msg.words is not None:
            _check_timed_items("words", msg.words, text_key=None)


def _check_segment(msg: Segment) -> None:
    if msg.voiced and msg.voiced_frame_ms not in (10, 20, 30):
        raise SchemaError(f"segment.voiced_frame_ms = {msg.voiced_frame_ms}: expected 10, 20 or 30 with voiced")
    if msg.utt_offset is not None and not 0 <= msg.utt_offset <= msg.offset:
        raise SchemaError(f"segment.utt_offset = {msg.utt_offset}: expected 0 to offset ({msg.offset})")
    if msg.is_delta and (msg.kind == "final" or msg.stream is None):
        raise SchemaError("segment: only a live partial or speculation may carry part of its utterance "
                          "(offset > utt_offset)")


def _check_timed_items(name: str, items: list, text_key: str | None, where: str = "transcript") -> None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SchemaError(f"{where}.{name}[{i}]: expected a map")
        for key in ("start", "end"):
            if not isinstance(item.get(key), (int, float)) or isinstance(item.get(key), bool):
                raise SchemaError(f"{where}.{name}[{i}].{key} = {item.get(key)!r:.40}: expected a number")
        if text_key and not isinstance(item.get(text_key), str):
            raise SchemaError(f"{where}.{name}[{i}].{text_key}: expected a string")


def _check(cls_name: str, name: str, value: Any, allowed: tuple) -> Any:
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not any(_is_instance(value, t) for t in allowed):
        names = " or ".join("None" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
        raise SchemaError(f"{cls_name.lower()}.{name} = {value!r:.40}: expected {names}")
    choices = _CHOICES.get((cls_name, name))
    if choices and value not in choices:
        raise SchemaError(f"{cls_name.lower()}.{name} = {value!r}: expected one of {', '.join(choices)}")
    if name in _ID_FIELDS and value is not None and (value or name != "stage"):  # Error.stage defaults to ""
        check_id(value, name)
    if name in ("seq", "offset", "utt", "count", "pid", "ticket", "resume_utt", "replay_end") and value is not None \
            and value < 0:
        raise SchemaError(f"{cls_name.lower()}.{name} = {value}: must not be negative")
    return value


def _is_instance(value, tp) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)
