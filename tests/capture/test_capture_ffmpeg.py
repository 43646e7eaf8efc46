"""The ffmpeg path for real: a local file, a stream ffmpeg serves itself, a crash, a stall, no leaked credentials."""
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bus import schemas
from capture.base import SourceLost
from capture.ffmpeg import FfmpegReader, redact_text, redact_url
from config.schema import SourceConfig
from tests.kit import EVAL_DIR, BusClient, load_clip, need_eval, start_bus, wait_for, wait_subscribed

CLIP = "asr/ljspeech/LJ001-0002.wav"  # 22.05 kHz WAV: ffmpeg resamples it


def need_ffmpeg():
    if subprocess.run(["which", "ffmpeg"], capture_output=True).returncode:
        pytest.skip("ffmpeg is not installed")


def read_all(reader, limit_s=30.0):
    chunks, deadline = [], time.monotonic() + limit_s
    while time.monotonic() < deadline:
        data = reader.read()
        if data is None:
            return b"".join(chunks)
        chunks.append(data)
    raise AssertionError("ffmpeg did not finish")


def test_redaction_hides_credentials_and_tokens():
    url = "rtsp://admin:s3cret@cam.local:554/live?token=abc123"
    assert redact_url(url) == "rtsp://***@cam.local:554/live?***"
    line = f"[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized on {url}; retry http://bob:pw@x/y"
    assert "s3cret" not in redact_text(line, url) and "abc123" not in redact_text(line, url)
    assert "pw" not in redact_text(line, url).split("x/y")[0].split("retry")[1]
    assert redact_url("/plain/path.wav") == "/plain/path.wav"


def test_local_file_through_ffmpeg_is_decoded_to_16k_mono_and_ends():
    need_eval()
    need_ffmpeg()
    reader = FfmpegReader(SourceConfig(stream="f1", kind="ffmpeg", url=str(EVAL_DIR / CLIP), realtime=False))
    reader.open()
    try:
        pcm = read_all(reader)
    finally:
        reader.close()
    ref = load_clip(CLIP)
    got = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert abs(len(got) - len(ref)) < 160
    n = min(len(got), len(ref))
    assert np.corrcoef(got[:n], ref[:n])[0, 1] > 0.98


@pytest.mark.slow
def test_stalled_input_is_detected():
    need_ffmpeg()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    held = []

    def accept_and_say_nothing():
        conn, _ = server.accept()
        held.append(conn)
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n\r\n")

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    reader = FfmpegReader(SourceConfig(stream="st", kind="ffmpeg", url=f"http://127.0.0.1:{port}/live.wav"),
                          stall_timeout_s=1.0)
    reader.open()
    try:
        with pytest.raises(SourceLost, match="stalled"):
            read_all(reader, limit_s=15)
        assert reader.counters()["stalls"] == 1
    finally:
        reader.close()
        for conn in held:
            conn.close()
        server.close()


def serve(port: int) -> subprocess.Popen:
    """ffmpeg itself serving an endless WAV stream over HTTP, at real time."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
                             "-i", str(EVAL_DIR / CLIP), "-f", "wav", "-listen", "1", f"http://127.0.0.1:{port}/mic.wav"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ffmpeg_children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.mark.slow
def test_ffmpeg_stream_source_restarts_after_a_crash_and_never_logs_secrets(spawn, run_dir, tmp_path, free_port):
    need_eval()
    need_ffmpeg()
    port = free_port()
    server = serve(port)
    url = f"http://viewer:hunter2@127.0.0.1:{port}/mic.wav?token=tok987"
    toml = tmp_path / "capture.toml"
    # Well over ffmpeg's start-up here (it probes ~5 s of this real-time stream before its first byte):
    # a start taken for a stall would end the one-client server for good.
    toml.write_text(f'[[capture.sources]]\nstream = "cam1"\nkind = "ffmpeg"\nurl = "{url}"\n'
                    f'stall_timeout_s = 20.0\n')
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2")
    start_bus(spawn, run_dir, env)
    client = BusClient(run_dir, prefixes=(b"audio/cam1/", b"ctl/cam1/", b"health/capture/", b"ctl/probe/"))
    wait_subscribed(client)  # our subscription is at the bus before capture starts: no frame goes by unseen
    capture = spawn(["-m", "capture", "--config", str(toml)], env=env, name="capture")
    try:
        opened = client.wait(lambda m: isinstance(m, schemas.Open) and m.stream == "cam1", what="open")[0]
        assert "hunter2" not in opened.source and "tok987" not in opened.source
        client.wait(lambda m: isinstance(m, schemas.Audio) and m.seq >= 25, what="half a second")
        child = wait_for(lambda: ffmpeg_children(capture.pid), what="capture's ffmpeg child")[0]
        os.kill(child, signal.SIGKILL)  # ffmpeg crashes
        server.wait(timeout=30)  # the one-client server ends with its client
        server = serve(port)
        hb = client.heartbeat("capture", lambda h: h.counters["sources"]["cam1"]["restarts"] >= 1
                              and h.counters["sources"]["cam1"]["state"] == "running", timeout=30)
        seq_now = max(m.seq for m in client.seen if isinstance(m, schemas.Audio))
        client.wait(lambda m: isinstance(m, schemas.Audio) and m.seq > seq_now + 10, timeout=60,
                    what="audio again")  # a start that beat the new server waits out a back-off step
        assert hb.ok
    finally:
        assert capture.stop() == 0
        server.kill()
        server.wait()
    seqs = [m.seq for m in client.seen if isinstance(m, schemas.Audio)]
    assert seqs == list(range(len(seqs)))  # one timeline across the restart
    log = capture.output()
    assert "source restarting" in log and "hunter2" not in log and "tok987" not in log
    client.close()


def test_a_child_that_closes_its_output_but_never_exits_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr("capture.ffmpeg.EXIT_WAIT_S", 0.3)
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text("#!/bin/sh\nexec 1>&-\nexec sleep 30\n")
    fake.chmod(0o755)
    reader = FfmpegReader(SourceConfig(stream="hang", kind="ffmpeg", url="rtsp://cam.local/live"), binary=str(fake))
    reader.open()
    try:
        with pytest.raises(SourceLost, match="code -9"):
            read_all(reader, limit_s=10.0)
        assert reader.counters()["kills"] == 1
    finally:
        reader.close()
