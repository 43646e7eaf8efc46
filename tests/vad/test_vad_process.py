"""The real vad process on a real bus: live streams, file jobs, bad input, overload, SIGTERM."""
import json
import os
import time

import numpy as np

import pytest
import zmq

from bus import schemas
from tests.segment_peers import SegmentTaker
from tests.kit import CLIPS, BusClient, build_stream, frames_of, need_eval, settle, start_bus, synth_stream

pytestmark = pytest.mark.slow


@pytest.fixture
def vad_env(run_dir):
    env = os.environ.copy()
    env["VOXBUS_RUN_DIR"] = str(run_dir)
    env["VOXBUS_BUS__HEARTBEAT_INTERVAL_S"] = "0.2"
    env["VOXBUS_VAD__RESUME_GRACE_S"] = "0"  # these tests send audio with no open, which the grace holds back
    return env


@pytest.fixture
def stack(spawn, run_dir, vad_env):
    def start(**extra_env):
        env = dict(vad_env, **extra_env)
        start_bus(spawn, run_dir, env)
        vad = spawn(["-m", "vad"], env=env, name="vad")
        client = BusClient(run_dir)
        settle(client, "vad")
        return vad, client
    return start


def pull_segments(run_dir, ctx):
    """An asr worker, as far as vad's segment broker can tell."""
    return SegmentTaker(ctx, f"ipc://{run_dir}/vad-segments")


def recv_segments(pull, until, timeout=30.0):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        if pull.poll(100):
            got.append(schemas.decode(pull.recv()))
    return got


def publish_stream(client, stream, pcm, seq0=0, every=50, pause=0.002):
    for i, (offset, chunk) in enumerate(frames_of(pcm)):
        client.publish(schemas.Audio(stream=stream, seq=seq0 + i, offset=offset, pcm=chunk))
        if i % every == 0:
            time.sleep(pause)  # a little pacing: this is a test PUB, not a flood


def test_live_stream_gives_events_and_segments_then_stops_cleanly(stack, run_dir):
    need_eval()
    vad, client = stack()
    ctx = zmq.Context()
    pull = pull_segments(run_dir, ctx)
    try:
        pcm, placed = build_stream(CLIPS[:2], [1.5])
        client.publish(schemas.Open(stream="m1", language="en", partials=True, prompt="p"))
        publish_stream(client, "m1", pcm)
        ends = client.wait(lambda m: isinstance(m, schemas.SpeechEnd), what="speech_end")
        client.wait(lambda m: isinstance(m, schemas.SpeechEnd) and m.utt == 1, what="second speech_end")
        segs = recv_segments(pull, lambda got: sum(s.kind == "final" for s in got) == 2)
        finals = [s for s in segs if s.kind == "final"]
        assert [s.utt for s in finals] == [0, 1] and all(s.language == "en" and s.prompt == "p" for s in finals)
        # partials were made; at many times real time the final of an utterance may supersede them in the outbox
        for final, clip in zip(finals, placed):
            assert final.offset <= clip.speech_on and final.offset + len(final.pcm) // 2 >= clip.speech_off
        assert ends[0].stream == "m1"
        # A heartbeat from after the pull: one seen earlier may predate the send of the last final.
        hb = client.heartbeat("vad", lambda h: h.counters.get("finals", 0) >= 2 and h.counters["outbox_depth"] == 0,
                              after=len(client.seen))
        assert hb.ok and hb.counters["partials"] > 0
        assert sum(s.kind == "partial" for s in segs) + hb.counters["outbox_partials_superseded"] == hb.counters["partials"]
    finally:
        pull.close(linger=0)
        ctx.term()
        client.close()
    assert vad.stop() == 0
    assert not (run_dir / "vad-jobs").exists() and not (run_dir / "vad-segments").exists()


def test_segments_wait_for_a_worker_and_finals_go_first(stack, run_dir):
    need_eval()
    vad, client = stack()
    ctx = None
    try:
        pcm, _ = build_stream(CLIPS[:3], [1.5, 1.5])
        client.publish(schemas.Open(stream="m2"))
        publish_stream(client, "m2", pcm)
        client.wait(lambda m: isinstance(m, schemas.SpeechEnd) and m.utt == 2, what="three utterances")
        hb = client.heartbeat("vad", lambda h: h.counters["outbox_depth"] > 0)
        assert hb.counters["asr_workers"] == 0 and hb.counters["outbox_sent"] == 0  # nobody took any yet: queued
        hb = client.heartbeat("vad", lambda h: not h.ok, timeout=30)  # after ~5 s without a send
        assert hb.status == f"backlog: {hb.counters['outbox_depth']} segments waiting, no asr worker?"
        ctx = zmq.Context()
        pull = pull_segments(run_dir, ctx)
        segs = recv_segments(pull, lambda got: sum(s.kind == "final" for s in got) == 3)
        kinds = [s.kind for s in segs]
        assert kinds[:3] == ["final"] * 3 and [s.utt for s in segs[:3]] == [0, 1, 2]
        seen = len(client.seen)
        client.wait(lambda m: m in client.seen[seen:] and isinstance(m, schemas.Heartbeat) and m.stage == "vad"
                    and m.ok and m.counters["outbox_depth"] == 0, what="a healthy heartbeat")
    finally:
        if ctx is not None:
            ctx.destroy(linger=0)  # with any socket a failure left open
        client.close()


