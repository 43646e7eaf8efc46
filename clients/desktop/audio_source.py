"""Where live audio comes from: the microphone (QAudioSource) or a file played at real time.

Both emit the same `chunk` signal with 16 kHz mono int16 bytes, so everything after
the source (level meter, waveform, the WebSocket) is one code path; the file source
is how the tests, and a demo without a microphone, feed the live screen.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from PySide6.QtCore import QIODevice, QObject, QTimer, Signal
from PySide6.QtMultimedia import QAudioFormat, QAudioSource, QMediaDevices

from bus import pcm as pcm_format
from clients.desktop.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

TICK_MS = 20


class AudioSource(QObject):
    chunk = Signal(bytes)      # 16 kHz mono int16 little-endian
    finished = Signal()        # a file ran out (a microphone never finishes on its own)
    failed = Signal(str)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def _resampler(rate: int, channels: int):
    """int16 interleaved at `rate` → 16 kHz mono int16 (soxr, streaming), or None when nothing to do."""
    if rate == SAMPLE_RATE and channels == 1:
        return None
    import soxr
    stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None

    def convert(pcm: bytes) -> bytes:
        samples = pcm_format.to_float(pcm[: len(pcm) // (2 * channels) * 2 * channels])
        mono = samples.reshape(-1, channels).mean(axis=1)
        out = stream.resample_chunk(mono) if stream is not None else mono
        return pcm_format.to_pcm(out)
    return convert


class MicSource(AudioSource):
    """The default input device, asked for 16 kHz mono int16; another format is resampled here."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.source: QAudioSource | None = None
        self.device: QIODevice | None = None
        self.convert = None

    def start(self) -> None:
        device = QMediaDevices.defaultAudioInput()
        if device.isNull():
            self.failed.emit("no microphone found (QMediaDevices has no audio input)")
            return
        fmt = QAudioFormat()
        fmt.setSampleRate(SAMPLE_RATE)
        fmt.setChannelCount(1)
        fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        if not device.isFormatSupported(fmt):
            fmt = device.preferredFormat()
            fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        self.convert = _resampler(fmt.sampleRate(), fmt.channelCount())
        self.source = QAudioSource(device, fmt, self)
        self.device = self.source.start()
        if self.device is None:
            self.failed.emit(f"the microphone {device.description()!r} did not start ({self.source.error()})")
            return
        self.device.readyRead.connect(self._read)
        log.info("microphone started", extra={"device": device.description(), "rate": fmt.sampleRate(),
                                              "channels": fmt.channelCount()})

    def _read(self) -> None:
        data = bytes(self.device.readAll().data())
        if data:
            self.chunk.emit(self.convert(data) if self.convert else data)

    def stop(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source = None


class FileSource(AudioSource):
    """A sound file (anything soundfile reads) pushed as the chunks a microphone would give, at real time."""

    def __init__(self, path: str, lead_s: float = 0.3, tail_s: float = 1.0, parent: QObject | None = None):
        super().__init__(parent)
        self.path = path
        self.lead_s, self.tail_s = lead_s, tail_s
        self.pcm = b""
        self.sent = 0
        self.began = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def load(self) -> bytes:
        import soundfile
        import soxr
        audio, rate = soundfile.read(self.path, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != SAMPLE_RATE:
            mono = soxr.resample(mono, rate, SAMPLE_RATE)
        pad = lambda s: np.zeros(int(s * SAMPLE_RATE), np.float32)  # noqa: E731
        full = np.concatenate([pad(self.lead_s), mono, pad(self.tail_s)])
        return pcm_format.to_pcm(full)

    def start(self) -> None:
        try:
            self.pcm = self.load()
        except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors derive from these
            self.failed.emit(f"cannot read {self.path}: {exc}")
            return
        self.sent, self.began = 0, time.monotonic()
        self.timer.start()

    def _tick(self) -> None:
        due = int((time.monotonic() - self.began) * SAMPLE_RATE) * 2
        end = min(due, len(self.pcm))
        if end > self.sent:
            self.chunk.emit(self.pcm[self.sent:end])
            self.sent = end
        if self.sent >= len(self.pcm):
            self.timer.stop()
            self.finished.emit()

    def stop(self) -> None:
        self.timer.stop()
