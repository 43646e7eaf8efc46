"""A stack on one test host and asr workers on others (tests/e2e/netns.py), for the scale-out test
and benchmark: CURVE keys, `voxbus up` inside the stack's namespace, `voxbus worker` inside a
worker's, and the broker's view of its workers (vad's heartbeat). No pytest here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from tests.conftest import REPO
from tests.e2e import netns, stack as stacks

BROKER_PORT = 5557   # vad.remote_segments on the stack host
BUS_PORT = 5558      # bus.remote_publish (`voxbus worker` takes port + 1 by default)
GATEWAY_PORT = 8000  # the stack host is a namespace of its own: fixed ports cannot clash


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@dataclass
class Keys:
    stack: Path                 # the stack's curve dir: server keypair and the allow-list
    workers: dict[str, Path]    # worker name → its curve dir (worker keypair + server.key)
    rogue: Path                 # a worker keypair nobody allowed (beside the right server.key)


def make_keys(root: Path, names: list[str]) -> Keys:
    """With `voxbus keys curve`, as a user would; the rogue key by hand."""
    stack = root / "stack"
    for args in [("server",)] + [("worker", name, "--out", str(root / name)) for name in names]:
        result = cli("keys", "curve", "--dir", str(stack), *args)
        if result.returncode:
            raise RuntimeError(f"voxbus keys curve {' '.join(args)}: {result.stderr.strip()}")
    rogue = root / "rogue"
    rogue.mkdir()
    zmq.auth.create_certificates(rogue, "worker")
    (rogue / "server.key").write_bytes((stack / "server.key").read_bytes())
    return Keys(stack, {name: root / name for name in names}, rogue)


def start_stack(hosts: netns.Hosts, models_dir: Path, curve_dir: Path, **settings: str) -> stacks.Stack:
    """`voxbus up` on the stack host: the gateway on its address toward the test, the broker and bus
    also on tcp (CURVE) for the worker hosts."""
    run_dir = Path(tempfile.mkdtemp(prefix="vbscale-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_DATA_DIR=str(run_dir / "data"),
               VOXBUS_RUN__MODELS_DIR=str(models_dir), VOXBUS_GATEWAY__HOST=hosts.stack_address,
               VOXBUS_GATEWAY__PORT=str(GATEWAY_PORT),
               VOXBUS_WYOMING__ENABLED="false", VOXBUS_STORE__ENABLED="false",
               # the test network is private to the test: no API keys, no per-caller audio limit
               VOXBUS_AUTH__MODE="none", VOXBUS_LIMITS__AUDIO_S_PER_MIN="0",
               VOXBUS_VAD__REMOTE_SEGMENTS=f"tcp://*:{BROKER_PORT}", VOXBUS_BUS__REMOTE_PUBLISH=f"tcp://*:{BUS_PORT}",
               VOXBUS_BUS__CURVE_DIR=str(curve_dir), **settings)
    stack = stacks.Stack(f"{hosts.stack_address}:{GATEWAY_PORT}", run_dir, env)
    up = subprocess.run(hosts.exec_prefix(hosts.stack) + [sys.executable, "-m", "cli", "up"], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        stacks.stop(stack)
        raise stacks.StackError(f"voxbus up failed ({up.returncode}): {up.stderr.strip()}")
    return stack


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_worker(hosts: netns.Hosts, i: int, name: str, models_dir: Path, curve_dir: Path, model: str,
                 throttle: float = 1.0, cores: str = "", log_dir: Path | None = None) -> Worker:
    """`voxbus worker --connect tcp://<stack on link i>:5557` on worker host i."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"vbworker-{name}-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_ASR__PARALLEL="1")
    if cores:
        env["VOXBUS_CORES__ASR"] = cores
    command = [sys.executable, "-m", "cli", "worker", "--connect", f"tcp://{hosts.broker_address(i)}:{BROKER_PORT}",
               "--model", model, "--models-dir", str(models_dir), "--curve-dir", str(curve_dir), "--name", name,
               "--throttle", str(throttle)]
    log = (log_dir or run_dir) / f"worker-{name}.log"
    return Worker(name, netns.run_in(hosts, hosts.workers[i], command, env, log, REPO), log)


def stop_worker(worker: Worker, timeout: float = 10) -> None:
    if worker.process.poll() is None:
        worker.process.terminate()
        try:
            worker.process.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(timeout)


def vad_counters(stack: stacks.Stack) -> dict:
    """vad's last heartbeat counters (its broker's roster: `asr_roster`), via `voxbus status --json`."""
    result = cli("status", "--json", "--timeout", "1.5", env=stack.env)
    rows = json.loads(result.stdout or "{}").get("stages", [])
    return next((r["counters"] for r in rows if r["stage"] == "vad"), {})


def roster(stack: stacks.Stack) -> dict[str, dict]:
    """worker name → {model, rtf, given} as the broker sees it now."""
    return {key.split("@")[0]: value for key, value in vad_counters(stack).get("asr_roster", {}).items()}


def wait_until(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise TimeoutError(f"not within {timeout:g} s: {what}")


def log_events(text: str, message: str) -> list[dict]:
    """The JSON log lines of a stage whose `msg` is `message`."""
    found = []
    for line in text.splitlines():
        if message in line and line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
