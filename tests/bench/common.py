"""Shared bench helpers: the eval clips, a table printer, JSON results, peak RSS."""
from __future__ import annotations

import csv
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EVAL_DIR = Path(os.environ.get("VOXBUS_EVAL_DIR", Path(__file__).resolve().parents[3] / "shared" / "eval"))
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A bench's --models key -> (the builder's source, the int8 model's directory name)
INT8_MODELS = {"tiny": ("tiny", "tiny.en-int8"), "base": ("base", "base-int8")}


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path
    duration: float
    transcript: str


def eval_available() -> bool:
    return (EVAL_DIR / "MANIFEST.tsv").is_file()


def load_manifest(name: str = "MANIFEST.tsv") -> list[Clip]:
    if not eval_available():
        raise SystemExit(f"bench: {EVAL_DIR} is absent; the benchmarks need ../shared/eval")
    with open(EVAL_DIR / name, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [Clip(r["id"], EVAL_DIR / r["path"], float(r["duration_s"]), r["transcript"]) for r in rows]


def load_audio_16k(path: Path) -> np.ndarray:
    """Float32 16 kHz mono; headerless .raw files are s16le 16 kHz (the pocketsphinx sample)."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
    import soundfile
    import soxr
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def speech_span(audio: np.ndarray, floor_db: float = -35.0) -> tuple[int, int]:
    """First and last sample of 10 ms frames within `floor_db` of the clip's loudest frame."""
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() + floor_db)
    return int(loud[0] * 160), int((loud[-1] + 1) * 160)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). ru_maxrss is wrong in a child: Linux starts it at the
    parent's RSS at fork and keeps it across exec."""
    try:
        status = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        status = []
    hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    return int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def print_table(title: str, rows: list[dict], out=sys.stdout) -> None:
    if not rows:
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out.write(f"\n{title}\n")
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths)) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "\n")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)


def write_json(name: str, data) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def int8_model(key: str, models_dir: str | None, threads: int = 1, draft_encoder: bool = False):
    """The WhisperModel of an INT8_MODELS key, built (or reused) under `models_dir` (None: run.models_dir)."""
    from asr.build.builder import ensure_model
    from asr.whisper.engine import WhisperModel
    from tests.bench.asr_bench import models_root

    source, name = INT8_MODELS[key]
    return WhisperModel(ensure_model(source, models_root(models_dir) / name, "int8"), threads=threads,
                        draft_encoder=draft_encoder)
