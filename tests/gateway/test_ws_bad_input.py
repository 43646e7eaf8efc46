"""Issue 11 on /stream (and Wyoming's framing): deep JSON, NaN/Inf and odd-length frames, frames after
eof. Each is an error event and the session goes on; none is a 1011."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from gateway.wyoming_framing import FramingError, read_event
from tests.gateway.helpers import tone, until
from tests.gateway.test_ws_session import closed_with, receive_until


def _alive(ws) -> None:
    ws.send_text(json.dumps({"type": "ping"}))
    receive_until(ws, "pong")


@pytest.mark.parametrize("text", ["[" * 100000, '{"type": ' + "[" * 50000 + "]" * 50000 + "}"])
def test_deeply_nested_json_text_is_bad_json_not_1011(client, text):
    """Before: RecursionError in the receiver: an internal_error event and close 1011."""
    with client.websocket_connect("/stream") as ws:
        ws.receive_json()
        ws.send_text(text)
        event, _ = receive_until(ws, "error")
        assert event["code"] == "bad_json" and "nested too deeply" in event["message"]
        assert len(event["message"]) < 300
        _alive(ws)


def test_nan_inf_and_odd_frames_are_reported_and_dropped(client, pipeline):
    with client.websocket_connect("/stream?sample_rate=48000") as ws:
        stream = ws.receive_json()["session"]
        bad = np.zeros(960, "<f4")
        bad[[3, 9]] = [np.nan, np.inf]
        ws.send_bytes(bad.tobytes())
        event, _ = receive_until(ws, "error")
        assert event["code"] == "bad_frame" and "2 NaN or infinite samples" in event["message"]
        ws.send_bytes(b"\x00" * 7)
        event, _ = receive_until(ws, "error")
        assert event["code"] == "bad_frame" and "7 bytes" in event["message"]
        for _ in range(8):  # good audio afterwards is heard as usual
            ws.send_bytes(tone(0.1, 48000))
        receive_until(ws, "partial")
        ws.send_text(json.dumps({"type": "eof"}))
        final, _ = receive_until(ws, "final")
        assert final["text"] == "heard 12800 samples"  # 0.8 s at 16 kHz: nothing of the bad frames
    assert until(lambda: pipeline.control(stream)[-1:] == ["close"]), pipeline.control(stream)


def test_frames_after_eof_are_answered_and_never_cost_the_final(client, pipeline):
    """Before: after eof the gateway stopped reading; frames sat unread until the close, unanswered.
    Now the first audio frame after eof gets an illegal_state error and the rest are dropped and
    counted (60 of them would otherwise pass the 50-errors rule and cost the last final); a text
    message after eof is its own error."""
    with client.websocket_connect("/stream") as ws:
        ws.receive_json()
        for _ in range(8):
            ws.send_bytes(tone(0.1))
        receive_until(ws, "partial")
        ws.send_text(json.dumps({"type": "eof"}))
        for _ in range(60):
            ws.send_bytes(tone(0.02))
        ws.send_text(json.dumps({"type": "flush"}))
        events, code = closed_with(ws)
        errors = [e for e in events if e["type"] == "error"]
        # the session closes as soon as the final is in (vad's `flushed` named it): the flush text may
        # come after that, and then it gets no error of its own
        assert [e["code"] for e in errors] in (["illegal_state"], ["illegal_state", "illegal_state"]), events
        assert "audio after eof is dropped" in errors[0]["message"]
        assert all("draining" in e["message"] for e in errors[1:])
        finals = [e for e in events if e["type"] == "final"]
        assert code == 1000 and len(finals) == 1 and finals[0]["text"] == "heard 12800 samples", events


@pytest.mark.parametrize("line", [b"[" * 60000 + b"\n", b'{"type": "x", "data": ' + b"[" * 30000 + b"}\n"])
def test_wyoming_deep_json_header_is_bad_header(line):
    async def read():
        reader = asyncio.StreamReader(limit=1 << 17)
        reader.feed_data(line)
        reader.feed_eof()
        return await read_event(reader, 1 << 20)

    with pytest.raises(FramingError) as err:
        asyncio.run(read())
    assert err.value.code == "bad_header"
