"""WebSocket speakers=true on the whole stack (the speaker stage labelling live streams): the primary
clip's finals carry two distinct speakers, consistent with its human RTTM; without the stage, a clear error."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from bus.speaker_turns import speaker_at
from tests.speaker.eval_data import PRIMARY, diarization_available, diarization_clips

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not diarization_available(),
                                 reason="../shared/eval/DIARIZATION.tsv is absent (diarization eval clips)")]
CHUNK = 3200  # 0.2 s of 16 kHz float32


async def _session(url: str, audio: np.ndarray) -> list[dict]:
    import websockets
    events: list[dict] = []
    async with websockets.connect(url, max_size=None) as ws:
        async def receive():
            async for message in ws:
                events.append(json.loads(message))
        receiver = asyncio.create_task(receive())
        for first in range(0, audio.size, CHUNK):  # as fast as the gateway takes it (it paces)
            await ws.send(audio[first:first + CHUNK].astype("<f4").tobytes())
        await ws.send(json.dumps({"type": "eof"}))
        await asyncio.wait_for(receiver, 120)
    return events


def test_stream_finals_carry_speakers_consistent_with_the_rttm(speaker_stack):
    clip = next(c for c in diarization_clips() if c.id == PRIMARY)
    url = speaker_stack.http.replace("http", "ws", 1) + "/stream?speakers=true&encoding=f32&end_silence_ms=300"
    events = asyncio.run(_session(url, clip.load_audio()))
    finals = [e for e in events if e["type"] == "final"]
    assert finals and all(f.get("speaker") and f.get("speakers") for f in finals), finals
    segments = [s for f in finals for s in f["segments"]]
    assert {s["speaker"] for s in segments} == {"SPEAKER_1", "SPEAKER_2"}, segments
    # the stack's asr gives word timings: a final that spans a change is split, each word labelled
    assert all(w.get("speaker") for f in finals for w in f.get("words") or []) and len(segments) > len(finals)
    # each of our labels stands for one reference speaker over most of the speech
    reference = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in clip.reference()]
    theirs = [(s["speaker"], speaker_at(s["start"], s["end"], reference), s["end"] - s["start"]) for s in segments]
    weight: dict[tuple[str, str], float] = {}
    for ours, ref, seconds in theirs:
        weight[(ours, ref)] = weight.get((ours, ref), 0.0) + seconds
    best = {ours: max((w, ref) for (o, ref), w in weight.items() if o == ours)[1] for ours, _, _ in theirs}
    assert len(set(best.values())) == 2, best
    agreeing = sum(seconds for ours, ref, seconds in theirs if best[ours] == ref)
    assert agreeing >= 0.8 * sum(seconds for _, _, seconds in theirs), theirs
