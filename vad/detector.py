"""Frame classifier: webrtcvad's voiced/unvoiced decision plus the frame's level in dBFS."""
from __future__ import annotations

import math

import numpy as np
import webrtcvad

from bus.pcm import BYTES_PER_SAMPLE, SAMPLE_RATE, to_float  # noqa: F401  (re-exported for vad's modules)
SILENCE_DBFS = -100.0  # level reported for digital silence (log of zero)


def frame_dbfs(frame: bytes) -> float:
    """RMS level of int16 PCM relative to full scale; -100 for digital silence."""
    samples = to_float(frame)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.dot(samples, samples)) / samples.size)
    return max(SILENCE_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class VoiceDetector:
    """Classifies fixed-size frames of 16 kHz mono int16 PCM.

    The optional energy gate marks frames quieter than `energy_gate_dbfs` as
    unvoiced whatever webrtcvad says: on steady loud noise webrtcvad fires on
    almost everything, and a level floor is the cheapest cure.
    """

    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30, energy_gate_dbfs: float = -100.0):
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"vad frame_ms = {frame_ms}: webrtcvad takes 10, 20 or 30 ms frames")
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"vad aggressiveness = {aggressiveness}: expected 0..3")
        self.frame_ms = frame_ms
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self.frame_bytes = self.frame_samples * BYTES_PER_SAMPLE
        self.energy_gate_dbfs = energy_gate_dbfs
        self._vad = webrtcvad.Vad(aggressiveness)

    def classify(self, frame: bytes) -> tuple[bool, float]:
        """(voiced, level in dBFS) of one frame of exactly `frame_bytes`."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame is {len(frame)} bytes, expected {self.frame_bytes}")
        level = frame_dbfs(frame)
        if level < self.energy_gate_dbfs:
            return False, level
        return self._vad.is_speech(frame, SAMPLE_RATE), level
