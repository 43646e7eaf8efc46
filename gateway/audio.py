"""Audio for the bus: uploads decoded to 16 kHz mono int16, live PCM converted frame by frame.

soundfile reads WAV, FLAC, MP3 and OGG in blocks (memory stays bounded by the
output); anything else (WebM/Opus, M4A, ...) goes through an ffmpeg subprocess.
Resampling is soxr's, with its anti-aliasing filter.
"""
from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile
import soxr

from bus import pcm as pcm_format
from bus.pcm import SAMPLE_RATE
from gateway import audio_header

log = logging.getLogger(__name__)

BLOCK_FRAMES = 65536
UNKNOWN_FRAMES = 2 ** 62  # libsndfile says SF_COUNT_MAX when a header gives no length (a streamed FLAC)
FFMPEG_TIMEOUT_S = 300.0
MB = 1024 * 1024
BYTES_PER_SECOND = SAMPLE_RATE * 2
JOB_COPIES = 4  # the decoded blocks, their concatenation, the job's PCM bytes and its msgpack encoding
_OPENING = re.compile(r"^Error opening .*?: ")


class AudioError(ValueError):
    """Audio that cannot be used: `code` names the problem for the API error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def decode_upload(data: bytes, max_seconds: float, memory_bytes: int | None = None) -> np.ndarray:
    """Any supported file's bytes → 16 kHz mono int16; AudioError says what is wrong.

    `memory_bytes`: what the job may cost (gateway.job_memory_mb), checked against the length
    the header declares before decoding and against what is counted while decoding.
    """
    if not data:
        raise AudioError("empty_audio", "the audio file is empty (0 bytes)")
    limits = Limits(max_seconds, memory_bytes, len(data))
    try:
        declared = audio_header.check(data)
    except audio_header.HeaderError as exc:
        raise AudioError(exc.code, exc.message) from None
    if declared is not None and declared.frames is not None:
        limits.check(declared.frames / declared.rate)
    try:
        pcm = _decode_soundfile(data, limits, declared)
        reason = "its header gives no length"  # why ffmpeg reads it, if pcm is None
    except (soundfile.SoundFileError, RuntimeError) as exc:
        pcm, reason = None, _reason(exc)
    if pcm is None:
        container = ffmpeg_container(data)
        if container is None:
            raise AudioError("unsupported_format", "could not decode the audio: not a WAV, FLAC, MP3, OGG, "
                                                   "WebM/Opus, M4A/MP4 or AAC file (the first bytes match none), "
                                                   f"or it is corrupt ({reason})")
        log.debug("soundfile cannot read upload, trying ffmpeg", extra={"reason": reason, "container": container})
        pcm = _decode_ffmpeg(data, limits, reason)
    if pcm.size == 0:
        raise AudioError("empty_audio", "the audio file decodes to no samples")
    return pcm


def _reason(exc: Exception) -> str:
    """libsndfile's reason without the file object it names (`Error opening <_io.BytesIO object at 0x…>: `)."""
    return _OPENING.sub("", str(exc)).strip() or type(exc).__name__


class Limits:
    """gateway.max_audio_s and gateway.job_memory_mb for one upload."""

    def __init__(self, max_seconds: float, memory_bytes: int | None, upload_bytes: int):
        self.max_seconds = max_seconds
        self.memory_bytes = memory_bytes
        self.upload_bytes = upload_bytes

    @property
    def seconds(self) -> float:
        """The longest audio both limits allow."""
        if self.memory_bytes is None:
            return self.max_seconds
        budget = (self.memory_bytes - self.upload_bytes) / (JOB_COPIES * BYTES_PER_SECOND)
        return max(0.0, min(self.max_seconds, budget))

    def check(self, seconds: float, at_least: bool = False) -> None:
        if seconds > self.max_seconds:
            raise _too_long(seconds, self.max_seconds, at_least)
        if seconds > self.seconds:
            need = (self.upload_bytes + seconds * JOB_COPIES * BYTES_PER_SECOND) / MB
            raise AudioError("audio_too_large", f"{'more than ' if at_least else ''}{seconds:.1f} s of audio "
                                                f"would need about {need:.0f} MB in memory; a job may use "
                                                f"{self.memory_bytes / MB:.0f} MB (gateway.job_memory_mb)")


