"""Start and stop every stage under supervisord (`voxbus up` / `down`) in a private run dir.

No pytest here, so the live benchmark uses it too; tests/e2e/conftest.py turns
problems into skips (placeholder stages) or failures (anything else).
"""
from __future__ import annotations

import os
import shutil
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
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_RUN__MODELS_DIR=str(models_dir), VOXBUS_ASR__MODEL=model,
               VOXBUS_GATEWAY__PORT=str(port), **settings)
    stack = Stack(f"127.0.0.1:{port}", run_dir, env)
    up = subprocess.run([sys.executable, "-m", "bus.cli", "up"], env=env, cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    if up.returncode != 0:
        stop(stack)
        raise StackError(f"voxbus up failed ({up.returncode}): {up.stderr.strip()}")
    return stack


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
    subprocess.run([sys.executable, "-m", "bus.cli", "down"], env=stack.env, cwd=REPO, capture_output=True,
                   timeout=120)
    shutil.rmtree(stack.run_dir, ignore_errors=True)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    to_mb = lambda key: int(fields.get(key, "0 kB").split()[0]) / 1024  # noqa: E731
    return round(to_mb("VmRSS"), 1), round(to_mb("VmHWM"), 1)
