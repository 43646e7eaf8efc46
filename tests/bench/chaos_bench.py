"""Chaos benchmark: asr killed -9 again and again under live streams and file jobs (issue 11).

The whole stack under supervisord (tests/e2e/stack.py), then rounds of tests/e2e/chaos.py: K
live streams of real clips over `/stream` at real time plus a file job (cut into pieces of at
most 6 s, so each job has many), and a SIGKILL to asr each time it holds work (a job piece or a
final being decoded). Rounds with one worker rely on supervisord's restart; rounds with a spare
worker (a second `python -m asr`, never killed) show the other worker taking the work.

Per round: kills, utterances and their finals, lost (an utterance or job piece with no final),
duplicated (a final on the bus twice), the broker's counters (finals and pieces redelivered,
partials dropped, redelivery time = the dead worker's last sign of life → its segments back in
the queue), recovery (kill → the first final on the bus from another asr process) and the finals
a kill caught (their utterance ended before the kill, their final came after: how late, at most).

usage: python -m tests.bench chaos -- [--rounds 4] [--clips 10] [--kills 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus import schemas  # noqa: E402
from tests.bench.common import eval_available, print_table, write_json  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.e2e import chaos, stack as stacks  # noqa: E402
from tests.kit import wait_for  # noqa: E402

PLAN = [(2, 0), (4, 0), (2, 1), (4, 1)]  # (live streams, spare workers) per round, repeated


def round_row(number: int, streams: int, spare: int, result: chaos.ChaosResult, took: float) -> dict:
    recovered = [k.recovered_s for k in result.kills if k.recovered_s is not None]
    counts = result.finals_per_utterance()
    return {
        "round": number, "streams": streams, "asr workers": 1 + spare, "kills": len(result.kills),
        "utterances": len(counts), "finals": sum(counts), "lost": result.lost, "duplicated": result.duplicated,
        "job pieces": f"{len(result.job_pieces)}/{result.job_count} ({result.job_status})",
        "redelivered": int(result.vad_delta("broker_redelivered")),
        "partials dropped": int(result.vad_delta("broker_partials_dropped")),
        "suppressed": int(result.vad_delta("broker_duplicates_suppressed")),
        "redelivery s": result.vad_counters.get("broker_last_redelivery_s"),
        "recovery s median / max": (f"{statistics.median(recovered):.2f} / {max(recovered):.2f}"
                                    if recovered else "-"),
        "caught finals": sum(k.caught for k in result.kills),
        "caught final late s max": max((k.caught_late_s for k in result.kills if k.caught_late_s is not None),
                                       default="-"),
        "took s": round(took, 1)}


def start_spare(stack) -> subprocess.Popen:
    """A second asr worker beside supervisord's, never killed."""
    log = open(stack.run_dir / "log" / "asr-spare.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "asr"], env=stack.env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench chaos")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clips", type=int, default=10, help="clips per live stream")
    parser.add_argument("--kills", type=int, default=3, help="kills per round")
    args = parser.parse_args(argv)
    if not eval_available():
        raise SystemExit("chaos bench: the eval clips are absent (../shared/eval)")
    models = Path(os.environ.get("VOXBUS_MODELS_DIR", Path.home() / ".local/share/voxbus/models"))
    clips = chaos.pick_clips(15)
    stack = stacks.start(models, VOXBUS_VAD__JOB_MAX_SEGMENT_S="6")
    rows, spare = [], None
    try:
        stacks.wait_healthy(stack)
        for number in range(1, args.rounds + 1):
            streams, spares = PLAN[(number - 1) % len(PLAN)]
            if spares and spare is None:
                spare = start_spare(stack)
                tap = chaos.BusTap(stack.env)
                wait_for(lambda: any(m.pid == spare.pid and m.ok for _, m in tap.messages()
                                     if isinstance(m, schemas.Heartbeat)), 60, what="the spare worker")
                tap.close()
            elif not spares and spare is not None:
                spare.terminate()
                spare.wait(30)
                spare = None
            plan = [[clips[(s * 3 + i) % len(clips)] for i in range(args.clips)] for s in range(streams)]
            started = time.monotonic()
            result = chaos.run(stack, plan, job_clips=clips[:10], kills=args.kills, first_kill_s=0.5,
                               kill_every_s=8.0, spare=frozenset({spare.pid}) if spare else frozenset())
            rows.append(round_row(number, streams, spares, result, time.monotonic() - started))
            print_table("chaos (so far)", rows[-1:])
    finally:
        if spare is not None:
            spare.terminate()
            spare.wait(30)
        stacks.stop(stack)
    print_table("asr killed -9 under live streams and a file job", rows)
    write_json("chaos_bench", rows)
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
