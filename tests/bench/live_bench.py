"""Live benchmark: the whole stack under supervisord, real clips streamed over /stream at real-time pace.

Measures, per model (tiny.en and base, int8):
- speech end → final latency, p50/p95, with the endpointing wait (end_silence_ms) taken out;
- speech start → first partial, p50/p95;
- how many concurrent real-time WebSocket streams keep the final p95 ≤ 1.5 s (every utterance finalised);
- RSS (current and peak) of every process.

Latency is measured on the client's clock: the time the final arrived minus the time
the last speech sample was sent (streams are paced at real time).

usage: python tests/bench/live_bench.py [--models tiny,base] [--streams 1,2,3,4] [--end-silence-ms 800]
Results: a table on stdout and tests/bench/results/live_bench.json.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import print_table, write_json  # noqa: E402
from tests.e2e import live, stack as stacks  # noqa: E402

MODELS = {"tiny": ("tiny", "tiny.en-int8"), "base": ("base", "base-int8")}
CLIPS = ["ls-1089-134691-0000", "lj-LJ001-0011", "librivox-0880", "ls-6930-75918-0000", "timit-ldc93s1",
         "lj-LJ001-0020"]
P95_LIMIT_S = 1.5
STAGGER_S = 0.37  # streams start a little apart, as real users do


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


async def _concurrent(url: str, audio: np.ndarray, n: int) -> list[live.Session]:
    async def one(i: int) -> live.Session:
        await asyncio.sleep(i * STAGGER_S)
        return await live.stream(url, audio)
    return await asyncio.gather(*(one(i) for i in range(n)))


def run_round(stack: stacks.Stack, n: int, end_silence_ms: int, partials: bool = True) -> dict:
    audio, utterances = live.build_stream(CLIPS, pause_s=1.5)
    url = f"{stack.ws}/stream?language=en&end_silence_ms={end_silence_ms}&partials={str(partials).lower()}"
    sessions = asyncio.run(_concurrent(url, audio, n))
    finals, partial_lat, missing, errors = [], [], 0, 0
    for session in sessions:
        lat = live.latencies(session, utterances, end_silence_ms)
        finals += lat["final"]
        partial_lat += lat["partial"]
        matched = live.match_finals(session, utterances)
        missing += sum(1 for got in matched.values() if not got)
        errors += len(session.of_type("error"))
    p95 = percentile(finals, 95)
    return {"streams": n, "partials": partials, "utterances": n * len(utterances), "missing_finals": missing,
            "errors": errors,
            "final_p50_s": percentile(finals, 50), "final_p95_s": p95,
            "partial_p50_s": percentile(partial_lat, 50), "partial_p95_s": percentile(partial_lat, 95),
            "sustained": bool(p95 is not None and p95 <= P95_LIMIT_S and not missing and not errors)}


def memory(stack: stacks.Stack) -> dict[str, dict]:
    out = {}
    for stage, pids in stack.pids().items():
        for i, pid in enumerate(pids):
            try:
                rss, peak = stacks.rss_mb(pid)
            except OSError:
                continue
            out[stage if len(pids) == 1 else f"{stage}#{i}"] = {"rss_mb": rss, "peak_mb": peak}
    return out


def bench_model(key: str, models_root: Path, streams: list[int], end_silence_ms: int, partials: bool) -> dict:
    from asr.build.builder import ensure_model

    source, name = MODELS[key]
    ensure_model(source, models_root / name, "int8")
    stack = stacks.start(models_root, model=name)
    try:
        stacks.wait_healthy(stack)
        run_round(stack, 1, end_silence_ms, partials)  # warm-up: first inferences allocate
        rounds = []
        for n in streams:
            result = run_round(stack, n, end_silence_ms, partials)
            rounds.append(result)
            sys.stderr.write(f"live_bench: {name} {n} stream(s): {result}\n")
            if not result["sustained"]:
                break
        return {"model": name, "rounds": rounds, "memory": memory(stack),
                "max_streams": max([r["streams"] for r in rounds if r["sustained"]], default=0)}
    finally:
        stacks.stop(stack)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="live_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,base", help="comma list of: tiny, base")
    parser.add_argument("--streams", default="1,2,3,4", help="concurrent stream counts to try, in order")
    parser.add_argument("--end-silence-ms", type=int, default=800)
    parser.add_argument("--models-dir", help="where to build/reuse the models (default: a temp dir)")
    parser.add_argument("--no-partials", action="store_true", help="streams ask for finals only")
    parser.add_argument("--out", default="live_bench", help="results file name under tests/bench/results")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")
    try:
        args.stream_counts = [int(n) for n in args.streams.split(",")]
    except ValueError:
        parser.error(f"--streams {args.streams!r}: expected comma-separated integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not live.eval_available():
        sys.stderr.write(f"live_bench: {live.EVAL_DIR} is absent; the benchmark needs ../shared/eval\n")
        return 2
    root = Path(args.models_dir) if args.models_dir else Path(tempfile.mkdtemp(prefix="vb-models-"))
    results = [bench_model(m, root, args.stream_counts, args.end_silence_ms, not args.no_partials)
               for m in args.models.split(",")]
    table = [dict(model=r["model"], **{k: v for k, v in rd.items() if k != "utterances"})
             for r in results for rd in r["rounds"]]
    print_table(f"live latency (end_silence_ms={args.end_silence_ms} excluded; p95 limit {P95_LIMIT_S} s)", table)
    print_table("RSS per process (MB)", [dict(model=r["model"], process=p, **m)
                                         for r in results for p, m in r["memory"].items()])
    print_table("concurrent real-time streams with final p95 ≤ 1.5 s",
                [{"model": r["model"], "max_streams": r["max_streams"]} for r in results])
    path = write_json(args.out, {"end_silence_ms": args.end_silence_ms, "partials": not args.no_partials,
                                 "clips": CLIPS, "results": results})
    sys.stdout.write(f"\nwritten {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
