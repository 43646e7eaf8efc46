"""Bus messages as client events (shared by the WebSocket and SSE), and GET /events.

`client_event` is the one translation from schema messages to the JSON clients
see: `vad`, `partial`, `final`, `error`, `alert`. Times `start`/`end`/`offset` are seconds
on the stream's timeline; `timestamp` is the gateway's wall clock when sent.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import StreamingResponse

from bus import schemas
from gateway import origins, replay, store_api
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
    if isinstance(msg, schemas.Alert):
        return {"type": "alert", "rule": msg.rule, "kind": msg.kind, "text": msg.text, "terms": msg.terms,
                "wall": msg.wall, "timestamp": now}
    return None


def sse_frame(event: dict, event_id: str = "") -> bytes:
    """One SSE event; a final carries `id:` (its publish time), which the browser sends back as
    Last-Event-ID when it reconnects."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def _matches(msg: schemas.Message, stream: str | None, job: str | None) -> bool:
    if stream is not None and getattr(msg, "stream", None) != stream:
        return False
    return job is None or getattr(msg, "job", None) == job


def _frame(msg: schemas.Message, replayed: bool = False) -> bytes | None:
    event = client_event(msg)
    if event is None:
        return None
    event["stream"] = getattr(msg, "stream", None)
    if getattr(msg, "job", None) is not None:
        event["job"] = msg.job
    if replayed:
        event["replayed"] = True
    return sse_frame(event, store_api.event_id(msg) if isinstance(msg, schemas.Final) else "")


async def _event_source(router, queue, stream: str | None, job: str | None, shutdown, catch_up: Replay):
    quiet_since = time.monotonic()
    try:
        yield b": voxbus events\n\n"
        if catch_up.problem:
            yield sse_frame({"type": "error", "code": "replay_incomplete", "message": catch_up.problem,
                             "timestamp": round(time.time(), 3)})
        for final in catch_up.finals:
            yield _frame(final, replayed=True)
        while not shutdown.is_set():
            try:
                async with asyncio.timeout(POLL_S):  # not wait_for: on 3.11 it can swallow a cancel
                    msg = await queue.get()
            except TimeoutError:
                if time.monotonic() - quiet_since >= KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield b": keepalive\n\n"
                continue
            if isinstance(msg, schemas.Final) and replay.final_key(msg) in catch_up.sent:
                continue   # came live while the store was asked, and was already replayed
            frame = _frame(msg) if _matches(msg, stream, job) else None
            if frame is not None:
                quiet_since = time.monotonic()
                yield frame
    finally:
        router.unlisten(queue)


@dataclass(frozen=True)
class Replay:
    """What a reconnecting client missed: sent before the live events, each final once."""
    finals: list = field(default_factory=list)
    problem: str | None = None
    sent: frozenset = frozenset()   # their keys: the same finals coming live are skipped

    @classmethod
    def of(cls, finals: list, problem: str | None) -> "Replay":
        return cls(finals, problem, frozenset(replay.final_key(f) for f in finals))


def _last_event_id(request: Request) -> float | None:
    """Last-Event-ID (the header a reconnecting EventSource sends, or ?last_event_id= for a fresh page)."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not raw:
        return None
    try:
        return store_api.epoch(raw, "Last-Event-ID")
    except ApiError as exc:
        raise ApiError(400, "bad_last_event_id", f"Last-Event-ID {raw!r:.40}: not an id this server gave "
                                                 "(the publish time of a final)", "last_event_id") from exc


async def events(request: Request) -> StreamingResponse:
    """GET /events[?stream=ID][&job=ID]: Server-Sent Events of every transcript, vad event and alert.
    With Last-Event-ID, the finals published after that one come first (from the store), then live events."""
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
    unknown = sorted(set(request.query_params) - {"stream", "job", "last_event_id"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown query parameter(s) {', '.join(unknown)} "
                                             "(this endpoint takes: stream, job, last_event_id)", unknown[0])
    after = _last_event_id(request)
    router = request.state.bridge.router
    queue = router.listen()   # live first, then the store: nothing published meanwhile falls between
    catch_up = Replay()
    if after is not None:
        try:
            finals, problem = await replay.missed(request.state.store, router.recent, after, job or stream)
        except BaseException:
            router.unlisten(queue)
            raise
        catch_up = Replay.of([f for f in finals if _matches(f, stream, job)], problem)
    return StreamingResponse(_event_source(router, queue, stream, job, request.state.shutdown, catch_up),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
