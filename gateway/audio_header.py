"""What a WAV or FLAC header declares, checked against the body before anything is decoded.

libsndfile believes a header: a WAV of 7 KB declaring 1 Hz becomes an hour of audio once
resampled, and one whose data chunk claims more bytes than the body has is quietly cut
short (a 200 with half the text). `check` reads the few header bytes itself and refuses,
before any buffer is allocated: sample rates outside MIN_RATE..MAX_RATE, zero channels,
and a WAV data chunk longer than the bytes that follow it ("truncated", naming both).
Anything else (MP3, OGG, WebM, ...) passes through unchanged to the decoders.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

MIN_RATE, MAX_RATE = 8000, 384000   # the WebSocket takes 8000 and up; below that is not speech audio
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)    # streaming writers (ffmpeg to a pipe, sox) leave the data size open
_STREAMING_SIZE = 0x7FFFF000        # sizes from here up: "as long as the stream" (e.g. sox, arecord)


class HeaderError(ValueError):
    """The header is impossible or contradicts the body; `code` names the problem for the API error."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Declared:
    kind: str            # "WAV" or "FLAC"
    rate: int
    channels: int
    frames: int | None   # None: the header does not say


def check_rate(rate: int, kind: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise HeaderError("bad_sample_rate", f"the {kind} file's sample rate is {rate} Hz; uploads must be "
                                             f"{MIN_RATE}-{MAX_RATE} Hz")


def _wav_chunks(data: bytes):
    """(chunk id, offset of its body, declared size) for each chunk of a RIFF/WAVE file."""
    at = 12
    while at + 8 <= len(data):
        cid, size = data[at:at + 4], struct.unpack_from("<I", data, at + 4)[0]
        yield cid, at + 8, size
        if cid == b"data":
            return
        at += 8 + size + (size & 1)


def _wav(data: bytes) -> Declared | None:
    fmt = None
    for cid, body, size in _wav_chunks(data):
        if cid == b"fmt " and size >= 16 and body + 16 <= len(data):
            fmt = struct.unpack_from("<HHIIHH", data, body)  # tag, channels, rate, byte rate, block align, bits
        elif cid == b"data":
            if fmt is None:
                raise HeaderError("bad_header", "the WAV file has its data before its 'fmt ' chunk, or none")
            _tag, channels, rate, _byte_rate, block_align, _bits = fmt
            if channels == 0 or block_align == 0:
                raise HeaderError("bad_header", f"the WAV header declares {channels} channels and frames of "
                                                f"{block_align} bytes; both must be at least 1")
            check_rate(rate, "WAV")
            if size in _UNKNOWN_SIZES or size >= _STREAMING_SIZE:
                return Declared("WAV", rate, channels, None)
            present = len(data) - body
            if size - present >= block_align:
                raise HeaderError("truncated", f"the WAV file is truncated: its header declares {size} bytes of "
                                               f"audio, the body has {max(present, 0)}")
            return Declared("WAV", rate, channels, size // block_align)
    return None  # no data chunk within the body: let the decoder say what it makes of it


def _flac(data: bytes) -> Declared | None:
    # "fLaC", then the first metadata block: 1 byte type (0 = STREAMINFO), 3 bytes length, 34 bytes of info.
    if len(data) < 8 + 18 or data[4] & 0x7F != 0:
        return None
    packed = int.from_bytes(data[8 + 10:8 + 18], "big")  # 20 bits rate, 3 channels-1, 5 bits-1, 36 samples
    rate, channels, frames = packed >> 44, ((packed >> 41) & 0x7) + 1, packed & ((1 << 36) - 1)
    check_rate(rate, "FLAC")
    return Declared("FLAC", rate, channels, frames or None)


def check(data: bytes) -> Declared | None:
    """The header's declaration for a WAV or FLAC body (HeaderError if impossible); None for other formats."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav(data)
    if data[:4] == b"fLaC":
        return _flac(data)
    return None
