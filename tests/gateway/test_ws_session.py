"""/stream through Starlette's TestClient: the protocol end to end against the real bus and a scripted vad+asr."""
from __future__ import annotations

import json

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.gateway.helpers import tone, until


def receive_until(ws, kind: str, limit: int = 50) -> tuple[dict, list[dict]]:
    seen = []
    for _ in range(limit):
        event = ws.receive_json()
        seen.append(event)
        if event["type"] == kind:
            return event, seen
    raise AssertionError(f"no {kind} in {seen}")


def closed_with(ws) -> tuple[list[dict], int]:
    events = []
    with pytest.raises(WebSocketDisconnect) as gone:
        while True:
            events.append(ws.receive_json())
    return events, gone.value.code


def test_stream_flush_and_eof(client, pipeline):
    with client.websocket_connect("/stream?language=en&end_silence_ms=500") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["session"].startswith("ws-")
        assert ready["config"]["end_silence_ms"] == 500
        stream = ready["session"]
        for _ in range(8):
            ws.send_bytes(tone(0.1))
        start, seen = receive_until(ws, "vad")
        assert start["event"] == "speech_start"
        partial, _ = receive_until(ws, "partial")
        assert partial["text"] == "partial words" and "timestamp" in partial
        ws.send_text(json.dumps({"type": "flush"}))
        final, _ = receive_until(ws, "final")
        assert final["text"] == "heard 12800 samples" and final["is_speech_final"] is True
        assert final["end"] == 0.8 and final["language"] == "en" and final["segments"]
        for _ in range(6):
            ws.send_bytes(tone(0.1))
        second_start, _ = receive_until(ws, "vad")
        assert second_start["event"] == "speech_start" and second_start["utt"] == 1, second_start
        ws.send_text(json.dumps({"type": "eof"}))
        events, code = closed_with(ws)
    assert code == 1000
    assert [e["type"] for e in events if e["type"] == "final"] == ["final"]
    assert events[-1]["type"] == "final" and events[-1]["text"] == "heard 22400 samples"
    assert until(lambda: pipeline.control(stream) == ["open", "flush", "flush", "close"]), pipeline.control(stream)
    opened = next(m for m in pipeline.ctl if m.stream == stream)
    assert (opened.language, opened.end_silence_ms, opened.source) == ("en", 500, "ws")
    frames = pipeline.audio[stream]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert all(f.offset == i * 320 for i, f in enumerate(frames))


def test_config_message_and_resampling(client, pipeline):
    with client.websocket_connect("/stream") as ws:
        stream = ws.receive_json()["session"]
        ws.send_text(json.dumps({"type": "config", "sample_rate": 8000, "encoding": "s16", "partials": False}))
        assert ws.receive_json()["config"]["sample_rate"] == 8000
        ws.send_bytes(tone(1.0, 8000, "s16"))
        start = ws.receive_json()
        ws.send_text(json.dumps({"type": "eof"}))
        events, code = closed_with(ws)
    events = [start, *events]
    assert code == 1000 and [e["type"] for e in events] == ["vad", "vad", "final"], events  # partials were off
    assert sum(len(f.pcm) for f in pipeline.audio[stream]) == 32000


def test_eof_without_speech_closes_after_a_short_wait(client, pipeline):
    with client.websocket_connect("/stream") as ws:
        stream = ws.receive_json()["session"]
        ws.send_bytes(tone(0.2))
        ws.send_text('{"type":"eof"}')
        events, code = closed_with(ws)
    assert code == 1000 and events == [], events
    # the close travels over the bus after the socket has closed
    assert until(lambda: pipeline.control(stream) == ["open", "flush", "close"]), pipeline.control(stream)


def test_protocol_mistakes_are_reported_and_the_session_goes_on(client):
    with client.websocket_connect("/stream") as ws:
        ws.receive_json()
        ws.send_text("hello")
        assert ws.receive_json()["code"] == "bad_json"
        ws.send_text('{"type":"rewind"}')
        assert ws.receive_json()["code"] == "unknown_message"
        ws.send_bytes(b"\x00" * 3)
        assert ws.receive_json()["code"] == "bad_frame"
        ws.send_text('{"type":"ping"}')
        assert ws.receive_json()["type"] == "pong"
        ws.send_bytes(tone(0.1))
        ws.send_text('{"type":"config","language":"de"}')
        err = ws.receive_json()
        assert err["code"] == "illegal_state" and "streaming" in err["message"]


@pytest.mark.parametrize("query,code,needle", [
    ("?end_silence_ms=50", "bad_config", "from 300 to 2000"),
    ("?language=xx", "bad_config", "language 'xx'"),
    ("?token=abc", "bad_config", "unknown setting(s) token"),
])
def test_bad_query_is_refused(client, query, code, needle):
    with client.websocket_connect(f"/stream{query}") as ws:
        events, close = closed_with(ws)
    assert close == 1008 and events[0]["code"] == code and needle in events[0]["message"]


def test_oversized_frame_closes_with_1009(make_client, pipeline):
    with make_client(ws_max_frame_bytes=4096) as c, c.websocket_connect("/stream") as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00" * 8192)
        events, close = closed_with(ws)
    assert close == 1009 and events[0]["code"] == "frame_too_large" and "4096" in events[0]["message"]


def test_session_limit_and_vanishing_clients(make_client, pipeline):
    with make_client(max_sessions=1) as c:
        first = c.websocket_connect("/stream")
        ws = first.__enter__()
        stream = ws.receive_json()["session"]
        ws.send_bytes(tone(0.2))
        with c.websocket_connect("/stream") as refused:
            events, close = closed_with(refused)
        assert close == 1013 and events[0]["code"] == "too_many_sessions" and "max_sessions" in events[0]["message"]
        first.__exit__(None, None, None)  # the client vanishes without eof
        assert until(lambda: pipeline.control(stream)[-1:] == ["close"]), pipeline.control(stream)
        # the handler publishes the close before it gives its slot back
        sessions = c.app_state["sessions"]
        assert until(lambda: sessions.active == 0), f"{sessions.active} session(s) still held"
        with c.websocket_connect("/stream") as again:
            assert again.receive_json()["type"] == "ready"  # the slot was freed


def test_idle_session_is_closed(make_client, pipeline):
    with make_client(ws_idle_timeout_s=1.0) as c, c.websocket_connect("/stream") as ws:
        stream = ws.receive_json()["session"]
        ws.send_bytes(tone(0.1))
        events, close = closed_with(ws)
    assert close == 1001 and events[-1]["code"] == "idle_timeout" and "ws_idle_timeout_s" in events[-1]["message"]
    assert until(lambda: pipeline.control(stream) == ["open", "close"]), pipeline.control(stream)
