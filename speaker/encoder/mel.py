"""The voice encoder's front end in numpy: the power mel spectrogram resemblyzer computes with
librosa (25 ms Hann window, 10 ms hop, centred with zero padding, 40 Slaney mel bands, 0-8 kHz,
Slaney-normalised filters; power, not log), and its loudness normalisation.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: one frame
N_MELS = 40
BLOCK_FRAMES = 3000  # 30 s of frames per FFT block: bounds memory on long files
BLOCK_SAMPLES = BLOCK_FRAMES * HOP
TARGET_DBFS = -30.0  # resemblyzer raises quieter audio to this level, never lowers louder audio

_F_SP = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz, logarithmic above
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    mel = hz / _F_SP
    log_part = hz >= _MIN_LOG_HZ
    mel[log_part] = _MIN_LOG_MEL + np.log(hz[log_part] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    hz = mel * _F_SP
    log_part = mel >= _MIN_LOG_MEL
    hz[log_part] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel[log_part] - _MIN_LOG_MEL))
    return hz


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """[N_MELS, N_FFT // 2 + 1] triangular filters, area-normalised (librosa's norm='slaney')."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0],
                                   N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """[frames, N_MELS] float32 power mel of float audio at 16 kHz; frames = 1 + len // HOP
    (centred frames, zeros beyond both ends, as librosa's center=True, pad_mode="constant")."""
    wav = np.asarray(wav, np.float32)
    n_frames = 1 + len(wav) // HOP
    out = np.empty((n_frames, N_MELS), np.float32)
    for first in range(0, n_frames, BLOCK_FRAMES):  # in blocks: the spectrum of an hour would be GBs
        count = min(BLOCK_FRAMES, n_frames - first)
        begin = first * HOP - N_FFT // 2  # the block's audio, zero-padded only where it runs off the ends
        stop = (first + count - 1) * HOP + N_FFT // 2
        piece = np.zeros(stop - begin, np.float32)
        piece[max(0, -begin):len(piece) - max(0, stop - len(wav))] = wav[max(0, begin):min(len(wav), stop)]
        frames = np.lib.stride_tricks.as_strided(piece, (count, N_FFT), (piece.strides[0] * HOP, piece.strides[0]),
                                                 writeable=False)
        power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
        out[first:first + count] = power.astype(np.float32) @ mel_filters().T
    return out


def volume_gain(wav: np.ndarray) -> float:
    """The gain that raises the audio to TARGET_DBFS if it is quieter (resemblyzer's preprocessing);
    1 for louder audio and for silence."""
    wav = np.asarray(wav, np.float32)
    if not wav.size:
        return 1.0
    blocks = (wav[i:i + BLOCK_SAMPLES].astype(np.float64) for i in range(0, wav.size, BLOCK_SAMPLES))
    mean_square = sum(float(np.dot(block, block)) for block in blocks) / wav.size  # float64 sums, a block at a time
    if mean_square == 0.0:
        return 1.0
    change_db = TARGET_DBFS - 10 * np.log10(mean_square)
    return 1.0 if change_db < 0 else float(10 ** (change_db / 20))


def normalize_volume(wav: np.ndarray) -> np.ndarray:
    """The audio at volume_gain (a copy when it changes)."""
    gain = volume_gain(wav)
    return np.asarray(wav, np.float32) if gain == 1.0 else (np.asarray(wav, np.float32) * gain).astype(np.float32)


def normalized_mel(wav: np.ndarray) -> np.ndarray:
    """mel_spectrogram(normalize_volume(wav)) without a normalised copy of the audio: the power
    mel scales with the square of the gain."""
    gain = volume_gain(wav)
    mel = mel_spectrogram(wav)
    if gain != 1.0:
        mel *= np.float32(gain * gain)
    return mel
