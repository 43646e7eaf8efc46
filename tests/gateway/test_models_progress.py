"""Issue 12 in the gateway alone (real bus, scripted vad+asr that serves tiny.en-int8 with en/de/fr):
choosing a model, refusing what it cannot do before any work, following a job as it runs, and
OpenAI's streamed transcription through the official client."""
from __future__ import annotations

import json

import httpx
import openai
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.gateway.conftest import gateway_cfg
from tests.gateway.helpers import WAV, until
from tests.gateway.live_server import live_gateway


def _error(r, status: int, code: str, *fragments: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], error
    return error


def _sse(text: str) -> list[tuple[str | None, dict]]:
    """(event, data) per Server-Sent Event; comments skipped."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        event = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = "".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((event, json.loads(data)))
    return events


def test_models_list_capabilities_and_the_default(client):
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["whisper-1", "tiny.en-int8"]
    alias, served = data
    assert alias["serves"] == "tiny.en-int8" and alias["default"]
    assert served["languages"] == ["en", "de", "fr"] and served["translate"] and served["word_timestamps"]
    info = client.get("/model/info").json()
    assert info["default"] == "tiny.en-int8" and info["models"][0]["loaded"] and info["models"][0]["workers"] == 1


def test_model_field_picks_a_served_model_and_refuses_others(client, pipeline):
    ok = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", WAV)}, data={"model": "tiny.en-int8"})
    assert ok.status_code == 200, ok.text
    before = len(pipeline.jobs)
    for path, field in (("/v1/audio/transcriptions", "file"), ("/inference", "file"), ("/transcribe", "audio_file")):
        _error(client.post(path, files={field: ("a.wav", WAV)}, data={"model": "large-v3"}), 400, "unknown_model",
               "'large-v3'", "served: tiny.en-int8", "whisper-1")
    assert len(pipeline.jobs) == before  # refused before any job


def test_what_the_model_cannot_do_is_refused_before_the_job(client, pipeline):
    before = len(pipeline.jobs)
    _error(client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"language": "ja"}), 400,
           "unsupported_language", "tiny.en-int8", "'ja'", "en, de, fr")
    _error(client.post("/v1/audio/transcriptions", files={"file": ("a.wav", WAV)}, data={"language": "ja"}),
           400, "unsupported_language")
    assert len(pipeline.jobs) == before


def test_stream_refuses_an_impossible_language_at_ready(client):
    with client.websocket_connect("/stream?language=ja") as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == "unsupported_language", event
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    with client.websocket_connect("/stream?model=nope") as ws:
        assert ws.receive_json()["code"] == "unknown_model"
    with client.websocket_connect("/stream?model=whisper-1&language=de") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text('{"type": "config", "language": "ja"}')
        assert ws.receive_json()["code"] == "unsupported_language"


def test_progress_events_then_the_answer(client):
    r = client.post("/transcribe?progress=true", files={"audio_file": ("a.wav", WAV)},
                    data={"response_format": "srt"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    events = _sse(r.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "job_segments" and events[0][1]["count"] == 3, events
    finals = [d for e, d in events if e == "final"]
    assert sorted(f["index"] for f in finals) == [0, 1, 2] and [f["done"] for f in finals] == [1, 2, 3]
    assert all(f["count"] == 3 for f in finals)
    assert kinds[-1] == "done" and events[-1][1]["format"] == "srt" and "-->" in events[-1][1]["content"]
    _error(client.post("/transcribe?progres=1", files={"audio_file": ("a.wav", WAV)}), 400, "unknown_field")


def test_progress_reports_a_failed_job_as_an_error_event(client):
    r = client.post("/transcribe?progress=true", files={"audio_file": ("a.wav", WAV)},
                    data={"prompt": "fail-permanent"})
    event, data = _sse(r.text)[-1]
    assert event == "error" and data["status"] == 400 and data["error"]["code"], data


def test_openai_streaming_iterator(client):
    oa = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
    events = list(oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert deltas == ["part 0.", " part 1.", " part 2."]  # in audio order, though asr answered backwards
    assert events[-1].type == "transcript.text.done" and events[-1].text == "part 0. part 1. part 2."
    with pytest.raises(openai.APIError):  # a failure after the stream began: an error event the client raises
        list(oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), stream=True,
                                            prompt="fail-permanent"))


def test_whisper_cpp_verbose_names_the_detected_language(client):
    body = client.post("/inference", files={"file": ("a.wav", WAV)},
                       data={"response_format": "verbose_json", "word_timestamps": "true"}).json()
    assert body["detected_language"] == "english" and "detected_language_probability" in body
    assert all("words" in s for s in body["segments"]) and body["segments"][0]["avg_logprob"] is not None


def test_a_client_that_leaves_a_followed_job_frees_its_slot(base_cfg, pipeline):
    """Over real sockets: the job's slot is held while its events stream, and freed when the client goes."""
    with live_gateway(gateway_cfg(base_cfg, max_jobs=1)) as gateway:
        assert until(lambda: httpx.get(f"http://{gateway.base}/health").status_code == 200, 30)
        with httpx.stream("POST", f"http://{gateway.base}/transcribe?progress=true", timeout=30,
                          files={"audio_file": ("a.wav", WAV)}, data={"prompt": "no-answer"}) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("event: ")) == "event: job_segments"
            assert gateway.counters()["jobs_active"] == 1
            busy = httpx.post(f"http://{gateway.base}/transcribe?progress=true", timeout=30,
                              files={"audio_file": ("a.wav", WAV)})
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "too_many_jobs"
        assert until(lambda: gateway.counters()["jobs_active"] == 0, 10), gateway.counters()
