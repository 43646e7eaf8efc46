"""The speaker stage following a live stream: real bus, real speaker process, the primary clip's
audio on audio/<s>/ and one final per utterance on text/<s>/ (as asr would publish them)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from bus import schemas
from bus.pcm import to_int16
from speaker.diarize.der import diarization_error
from speaker.diarize.regions import speech_regions
from speaker.diarize.turns import Turn
from tests.kit import BusClient, frames_of, settle, start_bus, wait_for
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not diarization_available(),
                                 reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")]


def test_finals_get_stable_speakers_of_their_stream(spawn, run_dir, speaker_model_dir):
    env = {**os.environ, "VOXBUS_SPEAKER__LIVE": "true", "VOXBUS_SPEAKER__MODEL": str(speaker_model_dir)}
    start_bus(spawn, run_dir, env)
    stage = spawn(["-m", "speaker"], env=env, name="speaker")
    client = BusClient(run_dir, prefixes=(b"speaker/", b"health/", b"ctl/"))
    settle(client, "speaker")  # our PUB reaches the stage: its heartbeat lists the probe stream
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    pcm = to_int16(clip.load_audio())
    client.publish(schemas.Open(stream="room", source="test"))
    for seq, (offset, frame) in enumerate(frames_of(pcm.tobytes())):
        client.publish(schemas.Audio(stream="room", seq=seq, offset=offset, pcm=frame))
    utterances = speech_regions(pcm, bridge_s=0.5)  # where vad would end utterances at 500 ms of silence
    for utt, (start, end) in enumerate(utterances):
        client.publish(schemas.Final(utt=utt, text="…", start=start, end=end, stream="room"))
    labelled = client.wait(lambda m: isinstance(m, schemas.Speakers) and m.utt == len(utterances) - 1,
                           timeout=120, what="the last final's speakers")
    answers = [m for m in client.seen if isinstance(m, schemas.Speakers)]
    assert [m.utt for m in answers] == list(range(len(utterances))), "one answer per final, in order"
    turns = [Turn(t["start"], t["end"], t["speaker"]) for m in answers for t in m.turns]
    result = diarization_error(clip.reference(), turns)
    assert labelled[-1].count == 2 and result.der <= 0.15, result.as_dict()
    client.publish(schemas.Close(stream="room"))
    wait_for(lambda: any(isinstance(m, schemas.Heartbeat) and m.stage == "speaker"
                         and "room" not in m.counters["per_stream"] for m in client.drain(0.2)[-5:]),
             what="the closed stream to be forgotten")
    assert stage.popen.poll() is None, stage.output()
