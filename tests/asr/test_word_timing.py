"""Word timestamps (asr/whisper/word_timing.py): DTW, median filter, punctuation, and the real tiny model."""

import numpy as np
import pytest

from asr.whisper.word_timing import TimedSegment, WordTiming, add_word_timestamps, dtw, median_filter, merge_punctuations


def test_dtw_follows_the_cheap_diagonal_blocks():
    cost = np.ones((3, 9))
    cost[0, 0:3] = cost[1, 3:6] = cost[2, 6:9] = 0.0  # token k lives in frames 3k..3k+2
    tokens, frames = dtw(cost)
    assert frames.tolist() == list(range(9))
    assert tokens.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_dtw_matches_a_plain_loop_on_random_costs():
    rng = np.random.default_rng(1)
    cost = rng.random((7, 23))
    total = np.full((8, 24), np.inf)
    total[0, 0] = 0
    for j in range(1, 24):
        for i in range(1, 8):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
    tokens, frames = dtw(cost)
    assert np.isclose(cost[tokens, frames].sum(), total[7, 23])
    assert np.all(np.diff(tokens) >= 0) and np.all(np.diff(frames) >= 0)


def test_median_filter():
    x = np.array([[0.0, 0.0, 9.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    assert median_filter(x, 3).tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]


def test_punctuation_joins_its_word():
    words = [WordTiming(w, [i], i, i + 1, 0.9) for i, w in enumerate([' "', "Hello", ",", " world", "."])]
    merge_punctuations(words, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [w.word for w in words if w.word] == [' "Hello,', " world."]
    assert sum(len(w.tokens) for w in words) == 5


def test_words_go_to_their_segments():
    alignment = [WordTiming(" one", [1], 0.0, 0.4, 0.9), WordTiming(" two", [2], 0.4, 0.8, 0.8),
                 WordTiming(" three", [3, 4], 1.0, 1.5, 0.7)]
    segments = [TimedSegment(10.0, 10.8, [1, 2]), TimedSegment(10.8, 11.6, [3, 4])]
    add_word_timestamps(segments, alignment, 10.0, 10.0, "", ".")
    assert [w["word"] for w in segments[0].words] == [" one", " two"]
    assert segments[1].words[0]["start"] == 11.0 and segments[1].start == 11.0


@pytest.mark.slow
def test_word_timestamps_on_real_speech(tiny_model, eval_clips):
    from asr.whisper.audio import load_audio

    result = tiny_model.transcribe_segment(load_audio(eval_clips["jfk"]["file"]), word_timestamps=True)
    words = result.words
    assert "".join(w["word"] for w in words).strip() == result.text
    assert all(w["start"] <= w["end"] for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(0.0 <= w["probability"] <= 1.0 for w in words)
    country = [w for w in words if "country" in w["word"]]
    assert country[-1]["end"] == pytest.approx(10.4, abs=0.5)  # "...for your country." ends at about 10.4 s
    assert result.segments[0].words and result.segments[0].words[0]["word"].strip() == "And"