def ffmpeg_container(data: bytes) -> str | None:
    """The container ffmpeg is asked to read, judged by its first bytes; None for anything else.

    Sniffing first keeps garbage uploads cheap: no subprocess for bytes no decoder could take.
    """
    head = data[:16]
    if head.startswith(b"fLaC"):
        return "flac"  # soundfile reads FLAC, except one without a length (soundfile cannot read past its end)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mpeg"  # MP3 or ADTS AAC, by frame sync
    if head.startswith(b"#!AMR"):
        return "amr"
    return None


def _too_long(seconds: float, max_seconds: float, at_least: bool = False) -> AudioError:
    length = f"more than {max_seconds:g} s" if at_least else f"{seconds:.1f} s"
    return AudioError("audio_too_long", f"audio is {length} long; the limit is {max_seconds:g} s "
                                        f"(gateway.max_audio_s)")


def _decode_soundfile(data: bytes, limits: Limits, declared: audio_header.Declared | None) -> np.ndarray | None:
    """None when the header gives no length: soundfile's reads seek, and such a file cannot seek."""
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        if f.frames >= UNKNOWN_FRAMES:
            return None
        try:
            audio_header.check_rate(f.samplerate, f.format)
        except audio_header.HeaderError as exc:
            raise AudioError(exc.code, exc.message) from None
        limits.check(f.frames / f.samplerate)
        resampler = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1, dtype="float32") \
            if f.samplerate != SAMPLE_RATE else None
        parts, read = [], 0
        try:
            for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
                read += block.shape[0]
                limits.check(read / f.samplerate, at_least=True)  # counted, not trusted: a header can be wrong
                mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
                parts.append(pcm_format.to_int16(resampler.resample_chunk(mono) if resampler else mono))
        except (soundfile.SoundFileError, RuntimeError) as exc:
            if declared is None:
                raise  # not a WAV or FLAC we understand: ffmpeg may do better
            raise _truncated(declared, read, _reason(exc)) from None
        if declared is not None and declared.frames is not None and read < declared.frames:
            raise _truncated(declared, read, "the audio ends early")
        if resampler:
            parts.append(pcm_format.to_int16(resampler.resample_chunk(np.zeros(0, "float32"), last=True)))
    return np.concatenate(parts) if parts else np.zeros(0, "<i2")


def _truncated(declared: audio_header.Declared, read: int, why: str) -> AudioError:
    expected = f"{declared.frames} frames" if declared.frames is not None else "more audio"
    return AudioError("truncated", f"the {declared.kind} file is truncated or corrupt: its header declares "
                                   f"{expected}, only {read} could be decoded ({why})")


def _decode_ffmpeg(data: bytes, limits: Limits, why: str) -> np.ndarray:
    """WebM/Opus, M4A, FLAC without a length and the rest; a temp file because MP4 needs a seekable input.
    `why`: soundfile's reason for not reading it, for the error when ffmpeg is missing."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError("unsupported_format", f"this file needs ffmpeg, which is not installed (soundfile "
                                               f"cannot read it: {why})")
    with tempfile.NamedTemporaryFile(prefix="voxbus-upload-") as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", tmp.name, "-vn",
               "-t", f"{limits.seconds + 1:.3f}", "-af", "aresample=resampler=soxr", "-ac", "1",
               "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise AudioError("decode_timeout", f"decoding took longer than {FFMPEG_TIMEOUT_S:g} s") from None
    if done.returncode != 0 or not done.stdout:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no audio stream"])[-1]
        reason = reason.replace(f"{tmp.name}: ", "")  # the temp file's name means nothing to the client
        raise AudioError("unsupported_format", "could not decode the audio: not a WAV, FLAC, MP3, OGG, "
                                               f"WebM/Opus or M4A file, or it is corrupt (ffmpeg: {reason[:200]})")
    pcm = np.frombuffer(done.stdout[: len(done.stdout) // 2 * 2], "<i2")
    if pcm.size > limits.seconds * SAMPLE_RATE:  # ffmpeg stopped at the limit + 1 s: the true length is unknown
        limits.check(pcm.size / SAMPLE_RATE, at_least=True)
    return pcm


def normalize_peak(pcm: np.ndarray, target_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the loudest sample sits at target_dbfs; silence stays silence."""
    peak = int(np.abs(pcm.astype(np.int32)).max()) if pcm.size else 0
    if peak == 0:
        return pcm
    gain = (32767.0 * 10 ** (target_dbfs / 20)) / peak
    return np.clip(np.round(pcm.astype(np.float32) * gain), -32768, 32767).astype("<i2")


