"""Speaker turns merged into transcript segments, split at the word where the speaker changes."""
from __future__ import annotations

from bus.speaker_turns import assign_speakers, speaker_at

TURNS = [{"start": 0.0, "end": 2.0, "speaker": "SPEAKER_1"}, {"start": 2.1, "end": 5.0, "speaker": "SPEAKER_2"}]


def _word(text, start, end):
    return {"word": text, "start": start, "end": end, "probability": 0.9}


def test_a_segment_spanning_a_change_splits_at_the_word():
    segment = {"id": 0, "start": 0.0, "end": 4.0, "text": " hello there. Hi you",
               "words": [_word(" hello", 0.0, 0.8), _word(" there.", 0.9, 1.9), _word(" Hi", 2.2, 2.6),
                         _word(" you", 2.7, 3.0)]}
    first, second = assign_speakers([segment], TURNS)
    assert (first["speaker"], first["text"], first["start"], first["end"]) == ("SPEAKER_1", "hello there.", 0.0, 1.9)
    assert (second["speaker"], second["text"], second["start"], second["end"]) == ("SPEAKER_2", "Hi you", 2.2, 4.0)
    assert [w["speaker"] for w in first["words"] + second["words"]] == ["SPEAKER_1"] * 2 + ["SPEAKER_2"] * 2


def test_segments_without_words_take_the_speaker_they_overlap_most():
    out = assign_speakers([{"start": 1.5, "end": 4.0, "text": "x"}], TURNS)
    assert out == [{"start": 1.5, "end": 4.0, "text": "x", "speaker": "SPEAKER_2"}]


def test_a_word_in_a_gap_takes_the_nearest_turn_and_no_turns_give_none():
    assert speaker_at(2.02, 2.04, TURNS) == "SPEAKER_1"
    assert speaker_at(7.0, 8.0, TURNS) == "SPEAKER_2"
    assert speaker_at(1.99, 1.99, TURNS) == "SPEAKER_1"  # no duration: the turn around it, not the nearest edge
    assert assign_speakers([{"start": 0, "end": 1, "text": "x"}], [])[0]["speaker"] is None
