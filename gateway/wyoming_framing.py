"""The Wyoming wire format: a JSON header line, then `data_length` bytes of JSON, then `payload_length` bytes.

The header names the event (`type`) and may carry `data` itself; extra data after
the line is merged over it (as the `wyoming` package does). Every length is
bounded before anything is read, so a huge or lying header costs no memory: it is
a FramingError naming the limit. The stream cannot be resynchronised after a
framing error (the next header's position is unknown), so the connection ends.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from gateway.params import loads

PROTOCOL_VERSION = "1.8.0"   # transcript-start / -chunk / -stop exist since this version of the protocol
MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1024 * 1024


class FramingError(Exception):
    """Bytes that are not a Wyoming event; `code` names the problem for the error event."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class WyomingEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes | None = None


def _length(header: dict, key: str, limit: int, setting: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FramingError("bad_header", f"{key} {value!r}: expected a byte count (a whole number ≥ 0)")
    if value > limit:
        raise FramingError("too_large", f"{key} {value} is over the limit of {limit} bytes ({setting})")
    return value


def _header(line: bytes) -> dict:
    try:
        header = loads(line)
    except ValueError:
        raise FramingError("bad_header", f"header line is not JSON: {line[:80]!r}") from None
    if not isinstance(header, dict):
        raise FramingError("bad_header", f"header line is not a JSON object: {line[:80]!r}")
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise FramingError("bad_header", f"header has no event type (\"type\"): {line[:80]!r}")
    if not isinstance(header.get("data", {}), dict):
        raise FramingError("bad_header", f"\"data\" of a {kind} header is not a JSON object")
    return header


async def read_event(reader: asyncio.StreamReader, max_payload: int) -> WyomingEvent | None:
    """The next event, or None at a clean end of stream (between events). FramingError otherwise.

    `reader` must have been created with limit=MAX_HEADER_BYTES so a long line stops at the limit.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise FramingError("truncated", "the connection ended inside a header line") from None
    except asyncio.LimitOverrunError:
        raise FramingError("too_large", f"header line longer than {MAX_HEADER_BYTES} bytes "
                                        "(the limit for a Wyoming header)") from None
    header = _header(line)
    data_length = _length(header, "data_length", MAX_DATA_BYTES, "the limit for a Wyoming event's data")
    payload_length = _length(header, "payload_length", max_payload, "gateway.ws_max_frame_bytes")
    data = dict(header.get("data") or {})
    try:
        if data_length:
            extra = loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise FramingError("bad_header", f"the data of a {header['type']} event is not a JSON object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise FramingError("truncated", f"the connection ended inside a {header['type']} event's "
                                        "data or payload") from None
    except ValueError:
        raise FramingError("bad_header", f"the data of a {header['type']} event is not JSON") from None
    return WyomingEvent(header["type"], data, payload)


def encode_event(kind: str, data: dict[str, Any] | None = None, payload: bytes | None = None) -> bytes:
    """One event as bytes: data always goes after the line (data_length), as the `wyoming` package writes it."""
    header: dict[str, Any] = {"type": kind, "version": PROTOCOL_VERSION}
    body = json.dumps(data, ensure_ascii=False).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + body + (payload or b"")
