"""Any interleaved int16 PCM → 16 kHz mono int16: channel pick or downmix, then soxr.

Chunks may arrive split anywhere (a pipe read can end mid-sample); the bytes of
an incomplete sample frame are carried over to the next call.
"""
from __future__ import annotations

import numpy as np
import soxr

from bus import pcm as pcm_format
from bus.pcm import SAMPLE_RATE as TARGET_RATE


class Converter:
    def __init__(self, rate: int, channels: int = 1, channel: int = -1, quality: str = "HQ"):
        if rate <= 0 or channels <= 0:
            raise ValueError(f"bad input format: {rate} Hz, {channels} channel(s)")
        if channel >= channels:
            raise ValueError(f"channel {channel} picked but the input has only {channels} channel(s) (0-based)")
        self.rate = rate
        self.channels = channels
        self.channel = channel
        self.frame_bytes = 2 * channels
        self._carry = b""
        self._stream = None if rate == TARGET_RATE else soxr.ResampleStream(rate, TARGET_RATE, 1, dtype="float32",
                                                                            quality=quality)

    def convert(self, pcm: bytes, last: bool = False) -> bytes:
        """Convert a chunk; `last=True` also drains the resampler's delay line."""
        data = self._carry + pcm
        usable = len(data) - len(data) % self.frame_bytes
        self._carry = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, self.channels)
        if self.channels == 1:
            mono = samples[:, 0]
        elif self.channel >= 0:
            mono = samples[:, self.channel]
        else:
            mono = samples.mean(axis=1, dtype=np.float32)
        if self._stream is None:
            return mono.astype("<i2").tobytes()
        return pcm_format.to_pcm(self._stream.resample_chunk(pcm_format.to_float(mono), last=last))
