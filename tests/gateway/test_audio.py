"""Upload decoding and live PCM conversion, on real clips from ../shared/eval."""
from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
import soundfile

from bus import pcm
from gateway import audio
from tests.gateway.conftest import need_eval

JFK = "asr/jfk/jfk.flac"  # 44.1 kHz stereo 24-bit FLAC, 11 s


@pytest.fixture(scope="module")
def jfk_bytes():
    return (need_eval() / JFK).read_bytes()


def _ffmpeg(data: bytes, out_args: list[str], suffix: str, tmp_path) -> bytes:
    src, dst = tmp_path / "in.flac", tmp_path / f"out{suffix}"
    src.write_bytes(data)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *out_args, str(dst)], check=True)
    return dst.read_bytes()


def test_flac_44k_stereo_becomes_16k_mono(jfk_bytes):
    pcm = audio.decode_upload(jfk_bytes, max_seconds=60)
    info = soundfile.info(io.BytesIO(jfk_bytes))
    assert pcm.dtype == np.dtype("<i2")
    assert abs(pcm.size / 16000 - info.duration) < 0.01
    assert np.abs(pcm).max() > 3000  # real speech, not silence


@pytest.mark.parametrize("suffix,args", [
    (".wav", ["-ar", "22050"]), (".mp3", ["-ar", "16000"]), (".ogg", ["-c:a", "libvorbis"]),
    (".webm", ["-c:a", "libopus"]), (".m4a", ["-c:a", "aac"]),
])
def test_every_upload_format_decodes(jfk_bytes, tmp_path, suffix, args):
    data = _ffmpeg(jfk_bytes, args, suffix, tmp_path)
    pcm = audio.decode_upload(data, max_seconds=60)
    assert abs(pcm.size / 16000 - 11.0) < 0.2, suffix


def test_same_audio_whatever_the_container(jfk_bytes, tmp_path):
    """WAV via soundfile and WebM via ffmpeg agree closely (both resample with soxr)."""
    wav = audio.decode_upload(_ffmpeg(jfk_bytes, [], ".wav", tmp_path), 60).astype(np.float32)
    flac = audio.decode_upload(jfk_bytes, 60).astype(np.float32)
    n = min(wav.size, flac.size)
    assert np.corrcoef(wav[:n], flac[:n])[0, 1] > 0.999


def test_bad_uploads_say_what_is_wrong(jfk_bytes):
    with pytest.raises(audio.AudioError) as empty:
        audio.decode_upload(b"", 60)
    assert empty.value.code == "empty_audio"
    with pytest.raises(audio.AudioError) as corrupt:
        audio.decode_upload(b"this is not audio at all" * 100, 60)
    assert corrupt.value.code == "unsupported_format" and "could not decode" in corrupt.value.message
    with pytest.raises(audio.AudioError) as truncated:
        audio.decode_upload(jfk_bytes[:200], 60)
    assert truncated.value.code in ("unsupported_format", "empty_audio")
    with pytest.raises(audio.AudioError) as long:
        audio.decode_upload(jfk_bytes, max_seconds=5)
    assert long.value.code == "audio_too_long" and "limit is 5 s" in long.value.message


def test_ffmpeg_path_enforces_duration(jfk_bytes, tmp_path):
    webm = _ffmpeg(jfk_bytes, ["-c:a", "libopus"], ".webm", tmp_path)
    with pytest.raises(audio.AudioError) as long:
        audio.decode_upload(webm, max_seconds=5)
    assert long.value.code == "audio_too_long"


