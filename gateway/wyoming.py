"""Home Assistant's Wyoming protocol (speech-to-text) in the gateway: one small handler per connection.

`describe` → `info`; `transcribe` (language, name) → `audio-start` / `audio-chunk`* /
`audio-stop` → `transcript-start`, `transcript-chunk`*, `transcript`, `transcript-stop`.
A transcription is a live stream like a WebSocket session: the same
ws_protocol.Session turns it into `open` / `audio` / `flush` / `close` on the bus, so
vad, asr, the store and the metrics see it like any other; `audio-stop` is the
session's eof (flush, then wait for the last final). Streams count against
gateway.max_sessions. Bad input gets an `error` event; framing errors (a stream
that cannot be read on) also end the connection.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
import uuid

from bus import schemas
from config import Config
from gateway import models
from gateway.languages import language_code
from gateway.wyoming_audio import AudioFormat, AudioFormatError, to_mono_int16
from gateway.wyoming_framing import MAX_HEADER_BYTES, FramingError, WyomingEvent, encode_event, read_event
from gateway.wyoming_info import PROGRAM, info_data
from gateway.wyoming_transcript import TranscriptAssembler
from gateway.ws_protocol import ProtocolError, Session, SessionConfig
from gateway.ws_session import MAX_PROTOCOL_ERRORS, SessionSlots

log = logging.getLogger(__name__)

DRAIN_POLL_S = 0.02
STOP_WAIT_S = 2.0


class WyomingError(Exception):
    """A client mistake answered with an `error` event; `fatal` ends the connection."""

    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal


class WyomingServer:
    """The tcp listener, started and stopped by the gateway's lifespan."""

    def __init__(self, cfg: Config, bridge, slots: SessionSlots):
        self.cfg = cfg
        self.bridge = bridge
        self.slots = slots
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task] = set()

    async def start(self, sock: socket.socket | None = None) -> None:
        """Serve on `sock` (already bound: the gateway process binds it first to fail fast), else bind."""
        wy = self.cfg.wyoming
        try:
            if sock is not None:
                self.server = await asyncio.start_server(self._accept, sock=sock, limit=MAX_HEADER_BYTES)
            else:
                self.server = await asyncio.start_server(self._accept, wy.host, wy.port, limit=MAX_HEADER_BYTES)
        except OSError as exc:
            raise RuntimeError(f"wyoming: cannot listen on {wy.host}:{wy.port}: {exc.strerror or exc} "
                               "(wyoming.host / wyoming.port, or wyoming.enabled = false)") from None
        log.info("wyoming listening", extra={"host": wy.host, "port": self.port})

    @property
    def port(self) -> int | None:
        return self.server.sockets[0].getsockname()[1] if self.server and self.server.sockets else None

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(self.connections, timeout=STOP_WAIT_S)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            if not self.slots.acquire():
                writer.write(encode_event("error", {"code": "too_many_sessions", "text": (
                    f"the gateway already serves {self.slots.limit} streams (gateway.max_sessions); try again later")}))
                await writer.drain()
                return
            try:
                await Connection(reader, writer, self.bridge, self.cfg).run()
            finally:
                self.slots.release()
        except (ConnectionError, OSError) as exc:
            log.info("wyoming client gone", extra={"peer": str(peer), "reason": str(exc)})
        except Exception as exc:  # a bug with one client must reach the log and that client, not the others
            log.exception("wyoming connection failed", extra={"peer": str(peer)})
            await _tell_internal_error(writer, exc)
        finally:
            self.connections.discard(task)
            writer.close()


async def _tell_internal_error(writer: asyncio.StreamWriter, exc: Exception) -> None:
    try:
        writer.write(encode_event("error", {"code": "internal_error", "text": f"internal error: {type(exc).__name__}"}))
        await writer.drain()
    except (ConnectionError, OSError) as gone:
        log.info("wyoming client gone before the error", extra={"reason": str(gone)})


