"""ALSA capture with pyalsaaudio: one PCM per source, blocking reads of one period.

An overrun (the loop fell behind the device) costs a period of audio: it is
counted and reading goes on. A missing device is SourceUnavailable, a device that
fails mid-stream (USB mic unplugged) is SourceLost; the worker retries both.
"""
from __future__ import annotations

import errno
import logging
import time
from typing import Callable

from capture.base import SourceLost, SourceUnavailable
from config.schema import SourceConfig

log = logging.getLogger(__name__)
MAX_AHEAD_S = 0.2  # see _pace


def _alsaaudio():
    try:
        import alsaaudio
    except ImportError as exc:
        raise SourceUnavailable(f"pyalsaaudio is not installed ({exc})") from None
    return alsaaudio


def alsa_errors() -> tuple[type[BaseException], ...]:
    """What a failing device raises: the binding's error, or OSError (also what test fakes raise)."""
    try:
        import alsaaudio
    except ImportError:
        return (OSError,)
    return (alsaaudio.ALSAAudioError, OSError)


def open_pcm(device: str, rate: int, channels: int, period_frames: int):
    """A capture PCM, S16_LE interleaved; raises alsaaudio.ALSAAudioError."""
    alsaaudio = _alsaaudio()
    return alsaaudio.PCM(type=alsaaudio.PCM_CAPTURE, mode=alsaaudio.PCM_NORMAL, device=device,
                         rate=rate, channels=channels, format=alsaaudio.PCM_FORMAT_S16_LE,
                         periodsize=period_frames, periods=4)


class AlsaReader:
    def __init__(self, cfg: SourceConfig, pcm_factory: Callable = open_pcm, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg = cfg
        self.rate = cfg.sample_rate
        self.channels = cfg.channels
        self._factory = pcm_factory
        self._clock = clock
        self._sleep = sleep
        self._pcm = None
        self._started = 0.0
        self._frames_read = 0
        self.overruns = 0
        self.short_reads = 0

    def open(self) -> None:
        try:
            self._pcm = self._factory(self.cfg.device, self.cfg.sample_rate, self.cfg.channels, self.cfg.period_frames)
        except alsa_errors() as exc:
            raise SourceUnavailable(f"cannot open ALSA device {self.cfg.device!r}: {exc}") from None
        info = self._pcm.info() if hasattr(self._pcm, "info") else {}
        # The device may grant another rate or channel count than asked; convert from what it gives.
        self.rate = int(info.get("rate", self.cfg.sample_rate))
        self.channels = int(info.get("channels", self.cfg.channels))
        if (self.rate, self.channels) != (self.cfg.sample_rate, self.cfg.channels):
            log.warning("device granted another format than asked",
                        extra={"stream": self.cfg.stream, "rate": self.rate, "channels": self.channels})
        self._started = self._clock()
        self._frames_read = 0

    def read(self) -> bytes | None:
        try:
            count, data = self._pcm.read()
        except alsa_errors() as exc:  # ENODEV when unplugged, EIO, ...
            raise SourceLost(f"ALSA device {self.cfg.device!r} failed: {exc}") from None
        if count == -errno.EPIPE:
            self.overruns += 1
            if self.overruns % 100 == 1:
                log.warning("ALSA overrun: audio lost, going on", extra={"stream": self.cfg.stream,
                                                                         "overruns": self.overruns})
            return b""
        if count < 0:
            raise SourceLost(f"ALSA device {self.cfg.device!r} read error {count} ({errno.errorcode.get(-count, '?')})")
        if count < self.cfg.period_frames:
            self.short_reads += 1
        self._frames_read += count
        self._pace()
        return bytes(data[:count * 2 * self.channels])

    def _pace(self) -> None:
        """Never run ahead of real time: a real device blocks, a virtual one (null/file plugin) does not."""
        ahead = self._frames_read / self.rate - (self._clock() - self._started)
        if ahead > MAX_AHEAD_S:
            self._sleep(ahead - MAX_AHEAD_S)

    def close(self) -> None:
        pcm, self._pcm = self._pcm, None
        if pcm is not None:
            try:
                pcm.close()
            except alsa_errors() as exc:  # a vanished device may fail to close; it is gone either way
                log.info("ALSA close failed", extra={"stream": self.cfg.stream, "error": str(exc)})

    def counters(self) -> dict:
        return {"overruns": self.overruns, "short_reads": self.short_reads}


def list_capture_devices() -> tuple[list[str], list[str]]:
    """(capture PCM names, sound card names) as ALSA sees them."""
    alsaaudio = _alsaaudio()
    return alsaaudio.pcms(alsaaudio.PCM_CAPTURE), alsaaudio.cards()
