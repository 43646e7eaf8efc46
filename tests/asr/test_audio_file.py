import shutil

import numpy as np
import pytest
import soundfile

from asr.whisper.audio import load_audio, validate_audio


def test_resamples_and_downmixes(tmp_path):
    seconds, rate = 1.0, 44100
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([tone, tone], axis=1), rate, subtype="PCM_24")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 16000) <= 1
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


def test_anti_aliasing_removes_content_above_8khz(tmp_path):
    rate = 48000
    t = np.arange(rate) / rate
    path = tmp_path / "high.wav"
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 12000 * t), rate)  # would alias to 4 kHz
    assert np.abs(load_audio(path)[1000:-1000]).max() < 0.01


def test_raw_pcm_is_16khz_s16le(tmp_path):
    path = tmp_path / "clip.raw"
    path.write_bytes((np.ones(1600, "<i2") * 16384).tobytes())
    np.testing.assert_allclose(load_audio(path), 0.5)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.wav", b"", "file is empty"),
        ("odd.raw", b"\x00\x01\x02", "odd byte count"),
        ("noise.wav", bytes(range(256)) * 20, "cannot decode audio"),
    ],
)
def test_bad_files_are_one_line_value_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        load_audio(path)
    assert str(path) in str(error.value) and "\\n" not in str(error.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(ValueError, match="not a regular file"):
        load_audio(tmp_path)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    soundfile.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="no audio samples"):
        load_audio(path)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_fallback_reads_what_libsndfile_cannot(tmp_path):
    import subprocess

    path = tmp_path / "tone.m4a"  # AAC in MP4: not a libsndfile format
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", str(path)], check=True)
    audio = load_audio(path)
    assert abs(audio.shape[0] - 16000) < 2000 and np.abs(audio).max() > 0.05


def test_validate_audio():
    assert validate_audio(np.zeros(10, np.float64)).dtype == np.float32
    with pytest.raises(ValueError, match="NaN"):
        validate_audio(np.array([np.nan], np.float32))
