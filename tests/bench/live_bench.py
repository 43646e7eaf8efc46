"""Live benchmark: voxbus against wyoming-faster-whisper, same weights, same clips, same run.

Starts the whole voxbus stack under supervisord (tests/e2e/stack.py) and the peer
(tests/bench/peer_wyoming.py, its own venv, the same CTranslate2 weights), then for
each K streams the same real clips (2.5-5.5 s each, 1.5 s of quiet after each) in
20 ms frames at real time to both, one system at a time, alternating which goes first,
so each ratio voxbus/peer is taken within one run. voxbus: one WebSocket per stream,
`/stream?language=en&end_silence_ms=500&partials=true` (plus a partials-off row at
--finals-only K). Peer: one Wyoming session per utterance, ended by its own VAD
(`--vad-endpointing`); audio-stop goes after its transcript, or at the region's end.

Latency = final arrival − the moment the clip's last frame was sent, nothing subtracted
(tests/bench/live_rounds.py says exactly what each figure is). Prints one table and
the ratios; writes tests/bench/results/live_bench.json.

usage: python -m tests.bench live -- [--models tiny,base] [--streams 1,4,8,16] [--base-streams 1,4,8]
       [--clips 12] [--repeats 1] [--finals-only 1,8] [--peer-threads 2] [--vox-threads 0]
       [--vox-setting VOXBUS_ASR__PARALLEL=1 ...] [--out live_bench]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import live_rounds as rounds, peer_wyoming  # noqa: E402
from tests.bench.common import eval_available, load_manifest, print_table, write_json  # noqa: E402
from tests.conftest import find_free_port  # noqa: E402
from tests.e2e import live, stack as stacks  # noqa: E402

MODELS = {"tiny": ("tiny", "tiny.en-int8"), "base": ("base", "base-int8")}
CLIP_SECONDS = (2.5, 5.5)
PAUSE_S = 1.5
SYSTEMS = ("voxbus", "wyoming")


def pick_clips(count: int) -> list[str]:
    fits = [c.id for c in load_manifest() if CLIP_SECONDS[0] <= c.duration <= CLIP_SECONDS[1]]
    if len(fits) < count:
        raise SystemExit(f"live_bench: only {len(fits)} eval clips last {CLIP_SECONDS[0]}-{CLIP_SECONDS[1]} s; "
                         f"asked --clips {count}")
    return fits[:count]


def round_plan(k_list: list[int], finals_only: list[int], repeats: int) -> list[tuple[int, str]]:
    """(K, system) in run order: per K and repeat, voxbus and the peer alternate which goes first."""
    plan = []
    for k in k_list:
        for rep in range(repeats):
            pair = ["voxbus", "wyoming"] if (rep + k_list.index(k)) % 2 == 0 else ["wyoming", "voxbus"]
            plan += [(k, system) for system in pair]
        if k in finals_only:
            plan.append((k, "voxbus finals-only"))
    return plan


def run_one(system: str, k: int, env: dict, audio, utterances) -> tuple[list, list[str], dict]:
    meter = rounds.CpuMeter(env["pids"]["wyoming" if system == "wyoming" else "voxbus"])
    meter.start()
    started = time.monotonic()
    if system == "wyoming":
        results, errors = rounds.peer_round(env["peer"].port, audio, utterances, k)
    else:
        results, errors, streams = rounds.voxbus_round(env["stack"].ws, audio, utterances, k,
                                                       env["end_silence_ms"], partials=system == "voxbus")
        if env.get("keep_events"):
            env.setdefault("events", []).append({"streams": k, "system": system, "received": streams})
    processes = meter.stop()
    processes["_wall_s"] = round(time.monotonic() - started, 1)
    processes["_load1_after"] = round(os.getloadavg()[0], 2)
    return results, errors, processes


def run_rounds(env: dict, plan: list[tuple[int, str]], audio, utterances, model: str) -> list[dict]:
    pooled: dict[tuple[int, str], dict] = {}
    for k, system in plan:
        results, errors, processes = run_one(system, k, env, audio, utterances)
        entry = pooled.setdefault((k, system), {"results": [], "errors": [], "processes": []})
        entry["results"] += results
        entry["errors"] += errors
        entry["processes"].append(processes)
        summary = rounds.summarize(results, errors)
        sys.stderr.write(f"live_bench: {model} K={k} {system}: final p50 {summary['final_p50_s']} "
                         f"p95 {summary['final_p95_s']} missing {summary['missing_finals']} "
                         f"errors {summary['errors']}\n")
    return [{"model": model, "streams": k, "system": system, **rounds.summarize(e["results"], e["errors"]),
             "processes": e["processes"], "error_messages": sorted(set(e["errors"]))[:20],
             "per_utterance": [vars(r) for r in e["results"]]}
            for (k, system), e in sorted(pooled.items())]


def warm_up(env: dict, audio, utterances) -> None:
    """One stream of the first clip to each system: first inferences allocate."""
    cut = utterances[1].start if len(utterances) > 1 else audio.size
    rounds.voxbus_round(env["stack"].ws, audio[:cut], utterances[:1], 1, env["end_silence_ms"], True)
    rounds.peer_round(env["peer"].port, audio[:cut], utterances[:1], 1)


def voxbus_pids(stack: stacks.Stack) -> dict[str, int]:
    found = {}
    for stage, pids in stack.pids().items():
        for i, pid in enumerate(pids):
            found[stage if len(pids) == 1 else f"{stage}#{i}"] = pid
    found["client"] = os.getpid()
    return found


def env_setting(text: str) -> tuple[str, str]:
    """--vox-setting VOXBUS_ASR__PARALLEL=1 → ("VOXBUS_ASR__PARALLEL", "1")."""
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("VOXBUS_"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected VOXBUS_SECTION__KEY=VALUE")
    return key, value


def start_systems(key: str, args: argparse.Namespace) -> dict:
    from asr.build.builder import ensure_model
    from tests.bench.asr_bench import ct2_model, models_root

    source, name = MODELS[key]
    root = models_root(args.models_dir)
    ensure_model(source, root / name, "int8")
    settings = {"VOXBUS_ASR__THREADS": str(args.vox_threads)} if args.vox_threads else {}
    settings.update(args.vox_settings)
    stack = stacks.start(root, model=name, **settings)
    env = {"stack": stack, "end_silence_ms": args.end_silence_ms, "keep_events": args.events}
    try:
        stacks.wait_healthy(stack)
        peer_settings = peer_wyoming.PeerSettings(ct2_model(root, key), args.peer_threads, args.peer_beam,
                                                  args.peer_vad_endpointing)
        env["peer"] = peer_wyoming.start(peer_settings, find_free_port())
    except BaseException:
        stacks.stop(stack)
        raise
    env["pids"] = {"voxbus": voxbus_pids(stack),
                   "wyoming": {"wyoming-faster-whisper": env["peer"].pid, "client": os.getpid()}}
    env["model_info"] = httpx.get(f"{stack.http}/model/info", timeout=5).json()
    return env


def stop_systems(env: dict) -> None:
    try:
        if "peer" in env:
            peer_wyoming.stop(env["peer"])
    finally:
        stacks.stop(env["stack"])


def bench_model(key: str, args: argparse.Namespace, clips: list[str]) -> dict:
    audio, utterances = live.build_stream(clips, pause_s=PAUSE_S)
    env = start_systems(key, args)
    try:
        warm_up(env, audio, utterances)
        k_list = args.stream_counts if key == "tiny" else args.base_stream_counts
        rows = run_rounds(env, round_plan(k_list, args.finals_only_counts, args.repeats), audio, utterances,
                          MODELS[key][1])
        peer = env["peer"]
        return {"model": MODELS[key][1], "rows": rows, "voxbus_events": env.get("events", []),
                "voxbus": {"model_info": env["model_info"], "pids": env["pids"]["voxbus"]},
                "peer": {"command": peer.command, "versions": peer.version, "threads": args.peer_threads,
                         "beam_size": args.peer_beam, "vad_endpointing_s": args.peer_vad_endpointing,
                         "endpointing": "peer's own VAD (--vad-endpointing) ends the utterance; the client sends "
                                        "audio-stop once the transcript is in, or at the end of the utterance's "
                                        "region (clip + pause) if it is not in yet"
                         if args.peer_vad_endpointing else "audio-stop at the end of the utterance's region"}}
    finally:
        stop_systems(env)


def ratio_rows(rows: list[dict]) -> list[dict]:
    by = {(r["model"], r["streams"], r["system"]): r for r in rows}
    out = []
    for (model, k, system), vox in by.items():
        peer = by.get((model, k, "wyoming"))
        if system != "voxbus" or peer is None:
            continue
        ratio = lambda key: (round(vox[key] / peer[key], 2) if vox[key] and peer[key] else None)  # noqa: E731
        out.append({"model": model, "streams": k, "final_p50_vox/peer": ratio("final_p50_s"),
                    "final_p95_vox/peer": ratio("final_p95_s"), "wer_vox_%": vox["wer_pct"],
                    "wer_peer_%": peer["wer_pct"], "missing_vox": vox["missing_finals"],
                    "missing_peer": peer["missing_finals"],
                    "comparable": not (vox["missing_finals"] or peer["missing_finals"])})
    return out


TABLE_KEYS = ("final_p50_s", "final_p95_s", "first_partial_p50_s", "first_partial_p95_s",
              "partial_gap_median_s", "partial_gap_max_s", "wer_pct", "missing_finals", "errors")


def table_row(row: dict) -> dict:
    cpu: dict[str, float] = {}
    for processes in row["processes"]:
        for name, figures in processes.items():
            if isinstance(figures, dict) and figures.get("cpu_s") is not None:
                cpu[name] = cpu.get(name, 0.0) + figures["cpu_s"]
    last = row["processes"][-1]
    engine = "asr" if "asr" in last else "wyoming-faster-whisper"
    return {"model": row["model"], "K": row["streams"], "system": row["system"],
            **{key: row[key] for key in TABLE_KEYS},
            "cpu_s": " ".join(f"{name}={value:.1f}" for name, value in cpu.items()),
            "engine_rss_mb": last.get(engine, {}).get("rss_mb")}


def comma_ints(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",") if n]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="live_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,base", help="comma list of: tiny, base")
    parser.add_argument("--streams", dest="stream_counts", type=comma_ints, default=[1, 4, 8, 16],
                        help="tiny: concurrent stream counts")
    parser.add_argument("--base-streams", dest="base_stream_counts", type=comma_ints, default=[1, 4, 8])
    parser.add_argument("--finals-only", dest="finals_only_counts", type=comma_ints, default=[1, 8],
                        help="K at which voxbus also runs with partials=false")
    parser.add_argument("--clips", type=int, default=12, help="eval clips of 2.5-5.5 s per stream")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per K and system (pooled)")
    parser.add_argument("--end-silence-ms", type=int, default=500)
    parser.add_argument("--peer-threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="the peer's --cpu-threads (default: the cores here)")
    parser.add_argument("--vox-threads", type=int, default=0, help="VOXBUS_ASR__THREADS (0: voxbus's own)")
    parser.add_argument("--vox-setting", dest="vox_settings", action="append", type=env_setting, default=[],
                        metavar="VOXBUS_SECTION__KEY=VALUE",
                        help="a voxbus setting for this run, e.g. VOXBUS_ASR__PARALLEL=1 (repeatable)")
    parser.add_argument("--peer-beam", type=int, default=5, help="the peer's --beam-size (its default: 5)")
    parser.add_argument("--peer-vad-endpointing", type=float, default=0.5,
                        help="seconds; 0: no peer VAD, audio-stop at each utterance's region end")
    parser.add_argument("--models-dir", help="where voxbus models are built/reused (default: run.models_dir)")
    parser.add_argument("--events", action="store_true",
                        help="keep every event each voxbus stream received in the JSON (voxbus_events)")
    parser.add_argument("--out", default="live_bench", help="results file name under tests/bench/results")
    args = parser.parse_args(argv)
    args.model_keys = args.models.split(",")
    unknown = [m for m in args.model_keys if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")
    args.peer_vad_endpointing = args.peer_vad_endpointing or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not eval_available():
        sys.stderr.write(f"live_bench: {live.EVAL_DIR} is absent; the benchmark needs ../shared/eval\n")
        return 2
    if importlib.util.find_spec("wyoming") is None:
        sys.stderr.write("live_bench: the Wyoming client library is missing from this venv "
                         "(.venv/bin/pip install wyoming)\n")
        return 2
    clips = pick_clips(args.clips)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    code = rounds.code_version()
    try:
        results = [bench_model(key, args, clips) for key in args.model_keys]
    except (stacks.StackError, peer_wyoming.PeerError) as exc:
        sys.stderr.write(f"live_bench: {exc}\n")
        return 2
    rows = [row for result in results for row in result["rows"]]
    print_table(f"live, end_silence_ms={args.end_silence_ms}, latency from the clip's last frame sent "
                f"(nothing subtracted), {len(clips)} clips per stream", [table_row(r) for r in rows])
    print_table("voxbus / wyoming-faster-whisper, same run", ratio_rows(rows))
    path = write_json(args.out, {
        "started": started, "code": code, "end_silence_ms": args.end_silence_ms, "frame_s": rounds.FRAME_S,
        "pause_s": PAUSE_S, "stagger_s": rounds.STAGGER_S, "clips": clips, "repeats": args.repeats,
        "host": {"cores": len(os.sched_getaffinity(0)), "machine": platform.machine(),
                 "load_avg": os.getloadavg()},
        "wyoming_client": peer_wyoming.client_version(), "ratios": ratio_rows(rows), "results": results})
    sys.stdout.write(f"\nwritten {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
