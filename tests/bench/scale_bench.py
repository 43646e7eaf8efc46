"""Scale out (issue 18): file-job throughput with 1, 2, 3 remote asr workers, and what CURVE costs.

Throughput: the stack (`voxbus up`) on one network-namespace test host with its own asr worker
stopped, 1-3 `voxbus worker`s on others (tests/e2e/netns.py, CURVE on), each with one decode at
a time and one thread, pinned round-robin to this box's cores; one upload of about two minutes
of real speech (tests/kit.py CLIPS) per run, timed from POST to answer: audio seconds per second.
Also who took how many pieces, to show the load follows speed.

CURVE: a segment of 4 s of PCM (128 kB, what vad gives a worker for a 4 s utterance) sent by a
ROUTER to a DEALER over tcp on loopback and answered with a `done`-sized reply, one at a time,
plain and with CURVE: the round trip per segment and the bytes per second it sustains.

usage: python -m tests.bench scale [-- --workers 1,2,3] [--skip-jobs] [--skip-curve]
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


# ---- file-job throughput across namespaces ---------------------------------------------------

def job_throughput(counts: list[int]) -> list[dict]:
    import httpx

    from bus.supervise import SupervisorPaths, rpc
    from config import load_config
    from tests import kit
    from tests.conftest import TEST_CACHE
    from tests.e2e import netns, scale, stack as stacks
    from tests.e2e.test_scale_out import wav

    models = TEST_CACHE
    audio_pcm = kit.build_stream(kit.CLIPS, [0.8] * len(kit.CLIPS))[0]
    audio_s = len(audio_pcm) / 32000
    audio = wav(audio_pcm)
    cores = sorted(os.sched_getaffinity(0))
    rows = []
    hosts = netns.make(max(counts))
    root = Path(tempfile.mkdtemp(prefix="vbscale-bench-"))
    names = [f"w{i}" for i in range(max(counts))]
    keys = scale.make_keys(root, names)
    st = scale.start_stack(hosts, models, keys.stack, VOXBUS_ASR__MODEL="tiny.en-int8",
                           VOXBUS_VAD__JOB_MAX_SEGMENT_S="8", VOXBUS_GATEWAY__JOB_TIMEOUT_S="600")
    workers = []
    try:
        stacks.wait_healthy(st, 120)
        cfg = load_config(env=st.env)
        rpc(SupervisorPaths.for_config(cfg)).supervisor.stopProcess("asr")  # remote workers only
        for count in counts:
            while len(workers) < count:
                i = len(workers)
                workers.append(scale.start_worker(hosts, i, names[i], models, keys.workers[names[i]],
                                                  "tiny.en-int8", cores=f"[{cores[i % len(cores)]}]", log_dir=root))
            scale.wait_until(lambda: set(names[:count]) <= set(scale.roster(st)), 90, f"{count} workers joined")
            before = {n: r["given"] for n, r in scale.roster(st).items()}
            start = time.monotonic()
            response = httpx.post(f"{st.http}/transcribe", files={"audio_file": ("a.wav", audio)}, timeout=600)
            wall = time.monotonic() - start
            response.raise_for_status()
            after = scale.roster(st)
            rows.append({"workers": count, "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
                         "audio_s_per_s": round(audio_s / wall, 2),
                         "pieces": " ".join(f"{n}:{after[n]['given'] - before.get(n, 0)}" for n in names[:count]),
                         "rtf": " ".join(f"{n}:{after[n]['rtf']}" for n in names[:count]),
                         "cores": " ".join(str(cores[i % len(cores)]) for i in range(count))})
            print_table("file-job throughput so far", rows)
    finally:
        for worker in workers:
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
    print(f"\nwrote {write_json('scale', result)}")
    return 0
