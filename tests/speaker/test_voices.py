"""Named speakers on the whole stack: enrol one speaker of the primary clip from clean speech in its first
half, then its second half diarized names that speaker's turns and not the other's; list, delete, and the 400s."""
from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import pytest

from bus.pcm import to_int16
from bus.speaker_turns import speaker_at
from tests.speaker.eval_data import PRIMARY, clean_speech, diarization_available, diarization_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not diarization_available(),
                                 reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")]
RATE = 16000
TIMEOUT = 120


def _wav(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(to_int16(samples).tobytes())
    return out.getvalue()


def test_an_enrolled_voice_names_its_speakers_turns_only(speaker_stack):
    http = speaker_stack.http
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    audio, reference = clip.load_audio(), clip.reference()
    half = len(audio) / RATE / 2
    enrolled = "speaker90"  # the one with 5 s alone in the first half
    runs = clean_speech(reference, enrolled, half)
    sample = np.concatenate([audio[int(a * RATE):int(b * RATE)] for a, b in runs])
    r = httpx.post(f"{http}/v1/speakers", data={"name": "Diane"}, files={"file": ("d.wav", _wav(sample))},
                   timeout=TIMEOUT)
    assert r.status_code == 201 and r.json()["name"] == "Diane" and r.json()["speech_s"] >= 2, r.text
    try:
        assert [v["name"] for v in httpx.get(f"{http}/v1/speakers", timeout=TIMEOUT).json()["speakers"]] == ["Diane"]
        r = httpx.post(f"{http}/transcribe", files={"audio_file": ("s.wav", _wav(audio[int(half * RATE):]))},
                       data={"diarize": "true"}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        ref = [{"start": t.start - half, "end": t.end - half, "speaker": t.speaker} for t in reference if t.end > half]
        heard = [(t["speaker"], speaker_at(t["start"], t["end"], ref), round(t["end"] - t["start"], 2))
                 for t in r.json()["speakers"]]
        named = {who for ours, who, _ in heard if ours == "Diane"}
        assert named == {enrolled}, heard  # the name is on that speaker's turns, never on the other's
        assert any(ours != "Diane" for ours, _, _ in heard), heard  # the other keeps a SPEAKER_n label
    finally:
        gone = httpx.delete(f"{http}/v1/speakers/Diane", timeout=TIMEOUT)
    assert gone.status_code == 200 and gone.json()["speakers"] == [], gone.text
    again = httpx.delete(f"{http}/v1/speakers/Diane", timeout=TIMEOUT)
    assert again.status_code == 404 and again.json()["error"]["code"] == "unknown_speaker", again.text


@pytest.mark.parametrize("data, seconds, code", [
    ({}, 3.0, "bad_name"),
    ({"name": "a/b"}, 3.0, "bad_name"),
    ({"name": "Quiet"}, 0.0, "no_speech"),
    ({"name": "Brief"}, 1.0, "sample_too_short"),
])
def test_bad_enrolments_are_400s(speaker_stack, data, seconds, code):
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    speech = clip.load_audio()[int(15.0 * RATE):int((15.0 + seconds) * RATE)]  # speaker91 alone, 14.7-17.9 s
    sample = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    r = httpx.post(f"{speaker_stack.http}/v1/speakers", data=data, files={"file": ("s.wav", _wav(sample))},
                   timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
