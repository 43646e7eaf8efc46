"""Bus bytes per second of speech: how often each audio sample crosses the bus on its way to asr.

The whole stack (tiny.en) under supervisord; one WebSocket stream plays real clips at real
time with partials on. vad's heartbeat counts the PCM it pushed to asr by kind, and what
sending partials whole would have cost (pushed + saved), so one run gives before and after:
before, every partial carried its utterance from the start; now, with one asr worker, a
partial carries only its new audio (vad/deltas.py).

usage: python -m tests.bench bus_bytes [--end-silence-ms 800]
Results: a table on stdout and tests/bench/results/bus_bytes_bench.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus.pcm import BYTES_PER_SAMPLE, SAMPLE_RATE  # noqa: E402
from tests.bench.common import print_table, write_json  # noqa: E402
from tests.e2e import live, stack as stacks  # noqa: E402


CLIPS = ["ls-1089-134691-0000", "lj-LJ001-0011", "librivox-0880", "ls-6930-75918-0000", "timit-ldc93s1",
         "lj-LJ001-0020"]  # six real clips of 2-6 s, several corpora


def vad_counters(stack: stacks.Stack) -> dict:
    status = subprocess.run([sys.executable, "-m", "cli", "status", "--json"], env=stack.env, cwd=stacks.REPO,
                            capture_output=True, text=True, timeout=60)
    rows = [row for row in json.loads(status.stdout)["stages"] if row["stage"] == "vad"]
    return rows[0]["counters"]


def measure(models_root: Path, end_silence_ms: int) -> dict:
    from asr.build.builder import ensure_model

    ensure_model("tiny", models_root / "tiny.en-int8", "int8")
    stack = stacks.start(models_root, model="tiny.en-int8")
    try:
        stacks.wait_healthy(stack)
        time.sleep(3)  # vad hears the one asr worker's heartbeats before the first partial
        audio, utterances = live.build_stream(CLIPS, pause_s=1.5)
        url = f"{stack.ws}/stream?language=en&end_silence_ms={end_silence_ms}&partials=true"
        asyncio.run(live.stream(url, audio))
        time.sleep(2)  # the next heartbeat carries the last pushes
        counters = vad_counters(stack)
    finally:
        stacks.stop(stack)
    speech_s = sum((u.speech_off - u.speech_on) for u in utterances) / SAMPLE_RATE
    partial, final = counters.get("pushed_bytes_partial", 0), counters.get("pushed_bytes_final", 0)
    saved = counters.get("partial_bytes_saved", 0)
    audio_bytes = audio.size * BYTES_PER_SAMPLE  # source → bus → vad
    rows = []
    for label, partial_bytes in (("before: partials whole", partial + saved), ("now: partials as new audio", partial)):
        to_asr = partial_bytes + final
        rows.append({"partials": label, "speech_s": round(speech_s, 1), "audio_in_kB_per_s": round(
                     audio_bytes / 1000 / (audio.size / SAMPLE_RATE), 1),
                     "to_asr_kB_per_speech_s": round(to_asr / 1000 / speech_s, 1),
                     "partial_kB_per_speech_s": round(partial_bytes / 1000 / speech_s, 1),
                     "final_kB_per_speech_s": round(final / 1000 / speech_s, 1),
                     "crossings_vad_to_asr": round(to_asr / (speech_s * SAMPLE_RATE * BYTES_PER_SAMPLE), 2)})
    return {"end_silence_ms": end_silence_ms, "asr_workers": counters.get("asr_workers"), "rows": rows,
            "vad_counters": counters}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bus_bytes_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--end-silence-ms", type=int, default=800)
    parser.add_argument("--models-dir", help="where to build/reuse the model (default: a temp dir)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not live.eval_available():
        sys.stderr.write(f"bus_bytes_bench: {live.EVAL_DIR} is absent; the benchmark needs ../shared/eval\n")
        return 2
    root = Path(args.models_dir) if args.models_dir else Path(tempfile.mkdtemp(prefix="vb-models-"))
    result = measure(root, args.end_silence_ms)
    print_table(f"PCM bytes from vad to asr per second of speech (one stream, {result['asr_workers']} asr worker)",
                result["rows"])
    sys.stdout.write(f"\nwritten {write_json('bus_bytes_bench', result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
