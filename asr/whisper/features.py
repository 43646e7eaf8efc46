"""Whisper's log-mel spectrogram in numpy.

Matches openai-whisper's `log_mel_spectrogram` (torch.stft, centre/reflect padding,
periodic Hann window, |STFT|^2 without the last frame, librosa's Slaney mel
filterbank, log10 clamp, 8 dB dynamic range, (x + 4) / 4) to within 1e-3, so the
ONNX encoder sees exactly what the original model was trained on.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30  # seconds of audio per encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in one window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in one window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second

if N_SAMPLES % HOP_LENGTH != 0:  # the windowing arithmetic below relies on it
    raise ImportError("N_SAMPLES must be a multiple of HOP_LENGTH")

# log10 of the clamp floor: what a frame of pure digital silence becomes.
_LOG_FLOOR = -10.0
_DYNAMIC_RANGE = 8.0
_FRAMES_PER_BLOCK = 512


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa htk=False)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = freqs >= min_log_hz
    mels = np.where(
        log_region, min_log_mel + np.log(np.maximum(freqs, min_log_hz) / min_log_hz) / logstep, mels
    )
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `_hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels
    )


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, float32 [n_mels, n_fft // 2 + 1].

    Same as librosa.filters.mel(sr, n_fft, n_mels) with its defaults (fmin 0,
    fmax sr / 2, htk False, norm "slaney"), which is how whisper's mel_filters.npz
    was made. Cached: it is a pure function of three small ints.
    """
    if n_mels not in (80, 128):
        raise ValueError(f"n_mels must be 80 or 128, got {n_mels}")
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2)
    band_edges_hz = _mel_to_hz(mel_points)
    edge_gaps = np.diff(band_edges_hz)
    ramps = band_edges_hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / edge_gaps[:-1, None]
    upper = ramps[2:] / edge_gaps[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney norm: each triangle has unit area, so bands carry comparable energy.
    weights *= (2.0 / (band_edges_hz[2 : n_mels + 2] - band_edges_hz[:n_mels]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=1)
def _hann_window(n_fft: int = N_FFT) -> np.ndarray:
    """Periodic Hann window (torch.hann_window(periodic=True))."""
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.setflags(write=False)
    return window


def _strided_frames(audio: np.ndarray) -> np.ndarray:
    """Centred, reflect-padded STFT frames without whisper's dropped last one: [frames, n_fft]."""
    half = N_FFT // 2
    if audio.shape[0] <= half:
        # reflect padding needs more samples than half a window; zeros are what the
        # frame would mostly hold anyway and keep very short inputs usable.
        audio = np.pad(audio, (0, half + 1 - audio.shape[0]))
    padded = np.pad(audio, (half, half), mode="reflect")
    n_frames = 1 + (padded.shape[0] - N_FFT) // HOP_LENGTH
    return np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_frames - 1, N_FFT),  # whisper drops the last STFT frame
        strides=(padded.strides[0] * HOP_LENGTH, padded.strides[0]),
        writeable=False,
    )


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's normalised log-mel spectrogram, float32 [n_mels, n_samples // 160].

    audio: float32 mono samples at 16 kHz, roughly in [-1, 1].
    padding: zero samples appended first (whisper's transcribe pads 30 s so the
        last window is complete and its tail is real silence, not zeros in mel space).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
    if padding > 0:
        audio = np.pad(audio, (0, padding))
    frames = _strided_frames(audio)
    filters_t = mel_filters(n_mels).T
    mel_by_frame = np.empty((frames.shape[0], n_mels), dtype=np.float32)
    # Small blocks keep the complex spectrum of a long file out of memory, and keep
    # OpenBLAS on one thread: its threading costs more than it gains at this size.
    for first in range(0, frames.shape[0], _FRAMES_PER_BLOCK):
        spectrum = np.fft.rfft(frames[first : first + _FRAMES_PER_BLOCK] * _hann_window(), axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)
        np.matmul(power, filters_t, out=mel_by_frame[first : first + _FRAMES_PER_BLOCK])
    log_spec = np.ascontiguousarray(mel_by_frame.T)
    np.log10(np.maximum(log_spec, 1e-10, out=log_spec), out=log_spec)
    np.maximum(log_spec, log_spec.max() - _DYNAMIC_RANGE, out=log_spec)
    log_spec += 4.0
    log_spec /= 4.0
    return log_spec


def pad_or_trim(array: np.ndarray, length: int = N_FRAMES, axis: int = -1) -> np.ndarray:
    """Zero-pad or cut `array` along `axis` to exactly `length` (whisper's pad_or_trim)."""
    size = array.shape[axis]
    if size > length:
        return array.take(np.arange(length), axis=axis)
    if size < length:
        pad_widths = [(0, 0)] * array.ndim
        pad_widths[axis] = (0, length - size)
        return np.pad(array, pad_widths)
    return array


def window_mel(audio: np.ndarray, n_mels: int = 80, n_frames: int = N_FRAMES, pad: str = "zeros") -> np.ndarray:
    """Mel of one encoder window (≤ 30 s of audio): float32 [n_mels, n_frames].

    What whisper's (and faster-whisper's) transcribe feeds the encoder for a short
    input: the audio's own frames, computed as if 30 s of silence followed, then
    padded in mel space to a full window. Half an FFT of zero samples is all
    the following silence those frames can see, so only that much is transformed.
    n_frames: the window's length (see `encoder_frames`); the audio is cut to it.
    pad: "zeros" (whisper's padding) or "silence" (the log-mel value of digital
    silence in this window, i.e. what frames of appended zero samples would give).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.shape[0] > N_SAMPLES:
        raise ValueError(f"window_mel takes ≤ {N_SAMPLES} mono samples, got shape {audio.shape}")
    if not 0 < n_frames <= N_FRAMES:
        raise ValueError(f"n_frames must be in 1..{N_FRAMES}, got {n_frames}")
    if pad not in ("zeros", "silence"):
        raise ValueError(f"pad must be 'zeros' or 'silence', got {pad!r}")
    mel = log_mel_spectrogram(audio, n_mels, padding=N_FFT)[:, : content_frames(audio.shape[0])]
    window = pad_or_trim(mel, n_frames)
    if pad == "silence" and mel.shape[1] < n_frames:
        # Normalised log-mel of a zero frame: log10 floor, clamped to 8 dB below the
        # loudest frame, then (x + 4) / 4; in normalised units max(peak - 2, -1.5).
        peak = float(mel.max()) if mel.size else _LOG_FLOOR
        window[:, mel.shape[1]:] = max(peak - _DYNAMIC_RANGE / 4.0, (_LOG_FLOOR + 4.0) / 4.0)
    return np.ascontiguousarray(window)


def encoder_frames(n_samples: int, floor_s: float = CHUNK_LENGTH, pad_s: float = 0.0) -> int:
    """Frames of the encoder window for `n_samples` of audio: max(floor, audio + pad)
    seconds, rounded up to an even frame count (the encoder halves it), at most N_FRAMES."""
    wanted = max(floor_s * FRAMES_PER_SECOND, content_frames(n_samples) + pad_s * FRAMES_PER_SECOND)
    frames = int(np.ceil(wanted - 1e-9))
    return min(N_FRAMES, frames + frames % 2)


def content_frames(n_samples: int) -> int:
    """Mel frames that hold audio (whisper: frames of audio + 30 s padding, minus 3000)."""
    return n_samples // HOP_LENGTH
