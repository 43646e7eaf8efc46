"""A file job followed as it runs: Server-Sent Events instead of one answer at the end.

Two shapes over one mechanism (`follow`: the job runs in a task, its job_segments and
finals come out as they arrive):

- voxbus's own, `POST /transcribe?progress=true`: `event: job_segments` {job, count}, then
  `event: final` {job, index, count, text, start, end, done} per segment as asr finishes it
  (any order: several workers), then `event: done` with the answer the request would have
  had (for text/srt/vtt: {format, content}), or `event: error` with the usual error body.
- OpenAI's, `stream=true` on `/v1/audio/transcriptions`: `data:` lines with
  `transcript.text.delta` {delta} in the audio's order (a segment that finishes early waits for
  the ones before it) and one `transcript.text.done` {text}; a failure after the stream began
  is `data: {"error": {...}}`, which the official client raises as an APIError.

Everything the request could be refused for is checked before the stream begins (a 4xx as
usual); once the job is pushed, the answer is 200 and problems travel as events.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse

from bus import schemas
from gateway import service
from gateway.errors import ApiError, error_body

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE_S = 15.0  # a comment line while nothing happens, so proxies keep the connection


def sse(event: str | None, data: dict) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def follow(bridge, gateway_cfg, req: service.Request) -> AsyncIterator[schemas.Message | service.Outcome
                                                                               | ApiError]:
    """The job's job_segments and finals as they arrive, then its Outcome (or the ApiError it ended with).
    The job stops with the client: closing this generator cancels it."""
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(service.transcribe(bridge, gateway_cfg, req, progress=queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    item = await queue.get()
            except TimeoutError:
                yield None  # nothing new: the caller may send a keepalive
                continue
            if item is None:
                break
            yield item
        try:
            yield task.result()
        except ApiError as exc:
            yield exc
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])


def _final_event(msg: schemas.Final, done: int) -> dict:
    return {"job": msg.job, "index": msg.index if msg.index is not None else 0, "count": msg.count,
            "text": msg.text, "start": msg.start, "end": msg.end, "language": msg.language, "done": done}


async def voxbus_events(bridge, gateway_cfg, req: service.Request,
                        answer: Callable[[service.Outcome], dict]) -> AsyncIterator[bytes]:
    """`POST /transcribe?progress=true`: job_segments, final per segment, then done (or error)."""
    done = 0
    async for item in follow(bridge, gateway_cfg, req):
        if item is None:
            yield b": keepalive\n\n"
        elif isinstance(item, schemas.JobSegments):
            yield sse("job_segments", {"job": item.job, "count": item.count})
        elif isinstance(item, schemas.Final):
            done += 1
            yield sse("final", _final_event(item, done))
        elif isinstance(item, ApiError):
            yield sse("error", {**error_body(item.status, item.code, item.message, item.param),
                                "status": item.status})
        else:
            yield sse("done", answer(item))


async def openai_events(bridge, gateway_cfg, req: service.Request) -> AsyncIterator[bytes]:
    """OpenAI's transcription stream: text deltas in audio order, then transcript.text.done."""
    finals: dict[int, str] = {}
    sent = 0  # segments whose text went out, in index order
    said = False  # some text went out already
    async for item in follow(bridge, gateway_cfg, req):
        if item is None:
            yield b": keepalive\n\n"
        elif isinstance(item, schemas.Final):
            finals[item.index or 0] = item.text.strip()
            while sent in finals:
                text = finals[sent]
                sent += 1
                if text:  # joined as the full text is: one space between segments' texts
                    yield sse(None, {"type": "transcript.text.delta", "delta": " " + text if said else text})
                    said = True
        elif isinstance(item, ApiError):
            yield sse(None, error_body(item.status, item.code, item.message, item.param))
        elif isinstance(item, service.Outcome):
            yield sse(None, {"type": "transcript.text.done", "text": item.result.text})


async def _holding(slots, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The events under a job slot, held while they are produced (taken when the stream starts)."""
    try:
        with slots.hold():
            async for chunk in events:
                yield chunk
    except ApiError as exc:  # the slots filled up between the check and the stream's start
        yield sse("error", error_body(exc.status, exc.code, exc.message, exc.param))


def response(slots, events: AsyncIterator[bytes]) -> StreamingResponse:
    """An SSE response running a job; 503 too_many_jobs now if no job slot is free."""
    with slots.hold():  # refuse before the 200 goes out; the stream takes its own hold
        pass
    return StreamingResponse(_holding(slots, events), media_type="text/event-stream", headers=SSE_HEADERS)