def test_file_job_is_cut_announced_and_pushed(stack, run_dir):
    need_eval()
    vad, client = stack()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{run_dir}/vad-jobs")
    pull = pull_segments(run_dir, ctx)
    try:
        pcm, _ = build_stream(CLIPS[:10], [1.0] * 10)
        cfg_limit = 30 * 16000
        push.send(schemas.encode(schemas.Job(job="j1", pcm=pcm, language="en", options={"beam_size": 2})))
        push.send(b"not a job")
        announce = client.wait(lambda m: isinstance(m, schemas.JobSegments), what="job_segments")[0]
        assert announce.job == "j1" and announce.count >= 2
        segs = recv_segments(pull, lambda got: len(got) == announce.count)
        assert [s.index for s in segs] == list(range(announce.count))
        assert all(s.count == announce.count and s.job == "j1" and s.options == {"beam_size": 2} for s in segs)
        assert all(len(s.pcm) // 2 <= cfg_limit for s in segs)
        hb = client.heartbeat("vad", lambda h: h.counters["bad_jobs"] == 1)
        assert hb.counters["jobs"] == 1
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        ctx.term()
        client.close()


def test_bad_input_is_counted_and_never_kills_vad(stack, run_dir):
    vad, client = stack(VOXBUS_BUS__SUB_HWM="50", VOXBUS_BUS__PUB_HWM="50")
    try:
        client.publish(schemas.Open(stream="r8", sample_rate=8000))
        client.publish(schemas.Audio(stream="r8", seq=0, offset=0, pcm=bytes(640)))
        client.publish(schemas.Audio(stream="odd", seq=0, offset=0, pcm=bytes(641)))
        client.pub.send_multipart([b"audio/x/", b"\x93garbage"])
        err = client.wait(lambda m: isinstance(m, schemas.Error), what="an error for r8")[0]
        assert err.code == "bad_sample_rate" and err.stream == "r8"
        # a flood far above the subscriber's high-water mark of 50 messages
        pcm = bytes(640)
        for seq in range(20000):
            client.publish(schemas.Audio(stream="flood", seq=seq, offset=seq * 320, pcm=pcm))
        try:
            hb = client.heartbeat("vad", lambda h: h.counters.get("lost_frames", 0) > 0
                                  and h.counters.get("bad_pcm") == 1, timeout=20)
        except AssertionError:
            last = [m for m in client.seen if isinstance(m, schemas.Heartbeat) and m.stage == "vad"][-1]
            raise AssertionError(f"last vad counters: {last.counters}") from None
        c = hb.counters
        assert c["rejected_frames"] == 1 and c["bad_opens"] == 1 and c["bad_messages"] == 1
        assert c["implicit_opens"] >= 2  # "odd" and "flood" were never opened
        assert c["frames"] + c["lost_frames"] <= 20002  # a loss at the very start or end shows no gap
        # still alive and segmenting afterwards
        speech = synth_stream(["Still here after the flood."])
        client.publish(schemas.Open(stream="after"))
        publish_stream(client, "after", speech, every=10, pause=0.02)  # gently: the bus queues hold only 50
        client.wait(lambda m: isinstance(m, schemas.SpeechEnd) and m.stream == "after", what="speech after flood")
        assert vad.popen.poll() is None
    finally:
        client.close()
    assert vad.stop() == 0


def job_pcm(seconds: float) -> bytes:
    """Synthetic speech with pauses, tiled to `seconds`."""
    pattern = np.frombuffer(synth_stream(["A sentence for the job.", "Then another one, a little longer.",
                                          "And the third."], gap_s=1.0, tail_s=1.0), "<i2")
    return np.tile(pattern, int(seconds * 16000 / len(pattern)) + 1)[:int(seconds * 16000)].tobytes()


def test_over_outbox_max_mb_the_oldest_job_pieces_are_dropped_and_reported(stack, run_dir):
    vad, client = stack(VOXBUS_VAD__OUTBOX_MAX_MB="1")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{run_dir}/vad-jobs")
    try:
        push.send(schemas.encode(schemas.Job(job="big", pcm=job_pcm(80.0))))  # 2.5 MB, pieces ≤ 30 s ≈ 1 MB
        announce = client.wait(lambda m: isinstance(m, schemas.JobSegments), what="job_segments")[0]
        hb = client.heartbeat("vad", lambda h: h.counters["outbox_dropped_finals"] > 0)
        dropped = hb.counters["outbox_dropped_finals"]
        errors = client.wait(lambda m: isinstance(m, schemas.Error) and m.job == "big", what="overloaded errors")
        assert [(e.code, e.index, e.permanent, e.stage) for e in errors] == \
            [("overloaded", i, False, "vad") for i in range(dropped)]
        assert "vad.outbox_max_mb" in errors[0].message and hb.counters["outbox_mb"] <= 1.0
        pull = pull_segments(run_dir, ctx)
        segs = recv_segments(pull, lambda got: len(got) == announce.count - dropped)
        assert [s.index for s in segs] == list(range(dropped, announce.count))  # the rest, in order
    finally:
        ctx.destroy(linger=0)  # push, and pull if it was opened
        client.close()


def test_a_long_job_is_cut_while_the_loop_goes_on(stack, run_dir):
    vad, client = stack()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{run_dir}/vad-jobs")
    try:
        push.send(schemas.encode(schemas.Job(job="long", pcm=job_pcm(1800.0))))
        client.wait(lambda m: isinstance(m, schemas.JobSegments), timeout=60, what="job_segments")
        beats = [m for m in client.seen if isinstance(m, schemas.Heartbeat) and m.stage == "vad"]
        assert any(h.counters["job_cutting"] for h in beats)  # the loop beat while the job was being cut
    finally:
        push.close(linger=0)
        ctx.term()
        client.close()


def speech_then_sigterm(client, vad, stream):
    """Two whole sentences, then a third cut off mid-word; SIGTERM while it is open."""
    pcm = synth_stream(["First sentence.", "Second sentence.", "And a third that never ends"], gap_s=1.2)
    mid = 640 * ((len(pcm) - 2 * 16000 * 2) // 640 - 40)  # 0.8 s before the end of the third sentence
    client.publish(schemas.Open(stream=stream, partials=False))
    publish_stream(client, stream, pcm[:mid])
    client.wait(lambda m: isinstance(m, schemas.SpeechStart) and m.utt == 2, what="the third utterance")
    sent = len(frames_of(pcm[:mid]))
    client.heartbeat("vad", lambda h: h.counters.get("frames", 0) >= sent)  # and the audio after its start
    assert vad.stop() == 0
    return [json.loads(line) for line in vad.output().splitlines() if line.startswith("{")]


def test_sigterm_finishes_open_utterances_and_sends_them(stack, run_dir):
    vad, client = stack()
    ctx = zmq.Context()
    pull = pull_segments(run_dir, ctx)
    try:
        logs = speech_then_sigterm(client, vad, "t1")
        # Speculations (the finals-to-be of utterances 0 and 1, sent as their silence began) go too.
        finals = lambda got: [s for s in got if s.kind == "final"]  # noqa: E731
        segs = finals(recv_segments(pull, lambda got: len(finals(got)) == 3))
        assert [(s.kind, s.utt) for s in segs] == [("final", 0), ("final", 1), ("final", 2)]
        assert any(e["message"] == "stopped with the outbox empty" for e in logs)
        client.wait(lambda m: isinstance(m, schemas.SpeechEnd) and m.utt == 2, what="the flushed speech_end")
    finally:
        pull.close(linger=0)
        ctx.term()
        client.close()


def test_sigterm_with_no_worker_logs_and_reports_what_is_left(stack, run_dir):
    vad, client = stack()
    try:
        logs = speech_then_sigterm(client, vad, "t2")
        [left] = [e for e in logs if e["message"] == "stopping with segments no asr worker took"]
        assert left["unsent"] == 3 and left["finals"] == 3
        errors = client.wait(lambda m: isinstance(m, schemas.Error) and m.code == "stopping" and m.utt == 2,
                             what="stopping errors")
        assert errors[0].stream == "t2" and not errors[0].permanent
        assert sorted(m.utt for m in client.seen if isinstance(m, schemas.Error) and m.code == "stopping") == [0, 1, 2]
    finally:
        client.close()
