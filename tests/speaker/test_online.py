"""Online assignment: stable labels across a stream's finals, new speakers appear as they come."""
from __future__ import annotations

import numpy as np
import pytest

from bus.pcm import to_int16
from speaker.diarize.der import diarization_error
from speaker.diarize.online import OnlineSpeakers, stable_labels
from speaker.diarize.regions import speech_regions
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips


def test_stable_labels_follow_the_old_windows_and_number_new_speakers_on():
    labels, following = stable_labels([5, 5, 7], np.array([1, 1, 0, 0, 2]), 8)
    assert labels.tolist() == [5, 5, 7, 7, 8] and following == 9
    labels, _ = stable_labels([], np.array([0, 1, 0]), 0)  # the first final: labels in cluster order
    assert sorted(set(labels.tolist())) == [0, 1]


@pytest.mark.skipif(not diarization_available(), reason="../shared/eval/DIARIZATION.tsv is absent")
def test_primary_clip_final_by_final_keeps_two_stable_speakers(voice_encoder):
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    wav = clip.load_audio()
    online, turns = OnlineSpeakers(voice_encoder), []
    for start, end in speech_regions(to_int16(wav), bridge_s=0.5):  # utterances as vad cuts them at 500 ms
        turns += online.assign(wav[int(start * 16000):int(end * 16000)], start)
    result = diarization_error(clip.reference(), turns)
    assert len({t.speaker for t in turns}) == 2 and result.der <= 0.15, result.as_dict()
    assert all(turns[i].end <= turns[i + 1].start + 1e-6 for i in range(len(turns) - 1))
