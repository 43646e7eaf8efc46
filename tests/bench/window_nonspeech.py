"""Words on non-speech under an encoder window rule: the hallucination bench's 10 minutes cut into
live-sized segments (1, 2, 3, 5, 8, 11 s in turn), so the rule's short windows are what is tested.

    .venv/bin/python -m tests.bench.window_nonspeech --model tiny --rule 10/1 [--pad zeros]

Each piece goes to transcribe_segment with voxbus's defaults (guards on) and with the
guards off (Whisper's rules only); the 30 s window is run beside it for comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.bench.common import load_audio_16k, load_manifest
from tests.bench.hallucination_bench import GUARDS_OFF, count_words
from tests.bench.noise import noise_chunks

MODELS = {"tiny": "tiny.en-int8", "base": "base-int8"}
PIECES_S = (1, 2, 3, 5, 8, 11)
SR = 16000


def pieces():
    chunks = list(noise_chunks([c.path for c in load_manifest()], load_audio_16k))
    k = 0
    for label, audio in chunks:
        at = 0
        while at < len(audio):
            seconds = PIECES_S[k % len(PIECES_S)]
            k += 1
            piece = audio[at : at + seconds * SR]
            at += seconds * SR
            if len(piece) >= SR // 2:
                yield label, piece


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--rule", default="10/1")
    ap.add_argument("--pad", default="zeros")
    ap.add_argument("--models-dir", default=str(Path("~/.local/share/voxbus/models").expanduser()))
    ap.add_argument("--out", default="/work/exp/varenc/results")
    ap.add_argument("--no-compare", action="store_true", help="skip the 30 s window run")
    args = ap.parse_args(argv)
    from asr.whisper.engine import EncoderWindow, WhisperModel

    floor, pad = (float(x) for x in args.rule.split("/"))
    model = WhisperModel(Path(args.models_dir) / MODELS[args.model], threads=1)
    rows, totals = [], {}
    runs = [("30/0", EncoderWindow())] if not args.no_compare else []
    for rule_name, rule in runs + [(args.rule, EncoderWindow(floor, pad, args.pad))]:
        model.encoder_window = rule
        guarded = raw = 0
        for label, piece in pieces():
            text_on = model.transcribe_segment(piece, language="en").text
            text_off = model.transcribe_segment(piece, language="en", **GUARDS_OFF).text
            guarded += count_words(text_on)
            raw += count_words(text_off)
            if text_on or text_off:
                rows.append({"rule": rule_name, "noise": label, "seconds": len(piece) / SR, "guarded": text_on,
                             "guards_off": text_off})
        totals[rule_name] = {"words": guarded, "words_guards_off": raw}
        print(args.model, rule_name, totals[rule_name], file=sys.stderr, flush=True)
    out = Path(args.out) / f"nonspeech-{args.model}-{args.rule.replace('/', '_')}-{args.pad}.json"
    out.write_text(json.dumps({"totals": totals, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
