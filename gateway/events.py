"""Bus messages as client events (shared by the WebSocket and SSE), and GET /events.

`client_event` is the one translation from schema messages to the JSON clients
see: `vad`, `partial`, `final`, `error`. Times `start`/`end`/`offset` are seconds
on the stream's timeline; `timestamp` is the gateway's wall clock when sent.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.requests import Request
from starlette.responses import StreamingResponse

from bus import schemas
from gateway import origins
from gateway.errors import ApiError

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
POLL_S = 0.5  # how soon a stream notices the server is stopping


def _timings(msg: schemas.Transcript) -> dict:
    """Where the time went in asr, for clients that measure latency."""
    return {"queue_ms": msg.queue_ms, "encode_ms": msg.encode_ms, "decode_ms": msg.decode_ms, "worker": msg.worker}


def client_event(msg: schemas.Message) -> dict | None:
    now = round(time.time(), 3)
    if isinstance(msg, (schemas.SpeechStart, schemas.SpeechEnd)):
        return {"type": "vad", "event": msg.TYPE, "utt": msg.utt,
                "offset": round(msg.offset / schemas.SAMPLE_RATE, 3), "timestamp": now}
    if isinstance(msg, schemas.Transcript) and msg.kind == "partial":
        return {"type": "partial", "text": msg.text, "utt": msg.utt, "start": msg.start, "end": msg.end,
                "timestamp": now, "timings": _timings(msg)}
    if isinstance(msg, schemas.Transcript):
        event = {"type": "final", "text": msg.text, "utt": msg.utt, "start": msg.start, "end": msg.end,
                 "segments": msg.segments, "language": msg.language, "is_speech_final": True, "timestamp": now,
                 "timings": _timings(msg)}
        if msg.words:
            event["words"] = msg.words
        if msg.index is not None:  # a file job's segment: its place, so a listener can show progress
            event.update(index=msg.index, count=msg.count)
        return event
    if isinstance(msg, schemas.JobSegments):
        return {"type": "job_segments", "count": msg.count, "timestamp": now}
    if isinstance(msg, schemas.Error):
        return {"type": "error", "code": msg.code, "message": msg.message, "utt": msg.utt, "timestamp": now}
    return None


def sse_frame(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def _matches(msg: schemas.Message, stream: str | None, job: str | None) -> bool:
    if stream is not None and getattr(msg, "stream", None) != stream:
        return False
    return job is None or getattr(msg, "job", None) == job


async def _event_source(router, stream: str | None, job: str | None, shutdown):
    queue = router.listen()
    quiet_since = time.monotonic()
    try:
        yield b": voxbus events\n\n"
        while not shutdown.is_set():
            try:
                async with asyncio.timeout(POLL_S):  # not wait_for: on 3.11 it can swallow a cancel
                    msg = await queue.get()
            except TimeoutError:
                if time.monotonic() - quiet_since >= KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield b": keepalive\n\n"
                continue
            event = client_event(msg) if _matches(msg, stream, job) else None
            if event is not None:
                event["stream"] = getattr(msg, "stream", None)
                if getattr(msg, "job", None) is not None:
                    event["job"] = msg.job
                quiet_since = time.monotonic()
                yield sse_frame(event)
    finally:
        router.unlisten(queue)


async def events(request: Request) -> StreamingResponse:
    """GET /events[?stream=ID][&job=ID]: Server-Sent Events of every transcript and vad event."""
    refusal = origins.origin_refusal(request.headers, request.state.config.gateway.allowed_origins)
    if refusal is not None:
        request.state.bridge.counters["origins_refused"] += 1
        log.warning("refused a cross-origin event stream", extra={"origin": request.headers.get("origin")})
        raise ApiError(403, "origin_not_allowed", refusal)
    stream, job = request.query_params.get("stream"), request.query_params.get("job")
    for name, value in (("stream", stream), ("job", job)):
        if value is not None:
            try:
                schemas.check_id(value, name)
            except schemas.SchemaError as exc:
                raise ApiError(400, f"bad_{name}", str(exc), name) from None
    unknown = sorted(set(request.query_params) - {"stream", "job"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown query parameter(s) {', '.join(unknown)} "
                                             "(this endpoint takes: stream, job)", unknown[0])
    return StreamingResponse(_event_source(request.state.bridge.router, stream, job, request.state.shutdown),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
