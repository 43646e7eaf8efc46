"""Hallucination guards (asr/whisper/speech_guard.py): loops, the no-speech rule, the voiced-audio gate."""

import numpy as np
import pytest

from asr.whisper.speech_guard import cut_repetition, find_loop, has_words, is_silence, voiced_ms

TS = 1000  # timestamp_begin for these token lists


@pytest.mark.parametrize("tokens, expected", [
    ([1, 2, 3, 4, 5, 6, 7] * 4 + [9], (0, 7)),  # a 7-token phrase, four rounds
    ([8, 9] + [1, 2, 3, 4, 5, 6] * 5, (2, 6)),
    ([5] * 24, (0, 1)),  # 24 of one token
    ([5] * 23, None),  # "no no no ..." short of that is speech
    ([1, 2] * 12, (0, 2)),
    ([1, 2] * 11, None),
    ([1, 2, 3, 4, 5, 6, 7] * 3, None),  # three rounds: a refrain, not a loop
    (list(range(60)), None),
])
def test_find_loop(tokens, expected):
    assert find_loop(tokens) == expected


def test_cut_repetition_keeps_the_first_round_and_its_closing_timestamp():
    unit = [1, 2, 3, 4, 5, 6]
    tokens = (TS, *unit, TS + 50, TS + 50, *unit, TS + 90, TS + 90, *unit, TS + 120, TS + 120, *unit, TS + 150)
    assert cut_repetition(tokens, TS) == (TS, *unit, TS + 50)
    assert cut_repetition((TS, 1, 2, 3, TS + 20), TS) is None


@pytest.mark.parametrize("no_speech, logprob, ratio, silent", [
    (0.9, -1.5, 1.0, True),  # Whisper's rule
    (0.9, -0.5, 1.0, False),  # confident text wins over a high no-speech probability
    (0.9, -0.3, 3.0, True),  # ... unless it loops: voxbus's addition
    (0.5, -1.5, 3.0, False),  # speech is likely: never silence
])
def test_no_speech_rule(no_speech, logprob, ratio, silent):
    assert is_silence(no_speech, logprob, ratio, 0.6, -1.0, 2.4) is silent


def test_no_speech_rule_thresholds_can_be_off():
    assert not is_silence(0.99, -5.0, 9.0, None, -1.0, 2.4)
    assert is_silence(0.9, -0.1, 1.0, 0.6, None, None)  # no logprob threshold: no_speech_prob alone decides
    assert not is_silence(0.9, -0.3, 3.0, 0.6, -1.0, None)  # the loop part off (strict_no_speech=False)


def test_has_words():
    assert not has_words(". . . .") and not has_words("") and has_words("ok.") and has_words("42")


def test_voiced_ms_on_silence_noise_and_speech(eval_clips):
    from asr.whisper.audio import load_audio

    rng = np.random.default_rng(0)
    assert voiced_ms(np.zeros(16000 * 5, np.float32)) == 0
    assert voiced_ms((rng.standard_normal(16000 * 5) * 0.003).astype(np.float32)) < 150
    speech = load_audio(eval_clips["ps-cards-001"]["file"])  # the shortest clip: 1.1 s
    assert voiced_ms(speech) >= 300


def test_identical_timed_segments_in_a_row_are_a_loop():
    hello = [7, 8]  # " Hello", "." : too short a unit for the token rule
    tokens = [TS]
    for second in range(1, 7):
        tokens += [*hello, TS + 50 * second, TS + 50 * second]
    assert cut_repetition(tuple(tokens), TS) == (TS, 7, 8, TS + 50)
    three = (TS, *hello, TS + 50, TS + 50, *hello, TS + 100, TS + 100, *hello, TS + 150)
    assert cut_repetition(three, TS) is None  # "Hello. Hello. Hello." can be speech
