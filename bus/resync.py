"""Resync of numbered finals (the zguide's Clone pattern: numbered updates + ask for what you missed).

Every `Final` an asr producer publishes carries `seq`, +1 per final of that producer (`worker`).
A producer keeps its recent finals in a bounded ring (asr/history.py) behind a ROUTER socket;
a subscriber that sees a gap (or starts late) asks it with a `HistoryRequest` over a REQ or
DEALER socket and gets a `HistoryReply`:

    request:  {v, type: "history_request", producer, after, limit}
    reply:    {v, type: "history_reply", producer, first, last, origin, finals: [final payload, ...], more}

`finals` are the finals with seq > `after`, oldest first, at most `limit`, each the same
msgpack payload `schemas.encode` gives (so they parse with `schemas.decode`). `first` is the
oldest seq the ring still holds (`last + 1` when empty): a missed final older than that is gone.
`last` is the newest seq the producer published; `origin` the first seq this instance of it
numbered (seqs below it belong to an earlier run of the same producer: a producer numbers from
where it left off or from the wall clock, never again from 1, so (worker, seq) stays unique).
`more` says the reply stopped at `limit`.
A request for another producer is answered with `error` set and no finals.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from bus import schemas

VERSION = schemas.VERSION
MAX_LIMIT = 10000


class ResyncError(schemas.SchemaError):
    """A history request or reply that is not valid."""


@dataclass(frozen=True)
class HistoryRequest:
    TYPE = "history_request"
    producer: str
    after: int
    limit: int = 500


@dataclass(frozen=True)
class HistoryReply:
    TYPE = "history_reply"
    producer: str
    first: int
    last: int
    finals: list = field(default_factory=list)   # encoded Final payloads (bytes), oldest first
    more: bool = False
    error: str = ""
    origin: int = 0

    def decoded(self) -> list[schemas.Final]:
        """The finals as messages; ResyncError naming the first that is not a Final."""
        out = []
        for i, data in enumerate(self.finals):
            msg = schemas.decode(data)
            if not isinstance(msg, schemas.Final) or msg.seq is None:
                raise ResyncError(f"history_reply.finals[{i}]: a {msg.TYPE} without seq, expected a numbered final")
            out.append(msg)
        return out


def encode(msg: HistoryRequest | HistoryReply) -> bytes:
    body = {"v": VERSION, "type": msg.TYPE, **msg.__dict__}
    return msgpack.packb(body, use_bin_type=True)


def _load(data: bytes, expected: str) -> dict:
    body = schemas.load_body(data, ResyncError, VERSION)
    if body.get("type") != expected:
        raise ResyncError(f"got a {body.get('type')!r}, expected a {expected}")
    return body


def _int(body: dict, name: str, where: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ResyncError(f"{where}.{name} = {value!r:.40}: expected a non-negative integer")
    return value


def _str(body: dict, name: str, where: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ResyncError(f"{where}.{name} = {value!r:.40}: expected a string")
    return value


def decode_request(data: bytes) -> HistoryRequest:
    body = _load(data, HistoryRequest.TYPE)
    limit = _int(body, "limit", "history_request")
    if not 1 <= limit <= MAX_LIMIT:
        raise ResyncError(f"history_request.limit = {limit}: expected 1 to {MAX_LIMIT}")
    return HistoryRequest(producer=_str(body, "producer", "history_request"),
                          after=_int(body, "after", "history_request"), limit=limit)


def decode_reply(data: bytes) -> HistoryReply:
    body = _load(data, HistoryReply.TYPE)
    finals = body.get("finals", [])
    if not isinstance(finals, list) or not all(isinstance(f, bytes) for f in finals):
        raise ResyncError("history_reply.finals: expected a list of binary payloads")
    more = body.get("more", False)
    if not isinstance(more, bool):
        raise ResyncError(f"history_reply.more = {more!r:.40}: expected a boolean")
    return HistoryReply(producer=_str(body, "producer", "history_reply"), first=_int(body, "first", "history_reply"),
                        last=_int(body, "last", "history_reply"), finals=finals, more=more,
                        error=_str(body, "error", "history_reply"),
                        origin=_int({"origin": body.get("origin", 0)}, "origin", "history_reply"))
