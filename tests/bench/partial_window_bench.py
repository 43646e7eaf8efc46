"""Live partials' encoder window: how far a shorter draft floor moves a partial's text, and what it saves.

    .venv/bin/python -m tests.bench partial_window -- [--models tiny,base] [--floors 12,8,6] [--clips 45]
        [--models-dir DIR]

A live partial is a prefix of its utterance, cut mid-word. Each eval clip of ≥ 2 s gives
prefixes of 0.8, 1.5, 2.5 and 4 s (those that end ≥ 0.3 s before the clip does); each is
decoded as asr decodes a partial (greedy, temperature 0, no second pass) with the window
floor set to each `--floors` value (the pad stays the model's). Reported per floor: the
mean encoder ms (1 thread), the words emitted (a looping window emits more), and the WER of
its text against the model's full rule (its `floor_s`) — how much the partial shown changes.
The model's `draft_floor_s` (asr/build/builder.py, ENCODER_WINDOWS) is chosen from this.
Results: a table on stdout and tests/bench/results/partial_window_bench.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.asr.wer import normalize_english, wer  # noqa: E402
from tests.bench.common import (eval_available, int8_model, load_audio_16k, load_manifest,  # noqa: E402
                                 print_table, write_json)

PREFIXES_S = (0.8, 1.5, 2.5, 4.0)
END_MARGIN_S = 0.3


def prefixes(count: int) -> list:
    out = []
    for clip in [c for c in load_manifest() if c.duration >= 2.0][:count]:
        audio = load_audio_16k(clip.path)
        out += [audio[: int(s * 16000)] for s in PREFIXES_S if s <= clip.duration - END_MARGIN_S]
    return out


def measure(model, audios: list, floors: list[float]) -> list[dict]:
    rule = model.encoder_window
    texts: dict[float, list[str]] = {}
    rows = []
    try:
        for floor in [rule.floor_s, *(f for f in floors if f != rule.floor_s)]:  # the rule's first, once
            model.encoder_window = dataclasses.replace(rule, floor_s=floor, draft_floor_s=None)
            results = [model.transcribe_segment(a, language="en", temperature=[0.0], second_pass=False) for a in audios]
            texts[floor] = [r.text for r in results]
            rows.append({"model": model.manifest.name, "floor_s": floor, "partials": len(audios),
                         "encoder_ms_mean": round(sum(r.encode_ms for r in results) / len(results), 1),
                         "words": sum(len(normalize_english(t).split()) for t in texts[floor]),
                         "wer_vs_full_rule_%": round(100 * wer(texts[rule.floor_s], texts[floor]), 2),
                         "draft_floor_s": rule.draft_floor_s})
    finally:
        model.encoder_window = rule
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.bench partial_window")
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--floors", default="12,10,8,6")
    parser.add_argument("--clips", type=int, default=45)
    parser.add_argument("--models-dir")
    args = parser.parse_args(argv)
    if not eval_available():
        sys.stdout.write("partial_window: skipped, ../shared/eval is absent\n")
        return 0
    floors = [float(f) for f in args.floors.split(",")]
    audios = prefixes(args.clips)
    rows = []
    for key in args.models.split(","):
        rows += measure(int8_model(key, args.models_dir), audios, floors)
    print_table("live partials: draft window floor vs the full rule (greedy, no second pass, 1 thread)", rows)
    sys.stdout.write(f"written {write_json('partial_window_bench', {'prefixes_s': PREFIXES_S, 'rows': rows})}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
