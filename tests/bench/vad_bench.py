"""vad benchmark: CPU per stream (real-time factor) and the latency vad adds beyond end_silence_ms.

    .venv/bin/python -m tests.bench.vad_bench [--streams N] [--latency-clips N]

1. In-process RTF: StreamTable over the 24-utterance stream, with each frame packed
   and unpacked through the schema codec as the process does.
2. Process RTF: the same stream published as fast as possible into a real bus + vad;
   vad's CPU time (utime+stime from /proc) divided by the audio duration, per stream.
3. Added latency: a short stream published at real time into the real vad; for each
   utterance, time from publishing the frame that completes `end_silence_ms` of
   silence to receiving `speech_end` on the bus.
4. Live stream during a file job (`--job-hours`, default 1): a synthetic (espeak-ng)
   live stream at real time while a job of that many hours is pushed just before an
   utterance ends; the longest gap between vad heartbeats (interval 0.5 s, beaten by
   the loop thread; `_vad_clock` from their `ts`, the other as this client received
   them, which includes this client's own stalls while its ZeroMQ thread sends the
   115 MB job) and the speech_end latency show whether cutting the job stalls live streams.
Writes tests/bench/results/vad_bench.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bus import schemas
from config.schema import VadConfig
from tests.bench.common import print_table, write_json
from tests.kit import CLIPS, BusClient, build_stream, frames_of, settle, wait_for

REPO = Path(__file__).resolve().parents[2]


def long_stream() -> tuple[bytes, list]:
    rng = np.random.default_rng(3)
    return build_stream(CLIPS, list(np.round(rng.uniform(0.4, 2.0, len(CLIPS) - 1), 2)))


def in_process_rtf(pcm: bytes) -> dict:
    from vad.streams import StreamTable
    table = StreamTable(VadConfig())
    table.handle(schemas.Open(stream="b"), 0.0)
    frames = [schemas.pack(schemas.Audio(stream="b", seq=i, offset=o, pcm=c)) for i, (o, c) in enumerate(frames_of(pcm))]
    start = time.process_time()
    for raw in frames:
        table.handle(schemas.unpack(raw), 0.0)
    cpu = time.process_time() - start
    audio_s = len(pcm) / 32000
    return {"what": "in-process StreamTable", "audio_s": audio_s, "cpu_s": cpu, "rtf": cpu / audio_s}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stack:
    """A real bus and vad in a private run dir."""

    def __init__(self):
        self.run_dir = Path(tempfile.mkdtemp(prefix="vb-bench-", dir="/tmp"))
        self.env = dict(os.environ, VOXBUS_RUN_DIR=str(self.run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.5")
        self.procs = [subprocess.Popen([sys.executable, "-m", "bus"], env=self.env, cwd=REPO, stderr=subprocess.DEVNULL)]
        wait_for(lambda: (self.run_dir / "bus-subscribe").exists(), what="bus")
        self.vad = subprocess.Popen([sys.executable, "-m", "vad"], env=self.env, cwd=REPO, stderr=subprocess.DEVNULL)
        self.procs.append(self.vad)
        self.client = BusClient(self.run_dir)
        settle(self.client, "vad")

    def close(self):
        self.client.close()
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def process_rtf(stack: Stack, pcm: bytes, streams: int) -> dict:
    frames = frames_of(pcm)
    before = cpu_seconds(stack.vad.pid)
    for s in range(streams):
        stack.client.publish(schemas.Open(stream=f"r{s}", partials=True))
    for i, (offset, chunk) in enumerate(frames):
        for s in range(streams):
            stack.client.publish(schemas.Audio(stream=f"r{s}", seq=i, offset=offset, pcm=chunk))
        if i % 100 == 0:
            time.sleep(0.005)
    stack.client.heartbeat("vad", lambda h: h.counters.get("frames", 0) >= len(frames) * streams, timeout=120)
    cpu = cpu_seconds(stack.vad.pid) - before
    audio_s = len(pcm) / 32000
    return {"what": f"vad process, {streams} stream(s) at once", "audio_s": audio_s * streams, "cpu_s": cpu,
            "rtf": cpu / (audio_s * streams)}


def added_latency(stack: Stack, clips: int) -> dict:
    pcm, _ = build_stream(CLIPS[:clips], [1.5] * clips, lead_s=0.5, tail_s=1.5)
    cfg = VadConfig()
    # the segmenter counts silence in whole vad frames: 800 ms is 27 frames of 30 ms
    end_silence = -(-cfg.end_silence_ms // cfg.frame_ms) * cfg.frame_ms * 16
    stack.client.publish(schemas.Open(stream="lat", partials=False))
    sent_at = []
    t0 = time.monotonic()
    for i, (offset, chunk) in enumerate(frames_of(pcm)):
        due = t0 + i * 0.02
        while time.monotonic() < due:
            stack.client.drain(max(0.0, due - time.monotonic()))
        stack.client.publish(schemas.Audio(stream="lat", seq=i, offset=offset, pcm=chunk))
        sent_at.append((offset, time.monotonic()))
    stack.client.drain(1.0)
    ends = [m for m in stack.client.seen if isinstance(m, schemas.SpeechEnd) and m.stream == "lat"]
    received = {m.utt: m.ts for m in ends}
    lat = []
    for end in ends:
        trigger = end.offset + end_silence - 1  # the last sample of the ending silence
        frame_sent = next(t for o, t in sent_at if o + 320 > trigger)
        wall_sent = time.time() - (time.monotonic() - frame_sent)
        lat.append((received[end.utt] - wall_sent) * 1000)
    return {"utterances": len(ends), "added_ms_median": float(np.median(lat)) if lat else None,
            "added_ms_max": float(np.max(lat)) if lat else None,
            "note": "speech_end.ts (vad clock) minus publish time of the frame completing end_silence_ms; "
                    "includes up to one 30 ms vad frame of re-framing"}


JOB_SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Please send the report before noon tomorrow.",
                 "It was a bright cold day in April.", "We will meet again at the station at six."]


def _stamped_drain(client: BusClient, seconds: float, stamps: list[float]) -> None:
    """Drain, remembering when each new message arrived (same index as client.seen)."""
    client.drain(seconds)
    stamps.extend([time.monotonic()] * (len(client.seen) - len(stamps)))


def first_speech_end_s(pcm: bytes) -> float:
    from vad.streams import StreamTable
    table = StreamTable(VadConfig())
    for i, (offset, chunk) in enumerate(frames_of(pcm)):
        for msg in table.handle(schemas.Audio(stream="x", seq=i, offset=offset, pcm=chunk), 0.0):
            if isinstance(msg, schemas.SpeechEnd):
                return msg.offset / 16000
    raise RuntimeError("the live stream has no utterance")


def job_stall(stack: Stack, hours: float) -> dict:
    """Publish a live stream at real time, push a long job as an utterance ends; measure the loop's stalls."""
    import zmq
    from tests.kit import synth_stream
    live = synth_stream(JOB_SENTENCES * 2, gap_s=1.5)
    pattern = np.frombuffer(synth_stream(JOB_SENTENCES, gap_s=1.0, tail_s=1.0), "<i2")
    job_pcm = np.tile(pattern, int(hours * 3600 * 16000 / len(pattern)) + 1)[:int(hours * 3600 * 16000)].tobytes()
    job_bytes = schemas.encode(schemas.Job(job="long", pcm=job_pcm))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{stack.run_dir}/vad-jobs")
    # push the job just before the first utterance's speech_end is due, so a stall shows in its latency
    push_at = first_speech_end_s(live) + 0.1
    client, stamps = stack.client, []
    client.drain(0.5)
    stamps.extend([0.0] * len(client.seen))
    first = len(client.seen)
    client.publish(schemas.Open(stream="busy", partials=False))
    t0, pushed_at = time.monotonic(), None
    for i, (offset, chunk) in enumerate(frames_of(live)):
        due = t0 + i * 0.02
        while time.monotonic() < due:
            _stamped_drain(client, max(0.0, due - time.monotonic()), stamps)
        if pushed_at is None and i * 0.02 >= push_at:
            push.send(job_bytes, copy=False)
            pushed_at = time.monotonic()
        client.publish(schemas.Audio(stream="busy", seq=i, offset=offset, pcm=chunk, ts=time.time()))
    _stamped_drain(client, 1.5, stamps)
    push.close(linger=0)
    ctx.term()
    new = list(zip(client.seen[first:], stamps[first:]))
    beats = [t for m, t in new if isinstance(m, schemas.Heartbeat) and m.stage == "vad"]
    beat_ts = [m.ts for m, _ in new if isinstance(m, schemas.Heartbeat) and m.stage == "vad"]
    announced = [t for m, t in new if isinstance(m, schemas.JobSegments)]
    ends = [m for m, _ in new if isinstance(m, schemas.SpeechEnd) and m.stream == "busy"]
    cfg = VadConfig()
    end_silence_s = -(-cfg.end_silence_ms // cfg.frame_ms) * cfg.frame_ms / 1000
    # speech_end.ts minus the wall time the frame completing the end silence was due
    t0_wall = time.time() - (time.monotonic() - t0)
    lat = [(m.ts - (t0_wall + m.offset / 16000 + end_silence_s)) * 1000 for m in ends]
    return {"job_hours": hours, "job_cut_s": round(announced[0] - pushed_at, 2) if announced else None,
            "heartbeat_gap_max_s": round(float(np.max(np.diff(beats))), 2) if len(beats) > 1 else None,
            "heartbeat_gap_max_s_vad_clock": round(float(np.max(np.diff(beat_ts))), 2) if len(beat_ts) > 1 else None,
            "utterances": len(ends), "speech_end_ms_median": round(float(np.median(lat)), 1) if lat else None,
            "speech_end_ms_max": round(float(np.max(lat)), 1) if lat else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vad_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4, help="parallel streams for the process RTF")
    parser.add_argument("--latency-clips", type=int, default=4)
    parser.add_argument("--job-hours", type=float, default=1.0, help="length of the file job pushed in step 4")
    parser.add_argument("--only-job", action="store_true", help="run step 4 alone")
    args = parser.parse_args(argv)
    if args.only_job:
        stack = Stack()
        try:
            stall = job_stall(stack, args.job_hours)
        finally:
            stack.close()
        print_table("live stream while a file job is cut", [stall])
        sys.stdout.write(f"\nwrote {write_json('vad_bench_job', stall)}\n")
        return 0
    pcm, placed = long_stream()
    rows = [in_process_rtf(pcm)]
    stack = Stack()
    try:
        rows.append(process_rtf(stack, pcm, 1))
        rows.append(process_rtf(stack, pcm, args.streams))
        latency = added_latency(stack, args.latency_clips)
        stall = job_stall(stack, args.job_hours)
    finally:
        stack.close()
    print_table(f"vad CPU ({len(placed)} utterances, {len(pcm) / 32000:.0f} s of audio)", rows)
    print_table("vad added latency beyond end_silence_ms", [latency])
    print_table("live stream while a file job is cut", [stall])
    path = write_json("vad_bench", {"rtf": rows, "latency": latency, "job_stall": stall})
    sys.stdout.write(f"\nwrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
