"""diarize=true's request fields and the merge of speaker turns into a job's transcript (no sockets)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway import diarization
from gateway.errors import ApiError
from gateway.jobs import JobResult


@dataclass(frozen=True)
class SpeakerCfg:
    enabled: bool = True
    max_speakers: int = 20


def test_off_unless_asked_and_hints_parsed():
    assert diarization.parse({}, SpeakerCfg()) is None
    assert diarization.parse({"diarize": "false"}, SpeakerCfg()) is None
    assert diarization.parse({"diarize": "true", "num_speakers": "3"}, SpeakerCfg()) == diarization.Diarize(3)
    assert diarization.parse({"diarize": True, "min_speakers": "2", "max_speakers": "4"}, SpeakerCfg()) \
        == diarization.Diarize(None, 2, 4)


@pytest.mark.parametrize("fields, code, status", [
    ({"diarize": "true", "num_speakers": "0"}, "bad_num_speakers", 400),
    ({"diarize": "true", "num_speakers": "21"}, "bad_num_speakers", 400),
    ({"diarize": "true", "max_speakers": "1.5"}, "bad_max_speakers", 400),
    ({"min_speakers": "2"}, "diarize_required", 400),
    ({"diarize": "true", "num_speakers": "2", "max_speakers": "3"}, "bad_num_speakers", 400),
    ({"diarize": "true", "min_speakers": "5", "max_speakers": "2"}, "bad_min_speakers", 400),
])
def test_bad_fields_are_400s_naming_the_field(fields, code, status):
    with pytest.raises(ApiError) as error:
        diarization.parse(fields, SpeakerCfg())
    assert (error.value.status, error.value.code) == (status, code)


def test_disabled_stage_is_a_503_that_says_how_to_enable_it():
    with pytest.raises(ApiError) as error:
        diarization.parse({"diarize": "true"}, SpeakerCfg(enabled=False))
    assert error.value.status == 503 and "voxbus model build speaker" in error.value.message


def test_merge_splits_a_job_segment_at_the_word_and_hides_words_not_asked_for():
    words = [{"word": " Hi", "start": 0.0, "end": 0.5}, {"word": " there.", "start": 0.6, "end": 1.0},
             {"word": " Hello", "start": 1.5, "end": 2.0}]
    result = JobResult("Hi there. Hello", [{"start": 0.0, "end": 2.2, "text": " Hi there. Hello"}], words,
                       "en", 0.9, 10.0)
    turns = [{"start": 0.0, "end": 1.2, "speaker": "SPEAKER_1"}, {"start": 1.2, "end": 2.2, "speaker": "SPEAKER_2"}]
    merged = diarization.merge(result, turns, keep_words=False)
    assert [(s["speaker"], s["text"]) for s in merged.segments] == [("SPEAKER_1", "Hi there."), ("SPEAKER_2", "Hello")]
    assert all("words" not in s for s in merged.segments) and merged.words == [] and merged.speakers == turns
    kept = diarization.merge(result, turns, keep_words=True)
    assert [w["speaker"] for w in kept.words] == ["SPEAKER_1", "SPEAKER_1", "SPEAKER_2"]


def test_diarize_is_refused_early_by_a_model_without_word_timings():
    from gateway import models
    no_words = models.Capabilities("tiny.en", ("en",), False, word_timestamps=False, loaded=True)
    with pytest.raises(ApiError) as caught:
        models.check_request(no_words, "en", "transcribe", diarize=True)
    assert caught.value.status == 400 and caught.value.code == "unsupported_diarize", caught.value.message
    assert "word timing" in caught.value.message
    models.check_request(no_words, "en", "transcribe")  # without speakers it may transcribe
    models.check_request(models.Capabilities("old", ("en",), False, None, True), "en", "transcribe", diarize=True)
