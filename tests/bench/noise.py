"""Generated non-speech for the hallucination bench: 30 s chunks at 16 kHz, float32.

Twenty chunks (10 minutes): digital silence, dither, white and pink noise at
several levels, brown noise, mains hum with harmonics, clicks, and the room
noise between utterances of the real eval clips (low-energy stretches at least
0.4 s away from any loud frame, cut out and joined).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CHUNK_S = 30
CHUNK = CHUNK_S * SAMPLE_RATE


def _at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(signal.astype(np.float64) ** 2))) or 1.0
    return (signal * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def white(rng: np.random.Generator, dbfs: float) -> np.ndarray:
    return _at_dbfs(rng.standard_normal(CHUNK), dbfs)


def pink(rng: np.random.Generator, dbfs: float) -> np.ndarray:
    """1/f power: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(CHUNK))
    freqs = np.fft.rfftfreq(CHUNK, 1 / SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return _at_dbfs(np.fft.irfft(spectrum, CHUNK), dbfs)


def brown(rng: np.random.Generator, dbfs: float) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(CHUNK))
    walk -= np.convolve(walk, np.ones(1601) / 1601, mode="same")  # no DC drift
    return _at_dbfs(walk, dbfs)


def hum(rng: np.random.Generator, dbfs: float, mains_hz: float) -> np.ndarray:
    t = np.arange(CHUNK) / SAMPLE_RATE
    signal = sum(np.sin(2 * np.pi * mains_hz * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    return _at_dbfs(signal + 0.01 * rng.standard_normal(CHUNK), dbfs)


def clicks(rng: np.random.Generator, dbfs: float, per_second: float) -> np.ndarray:
    signal = 1e-4 * rng.standard_normal(CHUNK)
    positions = rng.integers(0, CHUNK - 64, size=int(per_second * CHUNK_S))
    for position in positions:
        signal[position : position + 64] += rng.uniform(-1, 1) * np.exp(-np.arange(64) / 8.0)
    peak = np.abs(signal).max()
    return (signal / peak * 10 ** (dbfs / 20)).astype(np.float32)


def between_utterances(clips: list[Path], load) -> np.ndarray:
    """Real room noise: frames far (≥ 0.4 s) from any frame within 30 dB of the clip's loudest."""
    pieces, total = [], 0
    frame = 160
    for path in clips:
        audio = load(path)
        n = len(audio) // frame
        energy = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
        loud = energy > energy.max() - 30
        near_loud = np.convolve(loud.astype(int), np.ones(81, int), mode="same") > 0  # ±0.4 s
        quiet_frames = np.flatnonzero(~near_loud)
        for run in np.split(quiet_frames, np.flatnonzero(np.diff(quiet_frames) != 1) + 1):
            if len(run) >= 20:  # at least 0.2 s
                piece = audio[run[0] * frame : (run[-1] + 1) * frame]
                pieces.append(piece)
                total += len(piece)
        if total >= CHUNK:
            break
    if not pieces:
        return np.zeros(CHUNK, np.float32)
    joined = np.concatenate(pieces)
    return np.resize(joined, CHUNK).astype(np.float32)  # repeats when the clips hold less than 30 s


def noise_chunks(clips: list[Path], load) -> Iterator[tuple[str, np.ndarray]]:
    """(name, 30 s of float32 audio) × 20."""
    rng = np.random.default_rng(2024)
    yield "silence", np.zeros(CHUNK, np.float32)
    yield "dither -90 dBFS", white(rng, -90)
    for level in (-70, -50, -35, -20):
        yield f"white {level} dBFS", white(rng, level)
    for level in (-60, -45, -30, -20):
        yield f"pink {level} dBFS", pink(rng, level)
    for level in (-45, -25):
        yield f"brown {level} dBFS", brown(rng, level)
    yield "hum 50 Hz -40 dBFS", hum(rng, -40, 50)
    yield "hum 60 Hz -25 dBFS", hum(rng, -25, 60)
    yield "clicks 2/s -20 dBFS", clicks(rng, -20, 2)
    yield "clicks 20/s -10 dBFS", clicks(rng, -10, 20)
    yield "pink -40 + hum 50 Hz -45", pink(rng, -40) + hum(rng, -45, 50)
    yield "white -45 + clicks 5/s -25", white(rng, -45) + clicks(rng, -25, 5)
    room = between_utterances(clips, load)
    yield "between utterances", room
    yield "between utterances +20 dB", np.clip(room * 10, -1, 1).astype(np.float32)
