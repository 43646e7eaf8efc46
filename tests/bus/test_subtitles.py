"""Transcript renderings (bus/subtitles.py), checked with strict srt and vtt parsers."""

import pytest

from bus import subtitles
from tests.kit import parse_srt, parse_vtt

SEGMENTS = [{"start": 0.0, "end": 2.5, "text": " Hello there."},
            {"start": 2.5, "end": 3661.0015, "text": "General --> Kenobi", "words": [
                {"word": " General", "start": 2.5, "end": 3.0, "probability": 0.9}]},
            {"start": 4.0, "end": 5.0, "text": "   "}]


@pytest.mark.parametrize("seconds, srt, vtt", [
    (0.0, "00:00:00,000", "00:00:00.000"), (3661.0015, "01:01:01,002", "01:01:01.002"),
    (-0.2, "00:00:00,000", "00:00:00.000"), (59.9996, "00:01:00,000", "00:01:00.000"),
])
def test_clock(seconds, srt, vtt):
    assert subtitles.srt_time(seconds) == srt and subtitles.vtt_time(seconds) == vtt


def test_srt_parses_and_skips_empty_cues():
    cues = parse_srt(subtitles.to_srt(SEGMENTS))
    assert cues == [("00:00:00,000", "00:00:02,500", "Hello there."),
                    ("00:00:02,500", "01:01:01,002", "General -> Kenobi")]


def test_vtt_parses():
    cues = parse_vtt(subtitles.to_vtt(SEGMENTS))
    assert [c[2] for c in cues] == ["Hello there.", "General -> Kenobi"]


def test_empty_transcript_renders_empty_documents():
    assert subtitles.to_srt([]) == "" and subtitles.to_vtt([]) == "WEBVTT\n\n"
    assert subtitles.to_text([]) == "\n"


def test_text():
    assert subtitles.to_text(SEGMENTS) == "Hello there. General --> Kenobi\n"


def test_verbose_json_has_openais_shape():
    body = subtitles.verbose_json("Hello there. General Kenobi", SEGMENTS, subtitles.all_words(SEGMENTS),
                                  task="transcribe", language="english", duration=5.0)
    assert set(body) == {"task", "language", "duration", "text", "segments", "words"}
    assert set(body["segments"][0]) == {"id", "seek", "start", "end", "text", "tokens", "temperature",
                                        "avg_logprob", "compression_ratio", "no_speech_prob"}
    assert body["words"] == [{"word": " General", "start": 2.5, "end": 3.0, "probability": 0.9}]
    no_words = subtitles.verbose_json("x", SEGMENTS[:1], None, task="translate", language="en", duration=1)
    assert "words" not in no_words and subtitles.all_words(SEGMENTS[:1]) is None
