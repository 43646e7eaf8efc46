"""Language detection, allowed languages and translation on the multilingual base model."""

import re

import pytest

pytestmark = pytest.mark.slow

# The spoken sentence's own words (german_speech), bar "Park", which English shares.
GERMAN_WORDS = {"guten", "morgen", "wetter", "heute", "sehr", "schön", "gehen", "kindern", "den", "das", "und"}


def test_detect_restrict_and_translate(base_model, german_speech):
    audio, _ = german_speech
    detected = base_model.transcribe_segment(audio, temperature=0.0)
    assert detected.language == "de" and 0.3 < detected.language_prob <= 1.0
    assert "Kindern" in detected.text or "Park" in detected.text, detected.text

    restricted = base_model.transcribe_segment(audio, temperature=0.0, allowed_languages=["en", "fr"])
    assert restricted.language in ("en", "fr")

    # English out, not a transcript. Which content words survive espeak's German moves with
    # numerics (fp32 base and faster-whisper's int8 both lose the park, tests/bench/translate_bench.py),
    # so only the greeting, which every build renders, is asked for.
    translated = base_model.transcribe_segment(audio, task="translate", temperature=0.0)
    english = set(re.findall(r"[a-zäöüß]+", translated.text.lower()))
    assert "morning" in english and not english & GERMAN_WORDS, translated.text
    with pytest.raises(ValueError, match="allowed_languages"):
        base_model.transcribe_segment(audio, allowed_languages=["xx"])
