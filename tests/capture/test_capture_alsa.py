"""The ALSA path for real, without a sound card: pyalsaaudio reads a file through ALSA's `file` plugin.

A test-only ALSA config (listed in ALSA_CONFIG_PATH after the system alsa.conf)
defines `pcm.testmic` as `type file` over the `null` PCM with `infile` set: capture
from it returns the bytes of that raw file (verified byte-exact on Debian's alsa-lib
1.2; the null slave does not pace, so the reader paces itself). alsa-lib re-reads a
file of ALSA_CONFIG_PATH when it changes, which lets a test plug the device in later.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bus import schemas
from tests.kit import REPO, BusClient, load_clip, need_eval, start_bus, wait_for, wait_subscribed

pytestmark = pytest.mark.slow
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
CLIP = "asr/librispeech/6930-75918-0000.flac"
PROBE = b"ctl/probe/"   # wait_subscribed's probe comes back on this topic


def mic_conf(infile: Path) -> str:
    return (f'pcm.testmic {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
            f'  infile "{infile}"\n  format "raw"\n}}\n')


@pytest.fixture
def alsa(tmp_path, run_dir):
    if not SYSTEM_ALSA_CONF.is_file():
        pytest.skip(f"{SYSTEM_ALSA_CONF} not found: alsa-lib is not installed here")
    need_eval()
    pytest.importorskip("alsaaudio")
    audio = load_clip(CLIP)
    import soxr
    at48 = soxr.resample(audio, 16000, 48000)
    stereo = np.stack([at48, at48 * 0.5], axis=1)
    raw = tmp_path / "mic48k.raw"
    raw.write_bytes((np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes())
    conf = tmp_path / "asound-test.conf"
    conf.write_text(mic_conf(raw))
    env = dict(os.environ, VOXBUS_RUN_DIR=str(run_dir), VOXBUS_BUS__HEARTBEAT_INTERVAL_S="0.2",
               ALSA_CONFIG_PATH=f"{SYSTEM_ALSA_CONF}:{conf}")
    toml = tmp_path / "capture.toml"
    toml.write_text('[[capture.sources]]\nstream = "mic1"\nkind = "alsa"\ndevice = "testmic"\n'
                    'sample_rate = 48000\nchannels = 2\nperiod_frames = 960\nlanguage = "en"\n')
    return {"env": env, "conf": conf, "raw": raw, "toml": toml, "audio": audio}


def test_voxbus_devices_lists_the_test_device(alsa):
    out = subprocess.run([sys.executable, "-m", "cli", "devices"], env=alsa["env"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "testmic" in out.stdout


def test_alsa_source_publishes_real_audio_and_closes_on_sigterm(alsa, spawn, run_dir):
    start_bus(spawn, run_dir, alsa["env"])
    client = BusClient(run_dir, prefixes=(b"audio/mic1/", b"ctl/mic1/", b"health/capture/", PROBE))
    wait_subscribed(client)  # our subscription is at the bus before capture starts: no frame goes by unseen
    capture = spawn(["-m", "capture", "--config", str(alsa["toml"])], env=alsa["env"], name="capture")
    try:
        opened = client.wait(lambda m: isinstance(m, schemas.Open) and m.stream == "mic1", what="open")[0]
        assert opened.source == "alsa:testmic" and opened.language == "en"
        want = len(alsa["audio"]) // 320
        client.wait(lambda m: isinstance(m, schemas.Audio) and m.seq >= want, what="the clip's frames")
        hb = client.heartbeat("capture", lambda h: h.counters["sources"]["mic1"]["state"] == "running")
        assert hb.ok and hb.status == "ok"
    finally:
        assert capture.stop() == 0
    client.wait(lambda m: isinstance(m, schemas.Close), what="the close")  # the last message: all frames are in
    frames = [m for m in client.seen if isinstance(m, schemas.Audio)]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert [f.offset for f in frames[:3]] == [0, 320, 640]
    got = np.frombuffer(b"".join(f.pcm for f in frames), "<i2").astype(np.float32)[:len(alsa["audio"])] / 32768
    ref = alsa["audio"] * 0.75  # the downmix of full and half level
    assert np.corrcoef(got[: len(ref)], ref[: len(got)])[0, 1] > 0.98
    assert isinstance(client.seen[-1], schemas.Close) or any(isinstance(m, schemas.Close) for m in client.seen)
    assert '"stopping on signal"' in capture.output()
    client.close()


def test_missing_device_backs_off_until_it_is_plugged_in(alsa, spawn, run_dir):
    alsa["conf"].write_text("# testmic not plugged in yet\n")
    start_bus(spawn, run_dir, alsa["env"])
    client = BusClient(run_dir, prefixes=(b"audio/mic1/", b"ctl/mic1/", b"health/capture/", PROBE))
    wait_subscribed(client)
    capture = spawn(["-m", "capture", "--config", str(alsa["toml"])], env=alsa["env"], name="capture")
    try:
        hb = client.heartbeat("capture", lambda h: h.status == "device_missing")
        assert hb.ok is False and hb.counters["sources"]["mic1"]["state"] == "device_missing"
        assert "testmic" in hb.counters["sources"]["mic1"]["reason"]
        client.heartbeat("capture", lambda h: h.counters["sources"]["mic1"]["open_failures"] >= 2)  # retries go by
        new = alsa["conf"].with_suffix(".new")
        new.write_text(mic_conf(alsa["raw"]))
        os.replace(new, alsa["conf"])
        client.wait(lambda m: isinstance(m, schemas.Audio), what="audio once plugged in")
        hb = client.heartbeat("capture", lambda h: h.status == "ok")
        assert hb.counters["sources"]["mic1"]["open_failures"] >= 2
    finally:
        assert capture.stop() == 0
    log = capture.output()
    assert log.count("source device_missing") == 1 and "source running" in log
    client.close()
