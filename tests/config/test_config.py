"""Configuration: defaults → file → environment, and one clear line per bad input through the real CLIs."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config import ConfigError, load_config
from config.cores import available_cores, cores_for

MISSING_CORE = max(available_cores()) + 100


def run_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("VOXBUS_CONFIG", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, env=full_env)


BAD_FILES = [
    ("unknown_key", "[gateway]\nportt = 9000\n", "unknown key gateway.portt"),
    ("unknown_section", "[gatewey]\nport = 9000\n", "unknown key gatewey"),
    ("wrong_type", "[gateway]\nport = \"eighty\"\n", "gateway.port = 'eighty': expected an integer"),
    ("out_of_range", "[gateway]\nport = 70000\n", "gateway.port = 70000: expected an integer from 1 to 65535"),
    ("bad_choice", "[run]\nlog_level = \"loud\"\n", "run.log_level = 'loud': expected one of debug, info"),
    ("missing_core", f"[cores]\nasr = [{MISSING_CORE}]\n", f"cores.asr = [{MISSING_CORE}]: core(s) [{MISSING_CORE}] "
                                                             "do not exist here"),
    ("bad_cores", "[cores]\nvad = \"fast\"\n", "cores.vad = 'fast': expected \"auto\" or a non-empty list"),
    ("not_toml", "[gateway\nport = 1\n", "is not valid TOML"),
    ("bad_endpoint", "[bus]\npublish = \"http://localhost:1\"\n",
     "bus.publish = 'http://localhost:1': expected an endpoint ipc://PATH or tcp://HOST:PORT"),
]


@pytest.mark.parametrize("name, text, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_stops_the_bus_with_one_line(tmp_path, run_dir, name, text, words):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    result = run_cli(["-m", "bus", "--config", str(path)])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("voxbus-bus: config: ") and words in lines[0], lines[0]


def test_a_missing_file_is_one_line_from_voxbus_status(tmp_path, run_dir):
    result = run_cli(["-m", "cli", "status", "--config", str(tmp_path / "nope.toml")])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"voxbus status: config: cannot read {tmp_path / 'nope.toml'}: "
                                                  "No such file or directory"]


def test_several_problems_are_reported_together(tmp_path, run_dir):
    path = tmp_path / "two.toml"
    path.write_text("[gateway]\nport = 0\n[vad]\naggressiveness = 9\n")
    result = run_cli(["-m", "cli", "record", "audio/", "-o", str(tmp_path / "x.rec"), "--config", str(path)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("voxbus record: config: ") for line in lines)
    assert any("gateway.port = 0" in line for line in lines) and any("vad.aggressiveness = 9" in line for line in lines)


def test_a_bad_environment_override_is_named_by_its_variable(run_dir):
    result = run_cli(["-m", "bus"], env={"VOXBUS_GATEWAY__PROT": "9000"})
    assert result.returncode == 2
    assert "unknown key VOXBUS_GATEWAY__PROT" in result.stderr
    result = run_cli(["-m", "bus"], env={"VOXBUS_BUS__SUBSCRIBE": "tcp://nowhere"})
    assert result.returncode == 2 and "bus.subscribe = 'tcp://nowhere'" in result.stderr


# ---- precedence: defaults < file < environment (in-process) ---------------------------------

def test_defaults_fill_every_section():
    cfg = load_config(env={"VOXBUS_RUN_DIR": "/tmp/vb-defaults"})
    assert cfg.gateway.port == 8000 and cfg.gateway.host == "127.0.0.1"
    assert cfg.bus.publish == "ipc:///tmp/vb-defaults/bus-publish"
    assert cfg.vad.segments == "ipc:///tmp/vb-defaults/vad-segments"
    assert cfg.source_file == "" and cfg.run_dir == "/tmp/vb-defaults"


def test_file_overrides_defaults_and_environment_overrides_the_file(tmp_path):
    path = tmp_path / "over.toml"
    path.write_text("[gateway]\nport = 9000\nhost = \"0.0.0.0\"\n[vad]\nend_silence_ms = 500\n")
    from_file = load_config(path, env={})
    assert (from_file.gateway.port, from_file.gateway.host, from_file.vad.end_silence_ms) == (9000, "0.0.0.0", 500)
    assert from_file.gateway.max_sessions == 16 and from_file.source_file == str(path)
    both = load_config(path, env={"VOXBUS_GATEWAY__PORT": "9100", "VOXBUS_CORES__ASR": "[0]"})
    assert both.gateway.port == 9100 and both.gateway.host == "0.0.0.0" and both.cores.asr == (0,)


def test_config_file_comes_from_voxbus_config_when_not_given(tmp_path):
    path = tmp_path / "env.toml"
    path.write_text("[gateway]\nport = 9200\n")
    assert load_config(env={"VOXBUS_CONFIG": str(path)}).gateway.port == 9200
    other = tmp_path / "other.toml"
    other.write_text("[gateway]\nport = 9300\n")
    assert load_config(other, env={"VOXBUS_CONFIG": str(path)}).gateway.port == 9300   # --config wins


def test_environment_values_parse_as_toml_else_as_strings():
    cfg = load_config(env={"VOXBUS_ASR__TEMPERATURES": "[0.0, 0.5]", "VOXBUS_ASR__MODEL": "base-int8",
                           "VOXBUS_ASR__CONDITION_ON_PREVIOUS_TEXT": "false", "VOXBUS_BUS__PUBLISH":
                           "tcp://127.0.0.1:5555"})
    assert cfg.asr.temperatures == (0.0, 0.5) and cfg.asr.model == "base-int8"
    assert cfg.asr.condition_on_previous_text is False and cfg.bus.publish == "tcp://127.0.0.1:5555"


def test_endpoints_and_cores():
    cfg = load_config(env={"VOXBUS_RUN__DIR": "/tmp/vb-x", "VOXBUS_CORES__ASR": "[0]"})
    assert cfg.bus.subscribe == "ipc:///tmp/vb-x/bus-subscribe"
    assert cores_for(cfg.cores, "asr") == (0,)
    assert cores_for(cfg.cores, "vad", available=[0, 1, 2, 3]) == (0,)
    auto = load_config(env={})
    assert cores_for(auto.cores, "asr", available=[0, 1, 2, 3]) == (1, 2, 3)
    assert cores_for(auto.cores, "asr", available=[0]) == (0,)
    assert cores_for(auto.cores, "asr", available=[0, 1]) == (0, 1)  # two cores: asr works on both


def test_every_problem_is_collected_in_one_error():
    with pytest.raises(ConfigError) as info:
        load_config(env={"VOXBUS_GATEWAY__PORT": "0", "VOXBUS_VAD__FRAME_MS": "25", "VOXBUS_NOPE__X": "1"})
    problems = info.value.problems
    assert len(problems) == 3
    assert any("unknown key VOXBUS_NOPE" in p for p in problems)
    assert any("vad.frame_ms = 25: expected one of 10, 20, 30" in p for p in problems)


@pytest.mark.parametrize("env, expected", [
    ({"VOXBUS_GATEWAY__MAX_AUDIO_S": "nan"}, "gateway.max_audio_s = nan: expected a finite number"),
    ({"VOXBUS_VAD__START_RATIO": "inf"}, "vad.start_ratio = inf: expected a finite number"),
    ({"VOXBUS_GATEWAY__MIN_END_SILENCE_MS": "3000"}, "gateway.min_end_silence_ms = 3000 is above"),
])
def test_values_that_slip_past_ranges_are_refused(env, expected):
    with pytest.raises(ConfigError) as err:
        load_config(env=env)
    assert len(err.value.problems) == 1 and expected in err.value.problems[0]


def test_run_dir_must_be_private(tmp_path):
    from config.paths import ensure_private_dir
    made = ensure_private_dir(tmp_path / "run")
    assert made.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OSError, match="writable by others"):
        ensure_private_dir(shared)
