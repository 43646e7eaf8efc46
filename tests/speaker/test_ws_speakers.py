"""WebSocket speakers=true on the whole stack (the speaker stage labelling live streams): the primary
clip's finals carry two distinct speakers, consistent with its human RTTM; without the stage, a clear error."""
from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from bus.speaker_turns import speaker_at
from tests.kit import wait_for
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
    http = speaker_stack.http
    rule = httpx.post(f"{http}/v1/alerts", json={"id": "second-voice", "speaker": "SPEAKER_2"}, timeout=30)
    assert rule.status_code in (200, 201), rule.text
    url = http.replace("http", "ws", 1) + "/stream?speakers=true&encoding=f32&end_silence_ms=300"
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

    # the store keeps the labels on the session's rows, finds them by speaker, and the rule fired once
    stream = next(e["session"] for e in events if e["type"] == "ready")

    def stored(**filters) -> list[dict]:
        r = httpx.get(f"{http}/v1/transcripts", params={"stream": stream, **filters}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["transcripts"]
    wait_for(lambda: len(stored()) == len(finals) and all(r["speakers"] for r in stored()), timeout=30,
             what="the session's finals stored with their speakers")
    assert {r["utt"]: r["speaker"] for r in stored()} == {f["utt"]: f["speaker"] for f in finals}
    assert {r["utt"] for r in stored(speaker="SPEAKER_2")} == {f["utt"] for f in finals
                                                               if "SPEAKER_2" in {t["speaker"] for t in f["speakers"]}}
    fired = httpx.get(f"{http}/v1/alerts/fired", params={"rule": "second-voice", "stream": stream}, timeout=30)
    assert fired.status_code == 200, fired.text
    assert [(a["kind"], a["terms"]) for a in fired.json()["alerts"]] == [("speaker", ["SPEAKER_2"])], fired.json()
