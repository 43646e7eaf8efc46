"""The segment broker's wire: vad's ROUTER ↔ asr workers' DEALERs (the zguide's load-balancing
broker with Paranoid Pirate heartbeats; see bus/broker.py for the broker's rules).

A worker sends `ready` (its free decode slots: the credit it grants, and how many of them are
`reserved` for urgent segments), then `heartbeat` every
interval, `done` for every segment it was given once that segment's life ends (its transcript
or error published, or it was superseded or dropped: each `done` grants one credit back), and
`bye` when it stops. The broker sends segments (the `schemas.Segment` payload itself, with its
`ticket`), `heartbeat` every interval, and `reset` to a peer it does not know (`unknown`) or
has given up on (`expired`: the segments it held went to other workers, so it must not
publish them). One frame per message; msgpack maps with `v` and `type`, like every payload.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import msgpack

from bus import schemas

RESET_REASONS = ("unknown", "expired")


@dataclass(frozen=True)
class Ready:
    TYPE: ClassVar[str] = "ready"
    worker: str          # the worker's name (asr.worker, else host-pid): in logs and status
    credit: int          # segments it can take now (its free decode slots)
    pid: int = 0
    host: str = ""
    model: str = ""      # the model it serves: the broker gives it only segments for that model ("" = any)
    reserved: int = 0    # of its slots, those kept for urgent segments (bus.segment_queue.is_urgent)


@dataclass(frozen=True)
class WorkerHeartbeat:
    TYPE: ClassVar[str] = "heartbeat"
    rtf: float = 0.0     # from a worker: its recent real-time factor (decode s / audio s; 0 = none yet)


@dataclass(frozen=True)
class Done:
    TYPE: ClassVar[str] = "done"
    ticket: int          # the segment's `ticket`; one credit comes back with it


@dataclass(frozen=True)
class Bye:
    TYPE: ClassVar[str] = "bye"


@dataclass(frozen=True)
class Reset:
    TYPE: ClassVar[str] = "reset"
    reason: str          # unknown | expired


WorkerMessage = Ready | WorkerHeartbeat | Done | Bye
BrokerMessage = schemas.Segment | WorkerHeartbeat | Reset
_FROM_WORKER = {cls.TYPE: cls for cls in (Ready, WorkerHeartbeat, Done, Bye)}
_FROM_BROKER = {cls.TYPE: cls for cls in (WorkerHeartbeat, Reset)}
# Every field by name: an int range, or str (at most MAX_TEXT characters).
_FIELDS: dict[str, tuple[int, int] | type] = {"credit": (0, 1 << 20), "reserved": (0, 1 << 20),
                                              "ticket": (0, 1 << 63), "pid": (0, 1 << 31),
                                              "worker": str, "host": str, "model": str, "reason": str,
                                              "rtf": float}
MAX_RTF = 1000.0
MAX_TEXT = 256


def encode(msg) -> bytes:
    """One frame. A Segment goes as its own payload (schemas.encode)."""
    if isinstance(msg, schemas.Segment):
        return schemas.encode(msg)
    return msgpack.packb({"v": schemas.VERSION, "type": msg.TYPE, **dataclasses.asdict(msg)}, use_bin_type=True)


def decode_from_worker(data: bytes) -> WorkerMessage:
    """A worker's message; SchemaError naming what is wrong."""
    return _decode(data, _FROM_WORKER)


def decode_from_broker(data: bytes) -> BrokerMessage:
    """The broker's message: a Segment (checked by bus/schemas.py), a heartbeat or a reset."""
    body = schemas.load_body(data)
    if body.get("type") == schemas.Segment.TYPE:
        return schemas.decode(data)
    return _build(body, _FROM_BROKER)


def _decode(data: bytes, types: dict):
    return _build(schemas.load_body(data), types)


def _build(body: dict, types: dict):
    cls = types.get(body.get("type")) if isinstance(body.get("type"), str) else None
    if cls is None:
        raise schemas.SchemaError(f"unknown broker message type {body.get('type')!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            if f.default is dataclasses.MISSING:
                raise schemas.SchemaError(f"{cls.TYPE}: missing field {f.name!r}")
            continue
        kwargs[f.name] = _check(cls.TYPE, f.name, body[f.name])
    msg = cls(**kwargs)
    if isinstance(msg, Reset) and msg.reason not in RESET_REASONS:
        raise schemas.SchemaError(f"reset.reason = {msg.reason!r}: expected one of {', '.join(RESET_REASONS)}")
    return msg


def _check(kind: str, name: str, value):
    rule = _FIELDS[name]
    if rule is str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise schemas.SchemaError(f"{kind}.{name} = {value!r:.40}: expected a string of at most {MAX_TEXT} characters")
        return value
    if rule is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= MAX_RTF:
            raise schemas.SchemaError(f"{kind}.{name} = {value!r:.40}: expected a number from 0 to {MAX_RTF:g}")
        return float(value)
    low, high = rule
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise schemas.SchemaError(f"{kind}.{name} = {value!r:.40}: expected an int from {low} to {high}")
    return value


class BrokerLiveness:
    """The worker's side of the heartbeat: when to send one, and when the broker counts as gone
    (silent for `liveness` intervals: a restarted vad, a dead link), so the worker reconnects."""

    def __init__(self, interval_s: float, liveness: int, clock):
        self.interval_s = interval_s
        self.liveness = liveness
        self.clock = clock
        self.last_heard = self.last_sent = clock()

    def heard(self) -> None:
        self.last_heard = self.clock()

    def sent(self) -> None:
        self.last_sent = self.clock()

    def heartbeat_due(self) -> bool:
        return self.clock() - self.last_sent >= self.interval_s

    def broker_lost(self) -> bool:
        return self.clock() - self.last_heard > self.interval_s * self.liveness

    def wait_s(self) -> float:
        """Seconds until a heartbeat is due (the poll timeout of the worker's loop)."""
        return max(0.0, self.last_sent + self.interval_s - self.clock())
