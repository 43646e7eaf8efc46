"""The CI rule itself: with VOXBUS_REQUIRE_ALL=1 a test that skips for a missing tool fails."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def _run(tmp_path, require: str):
    (tmp_path / "test_probe.py").write_text(
        "import shutil, pytest\n\n"
        "def test_needs_a_tool():\n"
        "    if shutil.which('no-such-tool-here') is None:\n"
        "        pytest.skip('no-such-tool-here is not installed')\n")
    env = dict(os.environ, VOXBUS_REQUIRE_ALL=require, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.require_all", "-p", "no:cacheprovider",
                           str(tmp_path / "test_probe.py")], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_a_skip_fails_under_require_all(tmp_path):
    result = _run(tmp_path, "1")
    assert result.returncode == 1, result.stdout
    assert "may not be skipped here" in result.stdout and "no-such-tool-here is not installed" in result.stdout


def test_a_skip_is_a_skip_otherwise(tmp_path):
    result = _run(tmp_path, "0")
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout
