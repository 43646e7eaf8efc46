"""The speaker model, built once per test run into the tests' cache (never the user's models dir)."""
from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import TEST_CACHE


@pytest.fixture(scope="session")
def speaker_model_dir():
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer is not installed (pip install --no-deps resemblyzer==0.1.4; deploy/setup.sh does)")
    from speaker.build.builder import ensure_speaker_model
    return ensure_speaker_model(TEST_CACHE / "speaker-ge2e")


@pytest.fixture(scope="session")
def voice_encoder(speaker_model_dir):
    from speaker.encoder.voice import VoiceEncoder
    return VoiceEncoder(speaker_model_dir)
