"""One source, one thread: open its reader (retrying with back-off), convert, frame, emit messages.

The worker never touches a socket: it hands `open`, `audio` and `close` messages
to `emit` (the process loop publishes them from its own thread). Sequence numbers
and offsets run on across reconnects, so the stream keeps one timeline. While the
source runs its `open` is repeated every `open_every_s`, in order with the audio,
so a vad that (re)started or joined late learns the stream's options (vad ignores
an `open` equal to the one it holds). Any exception a source raises — expected
(SourceUnavailable, SourceLost) or not (a corrupt file, a device granting fewer
channels than `channel` needs) — ends in a back-off retry, never in a dead thread.
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
OPEN_EVERY_S = 5.0   # re-announce a running source's options this often
HEALTHY_S = 5.0      # the back-off restarts from its first step once audio has flowed this long


class SourceWorker(threading.Thread):
    """States: starting → running ⇄ device_missing / restarting / failing → ended | stopped.

    `failing` is an unexpected exception (logged with its traceback), retried like a lost source."""

    def __init__(self, cfg: SourceConfig, frame_ms: int, make_reader: Callable[[SourceConfig], Reader],
                 emit: Callable[[schemas.Message], None], stopping: threading.Event,
                 backoff: Backoff | None = None, describe: str = "", open_every_s: float = OPEN_EVERY_S):
        super().__init__(name=f"capture-{cfg.stream}", daemon=True)
        self.cfg = cfg
        self.make_reader = make_reader
        self.emit = emit
        self.stopping = stopping
        self.backoff = backoff or Backoff()
        self.describe = describe or cfg.kind
        self.open_every_s = open_every_s
        self.framer = Framer(frame_ms)
        self.state = "starting"
        self.reason = ""
        self.reader: Reader | None = None
        self.frames = 0
        self.restarts = 0
        self.open_failures = 0
        self.failures = 0      # unexpected exceptions
        self.opens_sent = 0
        self.reader_counters: dict = {}

    def snapshot(self) -> dict:
        reader = self.reader
        if reader is not None:
            self.reader_counters = reader.counters()
        return {"kind": self.cfg.kind, "state": self.state, "reason": self.reason, "frames": self.frames,
                "seq": self.framer.seq, "restarts": self.restarts, "open_failures": self.open_failures,
                "failures": self.failures, "opens_sent": self.opens_sent, **self.reader_counters}

    def set_state(self, state: str, reason: str = "") -> None:
        """One log line per change of state, not per retry."""
        if state == self.state:
            return
        level = {"device_missing": logging.WARNING, "restarting": logging.WARNING,
                 "failing": logging.ERROR}.get(state, logging.INFO)
        log.log(level, f"source {state}" + (f": {reason}" if reason else ""),
                extra={"stream": self.cfg.stream, "source": self.describe, "state": state})
        self.state, self.reason = state, reason

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    if self._run_once():
                        self.set_state("ended", "end of source")
                        break
                except Exception as exc:  # whatever a source library raises: retry, never a silent dead thread
                    self._failed(exc)
        finally:
            if self.state != "ended":
                self.set_state("stopped")
            self.emit(schemas.Close(stream=self.cfg.stream))

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.exception("source failed unexpectedly: retrying after back-off",
                      extra={"stream": self.cfg.stream, "source": self.describe, "failures": self.failures})
        self.set_state("failing", f"{type(exc).__name__}: {exc}")
        self.stopping.wait(self.backoff.next_delay())

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
            self.reader = None
            self._close(reader)

    def _close(self, reader: Reader) -> None:
        try:
            self.reader_counters = reader.counters()
            reader.close()
        except Exception:  # closing a broken source may fail too; it is being dropped either way
            log.exception("closing the source failed", extra={"stream": self.cfg.stream, "source": self.describe})

    def _pump(self, reader: Reader) -> bool:
        converter = Converter(reader.rate, reader.channels, self.cfg.channel)
        healthy_at = time.monotonic() + HEALTHY_S
        next_open = time.monotonic() + self.open_every_s
        while not self.stopping.is_set():
            data = reader.read()
            if data is None:
                self._send(self.framer.push(converter.convert(b"", last=True)) + self.framer.flush())
                return True
            if data:
                self._send(self.framer.push(converter.convert(data)))
            now = time.monotonic()
            if healthy_at and now >= healthy_at and data:
                healthy_at = 0.0  # only once: a source failing every second still backs off
                self.backoff.reset()
            if now >= next_open:
                next_open = now + self.open_every_s
                self.emit(self._open_message())
        return False

    def _send(self, frames) -> None:
        now = time.time()
        for frame in frames:
            self.frames += 1
            self.emit(schemas.Audio(stream=self.cfg.stream, seq=frame.seq, offset=frame.offset, pcm=frame.pcm, ts=now))

    def _open_message(self) -> schemas.Open:
        self.opens_sent += 1
        return schemas.Open(stream=self.cfg.stream, language=self.cfg.language, task=self.cfg.task,
                            partials=self.cfg.partials, source=self.describe, model=self.cfg.model)
