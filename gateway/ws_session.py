"""GET /stream: one small handler per WebSocket connection, around the pure ws_protocol.Session.

Three tasks per connection: the receiver (client → bus), the listener (bus →
outbox) and the sender (outbox → client). The outbox is bounded: a client that
stops reading loses partials and vad events first; when even a final does not
fit, the session ends (a consumer that slow would only fall further behind).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bus import pcm, schemas
from gateway import models, origins, rate_limits, ws_resume, ws_speakers
from gateway.errors import error_body
from gateway.ws_protocol import DRAIN_MAX_S, ProtocolError, Session, SessionState

log = logging.getLogger(__name__)

OUTBOX_MAX = 512
DROPPABLE = ("partial", "vad", "pong")
MAX_PROTOCOL_ERRORS = 50   # a client that keeps sending nonsense is closed
CLOSE_FLUSH_S = 5.0        # how long the outbox may take to empty before the close
CLOSE_SEND_S = 5.0         # how long the close frame may take to go out (a client that never reads)
DRAIN_POLL_S = 0.05        # after eof: how often the wait for the last final looks again


class SessionSlots:
    """Counts open sessions against gateway.max_sessions."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self.refused = 0

    def acquire(self) -> bool:
        if self.active >= self.limit:
            self.refused += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


class _Slot:
    """One session's hold on a SessionSlots place, released once (before the close frame is sent)."""

    def __init__(self, slots: SessionSlots):
        self.slots = slots
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


async def stream_endpoint(websocket: WebSocket, handler=None) -> None:
    """`handler`: the StreamHandler class to run the session (the app passes ws_decoding's)."""
    bridge, cfg, slots = websocket.state.bridge, websocket.state.config, websocket.state.sessions
    refusal = origins.origin_refusal(websocket.headers, cfg.gateway.allowed_origins)
    if refusal is not None:
        bridge.counters["origins_refused"] += 1
        await _deny(websocket, refusal)
        return
    await websocket.accept()
    if not slots.acquire():
        await _refuse(websocket, "too_many_sessions", f"the gateway already serves {slots.limit} streams "
                                                      "(gateway.max_sessions); try again later", 1013)
        return
    slot = _Slot(slots)
    try:
        check = ws_speakers.speaker_check(models.session_check(models.Catalogue.from_state(websocket.state)),
                                          cfg.speaker)
        frame_samples = schemas.SAMPLE_RATE * cfg.capture.frame_ms // 1000
        resume = websocket.state.resume
        try:
            # a model that cannot do the language or task: refused before ready
            session, resumed = ws_resume.new_session(websocket.query_params, cfg.gateway, resume.signer,
                                                     frame_samples, time.time(), check)
        except ProtocolError as exc:
            slot.release()
            await _refuse(websocket, exc.code, exc.message, exc.close_code or 1008)
            return
        session.keep_for_vad_restarts(int(cfg.bus.replay_buffer_s * schemas.SAMPLE_RATE), bridge.router.vad_instance)
        catch_up = None
        if resumed is not None:
            await resume.live.take_over(session.stream)
            catch_up = lambda: ws_resume.catch_up(session, resumed, bridge.router, websocket.state.store)  # noqa: E731
        runner = (handler or StreamHandler)(websocket, bridge, session, cfg.gateway.ws_idle_timeout_s,
                                            slot.release, catch_up)
        resume.live.serving(session.stream, runner)
        try:
            await runner.run()
        finally:
            runner.done.set()
            resume.live.gone(session.stream, runner)
    finally:
        slot.release()


async def _deny(websocket: WebSocket, message: str) -> None:
    """Refuse the handshake itself: HTTP 403, with our JSON error where the server can send a body."""
    log.warning("refused a cross-origin stream", extra={"origin": websocket.headers.get("origin")})
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(error_body(403, "origin_not_allowed", message),
                                                          status_code=403))
    else:
        await websocket.close(1008, reason="origin_not_allowed")  # before accept: the server answers 403


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    log.info("refused a stream", extra={"code": code, "detail": message})
    await websocket.send_json({"type": "error", "code": code, "message": message, "timestamp": round(time.time(), 3)})
    await websocket.close(close_code, reason=code)


