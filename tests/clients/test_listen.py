"""`voxbus listen`: the printing, the URL, the arguments, the sources and the pacing as units; then the
command as a subprocess against a running stack (tiny model) with real eval clips."""
from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bus.pcm import SAMPLE_RATE, to_float, to_pcm
from clients.remote import listen
from clients.remote.display import CLEAR_LINE, Display, Mode, fit, render
from clients.remote.sources import FileSource, MicSource, Pacer, SourceError
from tests.kit import serve_stack
from tests.asr.wer import wer
from tests.conftest import REPO
from tests.e2e import live
from tests.kit import need_eval

CLIP = "ls-1089-134691-0001"   # 5.4 s: "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER"
LONG_CLIP = "ls-1089-134686-0000"  # 10.4 s, one sentence with pauses


# ---- printing ----

def test_a_terminal_shows_partials_on_one_line_and_finals_as_lines():
    tty = Mode(tty=True, width=40)
    assert render({"type": "partial", "text": " for  a "}, tty) == CLEAR_LINE + "for a"
    assert render({"type": "final", "text": "For a full hour."}, tty) == CLEAR_LINE + "For a full hour.\n"
    assert render({"type": "final", "text": ""}, tty) == CLEAR_LINE       # no speech after all: clear only
    assert render({"type": "vad", "event": "speech_start"}, tty) is None
    assert fit("x" * 100, 40) == "…" + "x" * 38 and len(fit("x" * 100, 40)) == 39


def test_a_pipe_gets_finals_only_and_json_gets_every_event():
    pipe, as_json = Mode(), Mode(json=True, tty=True)
    assert render({"type": "partial", "text": "for a"}, pipe) is None
    assert render({"type": "final", "text": "For a full hour."}, pipe) == "For a full hour.\n"
    assert render({"type": "final", "text": " "}, pipe) is None
    for event in ({"type": "ready", "session": "ws-1"}, {"type": "partial", "text": "ö"}, {"type": "error"}):
        line = render(event, as_json)
        assert line.endswith("\n") and json.loads(line) == event


def test_the_display_clears_an_open_partial_and_prints_a_repeated_final_once():
    out = io.StringIO()
    display = Display(out, Mode(tty=True))
    display.show({"type": "partial", "utt": 0, "text": "for a"})
    assert display.partial_open
    display.show({"type": "final", "utt": 0, "text": "For a full hour."})
    display.show({"type": "final", "utt": 0, "text": "For a full hour."})
    display.show({"type": "partial", "utt": 1, "text": "he"})
    display.end_line()
    assert out.getvalue() == (CLEAR_LINE + "for a" + CLEAR_LINE + "For a full hour.\n" + CLEAR_LINE + "he"
                              + CLEAR_LINE)
    assert not display.partial_open


# ---- URL and arguments ----

def test_the_stream_url_from_any_server_form():
    url = listen.stream_url("http://box:8000", "en", "translate", 500, partials=True)
    assert url == ("ws://box:8000/stream?language=en&task=translate&sample_rate=16000&encoding=s16"
                   "&partials=true&end_silence_ms=500")
    assert listen.stream_url("wss://box/voxbus/stream/", "auto", "transcribe", None, False).startswith(
        "wss://box/voxbus/stream?language=auto")
    for bad in ("box:8000", "ftp://box", "ws://"):
        with pytest.raises(listen.UsageError, match="expected ws://host:port"):
            listen.stream_url(bad, "auto", "transcribe", None, True)


def test_usage_problems_are_named(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    cases = {("--url", "ws://h:1"): "give --mic DEVICE or at least one FILE",
             ("--url", "ws://h:1", "--mic", "default", str(wav)): "not both",
             ("--url", "ws://h:1", str(tmp_path / "gone.wav")): "gone.wav: no such file",
             ("--url", "ws://h:1", str(tmp_path)): "not a regular file",
             ("--url", "ws://h:1", "--end-silence-ms", "0", str(wav)): "positive number of milliseconds",
             ("--url", "ws://h:1", "--task", "summarize", str(wav)): "invalid choice",
             (str(wav),): "--url"}
    for argv, expected in cases.items():
        with pytest.raises(listen.UsageError, match=expected):
            listen.parse_args(list(argv))
    args = listen.parse_args(["--url", "ws://h:1", "--mic", "plughw:1", "--api-key", "k"])
    assert [type(s) for s in listen.sources_for(args)] == [MicSource] and args.api_key == "k"


# ---- sources and pacing ----

class FakeReader:
    """pyalsaaudio's PCM as MicSource uses it: read() -> (frames, bytes), info(), close()."""

    def __init__(self, rate: int, channels: int, periods: list, refuse_mono: bool = False):
        self.rate, self.channels, self.periods, self.closed = rate, channels, list(periods), False
        self.asked: list[tuple] = []
        self.refuse_mono = refuse_mono

    def factory(self, device, rate, channels, period_frames):
        self.asked.append((device, rate, channels, period_frames))
        if channels == 1 and self.refuse_mono:
            raise OSError("Invalid argument [plughw:1]")
        return self

    def info(self):
        return {"rate": self.rate, "channels": self.channels}

    def read(self):
        item = self.periods.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_mic_is_downmixed_and_resampled_to_16k_mono():
    left = tone(48000, 1.0)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)   # interleaved L R
    pcm = to_pcm(stereo)
    period = 4800 * 2 * 2                                                   # 100 ms of 48 kHz stereo int16
    periods = [(4800, pcm[i:i + period]) for i in range(0, len(pcm), period)]
    reader = FakeReader(48000, 2, periods + [(-32, b"")], refuse_mono=True)   # -EPIPE: an overrun
    mic = MicSource("plughw:1", reader_factory=reader.factory)
    mic.open()
    assert [a[2] for a in reader.asked] == [1, 2] and (mic.rate, mic.channels) == (48000, 2)
    out = b"".join(mic.read() for _ in periods)
    assert mic.read() == b"" and mic.overruns == 1
    got = to_float(out)
    assert abs(got.size - SAMPLE_RATE) <= 400          # 1 s of audio, less what the resampler still holds
    middle = got[2000:12000]
    assert 0.22 < np.abs(middle).max() < 0.28           # (L + R) / 2 of a 0.5 tone
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / middle.size - 440) < 5
    mic.close()
    assert reader.closed


