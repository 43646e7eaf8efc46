"""Level meter and scrolling waveform from int16 chunks (what the live screen draws)."""
from __future__ import annotations

from collections import deque

import numpy as np

from bus import pcm as pcm_format

FLOOR_DB = -60.0


def level_db(pcm: bytes) -> float:
    """RMS of a chunk in dBFS, at least FLOOR_DB (silence and empty chunks)."""
    samples = pcm_format.to_float(pcm[: len(pcm) // 2 * 2])
    if samples.size == 0:
        return FLOOR_DB
    rms = float(np.sqrt(np.mean(samples ** 2)))
    return max(FLOOR_DB, 20 * np.log10(rms)) if rms > 0 else FLOOR_DB


class Waveform:
    """The last `columns` peaks (0..1), one per `samples_per_column` samples, oldest first."""

    def __init__(self, columns: int = 200, samples_per_column: int = 800):
        self.samples_per_column = samples_per_column
        self.peaks: deque[float] = deque([0.0] * columns, maxlen=columns)
        self._pending = np.zeros(0, np.int16)

    def add(self, pcm: bytes) -> None:
        chunk = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2")
        data = np.concatenate([self._pending, chunk])
        whole = data.size // self.samples_per_column
        if whole:
            columns = data[: whole * self.samples_per_column].reshape(whole, self.samples_per_column)
            self.peaks.extend((np.abs(columns.astype(np.int32)).max(axis=1) / pcm_format.INT16_SCALE).tolist())
        self._pending = data[whole * self.samples_per_column:]

    def values(self) -> list[float]:
        return list(self.peaks)
