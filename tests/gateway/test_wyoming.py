"""The Wyoming server through the `wyoming` package's own AsyncTcpClient, against the real bus and a scripted vad+asr.

The scripted peer (conftest.ScriptedPipeline) answers a stream with speech_start and
a partial after 0.5 s of audio, and with speech_end and the final "heard N samples"
on flush: so the tests see exactly what went onto the bus.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

wyoming = pytest.importorskip("wyoming", reason="the wyoming package (a test dependency) is not installed")
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402

from gateway.wyoming_audio import AudioFormat, to_mono_int16  # noqa: E402
from tests.conftest import REPO, find_free_port  # noqa: E402
from tests.gateway.test_ws_session import until  # noqa: E402
from gateway.wyoming_transcript import TranscriptAssembler  # noqa: E402

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def wyoming_port(make_client, pipeline, base_cfg):
    cfg = dataclasses.replace(base_cfg, wyoming=dataclasses.replace(base_cfg.wyoming, enabled=True,
                                                                    port=find_free_port()))
    with make_client(cfg=cfg) as client:
        yield client.app_state["wyoming"].port


def tone(seconds: float, rate: int, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    return np.repeat(wave[:, None], channels, axis=1).tobytes()


async def read_until(client: AsyncTcpClient, kind: str) -> list[Event]:
    seen = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed before {kind}; got {[e.type for e in seen]}"
        seen.append(event)
        if event.type == kind:
            return seen


async def transcribe(port: int, audio: bytes, rate: int, width: int, channels: int, chunk_s: float = 0.1,
                     language: str | None = "en") -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=TIMEOUT) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = int(chunk_s * rate) * width * channels
        for i in range(0, len(audio), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=audio[i:i + step]).event())
        await client.write_event(AudioStop().event())
        return await read_until(client, "transcript-stop")


def test_describe_names_the_served_model(wyoming_port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", wyoming_port, read_timeout=TIMEOUT) as client:
            await client.write_event(Describe().event())
            return Info.from_event((await read_until(client, "info"))[-1])
    info = asyncio.run(go())
    program = info.asr[0]
    assert program.name == "voxbus" and program.supports_transcript_streaming and program.installed
    assert [(m.name, m.languages, m.installed) for m in program.models] == [("tiny.en-int8", ["en", "de", "fr"], True)]
    assert program.models[0].attribution.name == "OpenAI"


def test_round_trip_streams_chunks_then_the_transcript(wyoming_port, pipeline):
    events = asyncio.run(transcribe(wyoming_port, tone(1.5, 16000), 16000, 2, 1))
    kinds = [e.type for e in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"], kinds
    assert TranscriptStart.from_event(events[0]).language == "en"
    transcript = Transcript.from_event(events[-2])
    assert transcript.text == "heard 24000 samples" and transcript.language == "en"
    chunks = "".join(TranscriptChunk.from_event(e).text for e in events if e.type == "transcript-chunk")
    assert chunks == transcript.text  # the chunks add up to the transcript when no final revises them
    assert TranscriptStop.is_type(events[-1].type)
    stream = next(s for s, frames in pipeline.audio.items() if s.startswith("wy-")
                  and sum(len(f.pcm) for f in frames) == 24000 * 2)
    assert until(lambda: pipeline.control(stream) == ["open", "flush", "close"]), pipeline.control(stream)
    opened = next(m for m in pipeline.ctl if m.stream == stream and m.TYPE == "open")
    assert opened.source == "wyoming" and opened.language == "en"


def test_22050_hz_stereo_is_resampled_to_16k_mono(wyoming_port, pipeline):
    events = asyncio.run(transcribe(wyoming_port, tone(2.0, 22050, channels=2), 22050, 2, 2, language=None))
    text = Transcript.from_event(events[-2]).text
    samples = int(text.split()[1])
    assert abs(samples - 32000) <= 32, text   # 2 s at 16 kHz, within soxr's edge


def test_bad_input_gets_errors_and_the_connection_goes_on(wyoming_port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", wyoming_port, read_timeout=TIMEOUT) as client:
            answers = []
            for event in (Event("no-such-event"), AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0").event(),
                          AudioStop().event(), Transcribe(language="klingon").event(),
                          Transcribe(language="ja").event(),
                          Transcribe(name="large-v3").event(),
                          AudioStart(rate=16000, width=5, channels=1).event()):
                await client.write_event(event)
                answers.append(Error.from_event((await read_until(client, "error"))[-1]))
            await client.write_event(Describe().event())  # still served
            await read_until(client, "info")
            return answers
    codes = [(e.code, e.text) for e in asyncio.run(go())]
    assert [c for c, _ in codes] == ["unknown_event", "illegal_state", "illegal_state", "bad_language",
                                     "unsupported_language", "unknown_model", "bad_audio_format"], codes
    assert "before audio-start" in codes[1][1] and "'klingon'" in codes[3][1] and "width 5" in codes[6][1]
    assert "'ja'" in codes[4][1] and "en, de, fr" in codes[4][1]  # what the served model does (issue 12)
    assert "'large-v3'" in codes[5][1] and "tiny.en-int8" in codes[5][1]


def test_a_taken_wyoming_port_stops_the_gateway_with_one_line(bus_run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, VOXBUS_RUN_DIR=str(bus_run_dir), VOXBUS_GATEWAY__PORT=str(find_free_port()),
                   VOXBUS_WYOMING__PORT=str(port))
        env.pop("VOXBUS_CONFIG", None)
        done = subprocess.run([sys.executable, "-m", "gateway"], env=env, cwd=REPO, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use (wyoming.host / wyoming.port" \
        in done.stderr.decode().lower()


@pytest.mark.parametrize("raw, code", [
    (b"x" * 70000, "too_large"),
    (json.dumps({"type": "audio-chunk", "payload_length": 1 << 30}).encode() + b"\n", "too_large"),
    (b"not json\n", "bad_header"),
    (json.dumps({"data": {}}).encode() + b"\n", "bad_header"),
])
def test_unreadable_framing_gets_an_error_then_the_connection_ends(wyoming_port, raw, code):
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", wyoming_port)
        writer.write(raw)
        await writer.drain()
        header = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
        data = json.loads(await reader.readexactly(header["data_length"]))
        rest = await asyncio.wait_for(reader.read(), TIMEOUT)  # b"" once the server closed
        writer.close()
        return header["type"], data, rest
    kind, data, rest = asyncio.run(go())
    assert (kind, data["code"], rest) == ("error", code, b""), data
    assert asyncio.run(_describes(wyoming_port))  # the server itself is fine


async def _describes(port: int) -> bool:
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=TIMEOUT) as client:
        await client.write_event(Describe().event())
        return (await read_until(client, "info"))[-1].type == "info"


# ---- the pure parts -----------------------------------------------------------------

def test_audio_widths_and_channels_become_mono_int16():
    stereo16 = np.array([[1000, 3000], [-2000, -4000]], "<i2").tobytes()
    assert np.frombuffer(to_mono_int16(stereo16, AudioFormat(16000, 2, 2)), "<i2").tolist() == [2000, -3000]
    u8 = bytes([128, 255, 0])
    assert np.frombuffer(to_mono_int16(u8, AudioFormat(8000, 1, 1)), "<i2").tolist() == [0, 32512, -32768]
    s24 = b"\x00\x00\x40" + b"\x00\x00\xc0"  # +0.5, -0.5
    assert np.frombuffer(to_mono_int16(s24, AudioFormat(48000, 3, 1)), "<i2").tolist() == [16384, -16384]
    s32 = np.array([1 << 30], "<i4").tobytes()
    assert np.frombuffer(to_mono_int16(s32, AudioFormat(48000, 4, 1)), "<i2").tolist() == [16384]


def test_chunks_are_only_words_two_partials_agree_on():
    t = TranscriptAssembler()
    assert t.partial(0, "turn on") is None
    assert t.partial(0, "turn on the lights") == "turn on"
    assert t.partial(0, "turn on the light in") == " the"
    assert t.final(0, "Turn on the light in the kitchen.", "en") == " light in the kitchen."  # case, "." ignored
    assert t.text == "Turn on the light in the kitchen." and t.language == "en"


def test_a_final_that_contradicts_sent_words_stops_the_chunks():
    t = TranscriptAssembler()
    t.partial(0, "turn off the")
    assert t.partial(0, "turn off the lights") == "turn off the"
    assert t.final(0, "Turn on the lights.", "en") is None
    assert t.partial(1, "and the") is None and t.partial(1, "and the radio") is None
    assert t.text == "Turn on the lights."


def test_finals_of_several_utterances_chunk_in_order():
    t = TranscriptAssembler()
    assert t.final(0, "Hello there.", "en") == "Hello there."
    assert t.partial(1, "how are") is None
    assert t.partial(1, "how are you") == " how are"
    assert t.final(1, "how are you doing", None) == " you doing"
    assert t.text == "Hello there. how are you doing"
