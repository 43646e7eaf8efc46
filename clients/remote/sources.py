"""Where `voxbus listen` gets its audio: files or an ALSA microphone, behind one small interface.

Every source gives 16 kHz mono little-endian int16 (bus/pcm.py), the format `/stream`
takes with `encoding=s16`. Files are decoded the way `voxbus transcribe` reads them
(libsndfile, else ffmpeg; soxr to 16 kHz); a microphone is opened at 16 kHz mono and,
when the device grants another rate or channel count, downmixed and resampled as it is read.
The `Pacer` sends audio at real time whatever the source.
"""
from __future__ import annotations

import errno
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import soundfile
import soxr

from bus.pcm import BYTES_PER_SAMPLE, SAMPLE_RATE, to_float, to_pcm

log = logging.getLogger(__name__)

CHUNK_MS = 100                 # audio per WebSocket frame
FFMPEG_TIMEOUT_S = 600
RAW_SUFFIXES = (".raw", ".pcm")  # headerless 16 kHz mono s16le, the bus's own format


class SourceError(Exception):
    """A source that cannot give audio: the message names it and says why (one line)."""


class AudioSource(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> bytes | None:
        """The next 16 kHz mono s16le chunk (may be empty), or None when the source has ended."""

    def close(self) -> None: ...


# ---- files ----

def decode_file(path: Path) -> np.ndarray:
    """A sound file → float32 mono at 16 kHz; SourceError naming the file when it cannot be read."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.suffix.lower() in RAW_SUFFIXES:
        data = path.read_bytes()
        return to_float(data[: len(data) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE])
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.SoundFileError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if shutil.which("ffmpeg") is None:
            raise SourceError(f"{path}: cannot decode audio ({reason}; ffmpeg not installed)") from None
        return _ffmpeg(path)
    mono = samples.mean(axis=1)
    return soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ") if rate != SAMPLE_RATE else mono


def _ffmpeg(path: Path) -> np.ndarray:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"{path}: ffmpeg took longer than {FFMPEG_TIMEOUT_S} s to decode it") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"{path}: cannot decode audio (ffmpeg: {lines[-1] if lines else done.returncode})")
    return to_float(done.stdout[: len(done.stdout) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE])


class FileSource:
    """A whole file, decoded on open, handed out in CHUNK_MS pieces."""

    def __init__(self, path: str | Path, chunk_ms: int = CHUNK_MS,
                 decode: Callable[[Path], np.ndarray] = decode_file):
        self.path = Path(path)
        self.name = str(path)
        self._decode = decode
        self._step = SAMPLE_RATE * chunk_ms // 1000 * BYTES_PER_SAMPLE
        self._pcm = b""
        self._pos = 0

    def open(self) -> None:
        samples = self._decode(self.path)
        if samples.size == 0:
            raise SourceError(f"{self.path}: no audio samples")
        self._pcm, self._pos = to_pcm(samples), 0

    def read(self) -> bytes | None:
        if self._pos >= len(self._pcm):
            return None
        chunk = self._pcm[self._pos:self._pos + self._step]
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        self._pcm = b""


# ---- the microphone ----

def open_alsa(device: str, rate: int, channels: int, period_frames: int):
    """A capture PCM, S16_LE interleaved (pyalsaaudio); raises alsaaudio.ALSAAudioError."""
    try:
        import alsaaudio
    except ImportError as exc:
        raise SourceError(f"the microphone needs pyalsaaudio ({exc})") from None
    return alsaaudio.PCM(type=alsaaudio.PCM_CAPTURE, mode=alsaaudio.PCM_NORMAL, device=device, rate=rate,
                         channels=channels, format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=period_frames,
                         periods=4)


def _device_errors() -> tuple[type[BaseException], ...]:
    try:
        import alsaaudio
    except ImportError:
        return (OSError,)
    return (alsaaudio.ALSAAudioError, OSError)


class MicSource:
    """An ALSA capture device read one period at a time (a blocking read), converted to 16 kHz mono.

    `reader_factory(device, rate, channels, period_frames)` returns an object with `read() -> (count, bytes)`,
    `info() -> {"rate", "channels", ...}` and `close()`, as pyalsaaudio's PCM has. Mono is asked first,
    then stereo (some devices have no mono mode); the rate the device grants is the one converted from.
    """

    def __init__(self, device: str, period_ms: int = CHUNK_MS, reader_factory: Callable = open_alsa):
        self.name = f"microphone {device}"
        self.device = device
        self._period = SAMPLE_RATE * period_ms // 1000
        self._factory = reader_factory
        self._pcm = None
        self._resampler: soxr.ResampleStream | None = None
        self.rate, self.channels = SAMPLE_RATE, 1
        self.overruns = 0

    def open(self) -> None:
        problems = []
        for channels in (1, 2):
            try:
                self._pcm = self._factory(self.device, SAMPLE_RATE, channels, self._period)
                break
            except _device_errors() as exc:
                problems.append(f"{channels} channel(s): {exc}")
        else:
            raise SourceError(f"cannot open ALSA device {self.device!r}: {'; '.join(problems)}")
        info = self._pcm.info()
        self.rate, self.channels = int(info.get("rate", SAMPLE_RATE)), int(info.get("channels", channels))
        self._resampler = (soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32")
                           if self.rate != SAMPLE_RATE else None)
        if self._resampler is not None or self.channels != 1:
            log.info("microphone %s gives %d Hz, %d channel(s): converting", self.device, self.rate, self.channels)

    def read(self) -> bytes | None:
        try:
            count, data = self._pcm.read()
        except _device_errors() as exc:
            raise SourceError(f"ALSA device {self.device!r} failed: {exc}") from None
        if count == -errno.EPIPE:   # overrun: this period is lost; go on
            self.overruns += 1
            return b""
        if count < 0:
            raise SourceError(f"ALSA device {self.device!r}: read error {count} "
                              f"({errno.errorcode.get(-count, '?')})")
        return self.convert(bytes(data[:count * BYTES_PER_SAMPLE * self.channels]))

    def convert(self, interleaved: bytes) -> bytes:
        """Device PCM (int16, `channels` interleaved, at `rate`) → 16 kHz mono s16le."""
        if self._resampler is None and self.channels == 1:
            return interleaved
        frames = to_float(interleaved).reshape(-1, self.channels).mean(axis=1)
        if self._resampler is not None:
            frames = self._resampler.resample_chunk(frames)
        return to_pcm(frames)

    def close(self) -> None:
        pcm, self._pcm = self._pcm, None
        if pcm is not None:
            pcm.close()


# ---- pacing ----

class Pacer:
    """Real time: the chunk that starts at sample n goes out n / 16000 s after the first one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._start: float | None = None

    def delay(self, samples_sent: int) -> float:
        """Seconds to wait before sending the chunk whose first sample is `samples_sent` (0 when it is due)."""
        now = self._clock()
        if self._start is None:
            self._start = now
        return max(0.0, self._start + samples_sent / SAMPLE_RATE - now)
