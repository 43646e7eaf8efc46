"""`make soak`: the whole stack under steady load for an hour, then whether it held.

    .venv/bin/python -m tests.bench.soak [--minutes N] [--streams K] [--job-every S]   (SOAK_MINUTES)

Not a `*_bench.py` (so `make bench` does not run it) and not in `make test`. K live streams
(default 4) each play real clips of ../shared/eval at real time, one WebSocket session per pass
over their clips, back to back; a file job (a few clips in one WAV) goes in every `--job-every`
seconds. Each minute the RSS of every stage is sampled. At the end, against the issue's bars:

- RSS growth per stage over the last (minutes - window) minutes < 5 % (60 min: the last 50);
- finals lost: utterances spoken with no final, or more than one, = 0; file jobs failed = 0;
- final latency p95 of the last window within 10 % of the first (window = minutes / 6, ≥ 1).

Latency is final arrival minus when the clip's last speech sample was sent. Prints a table,
writes tests/bench/results/soak.json, exits 1 when a bar is missed (2: could not run).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time

import httpx
import soundfile

from tests.bench.common import eval_available, print_table, write_json
from tests.bench.live_rounds import code_version, percentile, rss_mb
from tests.e2e import live
from tests.e2e import stack as stacks

CLIPS = ["ls-1089-134691-0000", "lj-LJ001-0011", "librivox-0880", "timit-ldc93s1", "ls-1089-134691-0001",
         "ls-6930-75918-0000", "lj-LJ001-0004", "lj-LJ001-0016", "librivox-0890", "ls-1089-134686-0001"]
JOB_CLIPS = ["lj-LJ001-0011", "ls-1089-134691-0000", "librivox-0880"]
END_SILENCE_MS = 800
RSS_GROWTH_MAX = 0.05
LATENCY_GROWTH_MAX = 0.10


def window_minutes(minutes: float) -> float:
    return max(1.0, minutes / 6)


class Soak:
    def __init__(self, stack: stacks.Stack, minutes: float, streams: int, job_every_s: float):
        self.stack = stack
        self.started = time.time()
        self.deadline = self.started + minutes * 60
        self.streams = streams
        self.job_every_s = job_every_s
        self.utterances: list[dict] = []   # one row per utterance spoken: when, final count, latency
        self.jobs: list[dict] = []
        self.samples: list[dict] = []      # per minute: {minute, stage: rss_mb, ...}

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.stream(i)) for i in range(self.streams)]
        tasks += [asyncio.create_task(self.job_loop()), asyncio.create_task(self.sample_loop())]
        await asyncio.gather(*tasks)
        self.sample()  # the last sample, after the load

    async def stream(self, index: int) -> None:
        order = CLIPS[index % len(CLIPS):] + CLIPS[:index % len(CLIPS)]
        audio, placed = live.build_stream(order, pause_s=1.5)
        url = f"{self.stack.ws}/stream?language=en&end_silence_ms={END_SILENCE_MS}&sample_rate=16000&encoding=f32"
        await asyncio.sleep(index * 0.37)  # streams start a little apart
        while time.time() < self.deadline:
            session = await live.stream(url, audio)
            finals = live.match_finals(session, placed)
            for u in placed:
                got = finals[u.id]
                self.utterances.append({
                    "stream": index, "at": session.sent_time(u.speech_off) - self.started, "finals": len(got),
                    "latency_s": round(got[-1][0] - session.sent_time(u.speech_off), 3) if got else None,
                    "close_code": session.close_code})

    async def job_loop(self) -> None:
        audio, _ = live.build_stream(JOB_CLIPS, pause_s=1.0)
        out = io.BytesIO()
        soundfile.write(out, audio, live.RATE, format="WAV", subtype="PCM_16")
        body = out.getvalue()
        async with httpx.AsyncClient(timeout=600) as client:
            while time.time() < self.deadline:
                sent = time.time()
                try:
                    r = await client.post(f"{self.stack.http}/transcribe", files={"audio_file": ("soak.wav", body)},
                                          data={"language": "en"})
                    status, text = r.status_code, r.text[:200]
                except httpx.HTTPError as exc:
                    status, text = 0, str(exc)
                self.jobs.append({"at": round(sent - self.started, 1), "status": status,
                                  "seconds": round(time.time() - sent, 2), **({"error": text} if status != 200 else {})})
                await asyncio.sleep(max(0.0, sent + self.job_every_s - time.time()))

    async def sample_loop(self) -> None:
        while time.time() < self.deadline:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(min(60.0, max(0.0, self.deadline - time.time())))

    def sample(self) -> None:
        row: dict = {"minute": round((time.time() - self.started) / 60, 2)}
        for stage, pids in self.stack.pids().items():
            row[stage] = round(sum(rss_mb(pid).get("rss_mb", 0.0) for pid in pids), 1)
            row[f"{stage}_pids"] = pids
        self.samples.append(row)


def summarize(soak: Soak, minutes: float) -> dict:
    """The bars: RSS growth per stage, finals lost, job failures, latency p95 first vs last window."""
    window = window_minutes(minutes)
    stages = sorted(k for k in soak.samples[-1] if k != "minute" and not k.endswith("_pids"))
    base = min(soak.samples, key=lambda s: abs(s["minute"] - window))  # 60 min: growth over the last 50
    last = soak.samples[-1]
    growth = {s: round(last[s] / base[s] - 1, 4) if base.get(s) else None for s in stages}
    restarted = [s for s in stages if base.get(f"{s}_pids") != last.get(f"{s}_pids")]
    lat = lambda lo, hi: [u["latency_s"] for u in soak.utterances  # noqa: E731
                          if u["latency_s"] is not None and lo <= u["at"] < hi]
    first = lat(0, window * 60)
    final = lat((minutes - window) * 60, float("inf"))
    p95_first, p95_last = percentile(first, 95), percentile(final, 95)
    lost = sum(1 for u in soak.utterances if u["finals"] == 0)
    doubled = sum(1 for u in soak.utterances if u["finals"] > 1)
    jobs_failed = sum(1 for j in soak.jobs if j["status"] != 200)
    checks = {
        "rss_growth_ok": all(g is not None and g < RSS_GROWTH_MAX for g in growth.values()),
        "finals_ok": lost == 0 and doubled == 0 and jobs_failed == 0,
        "latency_ok": p95_first is not None and p95_last is not None
        and p95_last <= p95_first * (1 + LATENCY_GROWTH_MAX),
        "no_restarts": not restarted}
    return {"minutes": minutes, "window_minutes": window, "rss_base_minute": base["minute"],
            "rss_growth": growth, "restarted": restarted, "utterances": len(soak.utterances),
            "finals_lost": lost, "finals_doubled": doubled, "jobs": len(soak.jobs), "jobs_failed": jobs_failed,
            "latency_p95_first_s": p95_first, "latency_p95_last_s": p95_last,
            "latency_p50_s": percentile([u["latency_s"] for u in soak.utterances if u["latency_s"]], 50),
            "checks": checks, "passed": all(checks.values())}


def report(summary: dict, soak: Soak) -> None:
    stages = list(summary["rss_growth"])
    print_table("RSS per stage (MB), sampled each minute", [
        {"minute": s["minute"], **{st: s.get(st) for st in stages}} for s in soak.samples])
    print_table(f"soak: {summary['minutes']:g} min, {soak.streams} streams, a file job every {soak.job_every_s:g} s", [
        {"what": f"RSS growth since minute {summary['rss_base_minute']:g}, {st}", "value": summary["rss_growth"][st],
         "bar": f"< {RSS_GROWTH_MAX:.0%}"} for st in stages] + [
        {"what": "utterances / finals lost / doubled", "bar": "lost 0, doubled 0",
         "value": f"{summary['utterances']} / {summary['finals_lost']} / {summary['finals_doubled']}"},
        {"what": "file jobs / failed", "value": f"{summary['jobs']} / {summary['jobs_failed']}", "bar": "failed 0"},
        {"what": f"final latency p95, first / last {summary['window_minutes']:g} min",
         "value": f"{summary['latency_p95_first_s']} / {summary['latency_p95_last_s']} s",
         "bar": f"last ≤ first + {LATENCY_GROWTH_MAX:.0%}"},
        {"what": "stages restarted", "value": ", ".join(summary["restarted"]) or "none", "bar": "none"}])
    sys.stdout.write(f"\nsoak {'PASSED' if summary['passed'] else 'FAILED'}: {summary['checks']}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "60")))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--job-every", type=float, default=60.0, help="seconds between file jobs")
    parser.add_argument("--models-dir", help="where the tiny model is built/reused (default: run.models_dir)")
    parser.add_argument("--out", default="soak", help="results file name (tests/bench/results/NAME.json)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.streams < 1 or args.job_every <= 0:
        parser.error("--minutes and --job-every must be positive, --streams at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not eval_available():
        sys.stderr.write(f"soak: skipped: {live.EVAL_DIR} is absent; the soak plays its real clips\n")
        return 0
    from asr.build.builder import ensure_model
    from tests.bench.asr_bench import models_root

    root = models_root(args.models_dir)
    ensure_model("tiny", root / "tiny.en-int8", "int8")
    try:
        stack = stacks.start(root, model="tiny.en-int8")
        stacks.wait_healthy(stack)
    except stacks.StackError as exc:
        sys.stderr.write(f"soak: {exc}\n")
        return 2
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    soak = Soak(stack, args.minutes, args.streams, args.job_every)
    try:
        asyncio.run(soak.run())
    finally:
        stacks.stop(stack)
    summary = summarize(soak, args.minutes)
    report(summary, soak)
    path = write_json(args.out, {"started": started, "code": code_version(), "streams": args.streams,
                                 "job_every_s": args.job_every, "clips": CLIPS, "job_clips": JOB_CLIPS,
                                 "host": {"cores": len(os.sched_getaffinity(0)), "load_avg": os.getloadavg()},
                                 "summary": summary, "rss": soak.samples, "jobs": soak.jobs,
                                 "utterances": soak.utterances})
    sys.stdout.write(f"written {path}\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
