"""End-to-end fixtures: every stage under supervisord (`voxbus up`) with the real tiny model.

A stage that is still a placeholder (heartbeat status "not implemented") skips the
tests with that reason; a stage that fails to start fails them with its log.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import TEST_CACHE
from tests.e2e import live, stack as stacks


def need_eval() -> None:
    if not live.eval_available():
        pytest.skip(f"real test clips not found at {live.EVAL_DIR} (../shared/eval); set VOXBUS_EVAL_DIR")


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
