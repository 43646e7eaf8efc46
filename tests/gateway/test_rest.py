"""The HTTP API through Starlette's TestClient, with the real bus and a scripted vad+asr peer."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile

from gateway import jobs
from tests.gateway.helpers import WAV, until, wav_bytes


def test_service_info_health_and_model(client):
    info = client.get("/").json()
    assert info["name"] == "voxbus" and info["status"] == "ok" and "/v1/audio/transcriptions" in info["endpoints"]
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["missing"] == []
    # The gateway's own heartbeat crosses the bus like the others; /health may turn 200 a beat before it does.
    assert until(lambda: {"bus", "vad", "asr", "gateway"} <= set(client.get("/health").json()["stages"])), \
        client.get("/health").json()
    model = client.get("/model/info").json()
    assert model["model"] == "tiny.en-int8" and model["precision"] == "int8" and model["sample_rate"] == 16000
    assert model["workers_seen"] == 1 and model["threads"] == 1


def test_transcribe_json(client, pipeline):
    r = client.post("/transcribe", files={"audio_file": ("a.wav", WAV, "audio/wav")},
                    data={"language": "en", "task": "transcribe", "normalize": "true", "trim_silence": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "part 0. part 1. part 2."
    assert body["language"] == "en" and body["duration"] == 5.0
    assert body["inference_time"] > 0 and body["total_time"] >= body["inference_time"]
    assert body["rtf"] == pytest.approx(body["inference_time"] / 5.0, abs=2e-4)
    assert body["timestamp"].endswith("Z") and [s["start"] for s in body["segments"]] == [0.0, 2.0, 4.0]
    job = pipeline.jobs[-1]
    assert job.language == "en" and len(job.pcm) == 5 * 16000 * 2
    assert job.options == {"temperature": 0.0}  # only what asr's decoder accepts
    assert "words" not in body


@pytest.mark.parametrize("fmt,check", [
    ("text", lambda r: r.text == "part 0. part 1. part 2.\n"),
    ("srt", lambda r: r.text.startswith("1\n00:00:00,000 --> 00:00:02,000\npart 0.\n\n2\n")),
    ("vtt", lambda r: r.text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\npart 0.")),
    ("verbose_json", lambda r: r.json()["segments"][2]["id"] == 2 and r.json()["language"] == "english"),
])
def test_transcribe_formats(client, fmt, check):
    r = client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"response_format": fmt})
    assert r.status_code == 200 and check(r), r.text


def test_transcribe_base64_and_data_urls(client):
    encoded = base64.b64encode(WAV).decode()
    for value in (encoded, "data:audio/wav;base64," + encoded):
        r = client.post("/transcribe/base64", json={"audio_base64": value, "language": "auto", "task": "transcribe"})
        assert r.status_code == 200 and r.json()["text"] == "part 0. part 1. part 2.", r.text


def test_whisper_cpp_inference(client, pipeline):
    r = client.post("/inference", files={"file": ("a.wav", WAV)},
                    data={"response_format": "json", "temperature": "0.2", "language": "en", "n_threads": "4"})
    assert r.status_code == 200 and r.json() == {"text": "part 0. part 1. part 2."}
    assert pipeline.jobs[-1].options == {"temperature": 0.2}
    r = client.post("/inference", files={"file": ("a.wav", WAV)}, data={"response_format": "srt"})
    assert r.text.startswith("1\n00:00:00,000")


def test_word_timestamps_are_passed_on_when_asked(client, pipeline):
    r = client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"word_timestamps": "true"})
    assert pipeline.jobs[-1].options == {"temperature": 0.0, "word_timestamps": True}
    assert [w["word"] for w in r.json()["words"]] == [" part0", " part1", " part2"]


def _error(r, status: int, code: str, *needles: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    for needle in needles:
        assert needle in err["message"], err
    return err


def test_request_errors_are_specific(client):
    post = client.post
    _error(post("/transcribe", files={"file": ("a.wav", WAV)}), 400, "missing_file", "'audio_file'", "file")
    _error(post("/transcribe", data={"language": "en"}), 400, "not_multipart", "multipart/form-data")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"colour": "red"}), 400,
           "unknown_field", "colour")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"language": "xx"}), 400, "bad_language")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"task": "sing"}), 400, "bad_task")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"response_format": "pdf"}), 400,
           "bad_response_format", "json, text, srt, vtt, verbose_json")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"temperature": "hot"}), 400,
           "bad_temperature")
    _error(post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"normalize": "perhaps"}), 400,
           "bad_normalize")
    _error(post("/transcribe", files={"audio_file": ("a.wav", b"")}), 400, "empty_audio")
    _error(post("/transcribe", files={"audio_file": ("a.wav", b"RIFF" + b"\x00" * 400)}), 400, "unsupported_format")
    _error(post("/transcribe", files={"audio_file": ("a.txt", b"hello, I am text")}), 400, "unsupported_format")
    silent = io.BytesIO()
    soundfile.write(silent, np.zeros(16000), 16000, format="WAV")
    _error(post("/transcribe", files={"audio_file": ("s.wav", silent.getvalue())}, data={"trim_silence": "1"}),
           400, "empty_audio", "silent")
    _error(post("/transcribe/base64", content=b"{nope"), 400, "bad_json")
    _error(post("/transcribe/base64", json={"audio": "x"}), 400, "missing_audio", "audio_base64")
    _error(post("/transcribe/base64", json={"audio_base64": "!!!"}), 400, "bad_base64")
    _error(post("/transcribe/base64", json={"audio_base64": base64.b64encode(WAV).decode(), "language": 5}), 400,
           "bad_language")
    _error(client.get("/transcribe"), 405, "method_not_allowed")
    _error(client.get("/no/such/thing"), 404, "not_found", "/no/such/thing")
    _error(client.get("/stream"), 426, "upgrade_required", "ws://")


def test_limits_say_the_limit(make_client, pipeline):
    with make_client(max_upload_mb=1, max_audio_s=3.0) as c:
        big = b"\x00" * (1024 * 1024 + 10)
        _error(c.post("/transcribe", files={"audio_file": ("big.wav", big)}), 413, "too_large", "1 MB",
               "gateway.max_upload_mb")
        _error(c.post("/transcribe/base64", json={"audio_base64": base64.b64encode(big).decode()}), 413, "too_large")
        _error(c.post("/transcribe", files={"audio_file": ("long.wav", WAV)}), 400, "audio_too_long",
               "5.0 s long", "limit is 3 s")


def test_chunked_body_over_the_limit_is_stopped(make_client, pipeline):
    def chunks():
        for _ in range(40):
            yield b"\x00" * 65536
    with make_client(max_upload_mb=1) as c:
        r = c.post("/transcribe", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        _error(r, 413, "too_large")


def test_bus_errors_become_http_errors(client):
    _error(client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"prompt": "fail-permanent"}), 400,
           "bad_segment", "scripted failure", "asr")
    _error(client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"prompt": "fail-transient"}), 503,
           "bad_segment", "retry")


def test_a_job_without_answer_times_out(make_client, pipeline, monkeypatch):
    monkeypatch.setattr(jobs, "ACK_PER_AUDIO_S", 0.0)
    with make_client(job_timeout_s=2.0, job_timeout_per_audio_s=0.0) as c:
        # The segment count must come back within the ack wait, or this is a 503: that wait stays at
        # its default (15 s) here, past the job's deadline, so a slow round trip cannot cut it short.
        _error(c.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"prompt": "no-answer"}), 504,
               "job_timeout", "0 of 3", "gateway.job_timeout_s")
        monkeypatch.setattr(jobs, "ACK_BASE_S", 0.5)  # shorter than the job's deadline: no ack is a 503
        _error(c.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"prompt": "no-ack"}), 503,
               "vad_no_answer")


def test_no_vad_means_503_at_once(make_client, base_cfg, bus_run_dir, monkeypatch):
    import dataclasses
    monkeypatch.setattr(jobs, "PUSH_TIMEOUT_MS", 200)
    cfg = dataclasses.replace(base_cfg, vad=dataclasses.replace(base_cfg.vad, jobs=f"ipc://{bus_run_dir}/nobody"))
    with make_client(healthy=False, cfg=cfg) as c:
        _error(c.post("/transcribe", files={"audio_file": ("a.wav", WAV)}), 503, "vad_unavailable", "is it running")


def test_concurrent_uploads_all_finish(make_client, pipeline):
    """Requests do not queue behind each other in the gateway: each waits only for its own job."""
    import concurrent.futures
    short, long = wav_bytes(1.0), wav_bytes(20.0)
    with make_client(max_jobs=6) as client, concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client.post, "/transcribe", files={"audio_file": ("a.wav", data)})
                   for data in (long, short, long, short, short, long)]
        texts = [f.result().json()["text"] for f in futures]
    assert texts[1] == "part 0." and texts[0].endswith("part 9.")


def test_jobs_beyond_max_jobs_get_503_with_retry_after(make_client, pipeline):
    """A job that gets no answer holds its slot; the next one is refused before its body is read."""
    import threading
    # The held job must outlive the refusals below, even on a busy machine; the test waits it out.
    with make_client(max_jobs=1, job_timeout_s=5.0, job_timeout_per_audio_s=0.0) as client:
        first = {}
        holder = threading.Thread(target=lambda: first.update(r=client.post(
            "/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"prompt": "no-answer"})))
        holder.start()
        assert until(lambda: pipeline.jobs and pipeline.jobs[-1].prompt == "no-answer")
        for path, field in (("/transcribe", "audio_file"), ("/v1/audio/transcriptions", "file"),
                            ("/inference", "file")):
            r = client.post(path, files={field: ("a.wav", WAV)})
            message = _error(r, 503, "too_many_jobs", "already running 1 file jobs (gateway.max_jobs)")
            assert r.headers["retry-after"] == "5", message
        r = client.post("/transcribe/base64", json={"audio_base64": base64.b64encode(WAV).decode()})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        holder.join(60)
        assert not holder.is_alive(), "the held job never timed out"
        assert first["r"].status_code == 504  # the no-answer job timed out and gave its slot back
        assert client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}).status_code == 200


def test_malformed_requests_leave_the_server_healthy(client):
    rng = np.random.default_rng(1)
    bad = [
        lambda i: client.post("/transcribe", files={"audio_file": ("x.bin", rng.bytes(int(rng.integers(0, 3000))))}),
        lambda i: client.post("/transcribe", content=rng.bytes(200),
                              headers={"content-type": "multipart/form-data; boundary=zz"}),
        lambda i: client.post("/transcribe/base64", content=rng.bytes(100)),
        lambda i: client.post("/v1/audio/transcriptions", data={"model": "whisper-1"}),
        lambda i: client.post("/inference", files={"file": ("x", b"")}),
        lambda i: client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}, data={"temperature": str(-i)}),
    ]
    statuses = [bad[i % len(bad)](i).status_code for i in range(200)]
    assert set(statuses) <= {400, 413}, sorted(set(statuses))
    # healthy again once the heartbeats (3 s fresh) are in; a dead receive task would stay 503
    assert until(lambda: client.get("/health").status_code == 200), client.get("/health").json()
    assert client.post("/transcribe", files={"audio_file": ("a.wav", WAV)}).status_code == 200
