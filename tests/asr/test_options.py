"""Option parsing and validation (asr/whisper/options.py): every bad value names its option."""

import pytest

from asr.whisper.options import TranscribeOptions, split_options


def test_split_options_sorts_and_converts():
    decoding, chaining = split_options({"beam_size": 5, "temperature": [0.0, 0.4], "word_timestamps": True,
                                        "suppress_tokens": [-1, 7], "allowed_languages": ["en", "de"],
                                        "initial_prompt": "Voxbus"})
    assert decoding == {"beam_size": 5, "suppress_tokens": (-1, 7), "allowed_languages": ("en", "de"),
                        "temperature": 0.0}
    assert chaining.temperature == (0.0, 0.4) and chaining.word_timestamps and chaining.initial_prompt == "Voxbus"


def test_single_temperature_means_no_fallback():
    decoding, chaining = split_options({"temperature": 0.3})
    assert chaining.temperature == (0.3,) and decoding["temperature"] == 0.3


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown transcription option.*beam_width"):
        split_options({"beam_width": 5})


@pytest.mark.parametrize("name, value", [
    ("temperature", []),
    ("temperature", [0.4, 0.2]),
    ("temperature", "hot"),
    ("temperature", [0.0, 11.0]),
    ("compression_ratio_threshold", -1.0),
    ("logprob_threshold", 0.5),
    ("no_speech_threshold", 1.5),
    ("no_speech_threshold", "high"),
    ("min_voiced_ms", -5),
    ("word_timestamps", "yes"),
    ("repetition_guard", 1),
    ("initial_prompt", 42),
    ("prompt_reset_on_temperature", -1),
    ("append_punctuations", 5),
])
def test_bad_transcribe_options_name_the_option(name, value):
    with pytest.raises(ValueError, match=name):
        split_options({name: value})


def test_defaults_are_whispers():
    options = TranscribeOptions()
    assert options.temperature == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert (options.compression_ratio_threshold, options.logprob_threshold, options.no_speech_threshold) == \
        (2.4, -1.0, 0.6)


def test_null_means_the_default():
    decoding, chaining = split_options({"temperature": None, "beam_size": None, "word_timestamps": None,
                                        "suppress_tokens": None})
    assert chaining == TranscribeOptions() and decoding == {"beam_size": None, "temperature": 0.0}
