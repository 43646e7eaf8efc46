"""Encoder cost by audio length: ms per encode for 1, 3, 5, 10, 20, 30 s of audio beside the 30 s window.

    .venv/bin/python -m tests.bench encoder_cost -- [--models tiny,base] [--threads 1,2] [--reps 5]
        [--lengths 1,3,5,10,20,30] [--rule 10/1] [--models-dir DIR]

Calls the engine's own encoder: `WhisperModel(model_dir, threads=N).sessions.encode(mel)`,
mel float32 [1, n_mels, frames]. For each length three frame counts are timed:
- `rule`: the model's window rule: `model.window_frames(samples)` when the engine has it,
  else the manifest's `encoder_window` (max(floor_s, audio + pad_s), ≤ 30 s), else `--rule`
  FLOOR/PAD (the `rule source` column says which);
- `exact`: 2 × ceil(audio s × 50) frames, the audio alone (the cost curve without a floor);
- 30 s: 3000 frames, what every encode costs today.
A graph that refuses a length (a fixed 3000-frame input) is timed at 3000 frames instead and
the row says `fallback`. The encoder's cost depends only on its frame count, so the mel is
noise; counts are timed round-robin (one encode of each per round, median of `--reps`
rounds after one warm-up), so drift on a shared machine falls on all alike.
Results: a table on stdout and tests/bench/results/encoder_cost_bench.json.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import print_table, write_json  # noqa: E402

MODELS = {"tiny": "tiny.en-int8", "base": "base-int8"}
FULL_FRAMES = 3000       # the 30 s window: 100 mel frames a second
FRAMES_PER_S = 100
MAX_WINDOW_S = 30.0


def rule_frames(model, samples: int, fallback_rule: tuple[float, float]) -> tuple[int, str]:
    """Frames of the encoder window for `samples` of audio by the model's rule, and where the rule came from."""
    window_frames = getattr(model, "window_frames", None)
    if callable(window_frames):
        return int(window_frames(samples)), "engine window_frames()"
    manifest_rule = getattr(model.manifest, "encoder_window", None)
    if manifest_rule is not None:
        floor_s, pad_s, source = float(manifest_rule.floor_s), float(manifest_rule.pad_s), "manifest encoder_window"
    else:
        (floor_s, pad_s), source = fallback_rule, "--rule (engine has none)"
    window_s = min(MAX_WINDOW_S, max(floor_s, samples / 16000 + pad_s))
    return 2 * math.ceil(window_s * FRAMES_PER_S / 2), source


def exact_frames(seconds: float) -> int:
    return min(FULL_FRAMES, 2 * math.ceil(seconds * FRAMES_PER_S / 2))


def encode_errors() -> tuple[type[BaseException], ...]:
    """What onnxruntime (or the engine's own check) raises for an input length the graph refuses."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException
    return ValueError, Fail, InvalidArgument, RuntimeException


def accepted_frames(model, n_mels: int, frames: int) -> tuple[int, bool]:
    """`frames` if the encoder takes that length, else FULL_FRAMES; and whether it fell back."""
    if frames == FULL_FRAMES:
        return frames, False
    try:
        model.sessions.encode(noise_mel(n_mels, frames))
    except encode_errors():
        return FULL_FRAMES, True
    return frames, False


def noise_mel(n_mels: int, frames: int) -> np.ndarray:
    return np.random.default_rng(frames).normal(0, 0.5, (1, n_mels, frames)).astype(np.float32)


def time_counts(model, n_mels: int, counts: list[int], reps: int) -> dict[int, float]:
    """Median ms per encode of each frame count, round-robin over `reps` rounds after a warm-up."""
    mels = {n: noise_mel(n_mels, n) for n in counts}
    for n in counts:
        model.sessions.encode(mels[n])
    times: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(reps):
        for n in counts:
            started = time.perf_counter()
            model.sessions.encode(mels[n])
            times[n].append((time.perf_counter() - started) * 1000)
    return {n: round(statistics.median(t), 1) for n, t in times.items()}


def bench_setup(model_dir: Path, name: str, threads: int, lengths: list[float], reps: int,
                fallback_rule: tuple[float, float]) -> list[dict]:
    from asr.whisper.engine import WhisperModel

    model = WhisperModel(model_dir, threads=threads)
    n_mels = model.dims["n_mels"]
    plan = {}
    for seconds in lengths:
        wanted_rule, source = rule_frames(model, int(seconds * 16000), fallback_rule)
        rule, rule_fell = accepted_frames(model, n_mels, wanted_rule)
        exact, exact_fell = accepted_frames(model, n_mels, exact_frames(seconds))
        plan[seconds] = (wanted_rule, rule, rule_fell, exact, exact_fell, source)
    counts = sorted({FULL_FRAMES} | {p[1] for p in plan.values()} | {p[3] for p in plan.values()})
    ms = time_counts(model, n_mels, counts, reps)
    rows = []
    for seconds, (wanted_rule, rule, rule_fell, exact, exact_fell, source) in plan.items():
        rows.append({"model": name, "threads": threads, "audio_s": seconds,
                     "rule_window_s": wanted_rule / FRAMES_PER_S, "rule_ms": ms[rule],
                     "exact_ms": ms[exact], "window30_ms": ms[FULL_FRAMES],
                     "30s/rule": round(ms[FULL_FRAMES] / ms[rule], 2),
                     "fallback": ", ".join(k for k, fell in (("rule", rule_fell), ("exact", exact_fell)) if fell),
                     "rule source": source})
    return rows


def parse_rule(text: str) -> tuple[float, float]:
    try:
        floor_s, pad_s = (float(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rule {text!r}: expected FLOOR/PAD seconds, e.g. 10/1") from None
    return floor_s, pad_s


def comma_list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list") from None
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="encoder_cost_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=comma_list(str), default=["tiny", "base"])
    parser.add_argument("--threads", type=comma_list(int), default=[1, 2])
    parser.add_argument("--lengths", type=comma_list(float), default=[1, 3, 5, 10, 20, 30])
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (median), ≥ 5 for the README")
    parser.add_argument("--rule", type=parse_rule, default=(10.0, 1.0),
                        help="FLOOR/PAD s, used only when neither engine nor manifest has a window rule")
    parser.add_argument("--models-dir", help="where voxbus models are built/reused (default: run.models_dir)")
    parser.add_argument("--out", default="encoder_cost_bench")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from tests.bench.asr_bench import models_root, voxbus_model

    root = models_root(args.models_dir)
    load_before = os.getloadavg()
    from tests.bench.live_rounds import code_version
    code = code_version()
    rows = []
    for key in args.models:
        model_dir = voxbus_model(root, key, "int8")
        for threads in args.threads:
            rows += bench_setup(model_dir, MODELS[key], threads, args.lengths, args.reps, args.rule)
            sys.stderr.write(f"encoder_cost: {MODELS[key]} {threads} thread(s) done\n")
    print_table(f"encoder ms per encode by audio length (median of {args.reps})", rows)
    path = write_json(args.out, {"reps": args.reps, "fallback_rule": list(args.rule), "rows": rows, "code": code,
                                 "load_avg_before": load_before, "load_avg_after": os.getloadavg()})
    sys.stdout.write(f"\nwritten {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
