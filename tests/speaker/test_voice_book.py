"""speaker/voices.py without the model: names matched to speakers, the book on disk, bad names and samples."""
from __future__ import annotations

import numpy as np
import pytest

from speaker.voices import Voice, VoiceBook, VoiceError, check_name, names_for, voice_of


def unit(*values) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def test_each_voice_names_its_closest_speaker_above_the_threshold_once():
    voices = [Voice("ann", unit(1, 0, 0), 5.0, 0.0), Voice("bob", unit(0, 1, 0), 5.0, 0.0)]
    centroids = {"SPEAKER_1": unit(0.9, 0.3, 0), "SPEAKER_2": unit(1, 0.2, 0), "SPEAKER_3": unit(0, 0, 1)}
    assert names_for(centroids, voices, 0.9) == {"SPEAKER_2": "ann"}  # SPEAKER_1 is close too, but less
    assert names_for(centroids, voices, 0.99) == {}


def test_the_book_keeps_voices_on_disk_and_renames_turns(tmp_path):
    book = VoiceBook(tmp_path / "voices")
    book.enroll("ann", unit(1, 0, 0), 4.2)
    again = VoiceBook(tmp_path / "voices")
    assert [v["name"] for v in again.listing()] == ["ann"] and again.listing()[0]["speech_s"] == 4.2
    turns = [{"start": 0.0, "end": 1.0, "speaker": "SPEAKER_1"}, {"start": 1.0, "end": 2.0, "speaker": "SPEAKER_2"}]
    named = again.name_turns(turns, {"SPEAKER_1": unit(0, 1, 0), "SPEAKER_2": unit(1, 0.1, 0)}, 0.85)
    assert [t["speaker"] for t in named] == ["SPEAKER_1", "ann"]
    assert again.delete("ann") and not again.delete("ann") and VoiceBook(tmp_path / "voices").listing() == []


@pytest.mark.parametrize("name", ["", "  ", "a/b", "SPEAKER_2", "x" * 65, "a,b"])
def test_bad_names(name):
    with pytest.raises(VoiceError) as caught:
        check_name(name)
    assert caught.value.code == "bad_name"


def test_samples_without_enough_speech():
    with pytest.raises(VoiceError) as caught:
        voice_of(np.zeros(16000, np.float32), [], encoder=None, options=None)
    assert caught.value.code == "no_speech"
    with pytest.raises(VoiceError) as caught:
        voice_of(np.zeros(16000, np.float32), [(0.0, 1.2)], encoder=None, options=None)
    assert caught.value.code == "sample_too_short" and "1.2 s" in caught.value.message
