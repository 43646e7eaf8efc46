"""Read an audio file as float32 16 kHz mono, the way the model wants it.

libsndfile (soundfile) reads WAV, FLAC, OGG and MP3; anything else goes through
ffmpeg when it is installed. Files named *.raw or *.pcm are headerless 16 kHz
mono s16le, the bus's own audio format. Resampling uses soxr, a proper
anti-aliased resampler (8 kHz telephone audio and 44.1 kHz music both occur).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr

from asr.whisper.features import SAMPLE_RATE

logger = logging.getLogger(__name__)

# int16 ↔ float: float = int16 / 32768 (the bus's scale too: bus/pcm.py, held equal by a test)
INT16_SCALE = 32768.0
RAW_SUFFIXES = (".raw", ".pcm")
FFMPEG_TIMEOUT_S = 600


def load_audio(path: Path | str) -> np.ndarray:
    """Decode `path` to float32 mono at 16 kHz.

    Raises ValueError with a one-line message naming the file and the problem
    when it is missing, empty, corrupt or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")
    if path.suffix.lower() in RAW_SUFFIXES:
        samples, sample_rate = _read_raw_s16le(path), SAMPLE_RATE
    else:
        samples, sample_rate = _read_with_soundfile_or_ffmpeg(path)
    if samples.size == 0:
        raise ValueError(f"{path}: no audio samples")
    if sample_rate != SAMPLE_RATE:
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    return samples


def _read_raw_s16le(path: Path) -> np.ndarray:
    data = path.read_bytes()
    if len(data) % 2:
        raise ValueError(f"{path}: odd byte count for 16-bit raw PCM ({len(data)} bytes)")
    return int16_to_float(data)


def _read_with_soundfile_or_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.SoundFileError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if shutil.which("ffmpeg") is None:
            raise ValueError(f"{path}: cannot decode audio ({reason}; ffmpeg not installed)") from exc
        logger.debug("soundfile cannot read %s (%s); trying ffmpeg", path, reason)
        return _read_with_ffmpeg(path), SAMPLE_RATE
    # Downmix by mean: keeps the level of a mono source recorded as stereo.
    return data.mean(axis=1), int(sample_rate)


def _read_with_ffmpeg(path: Path) -> np.ndarray:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    try:
        completed = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"{path}: ffmpeg took longer than {FFMPEG_TIMEOUT_S} s to decode it") from exc
    if completed.returncode != 0:
        lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {completed.returncode}"
        raise ValueError(f"{path}: cannot decode audio (ffmpeg: {reason})")
    return int16_to_float(completed.stdout[: len(completed.stdout) // 2 * 2])


def validate_audio(audio: np.ndarray) -> np.ndarray:
    """Float 16 kHz mono samples as contiguous float32, or a ValueError saying what is wrong."""
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    if audio.size == 0:
        raise ValueError("audio is empty (0 samples)")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return audio


def int16_to_float(pcm: bytes) -> np.ndarray:
    """Little-endian int16 bytes → float32 in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / INT16_SCALE


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """float samples → int16, rounded and clipped to the int16 range."""
    return np.clip(np.round(np.asarray(audio, np.float32) * INT16_SCALE), -32768, 32767).astype("<i2")
