"""eof right after speech: the gateway waits for vad's `flushed` and the final it names, then closes
at once (no fixed settle time): the last final is never lost to a busy box, nor waited for in vain."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.e2e import live
from tests.kit import need_eval

pytestmark = pytest.mark.slow


async def _speak_then_eof(url: str, audio) -> tuple[list[tuple[float, dict]], float, int]:
    import websockets

    events = []
    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())  # ready
        step = int(live.CHUNK_S * live.RATE)
        for first in range(0, audio.size, step):  # 4 × real time: the speech ends at the eof
            await ws.send(audio[first:first + step].astype("<f4").tobytes())
            await asyncio.sleep(live.CHUNK_S / 4)
        await ws.send(json.dumps({"type": "eof"}))
        async for message in ws:
            events.append((time.monotonic(), json.loads(message)))
        return events, time.monotonic(), ws.close_code


def test_eof_right_after_speech_gets_its_final_and_closes_when_it_arrives(stack):
    need_eval()
    audio, utterances = live.build_stream(["ls-1089-134691-0000", "lj-LJ001-0011"], pause_s=1.5, tail_s=0.0)
    url = f"{stack.ws}/stream?language=en&sample_rate=16000&encoding=f32"
    events, closed_at, code = asyncio.run(_speak_then_eof(url, audio))
    finals = [(t, e) for t, e in events if e["type"] == "final"]
    assert code == 1000 and [e["utt"] for _, e in finals] == [0, 1], events
    assert "letter" in finals[-1][1]["text"].lower()  # the utterance the eof cut off, transcribed
    assert events[-1][1]["type"] == "final"
    assert closed_at - finals[-1][0] < 1.0  # closed as the final came, not after a settle time
