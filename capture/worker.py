"""One source, one thread: open its reader (retrying with back-off), convert, frame, emit messages.

The worker never touches a socket: it hands `open`, `audio` and `close` messages
to `emit` (the process loop publishes them from its own thread). Sequence numbers
and offsets run on across reconnects, so the stream keeps one timeline.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from bus import schemas
from capture.backoff import Backoff
from capture.base import Reader, SourceLost, SourceUnavailable
from capture.framer import Framer
from capture.resample import Converter
from config.schema import SourceConfig

log = logging.getLogger(__name__)


class SourceWorker(threading.Thread):
    """States: starting → running ⇄ device_missing / restarting → ended | stopped."""

    def __init__(self, cfg: SourceConfig, frame_ms: int, make_reader: Callable[[SourceConfig], Reader],
                 emit: Callable[[schemas.Message], None], stopping: threading.Event,
                 backoff: Backoff | None = None, describe: str = ""):
        super().__init__(name=f"capture-{cfg.stream}", daemon=True)
        self.cfg = cfg
        self.make_reader = make_reader
        self.emit = emit
        self.stopping = stopping
        self.backoff = backoff or Backoff()
        self.describe = describe or cfg.kind
        self.framer = Framer(frame_ms)
        self.state = "starting"
        self.reason = ""
        self.reader: Reader | None = None
        self.frames = 0
        self.restarts = 0
        self.open_failures = 0
        self.reader_counters: dict = {}

    def snapshot(self) -> dict:
        reader = self.reader
        if reader is not None:
            self.reader_counters = reader.counters()
        return {"kind": self.cfg.kind, "state": self.state, "reason": self.reason, "frames": self.frames,
                "seq": self.framer.seq, "restarts": self.restarts, "open_failures": self.open_failures,
                **self.reader_counters}

    def set_state(self, state: str, reason: str = "") -> None:
        """One log line per change of state, not per retry."""
        if state == self.state:
            return
        level = logging.WARNING if state in ("device_missing", "restarting") else logging.INFO
        log.log(level, f"source {state}" + (f": {reason}" if reason else ""),
                extra={"stream": self.cfg.stream, "source": self.describe, "state": state})
        self.state, self.reason = state, reason

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self._run_once():
                    self.set_state("ended", "end of source")
                    break
        finally:
            if self.state != "ended":
                self.set_state("stopped")
            self.emit(schemas.Close(stream=self.cfg.stream))

    def _run_once(self) -> bool:
        """Open, pump until the end (True) or a failure (False, after the back-off wait)."""
        reader = self.make_reader(self.cfg)
        try:
            reader.open()
        except SourceUnavailable as exc:
            self.open_failures += 1
            self.set_state("device_missing", str(exc))
            self.stopping.wait(self.backoff.next_delay())
            return False
        self.reader = reader
        try:
            self.emit(self._open_message())
            self.set_state("running")
            return self._pump(reader)
        except SourceLost as exc:
            self.restarts += 1
            self.set_state("restarting", str(exc))
            self.stopping.wait(self.backoff.next_delay())
            return False
        finally:
            self.reader_counters = reader.counters()
            self.reader = None
            reader.close()

    def _pump(self, reader: Reader) -> bool:
        converter = Converter(reader.rate, reader.channels, self.cfg.channel)
        got_audio = False
        while not self.stopping.is_set():
            data = reader.read()
            if data is None:
                self._send(self.framer.push(converter.convert(b"", last=True)) + self.framer.flush())
                return True
            if data:
                if not got_audio:
                    got_audio = True
                    self.backoff.reset()
                self._send(self.framer.push(converter.convert(data)))
        return False

    def _send(self, frames) -> None:
        now = time.time()
        for frame in frames:
            self.frames += 1
            self.emit(schemas.Audio(stream=self.cfg.stream, seq=frame.seq, offset=frame.offset, pcm=frame.pcm, ts=now))

    def _open_message(self) -> schemas.Open:
        return schemas.Open(stream=self.cfg.stream, language=self.cfg.language, task=self.cfg.task,
                            partials=self.cfg.partials, source=self.describe)
