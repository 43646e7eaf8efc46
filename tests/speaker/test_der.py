"""The DER scorer on hand-made cases whose answer is known."""
from __future__ import annotations

import pytest

from speaker.diarize.der import diarization_error
from speaker.diarize.turns import Turn, parse_rttm, to_rttm

REF = [Turn(0.0, 10.0, "a"), Turn(10.0, 20.0, "b")]


def test_perfect_with_other_names_is_zero():
    result = diarization_error(REF, [Turn(0.0, 10.0, "x"), Turn(10.0, 20.0, "y")])
    assert result.der == 0.0 and result.mapping == {"x": "a", "y": "b"}


def test_one_speaker_for_two_is_half_confusion_outside_the_collar():
    result = diarization_error(REF, [Turn(0.0, 20.0, "x")], collar=0.0)
    assert result.confusion == pytest.approx(10.0) and result.der == pytest.approx(0.5)


def test_miss_and_false_alarm_and_collar():
    hyp = [Turn(0.0, 9.0, "x"), Turn(10.0, 22.0, "y")]
    strict = diarization_error(REF, hyp, collar=0.0)
    assert strict.missed == pytest.approx(1.0) and strict.false_alarm == pytest.approx(2.0)
    assert diarization_error(REF, [Turn(0.2, 10.1, "x"), Turn(10.1, 19.8, "y")]).der == 0.0


def test_overlap_is_scored_for_every_speaker():
    ref = [Turn(0.0, 10.0, "a"), Turn(5.0, 10.0, "b")]
    result = diarization_error(ref, [Turn(0.0, 10.0, "x")], collar=0.0)
    assert result.scored_speech == pytest.approx(15.0) and result.missed == pytest.approx(5.0)


def test_rttm_round_trip_and_bad_line():
    assert parse_rttm(to_rttm(REF, "rec"), uri="rec") == REF
    assert parse_rttm(to_rttm(REF, "rec"), uri="other") == []
    with pytest.raises(ValueError, match="RTTM line 1"):
        parse_rttm("SPEAKER rec 1 0.0\n")
