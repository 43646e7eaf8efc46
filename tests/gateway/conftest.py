"""Gateway test fixtures: the real bus process, real sockets, and a scripted vad+asr peer.

The peer (`ScriptedPipeline`) stands in for vad and asr so the gateway can be
tested alone: it heartbeats as both, answers file jobs, and plays a tiny vad for
live streams. Its answers are predictable so tests can check what the gateway
does with them (ordering, errors, timeouts). Everything goes through real
ZeroMQ sockets over ipc:// in a private run dir and through the real `python -m bus`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import zmq
from starlette.testclient import TestClient

from bus import schemas, sockets
from config import load_config
from tests.bench.common import EVAL_DIR

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
SEGMENT_S = 2.0


def need_eval() -> Path:
    if not (EVAL_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"real test clips not found at {EVAL_DIR} (../shared/eval); set VOXBUS_EVAL_DIR")
    return EVAL_DIR


class ScriptedPipeline(threading.Thread):
    """vad + asr as a test double. Job behaviour is chosen by the job's prompt:
    None → one final per 2 s of audio, published in reverse order; "fail-permanent" /
    "fail-transient" → an Error; "no-answer" → job_segments only; "no-ack" → silence.
    Live streams: speech_start + a partial after 0.5 s of audio, speech_end + a final + flushed on flush.
    """

    def __init__(self, cfg, heartbeat_as=("vad", "asr"), model_loaded: bool = True):
        super().__init__(daemon=True)
        self.cfg = cfg
        self.heartbeat_as = heartbeat_as
        self.model_loaded = model_loaded
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.jobs: list[schemas.Job] = []
        self.ctl: list[schemas.Message] = []
        self.audio: dict[str, list[schemas.Audio]] = {}
        self.speaking: dict[str, int] = {}   # stream → open utterance
        self.utts: dict[str, int] = {}

    def run(self) -> None:
        ctx = zmq.Context()
        pull = sockets.puller(ctx, self.cfg.vad.jobs, self.cfg.bus, bind=True)
        pub = sockets.publisher(ctx, self.cfg.bus)
        sub = sockets.subscriber(ctx, self.cfg.bus, [b"ctl/", b"audio/"])
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(sub, zmq.POLLIN)
        next_beat = 0.0
        try:
            while not self.stopping.is_set():
                if time.monotonic() >= next_beat:
                    self._heartbeat(pub)
                    next_beat = time.monotonic() + 0.2
                events = dict(poller.poll(10))
                if pull in events:
                    self._job(pub, schemas.decode(pull.recv()))
                if sub in events:
                    self._live(pub, schemas.unpack(sub.recv_multipart()))
        finally:
            for sock in (pull, pub, sub):
                sock.close(linger=0)
            sockets.remove_ipc_file(self.cfg.vad.jobs)
            ctx.term()

    def _heartbeat(self, pub) -> None:
        for stage in self.heartbeat_as:
            # multilingual, unlike the real tiny.en: the double "translates" and takes these languages
            model = {"name": "tiny.en-int8", "loaded": self.model_loaded, "precision": "int8", "threads": 1,
                     "runtime": "test", "multilingual": True, "languages": ["en", "de", "fr"],
                     "word_timestamps": True} if stage == "asr" else None
            sockets.publish(pub, schemas.Heartbeat(stage=stage, pid=os.getpid(), host="test", uptime_s=1.0, ok=True,
                                                   instance=f"scripted-{stage}", model=model))
        self.ready.set()

    def _job(self, pub, job: schemas.Job) -> None:
        self.jobs.append(job)
        samples = len(job.pcm) // 2
        count = max(1, math.ceil(samples / (SEGMENT_S * RATE)))
        if job.prompt == "no-ack":
            return
        if job.prompt in ("fail-permanent", "fail-transient"):
            sockets.publish(pub, schemas.Error(code="bad_segment", message="scripted failure", job=job.job,
                                               permanent=job.prompt == "fail-permanent", stage="asr"))
            return
        sockets.publish(pub, schemas.JobSegments(job=job.job, count=count, duration=samples / RATE))
        if job.prompt == "no-answer":
            return
        for index in reversed(range(count)):  # out of order on purpose: the gateway must sort
            start, end = index * SEGMENT_S, min(samples / RATE, (index + 1) * SEGMENT_S)
            words = [{"word": f" part{index}", "start": start, "end": end}]
            sockets.publish(pub, schemas.Final(utt=index, text=f"part {index}.", start=start, end=end, job=job.job,
                segments=[{"start": start, "end": end, "text": f" part {index}.", "avg_logprob": -0.2,
                           "no_speech_prob": 0.01}], words=words, language="en", language_prob=0.99,
                worker="scripted", encode_ms=5.0, decode_ms=7.0, index=index, count=count))

    def _live(self, pub, msg: schemas.Message) -> None:
        stream = msg.stream
        if isinstance(msg, schemas.Audio):
            frames = self.audio.setdefault(stream, [])
            frames.append(msg)
            heard = sum(len(f.pcm) for f in frames) // 2
            if stream not in self.speaking and heard >= RATE // 2:
                utt = self.utts.get(stream, 0)
                self.speaking[stream] = utt
                sockets.publish(pub, schemas.SpeechStart(stream=stream, utt=utt, offset=0))
                sockets.publish(pub, schemas.Partial(utt=utt, text="partial words", start=0.0,
                                                        end=heard / RATE, stream=stream))
            return
        self.ctl.append(msg)
        if isinstance(msg, schemas.Flush) and stream not in self.speaking:  # nothing open: vad answers at once
            last = self.utts.get(stream)
            sockets.publish(pub, schemas.Flushed(stream=stream, utt=None if last is None else last - 1))
        if isinstance(msg, (schemas.Flush, schemas.Close)) and stream in self.speaking:
            utt = self.speaking.pop(stream)
            self.utts[stream] = utt + 1
            heard = sum(len(f.pcm) for f in self.audio.get(stream, [])) // 2
            sockets.publish(pub, schemas.SpeechEnd(stream=stream, utt=utt, offset=heard))
            sockets.publish(pub, schemas.Final(utt=utt, text=f"heard {heard} samples", start=0.0, end=heard / RATE, stream=stream,
                segments=[{"start": 0.0, "end": heard / RATE, "text": f"heard {heard} samples"}], language="en",
                is_speech_final=True))
            if isinstance(msg, schemas.Flush):
                sockets.publish(pub, schemas.Flushed(stream=stream, utt=utt))

    def control(self, stream: str) -> list[str]:
        return [m.TYPE for m in self.ctl if m.stream == stream]

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def _wait_for_bus(proc: subprocess.Popen, run_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "bus-publish").exists() and (run_dir / "bus-subscribe").exists():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the bus exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("the bus did not bind its sockets in time")


@pytest.fixture(scope="module")
def bus_run_dir():
    """A private run dir with the real bus process for one test module."""
    path = Path(tempfile.mkdtemp(prefix="vbgw-", dir="/tmp"))
    env = dict(os.environ, VOXBUS_RUN_DIR=str(path))
    env.pop("VOXBUS_CONFIG", None)
    log = open(path / "bus.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bus"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    try:
        _wait_for_bus(proc, path)
        yield path
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def base_cfg(bus_run_dir):
    # Wyoming off: its fixed port (10300) would clash between test runs; tests/gateway/test_wyoming.py turns it on.
    return load_config(env={"VOXBUS_RUN_DIR": str(bus_run_dir), "VOXBUS_WYOMING__ENABLED": "false"},
                       check_cores=False)


@pytest.fixture(scope="module")
def pipeline(base_cfg):
    peer = ScriptedPipeline(base_cfg)
    peer.start()
    if not peer.ready.wait(30):
        raise RuntimeError("the scripted pipeline did not start")
    yield peer
    peer.stop()


def gateway_cfg(cfg, **gateway):
    """`cfg` with gateway settings replaced; the Host check also accepts TestClient's "testserver"."""
    gateway.setdefault("allowed_hosts", (*cfg.gateway.allowed_hosts, "127.0.0.1", "localhost", "[::1]",
                                         "testserver"))
    return dataclasses.replace(cfg, gateway=dataclasses.replace(cfg.gateway, **gateway))


def wait_healthy(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"gateway never became healthy: {client.get('/health').json()}")


@pytest.fixture(scope="module")
def make_client(base_cfg):
    """make_client(**gateway_overrides) → a started TestClient (a context manager)."""
    from gateway.app import build_app

    @contextmanager
    def make(healthy: bool = True, cfg=None, **gateway):
        app = build_app(gateway_cfg(cfg or base_cfg, **gateway))
        with TestClient(app) as client:
            if healthy:
                wait_healthy(client)
            yield client
    return make


@pytest.fixture(scope="module")
def client(make_client, pipeline):
    with make_client() as c:
        yield c
