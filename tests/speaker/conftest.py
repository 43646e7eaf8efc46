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


@pytest.fixture(scope="session")
def speaker_stack(tiny_models_dir, speaker_model_dir):
    """One whole stack with the speaker stage, file jobs and live labels, for tests/speaker's stack tests."""
    from tests.kit import serve_stack
    yield from serve_stack(tiny_models_dir, VOXBUS_SPEAKER__ENABLED="true", VOXBUS_SPEAKER__LIVE="true",
                           VOXBUS_ASR__WORD_TIMESTAMPS="true", VOXBUS_SPEAKER__MODEL=str(speaker_model_dir))