def trim_silence(pcm: np.ndarray, threshold_dbfs: float = -45.0, frame_ms: int = 30,
                 pad_ms: int = 200) -> np.ndarray:
    """Cut leading and trailing frames quieter than threshold_dbfs, keeping pad_ms around the sound."""
    frame = SAMPLE_RATE * frame_ms // 1000
    count = pcm.size // frame
    if count == 0:
        return pcm
    frames = pcm_format.to_float(pcm[: count * frame]).reshape(count, frame)
    rms_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms_db > threshold_dbfs)
    if loud.size == 0:
        return pcm[:0]
    pad = SAMPLE_RATE * pad_ms // 1000
    start = max(0, loud[0] * frame - pad)
    end = min(pcm.size, (loud[-1] + 1) * frame + pad)
    return pcm[start:end]


class PcmConverter:
    """Live client PCM (f32 or s16 at any rate) → 16 kHz int16 frames of a fixed size.

    Keeps a resampler state and the remainder between calls, so chunk boundaries
    the client chose never show up in the audio.
    """

    ENCODINGS = {"f32": ("<f4", 4), "s16": ("<i2", 2)}

    def __init__(self, sample_rate: int, encoding: str, frame_samples: int):
        self.sample_rate = sample_rate
        self.dtype, self.width = self.ENCODINGS[encoding]
        self.encoding = encoding
        self.frame_samples = frame_samples
        self.resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32") \
            if sample_rate != SAMPLE_RATE else None
        self.pending = np.zeros(0, "<i2")

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes from the client → whole frames (bytes of int16) ready to publish."""
        if len(data) % self.width:
            raise AudioError("bad_frame", f"binary frame of {len(data)} bytes is not a whole number of "
                                          f"{self.encoding} samples ({self.width} bytes each)")
        samples = np.frombuffer(data, self.dtype)
        if self.encoding == "f32":
            bad = samples.size - int(np.count_nonzero(np.isfinite(samples)))
            if bad:  # one NaN would poison the resampler's state for the rest of the stream
                raise AudioError("bad_frame", f"binary frame has {bad} NaN or infinite samples of {samples.size}; "
                                              "f32 samples must be finite numbers (-1..1); the frame was dropped")
        self._append(self._convert(samples))
        return self._take(whole_only=True)

    def drain(self) -> list[bytes]:
        """Everything still held (the resampler's tail and a short last frame)."""
        if self.resampler is not None:
            self._append(pcm_format.to_int16(self.resampler.resample_chunk(np.zeros(0, "float32"), last=True)))
            self.resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32")
        return self._take(whole_only=False)

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        if self.resampler is None:
            return samples.astype("<i2") if self.encoding == "s16" else pcm_format.to_int16(samples)
        floats = pcm_format.to_float(samples) if self.encoding == "s16" else samples.astype(np.float32)
        return pcm_format.to_int16(self.resampler.resample_chunk(floats))

    def _append(self, pcm: np.ndarray) -> None:
        if pcm.size:
            self.pending = np.concatenate([self.pending, pcm])

    def _take(self, whole_only: bool) -> list[bytes]:
        n = self.frame_samples
        whole = self.pending.size // n
        frames = [self.pending[i * n:(i + 1) * n].tobytes() for i in range(whole)]
        self.pending = self.pending[whole * n:]
        if not whole_only and self.pending.size:
            frames.append(self.pending.tobytes())
            self.pending = np.zeros(0, "<i2")
        return frames
