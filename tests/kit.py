"""The shared bus test kit (vad, capture, benches, e2e): real eval audio joined with pauses, real bus processes.

Audio comes from ../shared/eval (never copied into the project); `need_eval()`
skips a test with a clear message where that folder is absent.
"""
from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq

from bus import schemas
from tests.bench.common import EVAL_DIR, load_audio_16k, speech_span  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[1]
RATE = 16000

# Short, clean clips of several corpora and rates (16 kHz FLAC/WAV, 22.05 kHz WAV).
CLIPS = [
    "asr/librispeech/1089-134691-0000.flac", "asr/ljspeech/LJ001-0002.wav", "asr/pocketsphinx/cards_002.wav",
    "asr/librivox/sense_and_sensibility_01_austen_64kb-0880.wav", "asr/librispeech/6930-75918-0000.flac",
    "asr/ljspeech/LJ001-0008.wav", "asr/pocketsphinx/cards_001.wav", "asr/librispeech/7902-96591-0000.flac",
    "asr/ljspeech/LJ001-0013.wav", "asr/pocketsphinx/cards_003.wav", "asr/librivox/sense_and_sensibility_01_austen_64kb-0930.wav",
    "asr/ljspeech/LJ002-0020.wav", "asr/pocketsphinx/cards_004.wav", "asr/librispeech/1089-134691-0001.flac",
    "asr/ljspeech/LJ002-0035.wav", "asr/timit/LDC93S1.wav", "asr/pocketsphinx/cards_005.wav",
    "asr/librispeech/1089-134686-0001.flac", "asr/ljspeech/LJ001-0011.wav", "asr/librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
    "asr/ljspeech/LJ001-0004.wav", "asr/librispeech/6930-75918-0000.flac", "asr/ljspeech/LJ001-0016.wav",
    "asr/pocketsphinx/cards_002.wav",
]


def need_eval() -> Path:
    if not (EVAL_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"real test clips not found at {EVAL_DIR} (../shared/eval); set VOXBUS_EVAL_DIR")
    return EVAL_DIR


def load_clip(rel: str) -> np.ndarray:
    """A clip of ../shared/eval as float32 16 kHz mono."""
    return load_audio_16k(EVAL_DIR / rel)


@dataclass(frozen=True)
class Placed:
    clip: str
    start: int       # clip's first sample in the stream
    end: int
    speech_on: int   # where its speech starts/ends in the stream (energy based)
    speech_off: int


def build_stream(clips: list[str], gaps_s: list[float], lead_s: float = 1.0, tail_s: float = 2.0,
                 noise_dbfs: float = -70.0, seed: int = 7) -> tuple[bytes, list[Placed]]:
    """Clips joined by pauses of low-level noise; returns int16 PCM and where each clip sits."""
    rng = np.random.default_rng(seed)
    noise_rms = 10 ** (noise_dbfs / 20)
    parts, placed, pos = [], [], 0

    def pause(seconds: float):
        nonlocal pos
        parts.append(rng.normal(0, noise_rms, int(seconds * RATE)).astype(np.float32))
        pos += len(parts[-1])

    pause(lead_s)
    for i, rel in enumerate(clips):
        audio = load_clip(rel)
        on, off = speech_span(audio)
        placed.append(Placed(rel, pos, pos + len(audio), pos + on, pos + off))
        parts.append(audio)
        pos += len(audio)
        pause(gaps_s[i] if i < len(gaps_s) else tail_s)
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes()
    return pcm, placed


def espeak(text: str) -> np.ndarray:
    """Synthetic speech (espeak-ng) as float32 16 kHz mono: for tests that need speech, not a corpus."""
    import shutil
    import subprocess

    import soundfile
    import soxr
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=30).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return np.ascontiguousarray(soxr.resample(audio, rate, RATE, quality="HQ"), dtype=np.float32)


