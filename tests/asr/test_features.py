from pathlib import Path

import numpy as np
import pytest

from asr.whisper.features import (
    N_FRAMES,
    N_SAMPLES,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim,
    window_mel,
)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asr"


@pytest.fixture(scope="module")
def reference():
    # Made with faster-whisper's numpy FeatureExtractor (whisper's formula, padding=0).
    return np.load(FIXTURES / "mel_reference.npz")


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_whisper_reference(reference, n_mels):
    audio = reference["audio_int16"].astype(np.float32) / 32768.0
    mel = log_mel_spectrogram(audio, n_mels)
    expected = reference[f"mel{n_mels}"]
    assert mel.dtype == np.float32
    assert mel.shape == expected.shape == (n_mels, audio.shape[0] // 160)
    np.testing.assert_allclose(mel, expected, atol=1e-3)


def test_filterbank_is_slaney_normalised():
    filters = mel_filters(80)
    assert filters.shape == (80, 201)
    assert (filters >= 0).all()
    # Slaney norm divides each triangle by half its width in Hz, so the
    # low (narrow, linear-scale) bands peak higher than the high (wide) ones.
    assert filters[0].max() > filters[-1].max() > 0


def test_rejects_unknown_mel_count():
    with pytest.raises(ValueError, match="n_mels"):
        mel_filters(64)


def test_silence_is_the_floor():
    mel = log_mel_spectrogram(np.zeros(16000, np.float32))
    np.testing.assert_allclose(mel, (-10.0 + 4.0) / 4.0, atol=1e-6)


@pytest.mark.parametrize("n_samples", [16000 * 7 + 33, N_SAMPLES])
def test_window_mel_equals_whisper_transcribe(n_samples):
    # whisper.transcribe: mel of audio + 30 s of zeros, the content frames of the
    # first window, then pad_or_trim (zeros in mel space).
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(n_samples) * 0.1).astype(np.float32)
    padded_mel = log_mel_spectrogram(audio, padding=N_SAMPLES)
    n_content = padded_mel.shape[-1] - N_FRAMES
    expected = pad_or_trim(padded_mel[:, :n_content], N_FRAMES)
    np.testing.assert_allclose(window_mel(audio), expected, atol=1e-5)


def test_window_mel_rejects_more_than_a_window():
    with pytest.raises(ValueError, match="≤ 480000"):
        window_mel(np.zeros(N_SAMPLES + 1, np.float32))


def test_rejects_stereo():
    with pytest.raises(ValueError, match="1-D"):
        log_mel_spectrogram(np.zeros((2, 1600), np.float32))


def test_very_short_audio_still_works():
    # Shorter than half an FFT window: torch.stft would refuse to reflect-pad it.
    tiny = log_mel_spectrogram(np.ones(50, np.float32))
    assert tiny.shape[0] == 80 and np.isfinite(tiny).all()
    assert log_mel_spectrogram(np.ones(320, np.float32)).shape == (80, 2)


def test_pad_or_trim():
    mel = np.ones((80, 10), np.float32)
    assert pad_or_trim(mel, 20).shape == (80, 20)
    assert pad_or_trim(mel, 20)[:, 10:].sum() == 0
    assert pad_or_trim(mel, 5).shape == (80, 5)
    assert pad_or_trim(mel, 10) is mel
