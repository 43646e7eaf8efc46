"""Upload bodies: the event loop keeps running while a large upload is parsed, decoded and encoded,
the JSON fast path agrees with json.loads, and every error path closes the form's temp files."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile

from gateway import uploads
from gateway.errors import ApiError
from tests.gateway.conftest import gateway_cfg

LONG_S = 900  # 29 MB of WAV, 38 MB of base64: seconds of work for the gateway on this machine
PROBE_S = 0.005


def long_wav_base64(seconds: int) -> bytes:
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal(seconds * 16000) * 2000).astype("<i2")
    buf = io.BytesIO()
    soundfile.write(buf, pcm, 16000, format="WAV", subtype="PCM_16")
    return json.dumps({"audio_base64": base64.b64encode(buf.getvalue()).decode(), "language": "en",
                       "response_format": "text"}).encode()


async def _probe(stalls: list[float], done: asyncio.Event) -> None:
    """Sleeps a few ms again and again; any lateness is time the loop was blocked."""
    while not done.is_set():
        started = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        stalls.append(time.perf_counter() - started - PROBE_S)


async def _post_with_probe(app, body: bytes) -> tuple[httpx.Response, float, float]:
    """The app in this very loop (httpx's ASGI transport, the app's own lifespan): (response, max stall, s)."""
    async with app.router.lifespan_context(app) as state:
        async def with_state(scope, receive, send):
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
            while (await client.get("/health")).status_code != 200:
                await asyncio.sleep(0.05)
            stalls, done = [], asyncio.Event()
            probe = asyncio.create_task(_probe(stalls, done))
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            response = await client.post("/transcribe/base64", content=body,
                                         headers={"content-type": "application/json"})
            took = time.perf_counter() - started
            done.set()
            await probe
    return response, max(stalls), took


@pytest.mark.slow
def test_a_large_base64_upload_does_not_block_the_event_loop(base_cfg, pipeline):
    """Before the fix the loop stalled for the whole json.loads + b64decode + tobytes + encode
    (about 0.6 s here for this body); now the largest stall is one big memory copy."""
    from gateway.app import build_app

    body = long_wav_base64(LONG_S)
    app = build_app(gateway_cfg(base_cfg, max_audio_s=3600.0, job_timeout_s=60.0))
    tries = []
    # Relative, not absolute: the work took `took` seconds; the loop was never blocked for a quarter of it.
    # On a busy machine the scheduler alone can stall one try; the blocking this guards against stalls
    # every try, so the best of up to three counts.
    while len(tries) < 3 and not any(stall < took / 4 for stall, took in tries):
        response, stall, took = asyncio.run(_post_with_probe(app, body))
        assert response.status_code == 200, response.text
        assert response.text.startswith("part 0. part 1.")
        assert len(pipeline.jobs[-1].pcm) == LONG_S * 16000 * 2
        tries.append((stall, took))
    assert any(stall < took / 4 for stall, took in tries), tries


@pytest.mark.parametrize("body", [
    {"audio_base64": "UklGRg==", "language": "en"},
    {"language": "en", "audio_base64": "UklGRg==", "prompt": 'a "quoted" audio_base64 \\ key'},
    {"audio_base64": "data:audio/wav;base64,UklGRg==", "temperature": 0.2, "normalize": True},
    {"prompt": "\"audio_base64\": \"x\"", "audio_base64": "UklGRg=="},
])
def test_json_fast_path_matches_json_loads(body):
    for raw in (json.dumps(body).encode(), json.dumps(body, indent=2).encode(),
                json.dumps(body).replace("/", "\\/").encode()):  # PHP escapes slashes: the slow path
        data, fields = uploads.parse_json_audio(raw, 1 << 20)
        expected = dict(body)
        encoded = expected.pop("audio_base64").split(",", 1)[-1]
        assert data == base64.b64decode(encoded) and fields == expected, raw


@pytest.mark.parametrize("raw,code", [
    (b"{", "bad_json"), (b"[1, 2]", "bad_json"), (b'{"language": "en"}', "missing_audio"),
    (b'{"audio_base64": ""}', "missing_audio"), (b'{"audio_base64": 5}', "missing_audio"),
    (b'{"audio_base64": "QQ==QQ=="}', "bad_base64"), (b'{"audio_base64": "QQ=*"}', "bad_base64"),
    (b'{"audio_base64": "QUJD", "audio_base64": ""}', "missing_audio"),  # duplicate keys: the last wins
    (b'{"meta": {"audio_base64": "QUJD"}, "audio_base64": ""}', "missing_audio"),
])
def test_json_body_errors(raw, code):
    with pytest.raises(ApiError) as err:
        uploads.parse_json_audio(raw, 1 << 20)
    assert err.value.code == code, err.value.message


def test_base64_is_decoded_in_chunks_with_the_same_result():
    data = np.random.default_rng(1).bytes(3 * uploads.B64_CHUNK + 7)
    encoded = base64.b64encode(data).decode()
    assert uploads.b64decode_chunked(encoded) == data
    with pytest.raises(ApiError) as err:
        uploads.b64decode_chunked(encoded[: uploads.B64_CHUNK - 2] + "==" + encoded[uploads.B64_CHUNK:])
    assert err.value.code == "bad_base64"
    with pytest.raises(ApiError):
        uploads.parse_json_audio(json.dumps({"audio_base64": encoded}).encode(), len(data) - 1)


@pytest.mark.parametrize("files,data,code", [
    ({"file": ("a.wav", b"x" * (2 << 20))}, {}, "missing_file"),          # a 2 MB part: a real temp file
    ({"audio_file": ("a.wav", b"x" * (2 << 20))}, {"language": "zz"}, "bad_language"),
    ({"audio_file": ("a.wav", b"x" * (2 << 20))}, {}, "unsupported_format"),
])
def test_every_error_path_closes_the_upload(client, monkeypatch, files, data, code):
    from starlette.datastructures import FormData
    closed = []
    original = FormData.close

    async def close(self):
        closed.append(self)
        await original(self)

    monkeypatch.setattr(FormData, "close", close)
    r = client.post("/transcribe", files=files, data=data)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert closed, "the form (and its temp files) was never closed"
