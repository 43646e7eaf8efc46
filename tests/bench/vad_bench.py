"""vad benchmark: CPU per stream (real-time factor) and the latency vad adds beyond end_silence_ms.

    .venv/bin/python -m tests.bench.vad_bench [--streams N] [--latency-clips N]

1. In-process RTF: StreamTable over the 24-utterance stream, with each frame packed
   and unpacked through the schema codec as the process does.
2. Process RTF: the same stream published as fast as possible into a real bus + vad;
   vad's CPU time (utime+stime from /proc) divided by the audio duration, per stream.
3. Added latency: a short stream published at real time into the real vad; for each
   utterance, time from publishing the frame that completes `end_silence_ms` of
   silence to receiving `speech_end` on the bus.
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
from tests.vad.kit import CLIPS, BusClient, build_stream, frames_of, settle, wait_for

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vad_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4, help="parallel streams for the process RTF")
    parser.add_argument("--latency-clips", type=int, default=4)
    args = parser.parse_args(argv)
    pcm, placed = long_stream()
    rows = [in_process_rtf(pcm)]
    stack = Stack()
    try:
        rows.append(process_rtf(stack, pcm, 1))
        rows.append(process_rtf(stack, pcm, args.streams))
        latency = added_latency(stack, args.latency_clips)
    finally:
        stack.close()
    print_table(f"vad CPU ({len(placed)} utterances, {len(pcm) / 32000:.0f} s of audio)", rows)
    print_table("vad added latency beyond end_silence_ms", [latency])
    path = write_json("vad_bench", {"rtf": rows, "latency": latency})
    sys.stdout.write(f"\nwrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
