"""Language detection, allowed languages and translation on the multilingual base model."""

import pytest

pytestmark = pytest.mark.slow


def test_detect_restrict_and_translate(base_model, german_speech):
    audio, _ = german_speech
    detected = base_model.transcribe_segment(audio, temperature=0.0)
    assert detected.language == "de" and 0.3 < detected.language_prob <= 1.0
    assert "Kindern" in detected.text or "Park" in detected.text, detected.text

    restricted = base_model.transcribe_segment(audio, temperature=0.0, allowed_languages=["en", "fr"])
    assert restricted.language in ("en", "fr")

    translated = base_model.transcribe_segment(audio, task="translate", temperature=0.0)
    english = translated.text.lower()
    assert "morning" in english and "park" in english and "kindern" not in english, translated.text
    with pytest.raises(ValueError, match="allowed_languages"):
        base_model.transcribe_segment(audio, allowed_languages=["xx"])
