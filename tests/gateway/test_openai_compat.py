"""The OpenAI-compatible API, driven by the official `openai` client over Starlette's TestClient."""
from __future__ import annotations

import openai
import pytest

from tests.gateway.helpers import WAV


@pytest.fixture(scope="module")
def oa(client):
    return openai.OpenAI(base_url="http://testserver/v1", api_key="not-needed", http_client=client, max_retries=0)


def test_transcription_json(oa, pipeline):
    result = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), language="en", prompt="Names",
                                            temperature=0.3)
    assert result.text == "part 0. part 1. part 2."
    job = pipeline.jobs[-1]
    assert job.language == "en" and job.prompt == "Names" and job.options == {"temperature": 0.3}


def test_transcription_verbose_with_words(oa, pipeline):
    result = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), response_format="verbose_json",
                                            timestamp_granularities=["word", "segment"])
    assert result.language == "english" and result.duration == 5.0
    assert [s.start for s in result.segments] == [0.0, 2.0, 4.0] and result.segments[0].text == " part 0."
    assert [w.word for w in result.words] == [" part0", " part1", " part2"]
    assert pipeline.jobs[-1].options == {"temperature": 0.0, "word_timestamps": True}
    plain = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), response_format="verbose_json")
    assert plain.words is None


@pytest.mark.parametrize("fmt,start", [("text", "part 0."), ("srt", "1\n00:00:00,000 --> "), ("vtt", "WEBVTT")])
def test_transcription_text_formats(oa, fmt, start):
    result = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), response_format=fmt)
    assert isinstance(result, str) and result.startswith(start)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client deprecates translations; we still serve them
def test_translation_sets_the_task(oa, pipeline):
    result = oa.audio.translations.create(model="whisper-1", file=("a.wav", WAV))
    assert result.text.startswith("part 0.") and pipeline.jobs[-1].task == "translate"


def test_models_lists_whisper_1_and_the_loaded_model(oa):
    ids = [m.id for m in oa.models.list()]
    assert ids == ["whisper-1", "tiny.en-int8"]


def test_errors_reach_the_client_with_our_message(oa):
    with pytest.raises(openai.BadRequestError) as err:
        oa.audio.transcriptions.create(model="whisper-1", file=("a.txt", b"not audio"))
    assert "could not decode the audio" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), response_format="pdf")
    assert "response_format 'pdf'" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), timestamp_granularities=["char"])
    assert "segment or word" in str(err.value)


def test_missing_file_field(client):
    r = client.post("/v1/audio/transcriptions", files={"audio": ("a.wav", WAV)}, data={"model": "whisper-1"})
    assert r.status_code == 400 and "field 'file'" in r.json()["error"]["message"]
    assert "audio" in r.json()["error"]["message"]
