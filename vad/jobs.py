"""File jobs: cut a whole recording at silences into pieces no longer than `max_segment_s`.

Greedy from the start: skip leading silence (keeping a short pad), then take the
rest if it fits, else cut in the last `lookback_s` before the limit at the middle
of the longest unvoiced run there (the latest on a tie), so a pause is used
whenever one exists; only with no unvoiced frame at all does it cut at the
quietest frame. Pieces without a single voiced frame are left out, unless the
whole file is silent (then its first piece is kept so the job still has an answer).
"""
from __future__ import annotations

from dataclasses import dataclass

from vad.detector import BYTES_PER_SAMPLE, VoiceDetector

MIN_VOICED_RUN_MS = 150


@dataclass(frozen=True)
class JobPiece:
    offset: int  # first sample in the job's audio
    pcm: bytes
    voiced: bytes = b""  # one byte per frame: 1 where speech was heard (short blips dropped)


@dataclass(frozen=True)
class _Frames:
    voiced: list[bool]
    levels: list[float]


def classify_all(pcm: bytes, detector: VoiceDetector) -> _Frames:
    """Voiced flag and level of every whole frame (a short tail counts as unvoiced)."""
    size = detector.frame_bytes
    voiced, levels = [], []
    for start in range(0, len(pcm) - size + 1, size):
        is_voiced, level = detector.classify(pcm[start:start + size])
        voiced.append(is_voiced)
        levels.append(level)
    if len(pcm) % size:
        voiced.append(False)
        levels.append(-100.0)
    return _Frames(drop_short_runs(voiced, MIN_VOICED_RUN_MS // detector.frame_ms), levels)


def drop_short_runs(voiced: list[bool], min_run: int) -> list[bool]:
    """Voiced runs shorter than `min_run` frames count as unvoiced: webrtcvad fires on its
    first frames while its noise estimate settles, and on clicks."""
    out = list(voiced)
    start = None
    for i, flag in enumerate(voiced + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start < min_run:
                out[start:i] = [False] * (i - start)
            start = None
    return out


def cut_job(pcm: bytes, detector: VoiceDetector, max_segment_s: float = 30.0,
            lookback_s: float = 5.0, pad_ms: int = 300) -> list[JobPiece]:
    """Cut 16 kHz mono int16 PCM into pieces ≤ max_segment_s, at pauses where they exist."""
    if len(pcm) % BYTES_PER_SAMPLE:
        raise ValueError(f"job PCM of {len(pcm)} bytes is not whole int16 samples")
    if not pcm:
        return []
    frames = classify_all(pcm, detector)
    n = len(frames.voiced)
    max_frames = max(1, int(max_segment_s * 1000 // detector.frame_ms))
    look = min(max_frames - 1, max(1, int(lookback_s * 1000 // detector.frame_ms)))
    pad = pad_ms // detector.frame_ms
    cuts: list[tuple[int, int]] = []
    pos = 0
    while pos < n:
        first_voiced = next((i for i in range(pos, n) if frames.voiced[i]), None)
        if first_voiced is None:
            break
        pos = max(pos, first_voiced - pad)
        if n - pos <= max_frames:
            cuts.append((pos, n))
            break
        cut = _cut_point(frames, pos + max_frames - look, pos + max_frames)
        cuts.append((pos, cut))
        pos = cut
    if not cuts:  # a silent file: one piece, so the job still gets its (empty) answer
        cuts = [(0, min(n, max_frames))]
    step = detector.frame_bytes
    return [JobPiece(a * detector.frame_samples, pcm[a * step:b * step], bytes(frames.voiced[a:b])) for a, b in cuts]


def _cut_point(frames: _Frames, lo: int, hi: int) -> int:
    """Frame index to cut before: middle of the longest unvoiced run in [lo, hi), else the quietest frame."""
    best_len, best_mid = 0, None
    run_start = None
    for i in range(lo, hi + 1):
        unvoiced = i < hi and not frames.voiced[i]
        if unvoiced and run_start is None:
            run_start = i
        elif not unvoiced and run_start is not None:
            if i - run_start >= best_len:
                best_len, best_mid = i - run_start, (run_start + i) // 2
            run_start = None
    if best_mid is not None:
        return best_mid
    return min(range(lo, hi), key=lambda i: (frames.levels[i], -i))
