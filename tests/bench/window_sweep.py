"""Encoder window sweep: WER and encoder time per window rule max(floor, audio + pad), capped at 30 s.

    .venv/bin/python -m tests.bench.window_sweep --model tiny --decoding greedy --set eval [--out DIR]

Sets: eval (the 60 clips of MANIFEST.tsv, scored against their transcripts), concat (2-3
eval clips joined with 0.3 s of silence, 10-28 s, scored against the joined transcripts),
short (each clip cut to its first 1, 2 or 3 s of speech; no transcript: scored against
the 30 s window's own text). ≤ 30 s inputs go through transcribe_segment (the live path,
with the unheard-tail continuation), longer ones through transcribe(). Rules that give
the same windows for every length a clip can need are decoded once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tests.asr.wer import normalize_english, wer
from tests.bench.common import load_audio_16k, load_manifest, speech_span

MODELS = {"tiny": "tiny.en-int8", "base": "base-int8"}
DECODINGS = {"greedy": {}, "beam5": {"beam_size": 5, "best_of": 5}}
RULES = [(30, 0)] + [(f, p) for f in (15, 12, 10, 8) for p in (1, 2)]
SR = 16000


def eval_set() -> list[tuple[str, np.ndarray, str | None]]:
    return [(c.id, load_audio_16k(c.path), c.transcript) for c in load_manifest()]


def concat_set(clips) -> list[tuple[str, np.ndarray, str | None]]:
    """Greedy packing of the eval clips (in manifest order, ≤ 14 s each) into 2-3 clip groups ≤ 28 s."""
    gap = np.zeros(int(0.3 * SR), np.float32)
    pool = [c for c in clips if len(c[1]) <= 14 * SR]
    out, group = [], []
    for clip in pool:
        length = sum(len(c[1]) + len(gap) for c in group) + len(clip[1])
        if group and (len(group) == 3 or length > 28 * SR):
            if len(group) >= 2:
                out.append(group)
            group = []
        group.append(clip)
    if len(group) >= 2:
        out.append(group)
    joined = []
    for group in out:
        parts = []
        for c in group:
            parts += [c[1], gap]
        joined.append(("+".join(c[0] for c in group), np.concatenate(parts[:-1]), " ".join(c[2] for c in group)))
    return joined


def short_set(clips) -> list[tuple[str, np.ndarray, str | None]]:
    out = []
    for i, (cid, audio, _) in enumerate(clips):
        start, _ = speech_span(audio)
        start = max(0, start - int(0.1 * SR))
        seconds = 1 + i % 3
        piece = audio[start : start + seconds * SR]
        out.append((f"{cid}[:{seconds}s]", np.ascontiguousarray(piece), None))
    return out


def rule_key(seconds: float, floor: float, pad: float) -> tuple:
    """Rules equal on every length in [0, seconds] share a key."""
    seconds = min(seconds, 30.0)
    if floor >= 30:
        return (30,)
    if seconds + pad <= floor:
        return (floor,)
    return (floor, pad)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--decoding", default="greedy", choices=DECODINGS)
    ap.add_argument("--set", default="eval", choices=("eval", "concat", "short"))
    ap.add_argument("--pad", default="zeros", choices=("zeros", "silence"))
    ap.add_argument("--rules", default=None, help="floor/pad,... (default: the full sweep)")
    ap.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/work/exp/varenc/results")
    ap.add_argument("--baseline", default=None, help="a previous run's JSON: take its 30/0 texts instead of decoding")
    args = ap.parse_args(argv)
    from asr.whisper.engine import EncoderWindow, WhisperModel

    rules = RULES if not args.rules else [tuple(float(x) for x in r.split("/")) for r in args.rules.split(",")]
    if (30, 0) not in rules:
        rules = [(30, 0)] + rules
    model = WhisperModel(Path(args.models_dir) / MODELS[args.model], threads=args.threads)
    clips = eval_set()
    items = {"eval": lambda: clips, "concat": lambda: concat_set(clips), "short": lambda: short_set(clips)}[args.set]()
    options = dict(language="en", **DECODINGS[args.decoding])
    name = f"{args.set}-{args.model}-{args.decoding}-{args.pad}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache: dict = {}  # (clip index, key) -> (text, encode_ms, decode_ms, windows)
    per_rule = {}
    if args.baseline:
        per_rule["30/0"] = json.loads(Path(args.baseline).read_text())["rules"]["30/0"]
        rules = [r for r in rules if r != (30, 0)]
    for floor, pad in rules:
        model.encoder_window = EncoderWindow(float(floor), float(pad), args.pad)
        texts, enc_ms, dec_ms, frames = [], 0.0, 0.0, []
        for i, (cid, audio, _) in enumerate(items):
            key = (i, rule_key(len(audio) / SR, floor, pad))
            if key not in cache:
                started = time.perf_counter()
                if len(audio) <= 30 * SR:
                    result = model.transcribe_segment(audio, **options)
                else:
                    result = model.transcribe(audio, **options)
                cache[key] = (result.text, result.encode_ms, result.decode_ms,
                              model.window_frames(min(len(audio), 30 * SR)), time.perf_counter() - started)
            text, e, d, f, _ = cache[key]
            texts.append(text)
            enc_ms += e
            dec_ms += d
            frames.append(f)
        per_rule[f"{floor:g}/{pad:g}"] = {"texts": texts, "encode_ms": enc_ms, "decode_ms": dec_ms, "frames": frames}
        print(f"{name} rule {floor:g}/{pad:g}: enc {enc_ms / 1000:.1f} s dec {dec_ms / 1000:.1f} s", file=sys.stderr,
              flush=True)
        _write(out / f"{name}.json", items, per_rule)
    return 0


def _write(path: Path, items, per_rule) -> None:
    refs = [ref for _, _, ref in items]
    base_texts = per_rule["30/0"]["texts"]
    summary = {}
    for rule, data in per_rule.items():
        scored_refs = [r if r is not None else b for r, b in zip(refs, base_texts)]
        differs = [(items[i][0], base_texts[i], t) for i, t in enumerate(data["texts"])
                   if normalize_english(t) != normalize_english(base_texts[i])]
        summary[rule] = {"wer": round(wer(scored_refs, data["texts"]) * 100, 3),
                         "wer_vs_30s": round(wer(base_texts, data["texts"]) * 100, 3) if any(
                             normalize_english(b) for b in base_texts) else None,
                         "encode_s": round(data["encode_ms"] / 1000, 2), "decode_s": round(data["decode_ms"] / 1000, 2),
                         "n_differ": len(differs), "differs": differs}
    path.write_text(json.dumps({"ids": [i[0] for i in items], "durations": [len(i[1]) / SR for i in items],
                                "refs": refs, "summary": summary, "rules": per_rule}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
