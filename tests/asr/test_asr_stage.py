"""The asr process, alone: a recorded segments file is given to it as vad's broker would, and
the transcripts it publishes through a real bus are checked (ARCHITECTURE.md §5 step 4).

Real processes (`python -m bus`, `python -m asr`), real ZeroMQ over ipc://, the real
tiny.en model.
"""
from __future__ import annotations

import io
from pathlib import Path
import os
import signal
import time

import pytest
import zmq

from bus import schemas, sockets
from bus.recording import Record, RecordingWriter, read_records
from config import load_config
from bus.pcm import to_pcm
from tests.asr.wer import wer
from tests.segment_peers import BrokerPeer

pytestmark = pytest.mark.slow


def pcm_of(path: str) -> bytes:
    from tests.bench.common import load_audio_16k
    return to_pcm(load_audio_16k(Path(path)))


def segments_recording(clips: dict) -> bytes:
    """utt 1: a long job segment that keeps the worker busy; utt 2: three partials then a final;
    utt 3: a final; job j2: two segments. Written in the replay format {t_ns, topic, payload}."""
    long_pcm = pcm_of(clips["ls-1089-134686-0000"]["file"])
    short = clips["ls-1089-134691-0001"]
    pcm = pcm_of(short["file"])
    third = len(pcm) // 6 * 2
    msgs = [schemas.Segment(utt=0, kind="final", offset=0, pcm=long_pcm, job="busy", index=0, count=1)]
    msgs += [schemas.Segment(utt=2, kind="partial", offset=16000, pcm=pcm[:third * k], stream="mic1")
             for k in (1, 2, 3)]
    msgs += [schemas.Segment(utt=2, kind="final", offset=16000, pcm=pcm, stream="mic1"),
             schemas.Segment(utt=3, kind="final", offset=400000, pcm=pcm, stream="mic1"),
             schemas.Segment(utt=0, kind="final", offset=0, pcm=pcm, job="j2", index=0, count=2),
             schemas.Segment(utt=1, kind="final", offset=len(pcm) // 2, pcm=pcm, job="j2", index=1, count=2)]
    out = io.BytesIO()
    writer = RecordingWriter(out)
    for i, msg in enumerate(msgs):
        writer.write(Record(t_ns=i, topic=b"vad.segments", payload=schemas.encode(msg)))
    return out.getvalue()


def collect(sub: zmq.Socket, until, timeout: float) -> list[schemas.Message]:
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        if sub.poll(200):
            got.append(schemas.unpack(sub.recv_multipart()))
    return got


def wait_for_model(sub: zmq.Socket, timeout: float = 60) -> schemas.Heartbeat:
    beats = collect(sub, lambda got: any(isinstance(m, schemas.Heartbeat) and m.stage == "asr"
                                         and m.model_status() and m.model_status().loaded for m in got), timeout)
    asr = [m for m in beats if isinstance(m, schemas.Heartbeat) and m.stage == "asr"]
    assert asr and asr[-1].model_status().loaded, f"asr never loaded its model: {asr[-1:]}"
    return asr[-1]


@pytest.fixture
def asr_stack(run_dir, spawn, tiny_model_dir):
    env = dict(os.environ, VOXBUS_ASR__MODEL=str(tiny_model_dir), VOXBUS_ASR__THREADS="1")
    spawn(["-m", "bus"], env=env, name="bus")
    asr = spawn(["-m", "asr"], env=env, name="asr")
    cfg = load_config(env=env)
    ctx = zmq.Context()
    push = BrokerPeer(ctx, cfg.vad.segments)  # the test plays vad: the real broker on a ROUTER
    sub = sockets.subscriber(ctx, cfg.bus, [b"text/", b"job/", b"health/asr/"])
    yield cfg, push, sub, asr
    push.close()
    sub.close(linger=0)
    ctx.term()


def test_replayed_segments_give_transcripts_newest_partial_only_finals_all(asr_stack, eval_clips):
    cfg, push, sub, asr = asr_stack
    heartbeat = wait_for_model(sub)
    assert heartbeat.model_status().name and heartbeat.ok
    for record in read_records(io.BytesIO(segments_recording(eval_clips))):
        push.send(schemas.decode(record.payload))
    finals_wanted = {("busy", 0), ("mic1", 2), ("mic1", 3), ("j2", 0), ("j2", 1)}

    def done(got):
        return finals_wanted <= {(m.job or m.stream, m.utt) for m in got
                                 if isinstance(m, schemas.Transcript) and m.kind == "final"}
    got = collect(sub, done, timeout=90)
    transcripts = [m for m in got if isinstance(m, schemas.Transcript)]
    assert done(got), f"missing finals; got {[(m.kind, m.stream or m.job, m.utt) for m in transcripts]}\n{asr.output()[-2000:]}"
    partials = [m for m in transcripts if m.kind == "partial"]
    assert len(partials) <= 1, "superseded partials of utt 2 were transcribed"
    final2 = next(m for m in transcripts if m.stream == "mic1" and m.utt == 2 and m.kind == "final")
    reference = eval_clips["ls-1089-134691-0001"]["transcript"]
    assert wer([reference], [final2.text]) <= 0.1, final2.text
    assert final2.is_speech_final and final2.start == pytest.approx(1.0)
    assert final2.worker and final2.encode_ms > 0 and final2.queue_ms >= 0
    job = sorted((m for m in transcripts if m.job == "j2"), key=lambda m: m.index)
    assert [m.index for m in job] == [0, 1] and all(m.count == 2 for m in job)
    assert not any(isinstance(m, schemas.Error) for m in got)


def test_bad_segments_get_error_messages_and_the_worker_keeps_serving(asr_stack, eval_clips):
    cfg, push, sub, asr = asr_stack
    wait_for_model(sub)
    push.wait_for_worker()
    push.send_raw(b"\x93not a segment")                                    # not msgpack map
    push.send(schemas.Segment(utt=1, kind="final", offset=0, pcm=b"\x01\x02\x03", stream="s"))
    push.send(schemas.Segment(utt=2, kind="final", offset=0, pcm=b"", stream="s"))
    good = pcm_of(eval_clips["ls-1089-134691-0000"]["file"])
    # A client's absurd decoding options are checked again here, before anything is allocated
    # (a beam of 10**9 once took a worker to 12 GB): a counted error, and the worker goes on.
    push.send(schemas.Segment(utt=0, kind="final", offset=0, pcm=good, job="huge", index=0, count=1,
                              options={"beam_size": 10**9}))
    push.send(schemas.Segment(utt=3, kind="final", offset=0, pcm=good, stream="s"))
    got = collect(sub, lambda got: any(isinstance(m, schemas.Transcript) and m.utt == 3 for m in got), 60)
    errors = {m.utt: m for m in got if isinstance(m, schemas.Error) and m.stream == "s"}
    assert errors[1].code == "bad_segment" and "odd number of bytes" in errors[1].message
    assert 2 in errors and errors[2].permanent
    [huge] = [m for m in got if isinstance(m, schemas.Error) and m.job == "huge"]
    assert huge.code == "bad_segment" and "beam_size must be an int from 1 to 32" in huge.message
    final = next(m for m in got if isinstance(m, schemas.Transcript) and m.utt == 3)
    assert "wait" in final.text.lower()
    def counted(got):
        return any(isinstance(m, schemas.Heartbeat) and m.counters.get("bad_messages", 0) >= 1
                   and m.counters.get("errors", 0) >= 3 for m in got)
    beats = collect(sub, counted, 30)
    assert counted(beats), [m.counters for m in beats if isinstance(m, schemas.Heartbeat)][-1:]
    assert asr.popen.poll() is None


def test_a_speculative_final_is_published_as_the_fresh_decode_would_be(asr_stack, eval_clips):
    """vad's guess is decoded ahead; when the final with the same audio comes, it is answered
    from the guess: one final, the same text a fresh decode of the final gives."""
    cfg, push, sub, asr = asr_stack
    wait_for_model(sub)
    pcm = pcm_of(eval_clips["ls-1089-134691-0001"]["file"])

    def live(kind: str, stream: str) -> schemas.Segment:
        return schemas.Segment(utt=7, kind=kind, offset=0, pcm=pcm, stream=stream, utt_offset=0)
    push.send(live("final", "fresh"))
    push.send(live("speculative", "guessed"))
    time.sleep(1.0)  # the guess is decoded (or under way) before its final comes
    push.send(live("final", "guessed"))
    finals = lambda got: [m for m in got if isinstance(m, schemas.Transcript) and m.kind == "final"]  # noqa: E731
    got = finals(collect(sub, lambda got: {m.stream for m in finals(got)} == {"fresh", "guessed"}, timeout=90))
    by_stream = {m.stream: m for m in got}
    assert sorted(m.stream for m in got) == ["fresh", "guessed"], f"{got}\n{asr.output()[-2000:]}"
    assert by_stream["guessed"].text == by_stream["fresh"].text and by_stream["guessed"].is_speech_final
    first, second = sorted(m.seq for m in got)  # finals are numbered per producer: a subscriber sees gaps
    assert second == first + 1 and first > 1_700_000_000_000  # numbered from the clock: a restart never reuses one
    beat = collect(sub, lambda got: any(isinstance(m, schemas.Heartbeat) and m.stage == "asr"
                                        and m.counters.get("speculations_confirmed") for m in got), timeout=15)
    assert any(isinstance(m, schemas.Heartbeat) and m.counters.get("speculations_confirmed") == 1 for m in beat)
    late = collect(sub, lambda got: False, timeout=2)
    assert not [m for m in finals(late) if m.stream == "guessed"], "the guessed final went out twice"


def test_sigterm_mid_decode_exits_at_once_and_the_broker_gets_the_segment_back(asr_stack, eval_clips):
    """A 29 s piece with the widest beam and every temperature takes ~25 s to decode here; SIGTERM
    does not wait for it: the worker says `bye`, and the broker queues the piece for another."""
    cfg, push, sub, asr = asr_stack
    wait_for_model(sub)
    push.wait_for_worker()
    long_clip = pcm_of(eval_clips["ls-1089-134686-0000"]["file"])
    heavy = {"beam_size": 32, "patience": 10.0, "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
             "logprob_threshold": 0.0, "compression_ratio_threshold": 0.0}  # every temperature fails: all run
    push.send(schemas.Segment(utt=0, kind="final", offset=0, pcm=(long_clip * 4)[:29 * 32000], job="slow", index=0,
                              count=1, options=heavy))
    deadline = time.monotonic() + 30
    while not push.broker.ledger and time.monotonic() < deadline:
        time.sleep(0.05)
    assert push.broker.ledger, "the worker never took the piece"
    time.sleep(1.0)  # well into the decode
    started = time.monotonic()
    asr.popen.send_signal(signal.SIGTERM)
    assert asr.popen.wait(15) == 0
    took = time.monotonic() - started
    assert took < 5.0, f"SIGTERM took {took:.1f} s mid-decode\n{asr.output()[-2000:]}"
    deadline = time.monotonic() + 5
    while push.broker.counters.redelivered < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert push.broker.counters.workers_left == 1 and push.broker.counters.redelivered == 1
    assert len(push.broker.queue) == 1 and not push.broker.ledger
