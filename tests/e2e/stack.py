"""Start and stop every stage under supervisord (`voxbus up` / `down`) in a private run dir.

No pytest here, so the live benchmark uses it too; tests/e2e/conftest.py turns
problems into skips (placeholder stages) or failures (anything else).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO, find_free_port

NEEDED = ("bus", "vad", "asr", "gateway")


class StackError(RuntimeError):
    """The stack did not come up; the message says which stage and where its log is."""


class PlaceholderStage(StackError):
    """A needed stage is still the placeholder that heartbeats "not implemented"."""


@dataclass
class Stack:
    base: str            # host:port of the gateway
    run_dir: Path
    env: dict
    wyoming_port: int = 0  # the gateway's Wyoming listener (a free port, not 10300, so test runs never clash)

    @property
    def http(self) -> str:
        return f"http://{self.base}"

    @property
    def ws(self) -> str:
        return f"ws://{self.base}"

    def log(self, stage: str, tail: int = 3000) -> str:
        path = self.run_dir / "log" / f"{stage}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else f"(no {path})"

    def pids(self) -> dict[str, list[int]]:
        """Every stage's process ids, from the heartbeats the gateway has seen (same host)."""
        stages = httpx.get(f"{self.http}/health", timeout=5).json()["stages"]
        return {stage: [row["pid"] for row in rows] for stage, rows in stages.items()}


def start(models_dir: Path, model: str = "tiny.en-int8", **settings: str) -> Stack:
    """`voxbus up` with a fresh run dir, a free gateway port and `settings` as VOXBUS_* variables."""
    run_dir = Path(tempfile.mkdtemp(prefix="vbe2e-", dir="/tmp"))
    port, wyoming_port = find_free_port(), find_free_port()
    while wyoming_port == port:
        wyoming_port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_DATA_DIR=str(run_dir / "data"), VOXBUS_RUN__MODELS_DIR=str(models_dir), VOXBUS_ASR__MODEL=model,
               VOXBUS_GATEWAY__PORT=str(port), VOXBUS_WYOMING__PORT=str(wyoming_port), **settings)
    stack = Stack(f"127.0.0.1:{port}", run_dir, env, wyoming_port)
    up = subprocess.run([sys.executable, "-m", "cli", "up"], env=env, cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    if up.returncode != 0:
        stop(stack)
        raise StackError(f"voxbus up failed ({up.returncode}): {up.stderr.strip()}")
    return stack


def keys_command(stack: Stack, *args: str) -> str:
    """`voxbus keys ...` against this stack's keys file (its data dir); stdout (add: the key)."""
    done = subprocess.run([sys.executable, "-m", "cli", "keys", *args], env=stack.env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise StackError(f"voxbus keys {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def placeholders(health: dict) -> list[str]:
    return [stage for stage, rows in health.get("stages", {}).items()
            if stage in NEEDED and rows and all(r["status"] == "not implemented" for r in rows)]


def wait_healthy(stack: Stack, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{stack.http}/health", timeout=2)
            body = r.json()
            if r.status_code == 200:
                return
            if found := placeholders(body):
                raise PlaceholderStage(f"stage(s) {', '.join(found)} still a placeholder "
                                       "(heartbeat 'not implemented')")
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    if not body:
        raise StackError(f"the gateway never answered on {stack.base}; its log:\n{stack.log('gateway')}")
    raise StackError(f"stack not healthy after {timeout:g} s: {body.get('missing')}\n"
                     f"asr log:\n{stack.log('asr')}\nvad log:\n{stack.log('vad')}")


def stop(stack: Stack) -> None:
    """`voxbus down`, then remove the run dir. If down fails, supervisord and the stages are killed
    instead, the run dir (with the logs) is kept, and StackError says so."""
    try:
        down = subprocess.run([sys.executable, "-m", "cli", "down"], env=stack.env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        problem = f"voxbus down failed ({down.returncode}): {down.stderr.strip()}" if down.returncode else None
    except subprocess.TimeoutExpired:
        problem = "voxbus down did not return within 120 s"
    if problem is None:
        shutil.rmtree(stack.run_dir, ignore_errors=True)
        return
    killed = _kill_stack(stack.run_dir)
    raise StackError(f"{problem}; killed pid(s) {killed or 'none'}; run dir kept: {stack.run_dir}")


def _kill_stack(run_dir: Path) -> list[int]:
    """SIGTERM to supervisord (it stops its programs), then SIGKILL to whatever of this stack is left:
    the processes whose VOXBUS_RUN_DIR is this (unique) run dir."""
    killed = []
    pid = _supervisord_pid(run_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        killed.append(pid)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
    for pid in _stack_pids(run_dir):
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    return killed


def _supervisord_pid(run_dir: Path) -> int | None:
    try:
        pid = int((run_dir / "supervisord.pid").read_text().strip())
        return pid if b"supervisord" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stack_pids(run_dir: Path) -> list[int]:
    marker = f"VOXBUS_RUN_DIR={run_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ and _alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    to_mb = lambda key: int(fields.get(key, "0 kB").split()[0]) / 1024  # noqa: E731
    return round(to_mb("VmRSS"), 1), round(to_mb("VmHWM"), 1)
