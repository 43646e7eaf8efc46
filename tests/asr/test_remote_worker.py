"""`voxbus worker`'s options become the asr stage's config; its speed is measured (and throttled for tests)."""
from __future__ import annotations

import pytest

from asr import remote_worker
from asr.speed import RecentSpeed, throttled
from config import load_config


def test_options_become_config_overrides():
    args = remote_worker.parse_args(["--connect", "tcp://pi.local:5557", "--model", "base-int8",
                                     "--models-dir", "/m", "--curve-dir", "/k", "--name", "pi", "--throttle", "2"])
    cfg = load_config(env=remote_worker.overrides(args))
    assert (cfg.vad.segments, cfg.bus.publish) == ("tcp://pi.local:5557", "tcp://pi.local:5558")
    assert (cfg.asr.model, cfg.run.models_dir, cfg.bus.curve_dir, cfg.asr.worker, cfg.asr.throttle) == \
        ("base-int8", "/m", "/k", "pi", 2.0)
    assert cfg.bus.plain_tcp is False


@pytest.mark.parametrize("connect", ["ipc:///run/x", "tcp://host", "tcp://host:65535"])
def test_a_bad_connect_is_one_line(connect, capsys):
    assert remote_worker.main(["--connect", connect]) == 2
    assert capsys.readouterr().err.startswith("voxbus worker: --connect")


def test_recent_speed_and_the_throttle():
    now = [0.0]
    speed, slept = RecentSpeed(), []

    def decode(segment):
        now[0] += 0.5
        return segment

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds
    run = throttled(decode, 3.0, speed, lambda segment: 10.0, clock=lambda: now[0], sleep=sleep)
    assert run("s") == "s" and slept == [1.0] and speed.rtf == pytest.approx(0.15)
    speed.add(0.5, 10.0)
    assert speed.rtf == pytest.approx(0.8 * 0.15 + 0.2 * 0.05)
