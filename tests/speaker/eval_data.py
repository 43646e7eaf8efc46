"""The diarization eval clips (../shared/eval/DIARIZATION.tsv): audio and the human RTTM, read in place."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speaker.diarize.turns import Turn, parse_rttm
from tests.bench.common import EVAL_DIR, load_audio_16k

INDEX = EVAL_DIR / "DIARIZATION.tsv"
PRIMARY = "pyannote-sample"


@dataclass(frozen=True)
class DiarClip:
    id: str
    audio: str  # relative to EVAL_DIR
    rttm: str
    duration: float

    def wav_path(self) -> Path:
        return EVAL_DIR / self.audio

    def load_audio(self) -> np.ndarray:
        return load_audio_16k(self.wav_path())  # stereo is averaged to mono

    def reference(self) -> list[Turn]:
        return parse_rttm((EVAL_DIR / self.rttm).read_text(), uri=Path(self.audio).stem)

    def n_speakers(self) -> int:
        return len({t.speaker for t in self.reference()})


def diarization_available() -> bool:
    return INDEX.is_file()


def diarization_clips() -> list[DiarClip]:
    with open(INDEX, newline="") as handle:
        return [DiarClip(row["id"], row["audio"], row["rttm"], float(row["duration_s"]))
                for row in csv.DictReader(handle, delimiter="\t")]


def clean_speech(reference, speaker: str, end_s: float, min_run_s: float = 0.5) -> list[tuple[float, float]]:
    """Runs (≥ min_run_s) before end_s where only `speaker` speaks, by the RTTM."""
    n = int(end_s * 100)
    mine, others = np.zeros(n, bool), np.zeros(n, bool)
    for turn in reference:
        first, last = int(turn.start * 100), min(n, int(turn.end * 100))
        (mine if turn.speaker == speaker else others)[first:max(first, last)] = True
    alone = np.concatenate([[False], mine & ~others, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(alone))
    return [(a / 100, b / 100) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_run_s * 100]
