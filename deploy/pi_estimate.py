"""Per-stage CPU of the real stack for one live stream, measured here, and what it predicts for a Pi 4.

    .venv/bin/python deploy/pi_estimate.py --models-dir DIR [--models tiny.en-int8 base-int8] [--out FILE]

(needs `bash deploy/setup.sh --test`: it uses tests/e2e's stack and live client.)

For each model: `voxbus up` (tests/e2e/stack.py), one warm-up stream, then one stream of six real
clips at real-time pace over /stream (tests/e2e/live.py, the live benchmark's clips); every
stage's user+sys CPU from /proc/<pid>/stat before and after, per second of audio, with the idle
cost (heartbeats) measured over the same length of silence-free idling first. Latencies as
the live benchmark defines them. The Pi figures are these times multiplied by the ratio of a Pi 4
core's time to this machine's core's time for the same work (--ratio, see the README): an
estimate, never a measurement.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import live, stack as stacks  # noqa: E402
from tests.bench.live_bench import CLIPS  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
END_SILENCE_MS = 800


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime


def snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    return {stage: sum(cpu_seconds(p) for p in plist) for stage, plist in pids.items()}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(models_dir: Path, model: str, partials: bool) -> dict:
    st = stacks.start(models_dir, model=model)
    try:
        stacks.wait_healthy(st, timeout=120)
        pids = st.pids()
        audio, utterances = live.build_stream(CLIPS, pause_s=1.5)
        seconds = audio.size / live.RATE
        url = f"{st.ws}/stream?language=en&end_silence_ms={END_SILENCE_MS}&partials={str(partials).lower()}"
        asyncio.run(live.stream(url, audio[: live.RATE * 8]))   # warm-up: first inferences allocate
        before = snapshot(pids)
        time.sleep(10)
        idle = {k: (v - before[k]) / 10 for k, v in snapshot(pids).items()}
        before, t0 = snapshot(pids), time.monotonic()
        session = asyncio.run(live.stream(url, audio))
        wall = time.monotonic() - t0
        after = snapshot(pids)
        lat = live.latencies(session, utterances, END_SILENCE_MS)
    finally:
        stacks.stop(st)
    timings = [e.get("timings") or {} for _, e in session.of_type("final")]
    med = lambda key: pct([t[key] for t in timings if isinstance(t.get(key), (int, float))], 0.5)  # noqa: E731
    per_audio_s = {k: round((after[k] - before[k]) / seconds, 4) for k in after}
    return {"model": model, "partials": partials, "audio_s": round(seconds, 1), "wall_s": round(wall, 1),
            "cpu_per_audio_s": per_audio_s, "idle_cpu_per_s": {k: round(v, 4) for k, v in idle.items()},
            "final_p50": pct(lat["final"], 0.5), "final_p95": pct(lat["final"], 0.95),
            "first_partial_p50": pct(lat["partial"], 0.5), "finals": len(lat["final"]),
            "final_encode_ms_p50": med("encode_ms"), "final_decode_ms_p50": med("decode_ms"),
            "final_queue_ms_p50": med("queue_ms"),
            "utterances": len(utterances)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["tiny.en-int8", "base-int8"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    missing = [m for m in args.models if not (args.models_dir / m / "manifest.json").exists()]
    if missing:
        print(f"pi_estimate: error: no model {missing} in {args.models_dir} (voxbus model build ...)", file=sys.stderr)
        return 2
    rows = []
    for model in args.models:
        for partials in (True, False):
            row = measure(args.models_dir, model, partials)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cpu_model": _cpu_model(), "rows": rows}, indent=1))
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


if __name__ == "__main__":
    sys.exit(main())
