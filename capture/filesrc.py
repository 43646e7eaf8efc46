"""A WAV/FLAC file as a source, paced at real time (a stand-in microphone) or as fast as possible."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import soundfile

from bus.pcm import SAMPLE_RATE
from capture.base import SourceUnavailable
from config.schema import SourceConfig

BLOCK_S = 0.1


class FileReader:
    def __init__(self, cfg: SourceConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg = cfg
        self.rate = SAMPLE_RATE
        self.channels = 1
        self._clock = clock
        self._sleep = sleep
        self._file: soundfile.SoundFile | None = None
        self._started = 0.0
        self._frames_read = 0

    def open(self) -> None:
        try:
            self._file = soundfile.SoundFile(self.cfg.path)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            raise SourceUnavailable(f"cannot read audio file {self.cfg.path!r}: {exc}") from None
        self.rate = self._file.samplerate
        self.channels = self._file.channels
        self._started = self._clock()
        self._frames_read = 0

    def read(self) -> bytes | None:
        block = self._file.read(max(1, int(self.rate * BLOCK_S)), dtype="int16", always_2d=True)
        if len(block) == 0:
            return None
        if self.cfg.realtime:
            # Sleep until this block would have been captured live.
            due = self._started + self._frames_read / self.rate
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._frames_read += len(block)
        return np.ascontiguousarray(block).astype("<i2").tobytes()

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def counters(self) -> dict:
        return {"seconds_read": round(self._frames_read / self.rate, 3) if self.rate else 0}
