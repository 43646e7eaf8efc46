"""The capture process with file sources: several streams, paced or fast, closed at the end; failing sources;
the repeated `open` reaching a vad that started late; credential warnings."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import zmq

from bus import schemas
from capture.filesrc import FileReader
from capture.main import credential_warnings
from config.schema import SourceConfig
from tests.kit import (EVAL_DIR, REPO, BusClient, load_clip, need_eval, start_bus, synth_stream,
                           wait_subscribed)
from tests.segment_peers import SegmentTaker

A = "asr/librispeech/7902-96591-0000.flac"   # 16 kHz FLAC
B = "asr/ljspeech/LJ002-0020.wav"             # 22.05 kHz WAV


def test_file_reader_paces_at_real_time_only_when_asked():
    need_eval()
    slept, now = [], [0.0]

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    for realtime in (True, False):
        slept.clear()
        reader = FileReader(SourceConfig(stream="f", kind="file", path=str(EVAL_DIR / A), realtime=realtime),
                            clock=lambda: now[0], sleep=sleep)
        reader.open()
        while reader.read() is not None:
            pass
        reader.close()
        assert (abs(sum(slept) - 2.0) < 0.15) if realtime else not slept


@pytest.mark.slow
def test_two_file_sources_publish_two_streams_then_close(spawn, run_dir, tmp_path):
    need_eval()
    toml = tmp_path / "capture.toml"
    toml.write_text(f'[capture]\nframe_ms = 20\n'
                    f'[[capture.sources]]\nstream = "fa"\nkind = "file"\npath = "{EVAL_DIR / A}"\nrealtime = false\n'
                    f'[[capture.sources]]\nstream = "fb"\nkind = "file"\npath = "{EVAL_DIR / B}"\nrealtime = true\n'
                    f'task = "translate"\n')
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2",
               VOXBUS_CAPTURE__OPEN_EVERY_S="0.5")
    start_bus(spawn, run_dir, env)
    client = BusClient(run_dir, prefixes=(b"audio/", b"ctl/", b"health/capture/"))
    wait_subscribed(client)  # our side of the bus is live before capture starts
    capture = spawn(["-m", "capture", "--config", str(toml)], env=env, name="capture")
    try:
        for stream in ("fa", "fb"):  # the first open may race capture's own subscription; a repeat comes
            client.wait(lambda m: isinstance(m, schemas.Open) and m.stream == stream, what=f"{stream} open")
        client.wait(lambda m: isinstance(m, schemas.Close) and m.stream == "fb", what="fb to end")
        client.wait(lambda m: isinstance(m, schemas.Close) and m.stream == "fa", what="fa to end")
        hb = client.heartbeat("capture", lambda h: all(s["state"] == "ended" for s in h.counters["sources"].values()))
        assert hb.counters["dropped"] == 0 and hb.counters["sources"]["fb"]["opens_sent"] >= 2  # repeated
    finally:
        assert capture.stop() == 0
    for stream, clip in (("fa", A), ("fb", B)):
        msgs = [m for m in client.seen if getattr(m, "stream", None) == stream]
        assert isinstance(msgs[-1], schemas.Close) and len({m for m in msgs if isinstance(m, schemas.Open)}) == 1
        audio = [m for m in msgs if isinstance(m, schemas.Audio)]
        first = audio[0].seq  # 0 unless capture published before the bus knew our subscription
        assert [a.seq for a in audio] == list(range(first, first + len(audio)))
        assert all(a.offset == a.seq * 320 and len(a.pcm) == 640 for a in audio)
        ref = load_clip(clip)[audio[0].offset:]
        got = np.frombuffer(b"".join(a.pcm for a in audio), "<i2").astype(np.float32) / 32768
        assert len(ref) <= len(got) < len(ref) + 320
        assert np.corrcoef(got[:len(ref)], ref)[0, 1] > 0.98
    assert [m for m in client.seen if isinstance(m, schemas.Open) and m.stream == "fb"][0].task == "translate"
    client.close()


@pytest.mark.slow
def test_a_failing_source_is_named_in_the_heartbeat_and_logged_with_its_traceback(spawn, run_dir, tmp_path):
    wav = tmp_path / "mono.wav"
    soundfile.write(wav, np.zeros(16000, "<i2"), 16000)
    toml = tmp_path / "capture.toml"  # channel 1 of a 2-channel source, but the file has one channel
    toml.write_text(f'[[capture.sources]]\nstream = "bad"\nkind = "file"\npath = "{wav}"\nchannels = 2\n'
                    f'channel = 1\n')
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2")
    start_bus(spawn, run_dir, env)
    client = BusClient(run_dir, prefixes=(b"health/capture/",))
    capture = spawn(["-m", "capture", "--config", str(toml)], env=env, name="capture")
    try:
        hb = client.heartbeat("capture", lambda h: h.status.startswith("failing"))
        assert hb.ok is False and hb.status.startswith("failing: bad: ValueError: channel 1 picked")
        assert hb.counters["sources"]["bad"]["failures"] >= 1
    finally:
        assert capture.stop() == 0
        client.close()
    lines = [json.loads(line) for line in capture.output().splitlines() if line.startswith("{")]
    failed = [e for e in lines if e["message"].startswith("source failed unexpectedly")]
    assert failed and failed[0]["stream"] == "bad" and "ValueError" in failed[0]["exception"]


@pytest.mark.slow
def test_a_vad_that_starts_late_gets_the_stream_resent(spawn, run_dir, tmp_path):
    """capture resends its open and unacknowledged audio to the first vad it hears (bus/replay.py)."""
    wav = tmp_path / "speech.wav"
    pcm = synth_stream(["Guten Morgen, wie geht es dir heute?", "Mir geht es gut, danke der Nachfrage.",
                        "Das Wetter ist heute sehr schön."], gap_s=1.2, lead_s=0.5)
    soundfile.write(wav, np.frombuffer(pcm, "<i2"), 16000)
    toml = tmp_path / "capture.toml"
    toml.write_text(f'[[capture.sources]]\nstream = "de1"\nkind = "file"\npath = "{wav}"\nlanguage = "de"\n'
                    f'partials = false\n')
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2",
               VOXBUS_CAPTURE__OPEN_EVERY_S="1.0")
    start_bus(spawn, run_dir, env)
    client = BusClient(run_dir, prefixes=(b"ctl/", b"health/vad/"))
    wait_subscribed(client)
    capture = spawn(["-m", "capture", "--config", str(toml)], env=env, name="capture")
    client.wait(lambda m: isinstance(m, schemas.Open) and m.stream == "de1", what="capture's first open")
    vad = spawn(["-m", "vad"], env=env, name="vad")  # after that open: this vad never saw it
    ctx = zmq.Context()
    pull = SegmentTaker(ctx, f"ipc://{run_dir}/vad-segments")  # an asr worker, to vad's broker
    try:
        client.heartbeat("vad", lambda h: h.counters.get("resumes", 0) >= 1)
        finals = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s.language == "de" for s in finals):
            if pull.poll(100):
                seg = schemas.decode(pull.recv())
                finals += [seg] if seg.kind == "final" else []
        assert any(s.language == "de" and s.stream == "de1" for s in finals)
    finally:
        pull.close(linger=0)
        ctx.term()
        client.close()
        assert vad.stop() == 0 and capture.stop() == 0


def test_bad_source_config_is_one_clear_line_and_exit_2(tmp_path, run_dir):
    toml = tmp_path / "bad.toml"
    toml.write_text('[[capture.sources]]\nstream = "x"\nkind = "ffmpeg"\n'
                    '[[capture.sources]]\nstream = "x"\nkind = "file"\npath = "/nope.wav"\n')
    out = subprocess.run([sys.executable, "-m", "capture", "--config", str(toml)], cwd=REPO,
                         env=dict(os.environ, VOXBUS_RUN_DIR=str(run_dir)), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "capture.sources[0].url: an ffmpeg source needs a url" in out.stderr
    assert "capture.sources[1].stream = 'x': used by another source" in out.stderr


def test_credentials_in_an_ffmpeg_url_are_warned_about(tmp_path):
    cam = SourceConfig(stream="cam", kind="ffmpeg", url="rtsp://admin:s3cret@cam.local/live")
    plain = SourceConfig(stream="cam2", kind="ffmpeg", url="rtsp://cam.local/live")
    conf = tmp_path / "voxbus.toml"
    conf.write_text("")
    conf.chmod(0o644)
    lines = credential_warnings((cam, plain), str(conf))
    assert len(lines) == 2 and "cam2" not in lines[0] and "source(s) cam:" in lines[0]
    assert "process list" in lines[0] and "chmod 600" in lines[1]
    assert all("s3cret" not in line for line in lines)
    conf.chmod(0o600)
    assert len(credential_warnings((cam,), str(conf))) == 1
    assert credential_warnings((plain,), str(conf)) == []
