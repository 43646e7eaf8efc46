"""Helpers the gateway tests share: test audio and polling waits."""
from __future__ import annotations

import io
import time

import numpy as np
import soundfile


def tone(seconds: float, rate: int = 16000, encoding: str = "f32") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t)
    return wave.astype("<f4").tobytes() if encoding == "f32" else (wave * 32767).astype("<i2").tobytes()


def until(predicate, timeout: float = 15.0):
    """Poll `predicate` until it holds (True) or `timeout` runs out (False); generous for a busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def wav_bytes(seconds: float = 5.0, rate: int = 16000) -> bytes:
    """A tone: the scripted peer answers by length, not content."""
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, 0.3 * np.sin(2 * np.pi * 300 * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


WAV = wav_bytes()
