"""The speaker stage's logic: a DiarizeJob in, Speakers or a clear Error out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bus import schemas
from speaker.service import DiarizeService
from tests.speaker.reference import synthetic_voice


@dataclass(frozen=True)
class Cfg:
    model: str
    threads: int = 1
    threshold: float = 0.70
    step_s: float = 0.4
    vad_aggressiveness: int = 2
    voices_dir: str = "/nonexistent/voxbus-test-voices"  # none enrolled (read only: never created)
    name_threshold: float = 0.85


def _job(pcm: np.ndarray, **hints) -> schemas.DiarizeJob:
    return schemas.DiarizeJob(job="j1.speakers", pcm=pcm.astype("<i2").tobytes(), **hints)


def test_missing_model_is_a_transient_error_and_an_unhealthy_heartbeat(tmp_path):
    service = DiarizeService(Cfg(str(tmp_path / "none")), str(tmp_path))
    ok, status, _ = service.state()
    assert not ok and "voxbus model build speaker" in status
    answer = service.handle(_job(np.zeros(16000, np.int16)), "w")
    assert isinstance(answer, schemas.Error) and answer.code == "speaker_model_missing" and not answer.permanent


def test_silence_is_a_permanent_no_speech_error(speaker_model_dir):
    answer = DiarizeService(Cfg(str(speaker_model_dir)), "").handle(_job(np.zeros(48000, np.int16)), "w")
    assert isinstance(answer, schemas.Error) and answer.code == "no_speech" and answer.permanent


def test_two_synthetic_voices_give_turns(speaker_model_dir):
    wav = np.concatenate([synthetic_voice(1, 4.0), np.zeros(8000, np.float32), synthetic_voice(2, 4.0)])
    pcm = np.round(wav / np.abs(wav).max() * 8000)
    answer = DiarizeService(Cfg(str(speaker_model_dir)), "").handle(_job(pcm, num_speakers=2), "w")
    assert isinstance(answer, schemas.Speakers), answer
    assert answer.count == 2 and answer.worker == "w" and answer.turns[0]["speaker"] == "SPEAKER_1"
    assert schemas.decode(schemas.encode(answer)) == answer
