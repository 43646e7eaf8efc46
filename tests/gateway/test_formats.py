"""Transcript renderings."""
from gateway import formats

SEGMENTS = [{"start": 0.0, "end": 2.5, "text": " Hello there.", "avg_logprob": -0.1, "no_speech_prob": 0.02},
            {"start": 3661.25, "end": 3662.0, "text": " Bye.", "avg_logprob": -0.3, "no_speech_prob": 0.1},
            {"start": 4.0, "end": 4.5, "text": "  "}]


def test_clock_formats():
    assert formats.srt_time(3661.25) == "01:01:01,250"
    assert formats.vtt_time(0.0016) == "00:00:00.002"
    assert formats.srt_time(-1) == "00:00:00,000"


def test_srt_numbers_cues_and_skips_empty_text():
    assert formats.to_srt(SEGMENTS) == ("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
                                        "2\n01:01:01,250 --> 01:01:02,000\nBye.\n")


def test_vtt_has_header():
    assert formats.to_vtt(SEGMENTS).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n")


def test_verbose_json_has_every_openai_field():
    body = formats.verbose_json("Hello there. Bye.", SEGMENTS[:2], [{"word": "Hello", "start": 0.0, "end": 0.4}],
                                task="transcribe", language="en", duration=3662.0, temperature=0.2)
    assert body["language"] == "english" and body["duration"] == 3662.0
    seg = body["segments"][1]
    assert set(seg) == {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob"}
    assert seg["id"] == 1 and seg["temperature"] == 0.2
    assert body["words"] == [{"word": "Hello", "start": 0.0, "end": 0.4}]
    assert "words" not in formats.verbose_json("", [], None, task="translate", language=None, duration=0)


def test_render_picks_content_types():
    assert formats.render("text", "hi", [], {}).body == b"hi\n"
    assert formats.render("srt", "hi", SEGMENTS, {}).media_type == "application/x-subrip"
    assert formats.render("vtt", "hi", SEGMENTS, {}).media_type == "text/vtt"
    assert formats.render("json", "hi", [], {"text": "hi"}).body == b'{"text":"hi"}'
