"""Live latency with the speaker stage labelling every final, against the same stack without it.

    .venv/bin/python -m tests.bench speaker_live [-- --streams 4 --clips 12]

Three rounds (tiny.en int8, [cores] auto): speakers off; `[speaker] enabled` and `live` on
(finals labelled on speaker/<s>/, sessions not waiting); and the same stack with sessions asking
`speakers=true` (each final held until its label, at most `[speaker] live_wait_s`).
Each streams the same real clips at real time over K WebSockets (as the live bench:
tests/bench/live_rounds.py, latency = final arrival − last frame sent) after one warm-up
stream; the speaker stage's CPU and RSS over the round say what labelling costs per stream.
Writes tests/bench/results/speaker_live_bench.json.
"""
from __future__ import annotations

import argparse
import sys

from tests.bench import live_rounds as rounds
from tests.bench.common import print_table, write_json
from tests.bench.live_bench import PAUSE_S, pick_clips, voxbus_pids
from tests.e2e import live, stack as stacks


def _round(models_dir, speakers: str, audio, utterances, k: int) -> dict:
    """speakers: "off", "on (live)" or "on, speakers=true" (the session waits for labels)."""
    from speaker.build.builder import ensure_speaker_model
    from tests.conftest import TEST_CACHE
    settings = {"VOXBUS_SPEAKER__ENABLED": "true", "VOXBUS_SPEAKER__LIVE": "true",
                "VOXBUS_SPEAKER__MODEL": str(ensure_speaker_model(TEST_CACHE / "speaker-ge2e"))} if speakers != "off" else {}
    held = "&speakers=true" if speakers == "on, speakers=true" else ""
    stack = stacks.start(models_dir, **settings)
    try:
        stacks.wait_healthy(stack)
        cut = utterances[1].start
        rounds.voxbus_round(stack.ws, audio[:cut], utterances[:1], 1, 500, True, held)  # warm-up
        meter = rounds.CpuMeter(voxbus_pids(stack))
        meter.start()
        results, errors, _ = rounds.voxbus_round(stack.ws, audio, utterances, k, 500, True, held)
        processes = meter.stop()
    finally:
        stacks.stop(stack)
    summary = rounds.summarize(results, errors)
    spk = processes.get("speaker", {})
    return {"speakers": speakers, "streams": k,
            "final p50 s": summary["final_p50_s"], "final p95 s": summary["final_p95_s"],
            "first partial p95 s": summary["first_partial_p95_s"], "missing": summary["missing_finals"],
            "WER %": summary["wer_pct"], "asr cpu s": processes.get("asr", {}).get("cpu_s"),
            "speaker cpu s": spk.get("cpu_s"), "speaker rss MB": spk.get("rss_mb"),
            "audio s": round(k * len(audio) / 16000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--on-first", action="store_true", help="run the speakers-on stack first")
    args = parser.parse_args(argv)
    from asr.build.builder import ensure_model
    from tests.conftest import TEST_CACHE
    models_dir = ensure_model("tiny", TEST_CACHE / "tiny.en-int8", "int8").parent
    audio, utterances = live.build_stream(pick_clips(args.clips), pause_s=PAUSE_S)
    order = ("on, speakers=true", "on (live)", "off") if args.on_first else ("off", "on (live)", "on, speakers=true")
    rows = [_round(models_dir, speakers, audio, utterances, args.streams) for speakers in order]
    print_table(f"live latency, {args.streams} streams, speakers off / on", rows)
    print(f"wrote {write_json('speaker_live_bench' + ('_on_first' if args.on_first else ''), rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
