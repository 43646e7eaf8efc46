"""End-to-end fixtures: every stage under supervisord (`voxbus up`) with the real tiny model.

A stage that is still a placeholder (heartbeat status "not implemented") skips the
tests with that reason; a stage that fails to start fails them with its log.
"""
from __future__ import annotations

import pytest

from tests.e2e import live, stack as stacks


def need_eval() -> None:
    if not live.eval_available():
        pytest.skip(f"real test clips not found at {live.EVAL_DIR} (../shared/eval); set VOXBUS_EVAL_DIR")


@pytest.fixture(scope="package")
def stack(tiny_models_dir):
    """One supervisord stack for all e2e tests (max_upload_mb and max_audio_s lowered to test the limits)."""
    need_eval()
    try:
        s = stacks.start(tiny_models_dir, VOXBUS_GATEWAY__MAX_UPLOAD_MB="20", VOXBUS_GATEWAY__MAX_AUDIO_S="300")
    except stacks.StackError as exc:
        pytest.fail(str(exc))
    try:
        stacks.wait_healthy(s)
    except stacks.PlaceholderStage as exc:
        stacks.stop(s)
        pytest.skip(str(exc))
    except stacks.StackError as exc:
        stacks.stop(s)
        pytest.fail(str(exc))
    yield s
    stacks.stop(s)
