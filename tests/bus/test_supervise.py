"""`voxbus up` / `status` / `down` with a real supervisord and real stage processes.

The stages run here are the placeholder (bus/placeholder.py), put first on
PYTHONPATH for capture, vad, asr and gateway: this tests supervision, not the
stages, and must not depend on models, sound cards or a free port 8000. The bus
is the real one.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import zmq

from bus import schemas, sockets
from bus.supervise import SupervisorPaths, pid_alive, programs, render, supervisord_pid
from config import load_config
from config.cores import STAGES
from tests.conftest import REPO

CLI = [sys.executable, "-m", "cli"]
PLACEHOLDER_MAIN = 'from bus.placeholder import main\nraise SystemExit(main("{stage}"))\n'
RESTART_WITHIN_S = 30.0   # generous: a new python process on a busy machine; the time taken is printed


def make_overlay(root: Path, crashing: str = "", real: tuple[str, ...] = ()) -> Path:
    """Packages that shadow the real stages (but `real`): placeholders, and optionally one that exits at once."""
    for stage in [s for s in STAGES[1:] if s not in real]:
        (root / stage).mkdir(parents=True)
        (root / stage / "__init__.py").write_text("")
        main = "raise SystemExit(3)\n" if stage == crashing else PLACEHOLDER_MAIN.format(stage=stage)
        (root / stage / "__main__.py").write_text(main)
    return root


@pytest.fixture
def stack_env(run_dir, tmp_path, free_port):
    env = dict(os.environ, PYTHONPATH=str(make_overlay(tmp_path / "overlay")),
               VOXBUS_GATEWAY__PORT=str(free_port()), VOXBUS_WYOMING__PORT=str(free_port()))
    yield env
    subprocess.run(CLI + ["down"], env=env, capture_output=True, timeout=60)   # whatever the test did


def voxbus(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout)


def processes_with_run_dir(run_dir: Path) -> list[int]:
    """Every live process whose environment names this run dir (a /proc scan, no psutil)."""
    marker = f"VOXBUS_RUN_DIR={run_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for_new_heartbeat(sub, stage: str, old_pid: int, timeout: float) -> schemas.Heartbeat | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sub.poll(100):
            msg = schemas.unpack(sub.recv_multipart())
            if isinstance(msg, schemas.Heartbeat) and msg.stage == stage and msg.pid != old_pid:
                return msg
    return None


@pytest.mark.slow
def test_up_status_restart_down_leaves_nothing_behind(stack_env, run_dir):
    up = voxbus(["up"], stack_env)
    assert up.returncode == 0 and "running (supervisord pid" in up.stdout, up.stderr
    again = voxbus(["up"], stack_env)
    assert again.returncode == 0 and "already running" in again.stdout
    status = voxbus(["status", "--json", "--timeout", "2.5"], stack_env)
    assert status.returncode == 0, status.stdout + status.stderr
    seen = {row["stage"]: row for row in json.loads(status.stdout)["stages"]}
    assert set(seen) == set(STAGES) | {"store"}   # the transcript store is a real stage here
    assert seen["bus"]["ok"] is True
    assert all(not seen[s]["ok"] and seen[s]["status"] == "not implemented" for s in STAGES[1:])
    pids = {row["pid"] for row in seen.values()} | {supervisord_pid(SupervisorPaths.for_config(load_config()))}

    cfg = load_config()
    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, cfg.bus, [b"health/vad/"])
    try:
        assert sub.poll(20000), "no vad heartbeat before the kill"
        os.kill(seen["vad"]["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        reborn = wait_for_new_heartbeat(sub, "vad", seen["vad"]["pid"], RESTART_WITHIN_S)
        assert reborn is not None, f"vad did not heartbeat again within {RESTART_WITHIN_S} s of SIGKILL"
        pids.add(reborn.pid)
        restart_s = time.monotonic() - killed_at
    finally:
        sub.close(linger=0)
        ctx.term()
    print(f"vad restarted and heartbeating {restart_s:.2f} s after SIGKILL")

    down = voxbus(["down"], stack_env)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert processes_with_run_dir(run_dir) == []
    assert voxbus(["down"], stack_env).stdout.startswith("voxbus down: not running")
    after = voxbus(["status", "--timeout", "1"], stack_env)
    assert after.returncode == 1 and "missing: bus, capture, vad, asr, gateway" in after.stderr


@pytest.mark.slow
def test_up_fails_clearly_when_a_stage_keeps_crashing(run_dir, tmp_path, free_port):
    env = dict(os.environ, PYTHONPATH=str(make_overlay(tmp_path / "overlay", crashing="gateway")))
    try:
        up = voxbus(["up", "--timeout", "4"], env)
        assert up.returncode == 1
        line = up.stderr.strip().splitlines()[-1]
        # told at once (it exits before supervisord counts it running), or at the timeout
        assert ("gateway exited (" in line or "not running after 4 s: gateway (" in line) and \
            str(run_dir / "log" / "gateway.log") in line, line
        assert "stopping everything" in line
        assert processes_with_run_dir(run_dir) == []
    finally:
        voxbus(["down"], env)


@pytest.mark.slow
def test_up_fails_with_the_reason_when_the_gateway_port_is_taken(run_dir, tmp_path, free_port):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=f"{make_overlay(tmp_path / 'overlay', real=('gateway',))}:{REPO}",
               VOXBUS_GATEWAY__PORT=str(port), VOXBUS_WYOMING__ENABLED="false")
    try:
        up = voxbus(["up", "--timeout", "60"], env, timeout=120)
        assert up.returncode == 1
        line = up.stderr.strip().splitlines()[-1]
        assert line.startswith("voxbus up: error: gateway exited") and "stopping everything" in line, up.stderr
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line, line
        assert processes_with_run_dir(run_dir) == []
    finally:
        taken.close()
        voxbus(["down"], env)


@pytest.mark.slow
def test_up_fails_with_the_reason_when_the_model_is_missing(run_dir, tmp_path, free_port):
    env = dict(os.environ, PYTHONPATH=f"{make_overlay(tmp_path / 'overlay', real=('asr',))}:{REPO}",
               VOXBUS_GATEWAY__PORT=str(free_port()), VOXBUS_WYOMING__PORT=str(free_port()),
               VOXBUS_RUN__MODELS_DIR=str(tmp_path / "no-models"))
    try:
        up = voxbus(["up", "--timeout", "60"], env, timeout=120)
        assert up.returncode == 1
        line = up.stderr.strip().splitlines()[-1]
        assert line.startswith("voxbus up: error: asr: model directory") and "voxbus model build" in line, up.stderr
        assert processes_with_run_dir(run_dir) == []
    finally:
        voxbus(["down"], env)


# ---- rendering (pure) --------------------------------------------------------------------

def test_rendered_conf_runs_every_stage_with_the_config_file(tmp_path):
    cfg = replace(load_config(env={}), run_dir=str(tmp_path / "run"), source_file=str(tmp_path / "my 100%.toml"))
    paths = SupervisorPaths.for_config(cfg)
    text = render(cfg, paths, "/venv/bin/python", {"VOXBUS_CORES__ASR": "[1, 2]", "HOME": "/root"})
    for stage in STAGES:
        assert f"[program:{stage}]" in text
        assert f"command=/venv/bin/python -m {stage} --config '{tmp_path}/my 100%%.toml'" in text
    assert text.index("priority=10") < text.index("[program:capture]")   # bus starts first
    assert f'VOXBUS_RUN_DIR="{tmp_path}/run"' in text and 'VOXBUS_CORES__ASR="[1, 2]"' in text
    assert "HOME=" not in text   # only voxbus settings are written; the rest is inherited
    for setting in ("autorestart=true", "startsecs=1", "stopsignal=TERM", "stopwaitsecs=10", "stopasgroup=true",
                    "killasgroup=true", "stdout_logfile_maxbytes=10MB", "stdout_logfile_backups=5"):
        assert text.count(setting) == len(programs(cfg)), setting
    assert f"file={tmp_path}/run/supervisor.sock" in text


def test_rendered_conf_is_valid_for_supervisord(tmp_path):
    from supervisor.options import ServerOptions

    cfg = replace(load_config(env={}), run_dir=str(tmp_path))
    paths = SupervisorPaths.for_config(cfg)
    paths.log_dir.mkdir()
    paths.conf.write_text(render(cfg, paths, sys.executable, {"VOXBUS_GATEWAY__HOST": "0.0.0.0"}))
    options = ServerOptions()
    options.realize(["-c", str(paths.conf)])
    programs = {group.name: group.process_configs[0] for group in options.process_group_configs}
    assert set(programs) == set(STAGES) | {"store"}   # the transcript store runs beside the stages of the core map
    assert programs["bus"].priority < programs["gateway"].priority
    assert programs["vad"].environment["VOXBUS_GATEWAY__HOST"] == "0.0.0.0"
    assert programs["vad"].environment["VOXBUS_RUN_DIR"] == str(tmp_path)


def test_a_value_supervisord_cannot_carry_is_refused(tmp_path):
    cfg = replace(load_config(env={}), run_dir=str(tmp_path))
    with pytest.raises(ValueError, match='VOXBUS_ASR__WORKER.*double quote'):
        render(cfg, SupervisorPaths.for_config(cfg), sys.executable, {"VOXBUS_ASR__WORKER": 'a"b'})


def test_the_example_in_deploy_is_current():
    from bus.supervise import EXAMPLE_PATH, example_conf

    assert EXAMPLE_PATH.read_text() == example_conf(), "regenerate deploy/supervisord.conf (see example_conf)"
