"""Compressed audio over /stream (gateway.ws_decoding): WebM/Ogg Opus decoded by a real ffmpeg as chunks
arrive, other file formats refused on the first frame. The scripted peer counts the samples it heard."""
from __future__ import annotations

import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from starlette.websockets import WebSocketDisconnect

from tests.gateway.helpers import tone, until, wav_bytes

SECONDS = 3.0


def _encoded(container: str) -> bytes:
    if shutil.which("ffmpeg") is None:
        pytest.skip("compressed /stream audio needs ffmpeg (Debian: apt-get install ffmpeg)")
    fmt = {"webm": "webm", "ogg": "ogg"}[container]
    return subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "libopus",
                           "-b:a", "32k", "-f", fmt, "pipe:1"], input=wav_bytes(SECONDS, 48000),
                          capture_output=True, check=True).stdout


def _stream(client, query: str, data: bytes, chunk: int = 4000) -> tuple[list[dict], int]:
    events = []
    with client.websocket_connect(f"/stream{query}") as ws:
        assert ws.receive_json()["type"] == "ready"
        for i in range(0, len(data), chunk):
            ws.send_bytes(data[i:i + chunk])
        ws.send_text(json.dumps({"type": "eof"}))
        with pytest.raises(WebSocketDisconnect) as gone:
            while True:
                events.append(ws.receive_json())
    return events, gone.value.code


@pytest.mark.parametrize("container,query", [("webm", "?encoding=webm"), ("ogg", "")])  # ogg: sniffed
def test_opus_chunks_are_decoded_as_they_arrive(client, pipeline, container, query):
    events, code = _stream(client, query, _encoded(container))
    assert code == 1000, events
    final = [e for e in events if e["type"] == "final"][-1]
    heard = int(final["text"].split()[1])
    assert abs(heard - SECONDS * 16000) <= 16000 * 0.1, final  # all of it, at 16 kHz (Opus adds a little)


def test_other_files_are_refused_on_the_first_frame(client):
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(16000, np.float32), 16000, format="FLAC")
    for data, what in ((wav_bytes(1.0), "a WAV file"), (buf.getvalue(), "a flac file")):
        with client.websocket_connect("/stream") as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(data)
            error = ws.receive_json()
            assert error["code"] == "unsupported_encoding" and what in error["message"], error
            with pytest.raises(WebSocketDisconnect) as gone:
                ws.receive_json()
            assert gone.value.code == 1003


def test_raw_pcm_is_not_mistaken_for_a_file(client):
    events, code = _stream(client, "?encoding=f32", tone(1.0))
    assert code == 1000 and not [e for e in events if e["type"] == "error"], events
