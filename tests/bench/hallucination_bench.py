"""Hallucination bench: words emitted on 10 minutes of generated non-speech.

    .venv/bin/python -m tests.bench.hallucination_bench [--models tiny,base] [--models-dir DIR] [--check]

Twenty 30 s chunks (tests/bench/noise.py) go straight to
`WhisperModel.transcribe_segment` (no vad stage), with voxbus's defaults
(greedy, temperature fallback, all guards on) and, for comparison, with the
guards off (Whisper's own rules only: min_voiced_ms=0, repetition_guard and
strict_no_speech off). Per chunk: webrtcvad voiced ms, words emitted both ways.
Writes tests/bench/results/hallucination_bench.json; --check exits 1 when any
word is emitted with the guards on.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from asr.whisper.speech_guard import voiced_ms
from tests.bench.common import load_audio_16k, load_manifest, print_table, write_json
from tests.bench.noise import noise_chunks

MODELS = {"tiny": "tiny.en-int8", "base": "base-int8"}
GUARDS_OFF = dict(min_voiced_ms=0, repetition_guard=False, strict_no_speech=False)


def count_words(text: str) -> int:
    return sum(1 for word in text.split() if any(c.isalnum() for c in word))


def bench_model(model_dir: Path, chunks: list) -> list[dict]:
    from asr.whisper.engine import WhisperModel
    from asr.build.builder import ensure_model

    name = model_dir.name.split("-")[0]
    ensure_model("tiny" if name == "tiny.en" else name, model_dir, "int8")
    model = WhisperModel(model_dir, threads=2)
    rows = []
    for label, audio in chunks:
        started = time.perf_counter()
        guarded = model.transcribe_segment(audio)
        guarded_s = time.perf_counter() - started
        raw = model.transcribe_segment(audio, **GUARDS_OFF)
        rows.append({"model": model_dir.name, "noise": label, "voiced ms": voiced_ms(audio),
                     "words": count_words(guarded.text), "words guards off": count_words(raw.text),
                     "text guards off": raw.text[:60], "guarded s": round(guarded_s, 2)})
        print(f"  {model_dir.name} {label}: {rows[-1]['words']} words ({rows[-1]['words guards off']} without guards)",
              file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hallucination_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        parser.error(f"--models: unknown {', '.join(sorted(unknown))} (known: {', '.join(MODELS)})")
    clips = [clip.path for clip in load_manifest()]
    chunks = list(noise_chunks(clips, load_audio_16k))
    rows = []
    for model in args.models.split(","):
        rows += bench_model(Path(args.models_dir) / MODELS[model], chunks)
    print_table("Hallucination: words on 20 x 30 s of non-speech", rows)
    totals = {m: sum(r["words"] for r in rows if r["model"] == MODELS[m]) for m in args.models.split(",")}
    raw_totals = {m: sum(r["words guards off"] for r in rows if r["model"] == MODELS[m]) for m in args.models.split(",")}
    print(f"\ntotal words with guards: {totals}; with Whisper's rules only: {raw_totals}")
    write_json("hallucination_bench", {"rows": rows, "total_words": totals, "total_words_guards_off": raw_totals})
    return 1 if args.check and any(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
