"""Converter, Framer and Backoff: the pure pieces every source shares."""
import numpy as np
import pytest

from capture.backoff import SCHEDULE_S, Backoff
from capture.framer import Framer
from capture.resample import Converter


def tone(rate, seconds=1.0, freq=440.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2")


def dominant_hz(pcm: bytes, rate=16000) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / len(x))


def test_48k_stereo_downmix_resamples_to_16k_in_odd_chunks():
    left, right = tone(48000, freq=440), tone(48000, freq=440)
    stereo = np.stack([left, right], axis=1).reshape(-1).tobytes()
    conv = Converter(48000, channels=2)
    out = b"".join(conv.convert(stereo[i:i + 1001]) for i in range(0, len(stereo), 1001)) + conv.convert(b"", last=True)
    assert abs(len(out) // 2 - 16000) <= 2
    assert abs(dominant_hz(out) - 440) < 3


def test_channel_pick_takes_only_that_channel():
    stereo = np.stack([tone(16000, freq=300), tone(16000, freq=1200)], axis=1).reshape(-1).tobytes()
    assert abs(dominant_hz(Converter(16000, 2, channel=1).convert(stereo)) - 1200) < 3
    assert abs(dominant_hz(Converter(16000, 2, channel=0).convert(stereo)) - 300) < 3


def test_16k_mono_passes_through_unchanged_even_split_mid_sample():
    pcm = tone(16000).tobytes()
    conv = Converter(16000)
    assert conv.convert(pcm[:101]) + conv.convert(pcm[101:]) == pcm


def test_bad_formats_are_refused():
    with pytest.raises(ValueError, match="only 2 channel"):
        Converter(16000, channels=2, channel=2)
    with pytest.raises(ValueError, match="bad input format"):
        Converter(0)


def test_framer_numbers_frames_and_offsets_and_pads_the_tail():
    framer = Framer(frame_ms=20)
    frames = framer.push(bytes(640 * 2 + 100)) + framer.push(bytes(500))
    assert [(f.seq, f.offset) for f in frames] == [(0, 0), (1, 320)]
    tail = framer.flush()
    assert [(f.seq, f.offset, len(f.pcm)) for f in tail] == [(2, 640, 640)]
    assert framer.flush() == []


def test_backoff_schedule_and_reset():
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(7)] == [1.0, 2.0, 5.0, 10.0, 30.0, 30.0, 30.0]
    backoff.reset()
    assert backoff.next_delay() == SCHEDULE_S[0]
