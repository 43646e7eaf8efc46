"""Time limits uvicorn does not set: a request's headers and an upload's body must arrive in time.

uvicorn's h11 protocol closes idle keep-alive connections, but a client that opens a
connection and never sends, or sends half its headers and stops (or trickles them a
byte at a time), holds the connection forever. `HeaderDeadline` gives each request's
head `gateway.header_timeout_s` from the connection opening, or on a kept-alive connection
from the head's first bytes (until then uvicorn's keep-alive timeout applies), and answers
408 and closes after that.

The body's deadline is `BodyDeadline` (used by `uploads.limited`): `body_timeout_s` to
start, plus one second per `body_min_rate_kbps` kB received, as Apache's mod_reqtimeout
(`body=30,MinRate=16000`): a slow link gets as long as it needs, a client that trickles
a byte every few seconds is cut with 408 once it falls behind that rate.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway import security_headers
from gateway.errors import ApiError, error_body

log = logging.getLogger(__name__)


def _timeout_response(message: str) -> bytes:
    body = json.dumps(error_body(408, "header_timeout", message)).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in security_headers.for_response(None)).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n" + extra +
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request head (see the module's docstring).

    Subclassed per gateway config by `header_deadline_protocol`: uvicorn builds protocols itself.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is in (or the connection was upgraded / closed)
        else:
            self._arm()  # the first bytes of a head on a kept-alive connection start its deadline

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered (pipelining): its own limits apply
        log.info("request head timed out", extra={"client": str(self.client), "seconds": self.header_timeout_s})
        self.transport.write(_timeout_response(
            f"the request's headers did not arrive within {self.header_timeout_s:g} s (gateway.header_timeout_s)"))
        self.transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type[HeaderDeadline]:
    """The protocol class for uvicorn's `http=` with this deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadline,), {"header_timeout_s": header_timeout_s})


class BodyDeadline:
    """When the body being read must be complete by: `timeout_s` plus 1 s per `min_rate_kbps` kB in."""

    def __init__(self, timeout_s: float, min_rate_kbps: float):
        self.timeout_s = timeout_s
        self.min_rate = min_rate_kbps * 1000.0
        self.started = time.monotonic()
        self.received = 0

    def remaining(self) -> float:
        return self.started + self.timeout_s + self.received / self.min_rate - time.monotonic()

    def add(self, count: int) -> None:
        self.received += count

    def error(self) -> ApiError:
        return ApiError(408, "body_timeout", f"the request body arrived too slowly: {self.received} bytes in "
                                             f"{time.monotonic() - self.started:.1f} s (gateway.body_timeout_s "
                                             f"{self.timeout_s:g} s, then at least gateway.body_min_rate_kbps "
                                             f"{self.min_rate / 1000:g} kB/s)", headers={"Connection": "close"})