class Connection:
    """One client: reads events and answers them; at most one transcription at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bridge, cfg: Config):
        self.reader = reader
        self.writer = writer
        self.bridge = bridge
        self.cfg = cfg
        self.language = "auto"
        self.errors = 0
        self.request: Transcription | None = None

    async def send(self, kind: str, data: dict | None = None) -> None:
        self.writer.write(encode_event(kind, data))
        await self.writer.drain()

    async def send_error(self, code: str, message: str) -> None:
        log.info("wyoming error sent", extra={"code": code, "detail": message})
        await self.send("error", {"code": code, "text": message})

    async def run(self) -> None:
        try:
            while await self._next():
                pass
        finally:
            if self.request is not None:
                self.request.end()

    async def _next(self) -> bool:
        """Read and answer one event; False when the connection should end."""
        idle = self.cfg.gateway.ws_idle_timeout_s
        try:
            async with asyncio.timeout(idle):
                event = await read_event(self.reader, self.cfg.gateway.ws_max_frame_bytes)
        except TimeoutError:
            await self.send_error("idle_timeout", f"nothing received for {idle:g} s (gateway.ws_idle_timeout_s)")
            return False
        except FramingError as exc:
            await self.send_error(exc.code, exc.message)
            return False
        if event is None:
            return False
        try:
            await self.handle(event)
        except (WyomingError, ProtocolError, AudioFormatError) as exc:
            await self.send_error(exc.code, exc.message)
            self.errors += 1
            if getattr(exc, "fatal", False) or getattr(exc, "close_code", None) or self.errors >= MAX_PROTOCOL_ERRORS:
                return False
        return True

    async def handle(self, event: WyomingEvent) -> None:
        if event.type == "describe":
            await self.send("info", info_data(self.cfg, self.bridge.router))
        elif event.type == "ping":
            await self.send("pong", {"text": event.data.get("text")})
        elif event.type == "transcribe":
            self._transcribe(event.data)
        elif event.type == "audio-start":
            await self._audio_start(event.data)
        elif event.type == "audio-chunk":
            await self._need_request("audio-chunk").chunk(event.data, event.payload or b"")
        elif event.type == "audio-stop":
            request = self._need_request("audio-stop")
            try:
                await request.stop()
            finally:
                request.end()
                self.request, self.language = None, "auto"
        else:
            raise WyomingError("unknown_event", f"unknown event type {event.type!r} (expected describe, transcribe, "
                                                "audio-start, audio-chunk, audio-stop or ping)")

    def _transcribe(self, data: dict) -> None:
        if self.request is not None:
            raise WyomingError("illegal_state", "transcribe during a transcription (after audio-start, before "
                                                "audio-stop)")
        name = data.get("name")
        served = {PROGRAM, self.cfg.asr.model, *(m["name"] for m in info_data(self.cfg, self.bridge.router)
                                                 ["asr"][0]["models"])}
        if name is not None and name not in served:
            raise WyomingError("unknown_model", f"transcribe name {name!r}: this server has "
                                                f"{', '.join(sorted(served))}")
        language = wyoming_language(data.get("language"))
        catalogue = models.Catalogue.of(self.bridge, self.cfg)
        refused = models.refusal(catalogue.pick(None if name in (None, PROGRAM) else name), language or "auto",
                                 "transcribe")
        if refused is not None:  # German on tiny.en: said now, not after the audio (issue 12)
            raise WyomingError(refused[0], refused[1])
        self.language = language

    async def _audio_start(self, data: dict) -> None:
        if self.request is not None:
            raise WyomingError("illegal_state", "audio-start during a transcription (audio-stop ends one)")
        fmt = AudioFormat.from_data("audio-start", data)
        self.request = Transcription(self, fmt, self.language)
        await self.request.start()

    def _need_request(self, kind: str) -> "Transcription":
        if self.request is None:
            raise WyomingError("illegal_state", f"{kind} before audio-start")
        return self.request


def _log_listener_end(task: asyncio.Task) -> None:
    """The listener ends only by cancellation; a client that vanished mid-send is the read loop's to notice."""
    if task.cancelled() or task.exception() is None:
        return
    if isinstance(task.exception(), (ConnectionError, OSError)):
        log.info("wyoming client gone while sending", extra={"reason": str(task.exception())})
    else:
        log.error("wyoming listener failed", exc_info=task.exception())


def wyoming_language(value) -> str:
    """"en", "en-US", "English", None → a Whisper code or "auto"; WyomingError for anything else."""
    if value is None:
        return "auto"
    text = str(value)
    code = language_code(text) or language_code(text.replace("_", "-").split("-")[0])
    if code is None:
        raise WyomingError("bad_language", f"transcribe language {value!r}: expected a Whisper language code "
                                           "(en, de, ...), optionally with a region (en-US)")
    return code


class Transcription:
    """audio-start … audio-stop: one stream on the bus, through ws_protocol.Session."""

    def __init__(self, conn: Connection, fmt: AudioFormat, language: str):
        gw = conn.cfg.gateway
        self.conn = conn
        self.bridge = conn.bridge
        self.fmt = fmt
        # HA decides when speech ends (audio-stop); the longest endpointing keeps vad from ending it sooner.
        config = SessionConfig(language=language, sample_rate=fmt.rate, encoding="s16", partials=True,
                               end_silence_ms=gw.max_end_silence_ms)
        frame_samples = schemas.SAMPLE_RATE * conn.cfg.capture.frame_ms // 1000
        self.session = Session(f"wy-{uuid.uuid4().hex[:12]}", config, gw, frame_samples)
        self.session.keep_for_vad_restarts(int(conn.cfg.bus.replay_buffer_s * schemas.SAMPLE_RATE),
                                           self.bridge.router.vad_instance)
        self.text = TranscriptAssembler()
        self.closed_after_stop: set[int] = set()   # utterances vad ended or asr finalised after audio-stop
        self.stopped = False
        self.listener: asyncio.Task | None = None
        self.started_at = time.monotonic()

    async def start(self) -> None:
        queue = self.bridge.router.watch_stream(self.session.stream)
        self.bridge.counters["wyoming_requests"] += 1
        self.listener = asyncio.create_task(self._listen(queue), name=f"wyoming-{self.session.stream}")
        self.listener.add_done_callback(_log_listener_end)
        log.info("wyoming transcription started", extra={"stream": self.session.stream, "format": str(self.fmt),
                                                         "language": self.session.config.language})
        language = self.session.config.language
        await self.conn.send("transcript-start", {"language": language} if language != "auto" else None)

    def _publish(self, messages: list[schemas.Message]) -> None:
        for msg in messages:
            if isinstance(msg, schemas.Open):
                msg = dataclasses.replace(msg, source="wyoming")
            self.bridge.publish(msg)

    async def chunk(self, data: dict, payload: bytes) -> None:
        if data.get("rate") is not None or data.get("width") is not None or data.get("channels") is not None:
            fmt = AudioFormat.from_data("audio-chunk", data)
            if fmt != self.fmt:
                raise WyomingError("bad_audio_format", f"audio-chunk is {fmt} but audio-start announced {self.fmt}")
        self._publish(self.session.audio(to_mono_int16(payload, self.fmt)))
        delay = self.session.pace_delay(time.monotonic())
        if delay > 0:  # backpressure, as on /stream: stop reading, TCP makes the client wait
            self.bridge.counters["ws_paced"] += 1
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """audio-stop: flush, wait for the last final, answer with the transcript."""
        stop_at = time.monotonic()
        self.stopped = True
        self._publish(self.session.eof(stop_at))
        while not self._done(time.monotonic()):
            await asyncio.sleep(DRAIN_POLL_S)
        text, language = self.text.text, self.text.language
        data = {"text": text, **({"language": language} if language else {})}
        await self.conn.send("transcript", data)
        await self.conn.send("transcript-stop")
        log.info("wyoming transcription done", extra={"stream": self.session.stream, "chars": len(text),
                                                      "after_stop_s": round(time.monotonic() - stop_at, 3),
                                                      "audio_s": round(self.session.samples / schemas.SAMPLE_RATE, 2)})

    def _done(self, now: float) -> bool:
        """The session's own drain rule, or sooner: the last utterance vad opened has ended after audio-stop
        and has its final (vad handles the flush after all the audio, so nothing can open after it)."""
        s = self.session
        if s.drained(now):
            return True
        if not s.started or s.started - s.finished:
            return False
        return max(s.started) in self.closed_after_stop

    async def _listen(self, queue: asyncio.Queue) -> None:
        while True:
            msg = await queue.get()
            if isinstance(msg, schemas.Heartbeat):  # a new vad: it gets this stream's state and audio again
                self._publish(self.session.on_vad(msg))
                continue
            event = self.session.on_bus(msg)
            if self.stopped and isinstance(msg, (schemas.SpeechEnd, schemas.Transcript)):
                self.closed_after_stop.add(msg.utt)
            if event is None:
                continue
            if event["type"] == "partial":
                await self._chunk(self.text.partial(event["utt"], event["text"]))
            elif event["type"] == "final":
                await self._chunk(self.text.final(event["utt"], event["text"], event.get("language")))
            elif event["type"] == "error" and event["code"] == "audio_lost":  # vad bridged it; HA goes on
                log.warning("audio lost on the bus", extra={"stream": self.session.stream, "detail": event["message"]})
            elif event["type"] == "error":
                if event.get("utt") is not None:
                    self.session.finished.add(event["utt"])  # no final will follow: do not wait for it
                await self.conn.send_error(event["code"], event["message"])

    async def _chunk(self, text: str | None) -> None:
        if text:
            await self.conn.send("transcript-chunk", {"text": text})

    def end(self) -> None:
        """Free the stream on the bus; safe more than once."""
        if self.listener is not None:
            self.listener.cancel()
        self._publish(self.session.close())
        self.bridge.router.forget_stream(self.session.stream)
