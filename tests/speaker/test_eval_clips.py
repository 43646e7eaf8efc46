"""Diarization of the real eval clips (../shared/eval/DIARIZATION.tsv, read in place)."""
from __future__ import annotations

import numpy as np
import pytest

from bus.pcm import to_int16
from speaker.diarize.der import diarization_error
from speaker.diarize.pipeline import diarize
from speaker.diarize.regions import speech_regions
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

pytestmark = pytest.mark.skipif(not diarization_available(),
                                reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")


def _run(clip_id, **count):
    from speaker.diarize.clustering import SpeakerCount
    clip = next(c for c in diarization_clips() if c.id == clip_id)
    wav = clip.load_audio()
    return clip, diarize(wav, speech_regions(to_int16(wav)), count=SpeakerCount(**count), encoder=_run.encoder)


@pytest.fixture(autouse=True)
def _encoder(voice_encoder):
    _run.encoder = voice_encoder


def test_primary_clip_der_and_consistent_labels():
    clip, turns = _run(PRIMARY)
    result = diarization_error(clip.reference(), turns)
    assert result.der <= 0.15, result.as_dict()
    assert len({t.speaker for t in turns}) == clip.n_speakers()
    # every reference turn of one person, where it is at least a second long, maps to one label
    for ref in (t for t in clip.reference() if t.duration >= 1.0):
        inside = [t for t in turns if min(t.end, ref.end) - max(t.start, ref.start) > 0.5 * ref.duration]
        assert all(result.mapping[t.speaker] == ref.speaker for t in inside), (ref, inside)


def test_a_count_hint_is_obeyed():
    _, turns = _run("falcon-test", num_speakers=3)
    assert len({t.speaker for t in turns}) == 3


def test_no_speech_gives_no_turns(voice_encoder):
    assert diarize(np.zeros(16000 * 3, np.float32), [], voice_encoder) == []
