"""Partials as new audio only: vad's PartialDeltas and asr's UtteranceAudio give back, together,
exactly the segments vad made, and fall back to whole partials whenever that is not safe."""
from __future__ import annotations

import dataclasses

from asr.utterances import UtteranceAudio
from bus import schemas
from vad.deltas import PartialDeltas


def partial(utt: int, start: int, samples: int, stream: str = "s", kind: str = "partial") -> schemas.Segment:
    pcm = bytes((i * 7 + utt) % 256 for i in range(samples * 2))
    return schemas.Segment(utt=utt, kind=kind, offset=start, pcm=pcm, stream=stream, utt_offset=start,
                           voiced=b"\x01" * (samples // 480), voiced_frame_ms=30)


def push_all(deltas: PartialDeltas, segments, worker: bytes = b"asr-1"):
    sent = []
    for segment in segments:
        shaped = deltas.shape(segment, worker)
        assert schemas.decode(schemas.encode(shaped)) == shaped  # valid on the wire
        deltas.pushed_ok(segment, shaped, worker)
        sent.append(shaped)
    return sent


def test_one_worker_gets_new_audio_only_and_rebuilds_every_partial():
    deltas = PartialDeltas()
    made = [partial(0, 1000, n) for n in (8000, 16000, 24000)] + [partial(0, 1000, 30000, kind="final")]
    sent = push_all(deltas, made)
    assert [s.is_delta for s in sent] == [False, True, True, False]
    assert [len(s.pcm) // 2 for s in sent] == [8000, 8000, 8000, 30000]
    worker = UtteranceAudio()
    assert [worker.complete(s) for s in sent] == made
    assert deltas.bytes_saved == (8000 + 16000) * 2 and not worker.held


def test_partials_alternating_between_workers_go_whole():
    deltas = PartialDeltas()
    made = [partial(0, 0, n) for n in (8000, 16000, 24000)]
    sent = [push_all(deltas, [segment], worker)[0] for segment, worker in zip(made, (b"a", b"b", b"a"))]
    assert sent == made


def test_a_partial_to_another_worker_or_after_its_worker_went_is_whole():
    deltas = PartialDeltas()
    push_all(deltas, [partial(0, 0, 8000)])
    assert not push_all(deltas, [partial(0, 0, 16000)], b"asr-2")[0].is_delta
    deltas.forget_worker(b"asr-2")  # dropped by the broker: it holds nothing
    assert not push_all(deltas, [partial(0, 0, 24000)], b"asr-2")[0].is_delta


def test_a_delta_that_joins_nothing_is_counted_and_dropped():
    deltas = PartialDeltas()
    first, second = push_all(deltas, [partial(0, 0, 8000), partial(0, 0, 16000)])
    fresh_worker = UtteranceAudio()
    assert fresh_worker.complete(second) is None and fresh_worker.gaps == 1
    assert fresh_worker.complete(first) == first  # a whole partial is always usable


def test_a_new_utterance_starts_whole_and_jobs_pass_untouched():
    deltas = PartialDeltas()
    push_all(deltas, [partial(0, 0, 8000)])
    assert not push_all(deltas, [partial(1, 40000, 8000)])[0].is_delta
    job = schemas.Segment(utt=0, kind="final", offset=0, pcm=b"\0\0" * 10, job="j", index=0, count=1)
    assert deltas.shape(job, b"asr-1") is job and UtteranceAudio().complete(job) is job


def test_the_wire_refuses_a_delta_final():
    bad = dataclasses.replace(partial(0, 0, 8000, kind="final"), offset=100)
    try:
        schemas.decode(schemas.encode(bad))
    except schemas.SchemaError as exc:
        assert "only a live partial" in str(exc)
    else:
        raise AssertionError("a final that is not whole was accepted")
