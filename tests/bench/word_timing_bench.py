"""Word-timing bench: voxbus word timestamps against faster-whisper's on the same weights.

    .venv/bin/python -m tests.bench.word_timing_bench [--models tiny,base] [--models-dir DIR] [--check]

On the LibriSpeech clips of MANIFEST.tsv both engines decode greedily at
temperature 0 with word timestamps (voxbus: cross-attention of the alignment
heads from decoder_attn.onnx + DTW; faster-whisper: CTranslate2's align). Words
are matched by their normalised text in order (difflib); the score is the mean
absolute difference of word starts and ends over matched words.
--check exits 1 above 80 ms.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import numpy as np

from tests.asr.wer import normalize_english
from tests.bench.common import load_audio_16k, load_manifest, print_table, write_json
from tests.bench.quality_bench import MODELS, faster_whisper_dir

LIMIT_MS = 80.0


def matched_differences(ours: list[dict], theirs: list[dict]) -> tuple[list[float], int]:
    """|start - start| and |end - end| of words both engines heard, and how many words matched."""
    a = [normalize_english(w["word"]) for w in ours]
    b = [normalize_english(w["word"]) for w in theirs]
    differences, matched = [], 0
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mine, other = ours[block.a + k], theirs[block.b + k]
            differences += [abs(mine["start"] - other["start"]), abs(mine["end"] - other["end"])]
            matched += 1
    return differences, matched


def run_model(model: str, clips: list, models_dir: Path) -> dict:
    from faster_whisper import WhisperModel as FasterWhisper

    from asr.whisper.engine import WhisperModel
    from asr.build.builder import ensure_model

    source, name = MODELS[model]
    vox = WhisperModel(ensure_model(source, models_dir / name, "int8"), threads=2)
    fw = FasterWhisper(faster_whisper_dir(model, models_dir), device="cpu", compute_type="int8", cpu_threads=2)
    differences, matched, total = [], 0, 0
    per_clip = []
    for clip in clips:
        audio = load_audio_16k(clip.path)
        ours = vox.transcribe(audio, language="en", temperature=0.0, word_timestamps=True).words or []
        segments, _ = fw.transcribe(audio, language="en", beam_size=1, temperature=0.0, word_timestamps=True,
                                    vad_filter=False)
        theirs = [{"word": w.word, "start": w.start, "end": w.end} for s in segments for w in s.words]
        clip_differences, clip_matched = matched_differences(ours, theirs)
        differences += clip_differences
        matched += clip_matched
        total += max(len(ours), len(theirs))
        per_clip.append({"clip": clip.id, "mean abs ms": round(float(np.mean(clip_differences or [0])) * 1000, 1),
                         "matched": clip_matched, "words": len(theirs)})
    diffs_ms = np.array(differences) * 1000
    return {"model": model, "clips": len(clips), "words matched": matched, "words": total,
            "mean abs ms": round(float(diffs_ms.mean()), 1), "median ms": round(float(np.median(diffs_ms)), 1),
            "p90 ms": round(float(np.percentile(diffs_ms, 90)), 1), "per_clip": per_clip}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="word_timing_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    clips = [clip for clip in load_manifest() if clip.id.startswith("ls-")]
    rows = [run_model(model, clips, Path(args.models_dir)) for model in args.models.split(",")]
    print_table("Word boundaries: voxbus vs faster-whisper (LibriSpeech clips)",
                [{k: v for k, v in r.items() if k != "per_clip"} for r in rows])
    write_json("word_timing_bench", rows)
    failed = [r for r in rows if r["mean abs ms"] > LIMIT_MS]
    for row in failed:
        print(f"CHECK FAILED: {row['model']}: mean abs word boundary difference {row['mean abs ms']} ms > {LIMIT_MS}")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
