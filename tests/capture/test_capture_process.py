"""The capture process with file sources: several streams from one process, paced or fast, closed at the end."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from bus import schemas
from capture.filesrc import FileReader
from config.schema import SourceConfig
from tests.vad.kit import EVAL_DIR, REPO, BusClient, load_clip, need_eval, start_bus

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
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2")
    start_bus(spawn, run_dir, env)
    client = BusClient(run_dir, prefixes=(b"audio/", b"ctl/", b"health/capture/"))
    time.sleep(0.3)
    capture = spawn(["-m", "capture", "--config", str(toml)], env=env, name="capture")
    try:
        client.wait(lambda m: isinstance(m, schemas.Close) and m.stream == "fb", timeout=20, what="fb to end")
        client.wait(lambda m: isinstance(m, schemas.Close) and m.stream == "fa", timeout=5, what="fa to end")
        hb = client.heartbeat("capture", lambda h: all(s["state"] == "ended" for s in h.counters["sources"].values()))
        assert hb.counters["dropped"] == 0
    finally:
        assert capture.stop() == 0
    for stream, clip in (("fa", A), ("fb", B)):
        msgs = [m for m in client.seen if getattr(m, "stream", None) == stream]
        assert isinstance(msgs[0], schemas.Open) and isinstance(msgs[-1], schemas.Close)
        audio = [m for m in msgs if isinstance(m, schemas.Audio)]
        assert [a.seq for a in audio] == list(range(len(audio)))
        assert all(a.offset == a.seq * 320 and len(a.pcm) == 640 for a in audio)
        ref = load_clip(clip)
        got = np.frombuffer(b"".join(a.pcm for a in audio), "<i2").astype(np.float32) / 32768
        assert len(ref) <= len(got) < len(ref) + 320
        assert np.corrcoef(got[:len(ref)], ref)[0, 1] > 0.98
    assert [m for m in client.seen if isinstance(m, schemas.Open) and m.stream == "fb"][0].task == "translate"
    client.close()


def test_bad_source_config_is_one_clear_line_and_exit_2(tmp_path, run_dir):
    toml = tmp_path / "bad.toml"
    toml.write_text('[[capture.sources]]\nstream = "x"\nkind = "ffmpeg"\n'
                    '[[capture.sources]]\nstream = "x"\nkind = "file"\npath = "/nope.wav"\n')
    out = subprocess.run([sys.executable, "-m", "capture", "--config", str(toml)], cwd=REPO,
                         env=dict(os.environ, VOXBUS_RUN_DIR=str(run_dir)), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "capture.sources[0].url: an ffmpeg source needs a url" in out.stderr
    assert "capture.sources[1].stream = 'x': used by another source" in out.stderr