def test_a_16k_mono_mic_passes_through_and_a_failing_one_is_a_source_error():
    pcm = to_pcm(tone(SAMPLE_RATE, 0.1))
    reader = FakeReader(SAMPLE_RATE, 1, [(1600, pcm), OSError("No such device"), (-5, b"")])
    mic = MicSource("default", reader_factory=reader.factory)
    mic.open()
    assert mic.read() == pcm
    with pytest.raises(SourceError, match="'default' failed: No such device"):
        mic.read()
    with pytest.raises(SourceError, match="read error -5 .EIO."):
        mic.read()

    def busy(*_):
        raise OSError("busy")

    with pytest.raises(SourceError, match=r"cannot open ALSA device 'x': 1 channel\(s\): busy; 2 channel\(s\): busy"):
        MicSource("x", reader_factory=busy).open()


def test_the_pacer_holds_chunks_to_real_time():
    now = [100.0]
    pacer = Pacer(clock=lambda: now[0])
    assert pacer.delay(0) == 0.0
    assert pacer.delay(1600) == pytest.approx(0.1)
    now[0] = 100.35
    assert pacer.delay(4800) == 0.0                     # late: at once
    assert pacer.delay(16000) == pytest.approx(0.65)


def test_files_go_out_at_real_time_with_a_flush_between_them():
    sent: list = []

    async def send(data):
        sent.append(data)

    sources = [FileSource(f"f{i}", decode=lambda _: tone(SAMPLE_RATE, 0.25)) for i in range(2)]
    started = time.monotonic()
    samples = asyncio.run(listen.send_audio(send, sources, Pacer(), asyncio.Event()))
    took = time.monotonic() - started
    assert samples == 8000 and 0.4 <= took < 1.5        # the last 100 ms chunk starts at 0.4 s
    assert [type(x).__name__ if isinstance(x, bytes) else json.loads(x)["type"] for x in sent] == \
        ["bytes"] * 3 + ["flush"] + ["bytes"] * 3


def test_a_stop_ends_the_audio_at_once():
    stop = asyncio.Event()
    sent: list = []

    async def send(data):
        sent.append(data)
        if len(sent) == 2:
            stop.set()

    source = FileSource("long", decode=lambda _: tone(SAMPLE_RATE, 60.0))
    started = time.monotonic()
    assert asyncio.run(listen.send_audio(send, [source], Pacer(), stop)) == 3200
    assert time.monotonic() - started < 1.0


# ---- one session against a scripted WebSocket server ----

async def scripted_session(script, sources, api_key=None):
    """Serve one /stream session with `script(ws, received)`; run the client against it."""
    from websockets.asyncio.server import serve

    seen: dict = {"received": []}

    def record(connection, request):
        seen["path"], seen["auth"] = request.path, request.headers.get("Authorization")

    async def handler(ws):
        await script(ws, seen["received"])

    out, err = io.StringIO(), io.StringIO()
    async with serve(handler, "127.0.0.1", 0, process_request=record) as server:
        port = server.sockets[0].getsockname()[1]
        url = listen.stream_url(f"ws://127.0.0.1:{port}", "en", "transcribe", None, partials=True)
        status = await listen.listen(url, api_key, sources, listen.Listener(Display(out, Mode()), err),
                                     asyncio.Event())
    return status, out.getvalue(), err.getvalue(), seen


