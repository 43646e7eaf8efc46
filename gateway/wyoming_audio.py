"""Wyoming audio (any rate, 1-4 byte samples, any channel count) → mono int16 at its own rate.

The rate is left to ws_protocol's PcmConverter (soxr, the same resampler as /stream),
so this only picks the sample width apart and averages the channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bus import pcm as pcm_format
from gateway.ws_protocol import MAX_RATE, MIN_RATE

MAX_CHANNELS = 32


class AudioFormatError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int      # bytes per sample: 1 (unsigned 8-bit), 2, 3 or 4 (signed little-endian)
    channels: int

    @classmethod
    def from_data(cls, event: str, data: Mapping[str, Any]) -> "AudioFormat":
        """rate/width/channels of an audio-start or audio-chunk; AudioFormatError names a bad one."""
        limits = {"rate": (MIN_RATE, MAX_RATE), "width": (1, 4), "channels": (1, MAX_CHANNELS)}
        values = {}
        for key, (low, high) in limits.items():
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise AudioFormatError("bad_audio_format", f"{event} {key} {value!r}: expected a whole number "
                                                           f"from {low} to {high}")
            values[key] = value
        return cls(**values)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def to_mono_int16(pcm: bytes, fmt: AudioFormat) -> bytes:
    """Little-endian PCM in `fmt` → mono int16 bytes at fmt.rate (channels averaged)."""
    if len(pcm) % fmt.frame_bytes:
        raise AudioFormatError("bad_frame", f"audio-chunk payload of {len(pcm)} bytes is not a whole number of "
                                            f"frames ({fmt.width} byte(s) × {fmt.channels} channel(s))")
    if fmt.width == 2 and fmt.channels == 1:
        return pcm
    samples = _as_float(pcm, fmt.width)
    if fmt.channels > 1:
        samples = samples.reshape(-1, fmt.channels).mean(axis=1)
    return pcm_format.to_pcm(samples)


def _as_float(pcm: bytes, width: int) -> np.ndarray:
    """Samples scaled to -1..1 (float64, exact for every width)."""
    if width == 1:
        return (np.frombuffer(pcm, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return pcm_format.to_float(pcm).astype(np.float64)
    if width == 4:
        return np.frombuffer(pcm, "<i4").astype(np.float64) / 2147483648.0
    raw = np.frombuffer(pcm, np.uint8).reshape(-1, 3).astype(np.int32)
    value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    value = np.where(value >= 1 << 23, value - (1 << 24), value)
    return value.astype(np.float64) / 8388608.0
