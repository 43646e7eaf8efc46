"""diarize=true end to end: every stage and the speaker stage under supervisord, the real tiny model,
the real speaker model, the primary eval clip (pyannote-sample, two speakers)."""
from __future__ import annotations

import io
import wave

import httpx
import pytest

from tests.kit import wait_for
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not diarization_available(),
                                 reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")]
TIMEOUT = 180


@pytest.fixture(scope="module")
def stack(speaker_stack):
    return speaker_stack


@pytest.fixture(scope="module")
def sample() -> bytes:
    return next(c for c in diarization_clips() if c.id == PRIMARY).wav_path().read_bytes()


def _silence_wav(seconds: float = 3.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))
    return out.getvalue()


def test_transcribe_labels_both_speakers(stack, sample):
    r = httpx.post(f"{stack.http}/transcribe", files={"audio_file": ("s.wav", sample)},
                   data={"diarize": "true"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {t["speaker"] for t in body["speakers"]} == {"SPEAKER_1", "SPEAKER_2"}
    labelled = [s["speaker"] for s in body["segments"]]
    assert set(labelled) == {"SPEAKER_1", "SPEAKER_2"} and "words" not in body
    # the store keeps the job's rows with their speakers
    def job_rows(speaker: str) -> list[dict]:
        r = httpx.get(f"{stack.http}/v1/transcripts", params={"speaker": speaker}, timeout=30)
        assert r.status_code == 200, r.text
        return [row for row in r.json()["transcripts"] if row["kind"] == "job"]
    wait_for(lambda: job_rows("SPEAKER_1") and job_rows("SPEAKER_2"), timeout=30, what="the job's labelled rows")


def test_openai_verbose_json_segments_and_words_carry_the_speaker(stack, sample):
    r = httpx.post(f"{stack.http}/v1/audio/transcriptions", files={"file": ("s.wav", sample)},
                   data={"model": "whisper-1", "response_format": "verbose_json", "diarize": "true",
                         "num_speakers": "2", "timestamp_granularities[]": ["segment", "word"]}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(s["speaker"] in ("SPEAKER_1", "SPEAKER_2") for s in body["segments"])
    assert body["words"] and all(w["speaker"] in ("SPEAKER_1", "SPEAKER_2") for w in body["words"])


def test_base64_takes_hints_as_json_numbers(stack, sample):
    import base64
    r = httpx.post(f"{stack.http}/transcribe/base64", json={"audio_base64": base64.b64encode(sample).decode(),
                                                            "diarize": True, "max_speakers": 2}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert {s["speaker"] for s in r.json()["segments"]} <= {"SPEAKER_1", "SPEAKER_2"}


def test_inference_vtt_has_voice_tags(stack, sample):
    r = httpx.post(f"{stack.http}/inference", files={"file": ("s.wav", sample)},
                   data={"diarize": "true", "response_format": "vtt"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert "<v SPEAKER_1>" in r.text and "<v SPEAKER_2>" in r.text


@pytest.mark.parametrize("data, code", [
    ({"diarize": "true", "num_speakers": "0"}, "bad_num_speakers"),
    ({"num_speakers": "2"}, "diarize_required"),
    ({"diarize": "true", "min_speakers": "3", "max_speakers": "2"}, "bad_min_speakers"),
    ({"diarize": "maybe"}, "bad_diarize"),
])
def test_bad_hints_are_400s_that_name_the_field(stack, sample, data, code):
    r = httpx.post(f"{stack.http}/transcribe", files={"audio_file": ("s.wav", sample)}, data=data, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_a_sample_with_no_speech_is_a_400(stack):
    r = httpx.post(f"{stack.http}/transcribe", files={"audio_file": ("s.wav", _silence_wav())},
                   data={"diarize": "true"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_speech", r.text
    assert "no speech" in r.json()["error"]["message"]
