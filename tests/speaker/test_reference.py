"""Our numpy mel + onnxruntime encoder against resemblyzer's librosa + torch, as recorded by
tests/speaker/reference.py (run where torch is installed; the fixture holds its output)."""
from __future__ import annotations

import numpy as np
import pytest

from speaker.encoder.mel import BLOCK_FRAMES, mel_filters, mel_spectrogram, normalize_volume, normalized_mel
from tests.speaker.reference import FIXTURE, SEEDS, synthetic_voice

REFERENCE = np.load(FIXTURE)


def test_mel_matches_librosa():
    ours = mel_spectrogram(normalize_volume(synthetic_voice(SEEDS[0])))
    theirs = REFERENCE["mel"]
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-4 * theirs.max()


def test_embeddings_match_resemblyzer_torch(voice_encoder):
    for seed, theirs in zip(REFERENCE["seeds"], REFERENCE["embeddings"]):
        ours = voice_encoder.embed_utterance(normalize_volume(synthetic_voice(int(seed))))
        assert float(ours @ theirs) >= 0.999, f"seed {seed}: cosine {float(ours @ theirs):.6f}"
        assert abs(np.linalg.norm(ours) - 1) < 1e-5


def test_other_voices_are_further_apart_than_one_voice_with_itself(voice_encoder):
    a, b = (voice_encoder.embed_utterance(normalize_volume(synthetic_voice(s))) for s in SEEDS[:2])
    half = voice_encoder.embed_utterance(normalize_volume(synthetic_voice(SEEDS[0], seconds=1.5)))
    assert float(a @ half) > float(a @ b)


def test_the_gain_is_applied_to_the_mel_as_to_the_audio():
    quiet = synthetic_voice(SEEDS[1]) * 0.05
    np.testing.assert_allclose(normalized_mel(quiet), mel_spectrogram(normalize_volume(quiet)), rtol=1e-4,
                               atol=1e-6 * float(mel_spectrogram(normalize_volume(quiet)).max()))
    loud = synthetic_voice(SEEDS[1]) * 5
    assert np.array_equal(normalize_volume(loud), loud.astype(np.float32))  # raised, never lowered


@pytest.mark.parametrize("n", [0, 5, 399, 16000, BLOCK_FRAMES * 160 + 77])
def test_mel_in_blocks_is_the_mel_in_one_pass(n):
    wav = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    padded = np.pad(wav, 200)
    frames = np.lib.stride_tricks.as_strided(padded, (1 + n // 160, 400), (padded.strides[0] * 160, padded.strides[0]))
    one_pass = (np.abs(np.fft.rfft(frames * np.hanning(401)[:400].astype(np.float32), axis=1)) ** 2).astype(np.float32)
    np.testing.assert_allclose(mel_spectrogram(wav), one_pass @ mel_filters().T, rtol=1e-4, atol=1e-3)
