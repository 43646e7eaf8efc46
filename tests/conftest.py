"""Shared fixtures: a private run dir per test, free tcp ports, and real subprocesses.

Other engineers add fixtures in their own tests/<pkg>/conftest.py; keep this small.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.require_all"]  # CI: a skip is a failure
# Models the tests build are cached here across runs, never in the user's own models dir.
TEST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxbus-tests"


def pytest_sessionstart(session):
    """In CI (VOXBUS_REQUIRE_EVAL=1) missing eval clips are an error, not a reason to skip."""
    from tests.bench.common import EVAL_DIR, eval_available
    if os.environ.get("VOXBUS_REQUIRE_EVAL") == "1" and not eval_available():
        pytest.exit(f"VOXBUS_REQUIRE_EVAL=1 but {EVAL_DIR}/MANIFEST.tsv is missing: "
                    f"the eval clips must sit in ../shared/eval beside the checkout", returncode=3)


def find_free_port() -> int:
    """A tcp port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port():
    """Call it for each port you need: `port = free_port()`. The ports of one test all differ:
    the kernel may hand out a port again once its probe socket is closed."""
    given: set[int] = set()

    def pick() -> int:
        port = find_free_port()
        while port in given:
            port = find_free_port()
        given.add(port)
        return port
    return pick


@pytest.fixture
def run_dir(monkeypatch):
    """A fresh, short run dir (ipc:// paths must stay under 108 bytes) set as $VOXBUS_RUN_DIR."""
    path = Path(tempfile.mkdtemp(prefix="vb-", dir="/tmp"))
    monkeypatch.setenv("VOXBUS_RUN_DIR", str(path))
    monkeypatch.setenv("VOXBUS_DATA_DIR", str(path / "data"))  # the store's database too, never /var/lib
    monkeypatch.delenv("VOXBUS_CONFIG", raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Proc:
    """A started subprocess with its combined output in a log file."""

    def __init__(self, popen: subprocess.Popen, log: Path):
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@pytest.fixture
def spawn(tmp_path):
    """spawn(["-m", "bus"], env=...) → Proc running `python ...`; all are stopped at teardown."""
    started: list[Proc] = []

    def start(args: list[str], env: dict | None = None, name: str | None = None) -> Proc:
        log = tmp_path / f"{name or args[-1].replace('/', '_')}-{len(started)}.log"
        out = open(log, "wb")
        popen = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env or os.environ.copy(), cwd=REPO)
        out.close()
        proc = Proc(popen, log)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models dir holding tiny.en-int8, built once and kept in a cache across sessions.

    VOXBUS_TEST_MODEL_DIR=<dir>/tiny.en-int8 picks the folder; else $XDG_CACHE_HOME/voxbus-tests
    (ensure_model rebuilds it only when its source changed). The stack finds the model by
    name under its models dir, so only a folder named tiny.en-int8 is used.
    """
    model_build = pytest.importorskip("asr.build.builder", reason="the model builder (asr.build.builder) is missing")
    cache = TEST_CACHE / "tiny.en-int8"
    chosen = Path(os.environ.get("VOXBUS_TEST_MODEL_DIR", cache))
    out = chosen if chosen.name == "tiny.en-int8" else tmp_path_factory.mktemp("models") / "tiny.en-int8"
    try:
        model_build.ensure_model("tiny", out, "int8")
    except (OSError, ValueError, model_build.ModelBuildError) as exc:
        pytest.skip(f"cannot build the tiny model: {exc}")
    return out.parent
