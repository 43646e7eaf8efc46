"""Speech regions of a recording (webrtcvad per 30 ms frame, gaps bridged, blips dropped).

The speaker stage finds a file job's regions itself with vad's detector (webrtcvad), so the
gateway sends it one job and never waits for vad's cut; the settings are the stage's own.
"""
from __future__ import annotations

import numpy as np
import webrtcvad

from speaker.encoder.mel import SAMPLE_RATE

FRAME = SAMPLE_RATE * 30 // 1000  # webrtcvad's 30 ms frame


def speech_regions(pcm16: np.ndarray, aggressiveness: int = 2, bridge_s: float = 0.3,
                   min_speech_s: float = 0.2) -> list[tuple[float, float]]:
    """[(start, end)] seconds of speech in int16 16 kHz mono audio."""
    detector = webrtcvad.Vad(aggressiveness)
    samples = np.asarray(pcm16, dtype="<i2")
    flags = [detector.is_speech(samples[i * FRAME:(i + 1) * FRAME].tobytes(), SAMPLE_RATE)
             for i in range(len(samples) // FRAME)]  # a frame at a time: no copy of the whole recording
    return regions_from_flags(flags, FRAME / SAMPLE_RATE, bridge_s, min_speech_s)


def regions_from_flags(flags, frame_s: float, bridge_s: float = 0.3,
                       min_speech_s: float = 0.2) -> list[tuple[float, float]]:
    """Runs of True, joined across gaps up to ``bridge_s``, dropped if shorter than ``min_speech_s``."""
    runs: list[list[float]] = []
    for i, voiced in enumerate(flags):
        if not voiced:
            continue
        start = i * frame_s
        if runs and start - runs[-1][1] <= bridge_s + 1e-9:
            runs[-1][1] = start + frame_s
        else:
            runs.append([start, start + frame_s])
    return [(round(a, 3), round(b, 3)) for a, b in runs if b - a >= min_speech_s - 1e-9]
