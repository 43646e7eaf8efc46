"""Values with two homes for a reason are held equal here.

The Whisper library (asr/whisper) stands alone, so it keeps its own input contract; the
bus's audio format (bus/pcm.py) and task names (config/names.py) are the system's.
"""
from __future__ import annotations

import numpy as np

from asr.whisper import audio as whisper_audio
from asr.whisper import features, tokenizer
from bus import pcm, schemas
from speaker.encoder import mel as speaker_mel


def test_whisper_input_is_the_bus_format():
    assert features.SAMPLE_RATE == pcm.SAMPLE_RATE == schemas.SAMPLE_RATE
    assert whisper_audio.INT16_SCALE == pcm.INT16_SCALE
    assert tokenizer.TASKS == schemas.TASKS


def test_speaker_library_input_is_the_bus_format():
    assert speaker_mel.SAMPLE_RATE == pcm.SAMPLE_RATE


def test_int16_float_round_trip_is_exact_and_both_sides_agree():
    every_int16 = np.arange(-32768, 32768, dtype="<i2")
    as_float = pcm.to_float(every_int16.tobytes())
    assert np.array_equal(pcm.to_int16(as_float), every_int16)
    assert np.array_equal(whisper_audio.float_to_int16(as_float), every_int16)
    assert np.array_equal(whisper_audio.int16_to_float(every_int16.tobytes()), as_float)
    assert as_float.min() == -1.0 and as_float.max() < 1.0


def test_out_of_range_floats_clip_and_nan_is_silence():
    out = pcm.to_int16(np.array([1.0, 2.0, -1.5, np.nan, np.inf, -np.inf], np.float32))
    assert out.tolist() == [32767, 32767, -32768, 0, 32767, -32768]
