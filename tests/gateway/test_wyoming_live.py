"""Home Assistant's round trip through the real stack (every stage under supervisord, the real tiny model).

What Home Assistant's Wyoming STT provider does: one connection to `describe`, then
per voice command a connection with `transcribe`, `audio-start`, `audio-chunk`s as
the microphone delivers them (real time), `audio-stop` when its own VAD hears the
end, and it reads until `transcript`. Spoken through the `wyoming` package's
AsyncTcpClient, on real eval clips; the latency printed is audio-stop → transcript.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("wyoming", reason="the wyoming package (a test dependency) is not installed")
from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402

from tests.kit import serve_stack
from tests.asr.wer import wer  # noqa: E402
from tests.e2e import live  # noqa: E402

pytestmark = pytest.mark.slow

CLIP = "ls-1089-134691-0001"   # 5.4 s, "FOR A FULL HOUR HE HAD PACED UP AND DOWN ..."
CHUNK_S = 0.032                # Home Assistant's microphone chunks are about this long (1024 bytes)
TAIL_S = 0.7                   # silence before HA's own VAD calls the command over
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def wy_stack(tiny_models_dir):
    yield from serve_stack(tiny_models_dir)


def clip_int16(clip_id: str) -> tuple[np.ndarray, str]:
    row = live.manifest()[clip_id]
    audio = live.load_clip(live.EVAL_DIR / row["path"])
    tail = np.zeros(int(TAIL_S * 16000), np.float32)
    return (np.concatenate([audio, tail]) * 32767).astype("<i2"), row["transcript"]


async def ha_session(port: int, pcm: bytes, rate: int, width: int, channels: int, realtime: bool) -> dict:
    """Transcribe → audio-start → chunks (at real time if asked) → audio-stop; events with arrival times."""
    got: list[tuple[float, object]] = []
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=TIMEOUT) as client:
        async def reader():
            while (event := await client.read_event()) is not None:
                got.append((time.monotonic(), event))
                if event.type in ("transcript-stop", "error"):
                    return
        task = asyncio.create_task(reader())
        await client.write_event(Transcribe(language="en", name="tiny.en-int8").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = int(CHUNK_S * rate) * width * channels
        began = time.monotonic()
        for n, i in enumerate(range(0, len(pcm), step)):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=pcm[i:i + step]).event())
            if realtime:
                await asyncio.sleep(max(0.0, began + (n + 1) * CHUNK_S - time.monotonic()))
        stop_at = time.monotonic()
        await client.write_event(AudioStop().event())
        await asyncio.wait_for(task, TIMEOUT)
    return {"stop_at": stop_at, "events": got}


def test_describe_offers_the_loaded_english_model(wy_stack):
    async def go():
        async with AsyncTcpClient("127.0.0.1", wy_stack.wyoming_port, read_timeout=TIMEOUT) as client:
            await client.write_event(Describe().event())
            while (event := await client.read_event()).type != "info":
                pass
            return Info.from_event(event)
    program = asyncio.run(go()).asr[0]
    model = program.models[0]
    assert (program.name, model.name, model.languages, model.installed) == ("voxbus", "tiny.en-int8", ["en"], True)
    assert program.supports_transcript_streaming and model.version == "int8"


def test_home_assistant_round_trip_on_a_real_clip(wy_stack):
    pcm, reference = clip_int16(CLIP)
    result = asyncio.run(ha_session(wy_stack.wyoming_port, pcm.tobytes(), 16000, 2, 1, realtime=True))
    events = result["events"]
    kinds = [e.type for _, e in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"], kinds
    arrived, final = next((t, e) for t, e in events if e.type == "transcript")
    text = Transcript.from_event(final).text
    latency = arrived - result["stop_at"]
    early = [e.data["text"] for t, e in events if e.type == "transcript-chunk" and t < result["stop_at"]]
    score = wer([reference], [text])
    print(f"\nwyoming round trip: {text!r}; WER {score:.2f}; audio-stop → transcript {latency:.2f} s; "
          f"{len(early)} chunk(s) before audio-stop: {early}")
    assert score <= 0.15, (reference, text)
    assert early, "no transcript-chunk while the audio was still arriving"
    assert latency < 5.0


def test_22050_hz_stereo_is_resampled(wy_stack):
    pcm, reference = clip_int16(CLIP)
    import soxr
    resampled = soxr.resample(pcm.astype(np.float32) / 32768, 16000, 22050)
    stereo = (np.repeat(resampled[:, None], 2, axis=1) * 32767).astype("<i2")
    result = asyncio.run(ha_session(wy_stack.wyoming_port, stereo.tobytes(), 22050, 2, 2, realtime=False))
    final = next(e for _, e in result["events"] if e.type == "transcript")
    text = Transcript.from_event(final).text
    assert wer([reference], [text]) <= 0.15, (reference, text)