def synth_stream(texts: list[str], gap_s: float = 1.5, lead_s: float = 1.0, tail_s: float = 2.0,
                 noise_dbfs: float = -90.0, seed: int = 7) -> bytes:
    """Like build_stream, from espeak-ng sentences: int16 PCM of speech separated by near-silence.

    The pauses are (almost) digital silence: webrtcvad drifts into calling steady
    white noise at -70..-40 dBFS voiced next to synthetic speech, and merges sentences."""
    rng = np.random.default_rng(seed)
    noise_rms = 10 ** (noise_dbfs / 20)
    parts = [rng.normal(0, noise_rms, int(lead_s * RATE)).astype(np.float32)]
    for i, text in enumerate(texts):
        parts.append(espeak(text) * 0.5)
        pause = gap_s if i < len(texts) - 1 else tail_s
        parts.append(rng.normal(0, noise_rms, int(pause * RATE)).astype(np.float32))
    return (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes()


def frames_of(pcm: bytes, frame_ms: int = 20) -> list[tuple[int, bytes]]:
    size = RATE * frame_ms // 1000 * 2
    return [(i // 2, pcm[i:i + size]) for i in range(0, len(pcm), size)]


# ---- real bus ---------------------------------------------------------------

def wait_for(predicate, timeout: float = 30.0, every: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_bus(spawn, run_dir: Path, env: dict | None = None):
    proc = spawn(["-m", "bus"], env=env, name="bus")
    wait_for(lambda: (run_dir / "bus-subscribe").exists() and (run_dir / "bus-publish").exists(),
             what="the bus to bind")
    return proc


OUTPUT_TOPICS = (b"vad/", b"health/", b"job/", b"text/")
_open_clients: list["BusClient"] = []


@pytest.fixture(autouse=True)
def close_bus_clients():
    """After each test, close the BusClients it left open (a failed test skips its own close):
    a socket left open can hang the whole session at exit, in zmq_ctx_term (seen after a failure)."""
    yield
    while _open_clients:
        _open_clients[-1].close()


class BusClient:
    """A test's own PUB and SUB on the real bus, plus a drained message list."""

    def __init__(self, run_dir: Path, prefixes=OUTPUT_TOPICS):
        self.ctx = zmq.Context()
        _open_clients.append(self)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100000)
        self.pub.connect(f"ipc://{run_dir}/bus-publish")
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        for prefix in prefixes:
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sub.connect(f"ipc://{run_dir}/bus-subscribe")
        self.seen: list[schemas.Message] = []
        self.undecodable = 0

    def publish(self, msg: schemas.Message) -> None:
        self.pub.send_multipart(schemas.pack(msg))

    def drain(self, seconds: float = 0.0) -> list[schemas.Message]:
        deadline = time.monotonic() + seconds
        while True:
            timeout = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.sub.poll(timeout):
                return self.seen
            try:
                self.seen.append(schemas.unpack(self.sub.recv_multipart()))
            except schemas.SchemaError:
                self.undecodable += 1

    def wait(self, predicate, timeout: float = 30.0, what: str = "a message", after: int = 0):
        """Messages matching `predicate` among those seen (from index `after` on), once there are any."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.seen[after:] if predicate(m)]
            if found:
                return found
            self.drain(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; saw "
                             f"{sorted({m.TYPE for m in self.seen})}")

    def heartbeat(self, stage: str, predicate=lambda hb: True, timeout: float = 30.0,
                  after: int = 0) -> schemas.Heartbeat:
        try:
            return self.wait(lambda m: isinstance(m, schemas.Heartbeat) and m.stage == stage and predicate(m),
                             timeout, f"a {stage} heartbeat", after)[-1]
        except AssertionError as exc:
            last = [m for m in self.seen if isinstance(m, schemas.Heartbeat) and m.stage == stage][-1:]
            raise AssertionError(f"{exc}; the last {stage} heartbeat: {last}") from None

    def close(self) -> None:
        if self in _open_clients:
            _open_clients.remove(self)
        self.ctx.destroy(linger=0)


def wait_subscribed(client: BusClient, timeout: float = 30.0) -> None:
    """Until our own probe comes back through the bus: our SUB's subscription has reached the proxy.

    The client must subscribe to ctl/. The probe (an `open` of stream `probe`) stays in client.seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.publish(schemas.Open(stream="probe", source="test-probe"))
        client.drain(0.1)
        if any(isinstance(m, schemas.Open) and m.stream == "probe" for m in client.seen):
            return
    raise AssertionError(f"the bus did not echo our probe within {timeout} s")


def settle(client: BusClient, stage: str = "vad", timeout: float = 30.0) -> None:
    """Wait until vad hears our PUB: a heartbeat of it lists our probe stream as open.

    Slow joiner: the bus hands our PUB vad's subscriptions a while after both connected, and what
    we publish before that is dropped; a heartbeat alone does not show it. The stream `probe`
    (an `open`, no audio) stays open in vad."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.publish(schemas.Open(stream="probe", source="test-probe"))
        client.drain(0.1)
        if any(isinstance(m, schemas.Heartbeat) and m.stage == stage
               and "probe" in m.counters.get("per_stream", {}) for m in client.seen):
            return
    raise AssertionError(f"{stage} did not hear our probe within {timeout} s; "
                         f"saw {sorted({m.TYPE for m in client.seen})}")


# ---- subtitle parsers (strict: a test of SRT/VTT output fails on any malformed cue) ----

_SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n((?:.+\n)+)")
_VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n((?:.+\n)+)")


def parse_srt(text: str) -> list[tuple[str, str, str]]:
    """Strict SRT: numbered from 1, one timing line, text lines, a blank line between cues."""
    blocks = text.split("\n\n")
    cues = []
    for number, block in enumerate(blocks, start=1):
        match = _SRT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"bad srt block {block!r}"
        assert int(match.group(1)) == number
        cues.append((match.group(2), match.group(3), match.group(4).strip()))
    return cues


def parse_vtt(text: str) -> list[tuple[str, str, str]]:
    assert text.startswith("WEBVTT\n\n")
    cues = []
    for block in text[len("WEBVTT\n\n"):].split("\n\n"):
        match = _VTT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"bad vtt block {block!r}"
        cues.append((match.group(1), match.group(2), match.group(3).strip()))
    return cues


# ---- the whole stack for a test module ----

def serve_stack(models_dir, **settings):
    """Generator for a fixture: `voxbus up` with the tiny model, healthy, yielded, then `down`.
    A stack that does not come up fails the test with the stage's log (never a skip)."""
    from tests.e2e import stack as stacks

    need_eval()
    try:
        running = stacks.start(models_dir, **settings)
    except stacks.StackError as exc:
        pytest.fail(str(exc))
    try:
        stacks.wait_healthy(running)
    except stacks.StackError as exc:
        stacks.stop(running)
        pytest.fail(str(exc))
    yield running
    stacks.stop(running)
