"""Temperature fallback (asr/whisper/fallback.py) on made-up decoding results."""

from asr.whisper.decoding import DecodingResult
from asr.whisper.fallback import decode_with_fallback, needs_fallback
from asr.whisper.options import TranscribeOptions


def _result(temperature, avg_logprob=-0.3, ratio=1.2, no_speech=0.1):
    return DecodingResult(language="en", language_prob=None, tokens=(1,), text="x", avg_logprob=avg_logprob,
                          no_speech_prob=no_speech, temperature=temperature, compression_ratio=ratio)


def _decoder(scripted):
    tried = []

    def decode(temperature):
        tried.append(temperature)
        return scripted[len(tried) - 1]

    return decode, tried


def test_a_good_first_decode_is_kept():
    decode, tried = _decoder([_result(0.0)])
    assert decode_with_fallback(decode, TranscribeOptions()).temperature == 0.0 and tried == [0.0]


def test_loops_and_low_logprob_retry_hotter():
    decode, tried = _decoder([_result(0.0, ratio=3.0), _result(0.2, avg_logprob=-1.5), _result(0.4)])
    assert decode_with_fallback(decode, TranscribeOptions()).temperature == 0.4
    assert tried == [0.0, 0.2, 0.4]


def test_probable_silence_is_not_retried():
    assert not needs_fallback(_result(0.0, avg_logprob=-2.0, no_speech=0.9), TranscribeOptions())


def test_every_temperature_fails_keeps_the_best_non_looping_one():
    scripted = [_result(0.0, ratio=3.0, avg_logprob=-0.1), _result(0.5, avg_logprob=-1.8),
                _result(1.0, avg_logprob=-1.2)]
    decode, tried = _decoder(scripted)
    kept = decode_with_fallback(decode, TranscribeOptions(temperature=(0.0, 0.5, 1.0)))
    assert kept.temperature == 1.0 and tried == [0.0, 0.5, 1.0]


def test_thresholds_off_means_no_fallback():
    options = TranscribeOptions(compression_ratio_threshold=None, logprob_threshold=None)
    decode, tried = _decoder([_result(0.0, ratio=9.0, avg_logprob=-9.0)])
    assert decode_with_fallback(decode, options).temperature == 0.0 and tried == [0.0]


def test_a_loop_found_by_the_repetition_guard_is_a_failure():
    decode, tried = _decoder([_result(0.0), _result(0.2)])
    looping_at_zero = lambda result: result.temperature == 0.0  # noqa: E731
    kept = decode_with_fallback(decode, TranscribeOptions(), looping_at_zero)
    assert kept.temperature == 0.2 and tried == [0.0, 0.2]
