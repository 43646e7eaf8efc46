"""Live partials that resume, on the draft encoder: what the local-agreement prefix, the token bound and
the draft encoder save, and what they change.

    .venv/bin/python -m tests.bench partial_prefix -- [--models tiny,base] [--clips 30] [--step 0.6]
        [--models-dir DIR]

Each eval clip of ≥ 2 s is heard as a live utterance: a partial every `--step` seconds of its
audio from 1 s on, each decoded four ways as asr decodes a partial (greedy, no second pass,
the draft window): as before (no bound, no prefix), with the token bound (asr.transcriber's
PARTIAL_TOKENS + PARTIAL_TOKENS_PER_S per second), with the bound and the prefix its last
two partials agreed on (asr/partial_prefix.py), and all that on the model's draft encoder
(encoder_draft.onnx; asr.draft_encoder, the asr default). Reported per model
and clip length: encoder and decoder ms per partial (1 thread), the share of tokens the prefix
forced, how often the text equals the bounded fresh decode's, and the WER of each utterance's
last partial against its transcript. That last figure rests on 30 clips and moves with a few
words, so a second table decodes every eval clip of ≤ 30 s as one partial at its end and at its
middle, on the block and on the draft encoder: the WER at the end, and how much of the text at
the middle differs between the two encoders. Results: two tables on stdout and
tests/bench/results/partial_prefix_bench.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.asr.wer import wer  # noqa: E402
from tests.bench.common import (eval_available, int8_model, load_audio_16k, load_manifest,  # noqa: E402
                                 print_table, write_json)

FIRST_PARTIAL_S = 1.0
LONG_CLIP_S = 6.0  # clips up to this long are the live bench's kind; longer ones are dictation


def utterances(count: int) -> list:
    return [(clip, load_audio_16k(clip.path)) for clip in load_manifest() if clip.duration >= 2.0][:count]


def measure(model, clips: list, step_s: float) -> list[dict]:
    from asr.partial_prefix import PartialPrefixes
    from asr.transcriber import PARTIAL_TOKENS, PARTIAL_TOKENS_PER_S

    draft = {"language": "en", "temperature": [0.0], "second_pass": False, "draft_window": True}
    groups: dict[str, dict] = {}
    for clip, audio in clips:
        group = groups.setdefault("short" if clip.duration <= LONG_CLIP_S else "long", {
            "partials": 0, "encode_ms": 0.0, "before_ms": 0.0, "bounded_ms": 0.0, "prefixed_ms": 0.0,
            "draft_encode_ms": 0.0, "draft_ms": 0.0, "forced": 0, "tokens": 0, "same_text": 0, "references": [],
            "last_bounded": [], "last_prefixed": [], "last_draft": []})
        prefixes = PartialPrefixes(model.tokenizer.starts_word)
        draft_prefixes = PartialPrefixes(model.tokenizer.starts_word)  # the draft encoder's decodes agree
        seconds = FIRST_PARTIAL_S
        while seconds < clip.duration:
            heard = audio[: int(seconds * 16000)]
            bound = {"sample_len": PARTIAL_TOKENS + int(PARTIAL_TOKENS_PER_S * seconds)}
            before = model.transcribe_segment(heard, **draft)
            bounded = model.transcribe_segment(heard, **draft, **bound)
            prefix = prefixes.prefix("u", heard.shape[0])
            prefixed = model.transcribe_segment(heard, prefix=prefix or None, **draft, **bound)
            prefixes.add("u", heard.shape[0], prefixed.tokens)
            on_draft = model.transcribe_segment(heard, prefix=draft_prefixes.prefix("u", heard.shape[0]) or None,
                                                draft_encoder=True, **draft, **bound)
            draft_prefixes.add("u", heard.shape[0], on_draft.tokens)
            group["draft_encode_ms"] += on_draft.encode_ms
            group["draft_ms"] += on_draft.decode_ms
            group["partials"] += 1
            group["encode_ms"] += prefixed.encode_ms
            group["before_ms"] += before.decode_ms
            group["bounded_ms"] += bounded.decode_ms
            group["prefixed_ms"] += prefixed.decode_ms
            group["forced"] += len(prefix)
            group["tokens"] += len(prefixed.tokens)
            group["same_text"] += prefixed.text == bounded.text
            seconds += step_s
        group["references"].append(clip.transcript)
        group["last_bounded"].append(bounded.text)
        group["last_prefixed"].append(prefixed.text)
        group["last_draft"].append(on_draft.text)
    rows = []
    for name, g in groups.items():
        n = g["partials"]
        rows.append({"model": model.manifest.name, "clips": name, "utterances": len(g["references"]), "partials": n,
                     "encoder_ms": round(g["encode_ms"] / n, 1), "decoder_ms_before": round(g["before_ms"] / n, 1),
                     "decoder_ms_bounded": round(g["bounded_ms"] / n, 1),
                     "decoder_ms_prefixed": round(g["prefixed_ms"] / n, 1),
                     "encoder_ms_draft": round(g["draft_encode_ms"] / n, 1),
                     "decoder_ms_draft": round(g["draft_ms"] / n, 1),
                     "forced_tokens_%": round(100 * g["forced"] / max(g["tokens"], 1), 1),
                     "same_text_%": round(100 * g["same_text"] / n, 1),
                     "last_partial_wer_bounded_%": round(100 * wer(g["references"], g["last_bounded"]), 2),
                     "last_partial_wer_prefixed_%": round(100 * wer(g["references"], g["last_prefixed"]), 2),
                     "last_partial_wer_draft_%": round(100 * wer(g["references"], g["last_draft"]), 2)})
    return rows


def whole_utterances(model) -> dict:
    """Each eval clip of ≤ 30 s as one partial (greedy, no second pass, the draft window, the token
    bound) at its middle and at its end, on the block and on the draft encoder."""
    from asr.transcriber import PARTIAL_TOKENS, PARTIAL_TOKENS_PER_S

    clips = [(clip, audio) for clip, audio in ((c, load_audio_16k(c.path)) for c in load_manifest())
             if audio.shape[0] <= 30 * 16000]
    texts: dict[tuple[bool, str], list[str]] = {}
    encode_ms = {False: 0.0, True: 0.0}
    for on_draft in (False, True):
        for where, share in (("middle", 0.5), ("end", 1.0)):
            texts[on_draft, where] = []
            for _, audio in clips:
                heard = audio[: int(audio.shape[0] * share)]
                result = model.transcribe_segment(
                    heard, language="en", temperature=[0.0], second_pass=False, draft_window=True,
                    draft_encoder=on_draft, sample_len=PARTIAL_TOKENS + int(PARTIAL_TOKENS_PER_S * heard.shape[0] / 16000))
                encode_ms[on_draft] += result.encode_ms
                texts[on_draft, where].append(result.text)
    references = [clip.transcript for clip, _ in clips]
    return {"model": model.manifest.name, "clips": len(clips),
            "encoder_ms_block": round(encode_ms[False] / (2 * len(clips)), 1),
            "encoder_ms_draft": round(encode_ms[True] / (2 * len(clips)), 1),
            "wer_at_end_block_%": round(100 * wer(references, texts[False, "end"]), 2),
            "wer_at_end_draft_%": round(100 * wer(references, texts[True, "end"]), 2),
            "draft_differs_at_middle_%": round(100 * wer(texts[False, "middle"], texts[True, "middle"]), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.bench partial_prefix")
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--step", type=float, default=0.6, help="seconds of audio between partials")
    parser.add_argument("--models-dir")
    args = parser.parse_args(argv)
    if not eval_available():
        sys.stdout.write("partial_prefix: skipped, ../shared/eval is absent\n")
        return 0
    clips = utterances(args.clips)
    rows, whole = [], []
    for key in args.models.split(","):
        model = int8_model(key, args.models_dir, draft_encoder=True)
        rows += measure(model, clips, args.step)
        whole.append(whole_utterances(model))
    print_table("live partials: decoder ms as before, with the token bound, resuming from the agreed prefix, "
                "and all that on the draft encoder (greedy, draft window, 1 thread)", rows)
    print_table("every eval clip of ≤ 30 s as one partial, block and draft encoder", whole)
    written = write_json("partial_prefix_bench", {"step_s": args.step, "rows": rows, "whole_utterances": whole})
    sys.stdout.write(f"written {written}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
