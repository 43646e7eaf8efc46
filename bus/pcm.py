"""The audio format on the bus, in one place: 16 kHz mono little-endian int16 (ARCHITECTURE.md §4).

Every stage converts between bus PCM and float samples with these functions, so the
int16 scale is the same everywhere: float = int16 / 32768, and back with rounding and
clipping to the int16 range (a float of exactly 1.0 becomes 32767).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
BYTES_PER_SAMPLE = 2
DTYPE = "<i2"
INT16_SCALE = 32768.0


def samples(pcm: bytes) -> int:
    """How many samples `pcm` holds; ValueError for a ragged byte count."""
    if len(pcm) % BYTES_PER_SAMPLE:
        raise ValueError(f"PCM has an odd number of bytes ({len(pcm)}); expected int16 samples")
    return len(pcm) // BYTES_PER_SAMPLE


def seconds(pcm: bytes) -> float:
    return samples(pcm) / SAMPLE_RATE


def to_float(pcm: bytes | np.ndarray) -> np.ndarray:
    """int16 PCM (bytes or an int16 array) → float32 in [-1, 1)."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        samples(pcm)
        pcm = np.frombuffer(pcm, dtype=DTYPE)
    return pcm.astype(np.float32) / INT16_SCALE


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float samples → int16 array, rounded and clipped (NaN becomes 0)."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round(audio * INT16_SCALE), -32768, 32767).astype(DTYPE)


def to_pcm(audio: np.ndarray) -> bytes:
    """float samples → bus PCM bytes."""
    return to_int16(audio).tobytes()
