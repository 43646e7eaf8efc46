"""The e2e stack helper itself: a failed `voxbus down` must not leave stages running or lose their logs."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e import stack as stacks


def test_failed_down_kills_the_stack_and_keeps_the_run_dir():
    run_dir = Path(tempfile.mkdtemp(prefix="vbstk-", dir="/tmp"))
    (run_dir / "log").mkdir()
    (run_dir / "log" / "asr.log").write_text("why it failed\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXBUS_")}
    env.update(VOXBUS_RUN_DIR=str(run_dir), VOXBUS_GATEWAY__MAX_JOBS="0")  # a bad config: `voxbus down` exits 2
    stage = subprocess.Popen(["sleep", "60"], env=env)  # stands in for a stage of this stack
    try:
        with pytest.raises(stacks.StackError) as err:
            stacks.stop(stacks.Stack("127.0.0.1:1", run_dir, env))
        assert "voxbus down failed (2)" in str(err.value) and str(stage.pid) in str(err.value)
        assert stage.wait(5) == -9
        assert (run_dir / "log" / "asr.log").read_text() == "why it failed\n"
    finally:
        if stage.poll() is None:
            stage.kill()
        shutil.rmtree(run_dir, ignore_errors=True)