class StreamHandler:
    def __init__(self, websocket: WebSocket, bridge, session: Session, idle_timeout_s: float,
                 release=lambda: None, catch_up=None):
        self.ws = websocket
        self.catch_up = catch_up  # a resumed session: async () -> the events it missed (gateway/ws_resume.py)
        self.release = release  # frees the session's slot: called once the stream is over, before the close
        self.bridge = bridge
        self.session = session
        self.idle_timeout_s = idle_timeout_s
        self.outbox: asyncio.Queue = asyncio.Queue(OUTBOX_MAX)
        self.close_code = 1000
        self.close_reason = ""
        self.client_gone = False
        self.protocol_errors = 0
        self.frames_after_eof = 0
        self.receiver: asyncio.Task | None = None
        self.handed_over = False     # a resumed connection took this session over: no `close` on the bus
        self.done = asyncio.Event()  # set once the handler has finished (by stream_endpoint)

    async def run(self) -> None:
        stream = self.session.stream
        queue = self.bridge.router.watch_stream(stream)
        self.bridge.counters["sessions_opened"] += 1
        log.info("stream opened", extra={"stream": stream, "config": dataclasses.asdict(self.session.config)})
        self.emit(self.session.ready_event())
        if self.catch_up is not None:   # after watch_stream: live finals wait in `queue` meanwhile
            for event in await self.catch_up():
                self.emit(event)
        sender = asyncio.create_task(self._send_loop())
        listener = asyncio.create_task(self._listen_loop(queue))
        self.receiver = asyncio.create_task(self._receive_loop())
        if self.handed_over:   # taken over while it caught up
            self.receiver.cancel()
        try:
            await asyncio.wait([self.receiver])
            if not self.receiver.cancelled() and self.receiver.exception() is not None:
                log.error("stream receiver failed", exc_info=self.receiver.exception(), extra={"stream": stream})
                self.emit({"type": "error", "code": "internal_error", "timestamp": round(time.time(), 3),
                           "message": f"internal error: {type(self.receiver.exception()).__name__}"})
                self.close_code, self.close_reason = 1011, "internal_error"
            self.release()  # the stream is over: its slot is free while the last events go out
            if not self.client_gone:
                await self._flush_outbox(sender)
        finally:
            if not self.handed_over:
                self._publish(self.session.close())
            self.bridge.router.forget_stream(stream)
            tasks = (listener, sender, self.receiver)
            for task in tasks:
                task.cancel()
            # asyncio.wait, not gather: if this handler is itself cancelled meanwhile (server shutdown),
            # wait re-raises that very cancellation, where gather raises a new, anonymous one.
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None and task is not self.receiver:
                    log.error("stream task failed", exc_info=task.exception(), extra={"stream": stream})
            self.release()
            await self._close_socket()
            log.info("stream closed", extra={"stream": stream, "code": self.close_code,
                                             "client_gone": self.client_gone, "samples": self.session.samples})

    def emit(self, event: dict) -> None:
        try:
            self.outbox.put_nowait(event)
        except asyncio.QueueFull:
            if event["type"] in DROPPABLE:
                self.bridge.counters["ws_events_dropped"] += 1
                return
            if self.close_reason != "slow_consumer":
                self.bridge.counters["ws_slow_consumers"] += 1
                log.warning("client does not read its events; closing", extra={"stream": self.session.stream,
                                                                               "queued": self.outbox.qsize()})
            self._end(1008, "slow_consumer")

    def hand_over(self) -> None:
        """A resumed connection takes this session: end at once, as if the client had left."""
        self.handed_over = self.client_gone = True
        self._end(1001, "resumed_elsewhere")

    def _end(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        if self.receiver is not None and not self.receiver.done():
            self.receiver.cancel()

    def _publish(self, messages: list[schemas.Message]) -> None:
        for msg in messages:
            self.bridge.publish(msg)
        self._charge(messages)

    def _charge(self, messages: list[schemas.Message]) -> None:
        """limits.audio_s_per_min (gateway/rate_limits.py): a session past its caller's budget ends with 4429."""
        seconds = sum(pcm.seconds(m.pcm) for m in messages if isinstance(m, schemas.Audio))
        wait = rate_limits.charge_audio(seconds) if seconds else None
        if wait is not None and self.close_reason != "rate_limited":
            self.emit({"type": "error", "code": "rate_limited", "timestamp": round(time.time(), 3),
                       "message": f"over this caller's seconds of audio per minute (limits.audio_s_per_min); "
                                  f"try again in {rate_limits.retry_header(wait)} s"})
            self._end(4429, "rate_limited")

    async def _receive_loop(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
                # a message arrives, and this loop would then go on receiving after _end().
                async with asyncio.timeout(self.idle_timeout_s):
                    message = await self.ws.receive()
            except TimeoutError:
                self.emit({"type": "error", "code": "idle_timeout", "timestamp": round(time.time(), 3),
                           "message": f"nothing received for {self.idle_timeout_s:g} s (gateway.ws_idle_timeout_s)"})
                self.close_code, self.close_reason = 1001, "idle_timeout"
                return
            if not await self._step(message):
                return
            if self.session.state is SessionState.DRAINING:
                await self._drain()
                return

    async def _step(self, message: dict) -> bool:
        """Handle one client message; False when the session must end (the client left, or a fatal error)."""
        if message["type"] == "websocket.disconnect":
            self.client_gone = True
            return False
        try:
            await self._handle(message)
        except ProtocolError as exc:
            self.emit(exc.event())
            self.protocol_errors += 1
            if exc.close_code or self.protocol_errors >= MAX_PROTOCOL_ERRORS:
                self.close_code, self.close_reason = exc.close_code or 1008, exc.code
                return False
        return True

    async def _handle(self, message: dict) -> None:
        if message.get("bytes") is not None:
            self._publish(self.session.audio(message["bytes"]))
            delay = self.session.pace_delay(time.monotonic())
            if delay > 0:  # backpressure: stop reading; TCP makes the client wait
                self.bridge.counters["ws_paced"] += 1
                await asyncio.sleep(delay)
        elif message.get("text") is not None:
            messages, events = self.session.text_message(message["text"], time.monotonic())
            self._publish(messages)
            for event in events:
                self.emit(event)

    async def _drain(self) -> None:
        """After eof: wait for vad's `flushed` and the final of the utterance it names, which the listener
        forwards meanwhile; after DRAIN_MAX_S an error says what never came.
        The client is still read, so a client that leaves ends the wait. Audio after eof is
        dropped: the first frame is answered with an illegal_state error, the rest only counted
        (`ws_frames_after_eof`), so a client whose last frames cross its eof never loses the
        final to the 50-errors rule. Text messages are handled as before (ping, errors)."""
        while not self.session.drained(time.monotonic()):
            try:
                async with asyncio.timeout(DRAIN_POLL_S):
                    message = await self.ws.receive()
            except TimeoutError:
                continue
            if message.get("bytes") is not None:
                self._audio_after_eof()
            elif not await self._step(message):
                return
        if self.session.drain_timed_out(time.monotonic()):
            self.bridge.counters["ws_drain_timeouts"] += 1
            waiting = self.session.unfinished()
            self.emit({"type": "error", "code": "final_timeout", "timestamp": round(time.time(), 3),
                       "message": f"no final within {DRAIN_MAX_S:g} s after eof"
                                  + (f" for utterance(s) {', '.join(map(str, waiting))}" if waiting else
                                     " (vad never answered the flush: is it running?)")})

    def _audio_after_eof(self) -> None:
        self.frames_after_eof += 1
        self.bridge.counters["ws_frames_after_eof"] += 1
        if self.frames_after_eof == 1:
            self.emit({"type": "error", "code": "illegal_state", "timestamp": round(time.time(), 3),
                       "message": "audio after eof is dropped: the stream is draining (this is said once; "
                                  "later frames are dropped silently)"})

    async def _listen_loop(self, queue: asyncio.Queue) -> None:
        if self.session.config.speakers:  # finals wait for their live label (gateway/ws_speakers.py)
            await ws_speakers.listen(queue, self.session, self.emit, self.ws.state.config.speaker.live_wait_s)
        while True:
            msg = await queue.get()
            if isinstance(msg, schemas.Heartbeat):  # a new vad: it gets this stream's state and audio again
                self._publish(self.session.on_vad(msg))
                continue
            event = self.session.on_bus(msg)
            if event is not None:
                self.emit(event)

    async def _send_loop(self) -> None:
        while True:
            event = await self.outbox.get()
            try:
                await self.ws.send_text(json.dumps(event, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.client_gone = True
                self._end(1001, "client_gone")
                return
            finally:
                self.outbox.task_done()

    async def _flush_outbox(self, sender: asyncio.Task) -> None:
        if sender.done():
            return
        try:
            async with asyncio.timeout(CLOSE_FLUSH_S):
                await self.outbox.join()
        except TimeoutError:
            log.warning("events still unsent at close", extra={"stream": self.session.stream,
                                                               "unsent": self.outbox.qsize()})

    async def _close_socket(self) -> None:
        if self.client_gone or self.ws.application_state != WebSocketState.CONNECTED \
                or self.ws.client_state != WebSocketState.CONNECTED:
            return
        try:
            # Bounded: to a client that never reads, the close frame may never go out (TCP is full).
            async with asyncio.timeout(CLOSE_SEND_S):
                await self.ws.close(self.close_code, reason=self.close_reason)
        except (RuntimeError, OSError) as exc:  # the client left between the check and the close
            log.info("close after the client left", extra={"stream": self.session.stream, "reason": str(exc)})
        except TimeoutError:
            log.warning("close frame not sent: the client does not read", extra={"stream": self.session.stream})
