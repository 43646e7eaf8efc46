"""Speculations: the bookkeeping alone (pure), every way a guess can end."""
from __future__ import annotations

from asr.speculation import Speculations
from bus import schemas


def seg(kind: str, utt: int = 1, samples: int = 1600, stream: str = "s", offset: int = 0) -> schemas.Segment:
    return schemas.Segment(utt=utt, kind=kind, offset=offset, pcm=bytes(2 * samples), stream=stream,
                           utt_offset=offset, ts_end_of_speech=123.0)


def result(utt: int = 1, text: str = "hello") -> schemas.Final:
    return schemas.Final(utt=utt, text=text, start=0.0, end=0.1, stream="s", encode_ms=20.0, decode_ms=30.0)


def test_a_final_that_comes_after_the_guess_is_done_goes_out_at_once():
    spec = Speculations()
    spec.offer(seg("speculative"))
    assert spec.on_result(seg("speculative"), result()) is True  # no final yet: held
    answer = spec.on_final(seg("final"))
    assert answer.text == "hello" and answer.is_speech_final and answer.ts_end_of_speech == 123.0
    assert spec.counters.confirmed == 1 and spec.counters.saved_ms == 50.0 and not spec.held


def test_a_final_that_comes_while_the_guess_decodes_waits_for_it():
    spec = Speculations()
    spec.offer(seg("speculative"))
    assert spec.on_final(seg("final")) is True
    assert spec.on_result(seg("speculative"), result()).is_speech_final


def test_speech_going_on_or_other_audio_voids_the_guess():
    spec = Speculations()
    spec.offer(seg("speculative"))
    spec.on_partial(seg("partial", samples=3200))
    assert spec.on_final(seg("final", samples=4800)) is False and spec.counters.voided == 1
    spec.offer(seg("speculative", utt=2))
    assert spec.on_final(seg("final", utt=2, samples=9999)) is False  # longer: speech came back, then ended
    assert spec.on_result(seg("speculative", utt=2), result(2)) is False and spec.counters.voided == 2


def test_a_partial_of_another_utterance_leaves_the_guess():
    spec = Speculations()
    spec.offer(seg("speculative", utt=2))
    spec.on_partial(seg("partial", utt=1))
    assert spec.held and spec.counters.voided == 0


def test_a_failed_guess_hands_back_the_final_that_waited():
    spec = Speculations()
    spec.offer(seg("speculative"))
    final = seg("final")
    assert spec.on_final(final) is True
    assert spec.on_failure(seg("speculative")) == final and not spec.held


def test_a_new_guess_never_replaces_one_a_final_waits_on():
    # seen under load (vad chaos runs): the next utterance's guess arrived while the previous final
    # waited on its guess; replacing it voided that decode and the final was never sent
    spec = Speculations()
    assert spec.offer(seg("speculative")) is True
    assert spec.on_final(seg("final")) is True            # waits on the guess under way
    assert spec.offer(seg("speculative", utt=2)) is False  # refused: the first guess stays
    assert spec.counters.refused == 1
    assert spec.on_result(seg("speculative"), result()).is_speech_final   # the waiting final goes out
    assert spec.offer(seg("speculative", utt=2)) is True   # then guesses are taken again
