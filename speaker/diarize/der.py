"""Diarization error rate, NIST md-eval style, on a 10 ms grid.

DER = (missed + false alarm + confusion) / reference speech, every overlapping speaker
counted (overlap scored). A collar around each reference turn's start and end is not
scored. Hypothesis speakers are mapped one-to-one onto reference speakers so that their
matched time is largest (exhaustively for up to 7 speakers, greedily beyond).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from speaker.diarize.turns import Turn

STEP = 0.01  # seconds per scoring frame
EXHAUSTIVE_UP_TO = 7


@dataclass(frozen=True)
class DerResult:
    der: float
    missed: float  # seconds
    false_alarm: float
    confusion: float
    scored_speech: float
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker

    def as_dict(self) -> dict:
        return {"der": self.der, "missed_s": self.missed, "false_alarm_s": self.false_alarm,
                "confusion_s": self.confusion, "scored_speech_s": self.scored_speech}


def _activity(turns: list[Turn], n_frames: int) -> tuple[list[str], np.ndarray]:
    speakers = sorted({t.speaker for t in turns})
    grid = np.zeros((len(speakers), n_frames), bool)
    for t in turns:
        grid[speakers.index(t.speaker), int(round(t.start / STEP)):int(round(t.end / STEP))] = True
    return speakers, grid


def _best_mapping(overlap: np.ndarray) -> list[tuple[int, int]]:
    """(hyp, ref) index pairs maximising the summed overlap."""
    n_hyp, n_ref = overlap.shape
    if min(n_hyp, n_ref) == 0:
        return []
    if max(n_hyp, n_ref) <= EXHAUSTIVE_UP_TO:
        best, best_pairs = -1.0, []
        if n_hyp <= n_ref:
            for refs in itertools.permutations(range(n_ref), n_hyp):
                pairs = list(enumerate(refs))
                score = sum(overlap[h, r] for h, r in pairs)
                if score > best:
                    best, best_pairs = score, pairs
        else:
            for hyps in itertools.permutations(range(n_hyp), n_ref):
                pairs = [(h, r) for r, h in enumerate(hyps)]
                score = sum(overlap[h, r] for h, r in pairs)
                if score > best:
                    best, best_pairs = score, pairs
        return best_pairs
    pairs, left = [], overlap.astype(float).copy()
    for _ in range(min(n_hyp, n_ref)):
        h, r = np.unravel_index(np.argmax(left), left.shape)
        pairs.append((int(h), int(r)))
        left[h, :], left[:, r] = -1, -1
    return pairs


def diarization_error(reference: list[Turn], hypothesis: list[Turn], collar: float = 0.25) -> DerResult:
    end = max([t.end for t in reference + hypothesis] + [0.0])
    n_frames = int(np.ceil(end / STEP)) + 1
    ref_names, ref = _activity(reference, n_frames)
    hyp_names, hyp = _activity(hypothesis, n_frames)
    scored = np.ones(n_frames, bool)
    margin = int(round(collar / STEP))
    for t in reference:
        for edge in (int(round(t.start / STEP)), int(round(t.end / STEP))):
            scored[max(0, edge - margin):edge + margin] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    overlap = hyp.astype(np.int64) @ ref.T.astype(np.int64)
    pairs = _best_mapping(overlap)
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    correct = np.zeros(ref.shape[1], np.int64)
    for h, r in pairs:
        correct += hyp[h] & ref[r]
    missed = np.maximum(0, n_ref - n_hyp).sum() * STEP
    false_alarm = np.maximum(0, n_hyp - n_ref).sum() * STEP
    confusion = (np.minimum(n_ref, n_hyp) - correct).sum() * STEP
    total = n_ref.sum() * STEP
    der = (missed + false_alarm + confusion) / total if total else float(missed + false_alarm + confusion > 0)
    return DerResult(float(der), float(missed), float(false_alarm), float(confusion), float(total),
                     {hyp_names[h]: ref_names[r] for h, r in pairs})
