"""Transcript responses: bus.subtitles' renderings (tested in tests/bus) wrapped as Starlette responses."""
from bus import subtitles
from gateway import formats

SEGMENTS = [{"start": 0.0, "end": 2.5, "text": " Hello there.", "avg_logprob": -0.1, "no_speech_prob": 0.02},
            {"start": 3661.25, "end": 3662.0, "text": " Bye.", "avg_logprob": -0.3, "no_speech_prob": 0.1},
            {"start": 4.0, "end": 4.5, "text": "  "}]
# What a model (or a prompt-happy decoder) can produce: blank lines and an arrow would break a cue.
AWKWARD = [{"start": 0.0, "end": 1.0, "text": " first line\n\nsecond --> line "},
           {"start": 1.0, "end": 2.0, "text": "next"}]


def test_srt_and_vtt_are_bus_subtitles():
    assert formats.render("srt", "", SEGMENTS, {}).body.decode() == subtitles.to_srt(SEGMENTS)
    assert formats.render("vtt", "", SEGMENTS, {}).body.decode() == subtitles.to_vtt(SEGMENTS)
    assert formats.render("srt", "", SEGMENTS, {}).body.decode() == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:01:01,250 --> 01:01:02,000\nBye.\n")


def test_cue_text_cannot_break_srt_or_vtt():
    srt = formats.render("srt", "", AWKWARD, {}).body.decode()
    assert srt == "1\n00:00:00,000 --> 00:00:01,000\nfirst line\nsecond -> line\n\n" \
                  "2\n00:00:01,000 --> 00:00:02,000\nnext\n"
    vtt = formats.render("vtt", "", AWKWARD, {}).body.decode()
    cues = vtt.split("\n\n")
    assert cues[0] == "WEBVTT" and len(cues) == 3 and all(c.count("-->") == 1 for c in cues[1:])


def test_verbose_json_has_every_openai_field_and_the_language_name():
    body = formats.verbose_json("Hello there. Bye.", SEGMENTS[:2], [{"word": "Hello", "start": 0.0, "end": 0.4}],
                                task="transcribe", language="en", duration=3662.0, temperature=0.2)
    assert body["language"] == "english" and body["duration"] == 3662.0
    seg = body["segments"][1]
    assert set(seg) == {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob"}
    assert seg["id"] == 1 and seg["temperature"] == 0.2
    assert body["words"] == [{"word": "Hello", "start": 0.0, "end": 0.4}]
    assert "words" not in formats.verbose_json("", [], None, task="translate", language=None, duration=0)
    assert formats.verbose_json("", [], None, task="transcribe", language=None, duration=0)["language"] == ""


def test_render_picks_content_types():
    assert formats.render("text", "hi", [], {}).body == b"hi\n"
    assert formats.render("srt", "hi", SEGMENTS, {}).media_type == "application/x-subrip"
    assert formats.render("vtt", "hi", SEGMENTS, {}).media_type == "text/vtt"
    assert formats.render("json", "hi", [], {"text": "hi"}).body == b'{"text":"hi"}'
    assert formats.render("verbose_json", "hi", [], {"text": "hi"}, {"task": "x"}).body == b'{"task":"x"}'
