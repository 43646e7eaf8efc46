"""Scale out (issue 18): file-job throughput with 1, 2, 3 remote asr workers and with 1, 2 local ones,
live final latency at K = 8 with a remote worker added, and what CURVE costs.

Throughput: the stack (`voxbus up`) on one network-namespace test host with its own asr worker
stopped, 1-3 `voxbus worker`s on others (tests/e2e/netns.py, CURVE on), each with one decode at
a time and one thread, pinned round-robin to this box's cores; one upload of about two minutes
of real speech (tests/kit.py CLIPS) per run, timed from POST to answer: audio seconds per second.
Also who took how many pieces, to show the load follows speed. The same upload to a stack on this
box without namespaces: `asr.workers` local ipc workers (one decode, one thread each), each pinned
to its own core, the second stopped for the one-worker row.

Live: the stack on a namespace test host with its asr on one core (one decode at a time), K
real-time streams of the live bench's clips (tests/bench/live_bench.py, tests/bench/live_rounds.py:
final latency = final arrival − the clip's last frame sent, nothing subtracted) with the stack's
asr only, then with one remote worker (one decode, the other core) added, then without it again.

CURVE: a segment of 4 s of PCM (128 kB, what vad gives a worker for a 4 s utterance) sent by a
ROUTER to a DEALER over tcp on loopback and answered with a `done`-sized reply, one at a time,
plain and with CURVE: the round trip per segment and the bytes per second it sustains.

usage: python -m tests.bench scale [-- --workers 1,2,3] [--local-workers 1,2] [--live-streams 8]
       [--live-clips 8] [--skip-jobs] [--skip-local] [--skip-live] [--skip-curve] [--out scale]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq
import zmq.auth

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import print_table, write_json  # noqa: E402

SEGMENT_BYTES = 4 * 16000 * 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench scale")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to run (default 1,2,3)")
    parser.add_argument("--skip-jobs", action="store_true")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--curve-count", type=int, default=500)
    parser.add_argument("--local-workers", default="1,2", help="local ipc worker counts (default 1,2)")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--live-streams", type=int, default=8, help="K for the live rounds (default 8)")
    parser.add_argument("--live-clips", type=int, default=8, help="live bench clips per stream (default 8)")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--out", default="scale", help="results file name under tests/bench/results")
    return parser.parse_args(argv)


# ---- CURVE overhead ------------------------------------------------------------------------

def _round_trips(curve_on: bool, count: int, tmp: Path) -> dict:
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    if curve_on:
        server_public, server_secret = zmq.auth.load_certificate(zmq.auth.create_certificates(tmp, "server")[1])
        client_public, client_secret = zmq.auth.load_certificate(zmq.auth.create_certificates(tmp, "client")[1])
        router.curve_secretkey, router.curve_publickey, router.curve_server = server_secret, server_public, True
        dealer.curve_secretkey, dealer.curve_publickey = client_secret, client_public
        dealer.curve_serverkey = server_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    payload, reply = os.urandom(SEGMENT_BYTES), b"d" * 24

    def worker():
        dealer.send(b"ready")
        for _ in range(count + 20):
            dealer.recv()
            dealer.send(reply)
    thread = threading.Thread(target=worker)
    thread.start()
    identity, _ = router.recv_multipart()
    times = []
    for i in range(count + 20):
        start = time.perf_counter()
        router.send_multipart([identity, payload])
        router.recv_multipart()
        if i >= 20:  # warm-up skipped
            times.append(time.perf_counter() - start)
    thread.join()
    router.close(0)
    dealer.close(0)
    ctx.term()
    total = sum(times)
    return {"curve": curve_on, "segments": count, "round_trip_ms_median": round(statistics.median(times) * 1000, 3),
            "round_trip_ms_p95": round(sorted(times)[int(0.95 * len(times))] * 1000, 3),
            "mb_per_s": round(count * SEGMENT_BYTES / total / 1e6, 1)}


def curve_overhead(count: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        return [_round_trips(False, count, Path(tmp)), _round_trips(True, count, Path(tmp))]


# ---- file-job throughput across namespaces, and on this box ----------------------------------

MODEL = "tiny.en-int8"
JOB_SETTINGS = {"VOXBUS_VAD__JOB_MAX_SEGMENT_S": "8", "VOXBUS_GATEWAY__JOB_TIMEOUT_S": "600"}


def job_audio() -> tuple[bytes, float]:
    """The upload: about two minutes of real speech as a wav, and its length in seconds."""
    from tests import kit
    from tests.e2e.test_scale_out import wav

    pcm = kit.build_stream(kit.CLIPS, [0.8] * len(kit.CLIPS))[0]
    return wav(pcm), len(pcm) / 32000


def timed_upload(st, audio: bytes, audio_s: float, names: list[str], cores: list[int]) -> dict:
    """One upload timed from POST to answer, and what each named worker (broker roster) took of it."""
    import httpx

    from tests.e2e import scale

    before = {n: r["given"] for n, r in scale.roster(st).items()}
    start = time.monotonic()
    response = httpx.post(f"{st.http}/transcribe", files={"audio_file": ("a.wav", audio)}, timeout=600)
    wall = time.monotonic() - start
    response.raise_for_status()
    after = scale.roster(st)
    return {"workers": len(names), "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "audio_s_per_s": round(audio_s / wall, 2),
            "pieces": " ".join(f"{n}:{after[n]['given'] - before.get(n, 0)}" for n in names),
            "rtf": " ".join(f"{n}:{after[n]['rtf']}" for n in names),
            "cores": " ".join(str(core) for core in cores)}


def job_throughput(counts: list[int]) -> list[dict]:
    from bus.supervise import SupervisorPaths, rpc
    from config import load_config
    from tests.conftest import TEST_CACHE
    from tests.e2e import netns, scale, stack as stacks

    models = TEST_CACHE
    audio, audio_s = job_audio()
    cores = sorted(os.sched_getaffinity(0))
    rows = []
    hosts = netns.make(max(counts))
    root = Path(tempfile.mkdtemp(prefix="vbscale-bench-"))
    names = [f"w{i}" for i in range(max(counts))]
    keys = scale.make_keys(root, names)
    st = scale.start_stack(hosts, models, keys.stack, VOXBUS_ASR__MODEL=MODEL, **JOB_SETTINGS)
    workers = []
    try:
        stacks.wait_healthy(st, 120)
        cfg = load_config(env=st.env)
        rpc(SupervisorPaths.for_config(cfg)).supervisor.stopProcess("asr")  # remote workers only
        for count in counts:
            while len(workers) < count:
                i = len(workers)
                workers.append(scale.start_worker(hosts, i, names[i], models, keys.workers[names[i]],
                                                  MODEL, cores=f"[{cores[i % len(cores)]}]", log_dir=root))
            scale.wait_until(lambda: set(names[:count]) <= set(scale.roster(st)), 90, f"{count} workers joined")
            rows.append(timed_upload(st, audio, audio_s, names[:count], [cores[i % len(cores)] for i in range(count)]))
            print_table("file-job throughput so far", rows)
    finally:
        for worker in workers:
            scale.stop_worker(worker)
        stacks.stop(st)
        hosts.delete()
    return rows


def pin_process(pid: int, core: int) -> None:
    """Every thread of a process onto one core (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def local_names(roster: dict, pids: list[int]) -> list[str] | None:
    """The roster's names of these local workers (`<host>-<pid>`), if they and only they are in it."""
    names = [next((n for n in roster if n.endswith(f"-{pid}")), None) for pid in pids]
    return names if None not in names and len(roster) == len(pids) else None


def local_throughput(counts: list[int]) -> list[dict]:
    """The same upload to a stack on this box (ipc, no namespaces), `asr.workers` = max(counts) local
    workers of one decode and one thread, worker i pinned to core i; the ones beyond `count` stopped."""
    from bus.supervise import SupervisorPaths, asr_programs, rpc
    from config import load_config
    from tests.conftest import TEST_CACHE
    from tests.e2e import scale, stack as stacks

    audio, audio_s = job_audio()
    cores = sorted(os.sched_getaffinity(0))
    st = stacks.start(TEST_CACHE, MODEL, VOXBUS_ASR__WORKERS=str(max(counts)), VOXBUS_ASR__PARALLEL="1",
                      VOXBUS_ASR__THREADS="1", VOXBUS_CORES__ASR=str(cores), VOXBUS_WYOMING__ENABLED="false",
                      VOXBUS_STORE__ENABLED="false", **JOB_SETTINGS)
    rows = []
    try:
        stacks.wait_healthy(st, 120)
        cfg = load_config(env=st.env)
        supervisor = rpc(SupervisorPaths.for_config(cfg)).supervisor
        programs = [name for name, _ in asr_programs(cfg)]
        for count in counts:
            for i, program in enumerate(programs):
                running = supervisor.getProcessInfo(program)["statename"] == "RUNNING"
                if i < count and not running:
                    supervisor.startProcess(program)
                elif i >= count and running:
                    supervisor.stopProcess(program)
            pids = [supervisor.getProcessInfo(program)["pid"] for program in programs[:count]]
            names = scale.wait_until(lambda: local_names(scale.roster(st), pids), 90,
                                     f"{count} local workers, and only they, in the roster")
            for i, pid in enumerate(pids):
                pin_process(pid, cores[i % len(cores)])
            rows.append(timed_upload(st, audio, audio_s, names, [cores[i % len(cores)] for i in range(count)]))
            print_table("file-job throughput, local workers, so far", rows)
    finally:
        stacks.stop(st)
    return rows


# ---- live final latency with a remote worker added --------------------------------------------

END_SILENCE_MS = 500  # the live bench's


def live_round(st, label: str, audio, utterances, k: int) -> dict:
    from tests.bench import live_rounds as rounds
    from tests.e2e import scale

    before = {n: r["given"] for n, r in scale.roster(st).items()}
    results, errors, _ = rounds.voxbus_round(st.ws, audio, utterances, k, END_SILENCE_MS, partials=True)
    summary = rounds.summarize(results, errors)
    after = scale.roster(st)
    return {"asr": label, "K": k, **{key: summary[key] for key in (
                "final_p50_s", "final_p95_s", "first_partial_p50_s", "first_partial_p95_s", "wer_pct",
                "missing_finals", "errors")},
            "pieces": " ".join(f"{n if n == 'remote' else 'stack'}:{r['given'] - before.get(n, 0)}"
                               for n, r in after.items()),
            "load1_after": round(os.getloadavg()[0], 1), "error_messages": sorted(set(errors))[:5]}


def live_with_remote(k: int, clip_count: int) -> list[dict]:
    """K live streams to the stack (its asr on one core): its own worker, + a remote one, without again."""
    from tests.bench import live_rounds as rounds
    from tests.bench.live_bench import PAUSE_S, pick_clips
    from tests.conftest import TEST_CACHE
    from tests.e2e import live, netns, scale, stack as stacks

    audio, utterances = live.build_stream(pick_clips(clip_count), pause_s=PAUSE_S)
    cores = sorted(os.sched_getaffinity(0))
    hosts = netns.make(1)
    root = Path(tempfile.mkdtemp(prefix="vbscale-live-"))
    keys = scale.make_keys(root, ["remote"])
    st = scale.start_stack(hosts, TEST_CACHE, keys.stack, VOXBUS_ASR__MODEL=MODEL,
                           VOXBUS_CORES__ASR=f"[{cores[-1]}]", VOXBUS_LIMITS__WS_SESSIONS="0")
    worker, rows = None, []
    cut = utterances[1].start if len(utterances) > 1 else audio.size
    try:
        stacks.wait_healthy(st, 120)
        rounds.voxbus_round(st.ws, audio[:cut], utterances[:1], 1, END_SILENCE_MS, True)  # warm-up
        for plan in ("stack's own", "+ remote", "stack's own again"):
            if plan == "+ remote":
                worker = scale.start_worker(hosts, 0, "remote", TEST_CACHE, keys.workers["remote"], MODEL,
                                            cores=f"[{cores[0]}]", log_dir=root)
                scale.wait_until(lambda: "remote" in scale.roster(st), 90, "the remote worker joined")
                rounds.voxbus_round(st.ws, audio[:cut], utterances[:1], 2, END_SILENCE_MS, True)  # its warm-up
            elif worker is not None:
                scale.stop_worker(worker)
                worker = None
                scale.wait_until(lambda: "remote" not in scale.roster(st), 30, "the remote worker left")
            rows.append(live_round(st, plan, audio, utterances, k))
            print_table("live so far", [{key: v for key, v in r.items() if key != "error_messages"} for r in rows])
    finally:
        if worker is not None:
            scale.stop_worker(worker)
        stacks.stop(st)
        hosts.delete()
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    result: dict = {"cpu_count": os.cpu_count()}
    if not args.skip_curve:
        result["curve"] = curve_overhead(args.curve_count)
        print_table(f"CURVE on a 4 s segment (128 kB) over tcp loopback, {args.curve_count} round trips",
                    result["curve"])
    if not args.skip_jobs:
        result["jobs"] = job_throughput([int(n) for n in args.workers.split(",")])
        print_table("file-job throughput, workers on other network namespaces (CURVE on)", result["jobs"])
        write_json(args.out, result)
    if not args.skip_local:
        result["local_jobs"] = local_throughput([int(n) for n in args.local_workers.split(",")])
        print_table("file-job throughput, local ipc workers on this box (no namespaces)", result["local_jobs"])
        write_json(args.out, result)
    if not args.skip_live:
        result["live"] = live_with_remote(args.live_streams, args.live_clips)
        print_table(f"live, K = {args.live_streams}, {args.live_clips} clips per stream, final latency from the "
                    "clip's last frame sent (nothing subtracted)",
                    [{key: v for key, v in r.items() if key != "error_messages"} for r in result["live"]])
    result["load_avg_end"] = os.getloadavg()
    print(f"\nwrote {write_json(args.out, result)}")
    return 0