def test_trim_and_normalize(jfk_bytes):
    pcm = audio.decode_upload(jfk_bytes, 60)
    quiet = np.concatenate([np.zeros(16000, "<i2"), (pcm // 8).astype("<i2"), np.zeros(16000, "<i2")])
    trimmed = audio.trim_silence(quiet)
    assert quiet.size - trimmed.size > 16000  # most of both silent seconds went
    louder = audio.normalize_peak(trimmed)
    assert abs(int(np.abs(louder.astype(np.int32)).max()) - int(32767 * 10 ** (-1 / 20))) <= 2
    assert audio.trim_silence(np.zeros(16000, "<i2")).size == 0
    assert audio.normalize_peak(np.zeros(10, "<i2")).max() == 0


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        out.append(data[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return out


@pytest.mark.parametrize("rate,encoding", [(16000, "s16"), (16000, "f32"), (48000, "f32"), (44100, "s16"),
                                           (8000, "f32")])
def test_live_converter_ignores_chunk_boundaries(jfk_bytes, rate, encoding):
    import soxr
    floats, native = soundfile.read(io.BytesIO(jfk_bytes), dtype="float32", always_2d=True)
    mono = soxr.resample(floats.mean(axis=1), native, rate)[: rate * 3]
    data = (mono.astype("<f4") if encoding == "f32" else pcm.to_int16(mono)).tobytes()
    width = 4 if encoding == "f32" else 2
    outputs = []
    for sizes in ([len(data)], [width * 7, width * 1000, width * 333]):
        conv = audio.PcmConverter(rate, encoding, 320)
        frames = [f for chunk in _chunks(data, sizes) for f in conv.feed(chunk)] + conv.drain()
        assert all(len(f) == 640 for f in frames[:-1])
        outputs.append(b"".join(frames))
    assert outputs[0] == outputs[1]
    assert abs(len(outputs[0]) / 2 / 16000 - 3.0) < 0.01


def test_live_converter_rejects_partial_samples():
    conv = audio.PcmConverter(16000, "f32", 320)
    with pytest.raises(audio.AudioError) as bad:
        conv.feed(b"\x00" * 7)
    assert bad.value.code == "bad_frame" and "7 bytes" in bad.value.message


@pytest.mark.parametrize("rate", [16000, 48000])
def test_live_converter_refuses_nan_and_inf_and_goes_on(rate):
    """Issue 11: a NaN or ±inf sample is a bad_frame error naming how many (before, NaN became silence
    and, through the resampler at 48 kHz, poisoned its state); the next good frame converts as usual."""
    conv = audio.PcmConverter(rate, "f32", 320)
    for bad in (np.nan, np.inf, -np.inf):
        frame = np.zeros(rate // 50, "<f4")
        frame[7] = bad
        with pytest.raises(audio.AudioError) as err:
            conv.feed(frame.tobytes())
        assert err.value.code == "bad_frame" and "1 NaN or infinite samples" in err.value.message
    frames = conv.feed(np.full(rate // 10, 0.5, "<f4").tobytes())
    assert frames and all(np.isfinite(np.frombuffer(f, "<i2")).all() for f in frames)


def test_only_known_containers_reach_ffmpeg(jfk_bytes, tmp_path):
    assert audio.ffmpeg_container(_ffmpeg(jfk_bytes, ["-c:a", "libopus"], ".webm", tmp_path)) == "webm"
    assert audio.ffmpeg_container(_ffmpeg(jfk_bytes, ["-c:a", "aac"], ".m4a", tmp_path)) == "mp4"
    assert audio.ffmpeg_container(b"OggS" + bytes(20)) == "ogg"
    assert audio.ffmpeg_container(b"\xff\xfb\x90\x00") == "mpeg"
    assert audio.ffmpeg_container(b"hello world") is None
    with pytest.raises(audio.AudioError) as garbage:
        audio.decode_upload(b"\x00\x01garbage" * 50, 60)
    assert garbage.value.code == "unsupported_format" and "first bytes match none" in garbage.value.message


def _streamed_flac(seconds: float) -> bytes:
    """FLAC written to a pipe: its header cannot say how long it is (libsndfile reports SF_COUNT_MAX frames)."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                           f"sine=frequency=300:duration={seconds}", "-ar", "16000", "-f", "flac", "pipe:1"],
                          capture_output=True, check=True)
    assert soundfile.info(io.BytesIO(done.stdout)).frames >= audio.UNKNOWN_FRAMES
    return done.stdout


def test_flac_of_unknown_length_decodes_and_is_limited_while_decoding():
    pcm = audio.decode_upload(_streamed_flac(5), max_seconds=60)
    assert pcm.size == 5 * 16000
    with pytest.raises(audio.AudioError) as long:
        audio.decode_upload(_streamed_flac(8), max_seconds=5)
    assert long.value.code == "audio_too_long"
    assert long.value.message == "audio is more than 5 s long; the limit is 5 s (gateway.max_audio_s)"