def test_a_session_sends_audio_then_eof_and_prints_the_finals():
    async def script(ws, received):
        await ws.send(json.dumps({"type": "ready", "session": "ws-1"}))
        async for message in ws:
            received.append(message)
            if isinstance(message, str) and json.loads(message)["type"] == "eof":
                await ws.send(json.dumps({"type": "partial", "utt": 0, "text": "for a"}))
                await ws.send(json.dumps({"type": "final", "utt": 0, "text": "For a full hour."}))
                await ws.close(1000)

    source = FileSource("a", decode=lambda _: tone(SAMPLE_RATE, 0.2))
    status, out, err, seen = asyncio.run(scripted_session(script, [source], api_key="k1"))
    assert (status, out, err) == (0, "For a full hour.\n", "")
    assert seen["auth"] == "Bearer k1" and seen["path"].startswith("/stream?language=en&")
    assert [len(m) if isinstance(m, bytes) else m for m in seen["received"]] == [3200, 3200, '{"type": "eof"}']


def test_an_error_event_is_one_line_and_status_1():
    async def script(ws, received):
        await ws.send(json.dumps({"type": "error", "code": "bad_config", "message": "end_silence_ms = 50:\n bad"}))
        await ws.close(1008, "bad_config")

    source = FileSource("a", decode=lambda _: tone(SAMPLE_RATE, 5.0))
    status, out, err, _ = asyncio.run(scripted_session(script, [source]))
    assert (status, out) == (1, "")
    assert err == "voxbus listen: error: server error bad_config: end_silence_ms = 50: bad\n"


def test_a_close_without_a_reason_is_named():
    async def script(ws, received):
        await ws.close(1012, "service restart")

    source = FileSource("a", decode=lambda _: tone(SAMPLE_RATE, 5.0))
    with pytest.raises(listen.ListenError, match="closed the connection with code 1012 .service restart."):
        asyncio.run(scripted_session(script, [source]))


# ---- against a running stack ----

@pytest.fixture(scope="module")
def remote(tiny_models_dir):
    yield from serve_stack(tiny_models_dir)


def clip(clip_id: str) -> tuple[Path, str]:
    need_eval()
    row = live.manifest()[clip_id]
    return live.EVAL_DIR / row["path"], row["transcript"]


def voxbus(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VOXBUS_API_KEY"}
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.slow
def test_listen_prints_the_finals_of_a_file(remote):
    path, reference = clip(CLIP)
    started = time.monotonic()
    proc = voxbus("listen", "--url", remote.ws, "--language", "en", "--api-key", "secret", str(path))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert err == ""
    assert time.monotonic() - started >= 5.0              # real time: the clip lasts 5.4 s
    lines = out.splitlines()
    assert lines and all(line.strip() and "\r" not in line for line in lines)   # a pipe: finals only
    assert wer([reference], [" ".join(lines)]) <= 0.15, lines


@pytest.mark.slow
def test_listen_json_gives_every_event_as_a_line(remote):
    path, reference = clip(CLIP)
    proc = voxbus("listen", "--url", remote.http, "--json", str(path))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ready" and "partial" in kinds and "vad" in kinds and kinds[-1] == "final"
    assert events[0]["config"]["encoding"] == "s16" and events[0]["config"]["sample_rate"] == SAMPLE_RATE
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert wer([reference], [" ".join(finals)]) <= 0.15, finals


@pytest.mark.slow
def test_ctrl_c_sends_eof_and_exits_0_after_the_last_final(remote):
    path, reference = clip(LONG_CLIP)       # 10.4 s; interrupted after about 4 s of it
    proc = voxbus("listen", "--url", remote.ws, "--json", str(path))
    time.sleep(4.5)
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - interrupted
    assert proc.returncode == 0, err
    assert err == "" and took < 35
    events = [json.loads(line) for line in out.splitlines()]
    finals = [e for e in events if e["type"] == "final" and e["text"].strip()]
    assert finals and events[-1]["type"] == "final", [e["type"] for e in events]
    heard = " ".join(e["text"] for e in finals)
    assert max(e["end"] for e in finals) < 7.0                  # it stopped sending at the interrupt
    said = reference.split()[:6]                                   # "HE HOPED THERE WOULD BE STEW"
    assert wer([" ".join(said)], [" ".join(heard.split()[:6])]) <= 0.34, heard


@pytest.mark.slow
def test_a_server_error_is_one_line_and_exit_1(remote):
    path, _ = clip(CLIP)
    proc = voxbus("listen", "--url", remote.ws, "--end-silence-ms", "50", str(path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("voxbus listen: error: server error bad_config: "), err
    assert "end_silence_ms" in err


@pytest.mark.slow
def test_a_refused_connection_or_bad_url_is_one_line(free_port):
    path, _ = clip(CLIP)
    port = free_port()
    proc = voxbus("listen", "--url", f"ws://127.0.0.1:{port}", str(path))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == ""
    assert err.count("\n") == 1 and f"cannot connect to ws://127.0.0.1:{port}/stream" in err
    assert err.rstrip().endswith("Connection refused"), err
    proc = voxbus("listen", "--url", "127.0.0.1:8000", str(path))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert err == ("voxbus listen: error: --url '127.0.0.1:8000': expected ws://host:port "
                   "(or wss://, http://, https://)\n")
