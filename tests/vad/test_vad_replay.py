"""Per-stage replay: the fixture recording through `voxbus replay` into a real vad gives the golden boundaries.

The recording (tests/fixtures/vad/replay_fx1.rec, made by make_fixtures.py in the
`voxbus record` format) is five real clips joined by pauses; the golden holds the
clips' true positions and the expected boundaries. Within one vad frame, every time
(the second replay's utterance numbers follow the first's: the stream is reopened).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from bus import schemas
from bus.recording import read_records
from config import load_config
from vad.streams import StreamTable
from tests.kit import REPO, BusClient, settle, start_bus
from tests.segment_peers import SegmentTaker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vad"
RECORDING = FIXTURES / "replay_fx1.rec"
GOLDEN = json.loads((FIXTURES / "replay_fx1.golden.json").read_text())
TOLERANCE = GOLDEN["frame_samples"]  # one 30 ms vad frame


def close_enough(got, want, utt_base=0):
    want = [[w[0] + utt_base, *w[1:]] for w in want]
    assert len(got) == len(want), f"{len(got)} boundaries, golden has {len(want)}: {got} vs {want}"
    for g, w in zip(got, want):
        assert g[0] == w[0] and all(abs(a - b) <= TOLERANCE for a, b in zip(g[1:], w[1:])), (g, w)


def test_golden_matches_the_clips_it_was_made_from():
    assert len(GOLDEN["final"]) == len(GOLDEN["clips"])
    for (utt, start, end), clip in zip(GOLDEN["final"], GOLDEN["clips"]):
        assert start <= clip["speech_on"] and end >= clip["speech_off"], (utt, clip["clip"])


def test_replay_in_process_is_deterministic():
    cfg = load_config(env={}, check_cores=False).vad
    for _ in range(2):
        table, out = StreamTable(cfg), []
        with open(RECORDING, "rb") as fh:
            for rec in read_records(fh):
                out += table.handle(schemas.unpack([rec.topic, rec.payload]), 0.0)
        close_enough([[m.utt, m.offset] for m in out if isinstance(m, schemas.SpeechEnd)], GOLDEN["speech_end"])


@pytest.mark.slow
def test_replay_through_the_real_bus_and_vad_twice(spawn, run_dir):
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2")
    start_bus(spawn, run_dir, env)
    spawn(["-m", "vad"], env=env, name="vad")
    client = BusClient(run_dir)
    ctx = zmq.Context()
    pull = SegmentTaker(ctx, f"ipc://{run_dir}/vad-segments")  # an asr worker, to vad's broker
    try:
        settle(client, "vad")
        for run in range(2):
            client.seen.clear()
            result = subprocess.run([sys.executable, "-m", "cli", "replay", str(RECORDING), "--speed", "0"],
                                    env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            want = len(GOLDEN["speech_end"])
            base = run * want  # the stream was closed and opened again: its utterance numbers go on
            client.wait(lambda m: isinstance(m, schemas.SpeechEnd) and m.utt == base + want - 1,
                        what=f"run {run} ends")
            finals, deadline = [], time.monotonic() + 30
            while len(finals) < want and time.monotonic() < deadline:
                if pull.poll(100):
                    seg = schemas.decode(pull.recv())
                    if seg.kind == "final":
                        finals.append([seg.utt, seg.offset, seg.offset + len(seg.pcm) // 2])
            events = [m for m in client.seen if getattr(m, "stream", None) == GOLDEN["stream"]]
            close_enough([[m.utt, m.offset] for m in events if isinstance(m, schemas.SpeechStart)],
                         GOLDEN["speech_start"], base)
            close_enough([[m.utt, m.offset] for m in events if isinstance(m, schemas.SpeechEnd)],
                         GOLDEN["speech_end"], base)
            close_enough(finals, GOLDEN["final"], base)
        hb = client.heartbeat("vad")
        assert hb.counters.get("lost_frames", 0) == 0 and hb.counters.get("implicit_opens", 0) == 0
    finally:
        pull.close(linger=0)
        ctx.term()
        client.close()
