"""Under VOXBUS_REQUIRE_ALL=1 (CI sets it) a skipped test fails: a missing espeak-ng, ffmpeg,
Chromium, Qt or eval folder must not pass CI as "skipped", which proves nothing.

Loaded by tests/conftest.py (`pytest_plugins`); a plugin module so it can be tested alone.
"""
from __future__ import annotations

import os

import pytest

ENV = "VOXBUS_REQUIRE_ALL"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(ENV) == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{ENV}=1: this test may not be skipped here, install what it needs ({reason})"
