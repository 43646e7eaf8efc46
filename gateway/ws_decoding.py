"""Compressed audio over /stream: WebM/Opus or Ogg/Opus chunks (a browser's MediaRecorder) decoded as
they arrive, and any other audio file format refused on its first frame.

`encoding=webm|ogg` asks for it; with the default raw encodings the first binary frame is
sniffed: the EBML magic (1A 45 DF A3) or "OggS" switches the session to that container, other
file magics (RIFF/WAVE, fLaC, ID3, MP4's ftyp, #!AMR) end it with `unsupported_encoding`, since
raw PCM never starts that way, while the frame-sync bytes of bare MP3 do (and are not judged).

An ffmpeg subprocess per session turns the chunks (its stdin) into 16 kHz mono s16 (its stdout),
which the session publishes like any PCM. Bounded: the receiver waits for ffmpeg's stdin to drain
(TCP holds the client back), stderr keeps its last 2 kB; killed when the session ends. On `eof`
its stdin is closed and what it still holds is published before the usual flush.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time

from gateway.audio import ffmpeg_container
from gateway.params import loads
from gateway.ws_protocol import CONTAINER_ENCODINGS, ProtocolError, SessionState
from gateway.ws_session import StreamHandler

log = logging.getLogger(__name__)

READ_BYTES = 3200        # 100 ms of 16 kHz s16: how much ffmpeg's output is read at a time
FINISH_TIMEOUT_S = 10.0  # after eof: the longest wait for ffmpeg to hand over what it still holds
STDERR_KEEP = 2048
REFUSED_CONTAINERS = ("flac", "mp4", "amr")  # files no raw PCM stream starts like (see sniff)


def sniff(first: bytes, encoding: str) -> str | None:
    """The container of a session's first binary frame: "webm"/"ogg" to decode, None for raw PCM;
    ProtocolError for another file format."""
    if encoding in CONTAINER_ENCODINGS:
        return encoding
    found = ffmpeg_container(first)
    if found in CONTAINER_ENCODINGS:
        return found
    what = "a WAV file" if first[:4] == b"RIFF" and first[8:12] == b"WAVE" else \
        "an MP3 file (ID3)" if first[:3] == b"ID3" else f"a {found} file" if found in REFUSED_CONTAINERS else None
    if what is None:
        return None
    raise ProtocolError("unsupported_encoding", f"the first binary frame is {what}: /stream takes raw PCM "
                                                "(encoding=f32 or s16, at sample_rate) or WebM/Ogg Opus chunks "
                                                "(encoding=webm or ogg); upload files to POST /transcribe",
                        close_code=1003)


class FfmpegDecoder:
    """One ffmpeg process: container bytes in, 16 kHz mono s16 out to `on_pcm` (called on the loop)."""

    def __init__(self, container: str, on_pcm):
        self.container = container
        self.on_pcm = on_pcm
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task | None = None
        self.stderr_task: asyncio.Task | None = None
        self.stderr = b""

    async def start(self) -> None:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise ProtocolError("unsupported_encoding", f"encoding {self.container} needs ffmpeg on the server, "
                                                        "which is not installed; send raw PCM", close_code=1003)
        fmt = "matroska" if self.container == "webm" else "ogg"
        self.process = await asyncio.create_subprocess_exec(
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer",
            "-probesize", "32768", "-analyzeduration", "0", "-f", fmt, "-i", "pipe:0", "-vn",
            "-ac", "1", "-ar", "16000", "-f", "s16le", "-flush_packets", "1", "pipe:1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.reader = asyncio.create_task(self._read())
        self.stderr_task = asyncio.create_task(self._read_stderr())

    async def write(self, data: bytes) -> None:
        if self.process.stdin.is_closing():
            return
        self.process.stdin.write(data)
        try:
            await self.process.stdin.drain()  # backpressure: a busy ffmpeg holds the client back
        except (BrokenPipeError, ConnectionResetError):
            raise ProtocolError("bad_frame", f"the {self.container} decoder stopped: {self.reason()}",
                                close_code=1003) from None

    async def finish(self) -> str | None:
        """Close ffmpeg's input and wait (bounded) until everything it decoded was handed on;
        what went wrong if ffmpeg could not decode the stream, else None."""
        if not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            async with asyncio.timeout(FINISH_TIMEOUT_S):
                await self.reader
                await self.stderr_task
                code = await self.process.wait()
        except TimeoutError:
            log.warning("ffmpeg did not finish in time", extra={"container": self.container})
            return None
        return f"the {self.container} stream could not be decoded: {self.reason()}" if code else None

    async def kill(self) -> None:
        for task in (self.reader, self.stderr_task):
            if task is not None:
                task.cancel()
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def reason(self) -> str:
        text = self.stderr.decode(errors="replace").strip().splitlines()
        return text[-1][:200] if text else f"ffmpeg exited with {self.process.returncode}"

    async def _read(self) -> None:
        while chunk := await self.process.stdout.read(READ_BYTES):
            self.on_pcm(chunk)

    async def _read_stderr(self) -> None:
        while chunk := await self.process.stderr.read(1024):
            self.stderr = (self.stderr + chunk)[-STDERR_KEEP:]


class DecodingStreamHandler(StreamHandler):
    """The /stream handler, with compressed audio decoded (or refused) before the session sees it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder: FfmpegDecoder | None = None
        self.pending = b""  # decoded PCM not yet a whole number of samples

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self.decoder is not None:
                await self.decoder.kill()

    async def _handle(self, message: dict) -> None:
        data = message.get("bytes")
        if data is not None and self.decoder is None and self.session.state is SessionState.CONNECTED:
            container = sniff(data, self.session.config.encoding)
            if container is not None:
                await self._start(container)
        if self.decoder is None:
            await super()._handle(message)
        elif data is not None:
            if len(data) > self.session.gw.ws_max_frame_bytes:
                self.session.audio(data)  # raises frame_too_large, as for PCM
            await self.decoder.write(data)
            delay = self.session.pace_delay(time.monotonic())  # a file sent fast: held to the PCM pace
            if delay > 0:
                self.bridge.counters["ws_paced"] += 1
                await asyncio.sleep(delay)
        else:
            if _is_eof(message.get("text")):
                problem = await self.decoder.finish()  # the audio ffmpeg still holds goes out before the flush
                if problem is not None:
                    self.emit(ProtocolError("bad_frame", problem).event())
            await super()._handle(message)

    async def _start(self, container: str) -> None:
        self.session.config = dataclasses.replace(self.session.config, encoding=container)
        self.decoder = FfmpegDecoder(container, self._decoded)
        await self.decoder.start()
        self.bridge.counters["ws_decoded_sessions"] += 1
        log.info("decoding compressed stream", extra={"stream": self.session.stream, "container": container})

    def _decoded(self, pcm: bytes) -> None:
        pcm, self.pending = self.pending + pcm, b""
        if len(pcm) % 2:
            pcm, self.pending = pcm[:-1], pcm[-1:]
        if self.session.state in (SessionState.CONNECTED, SessionState.STREAMING):
            try:
                self._publish(self.session.audio(pcm))
            except ProtocolError as exc:
                self.emit(exc.event())


def _is_eof(text: str | None) -> bool:
    """Whether a text frame is an `eof` (anything unreadable is left to the session to report)."""
    try:
        body = loads(text) if text is not None else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "eof"
