"""Transcript responses: json, text, srt, vtt, verbose_json (OpenAI's shape).

The renderings themselves are bus.subtitles' (shared with `voxbus transcribe`, and
they clean cue text so a line break or "-->" inside a segment cannot break a cue);
this module only wraps them in Starlette responses and maps language codes to the
English names OpenAI's verbose_json uses.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.responses import JSONResponse, PlainTextResponse, Response

from bus import subtitles
from gateway.languages import language_name



def verbose_json(text: str, segments: Sequence[Mapping], words: Sequence[Mapping] | None, *, task: str,
                 language: str | None, duration: float, temperature: float = 0.0) -> dict:
    """OpenAI's verbose_json body; `language` is a code ("en"), shown as its name ("english")."""
    return subtitles.verbose_json(text, segments, words, task=task, language=language_name(language),
                                  duration=duration, temperature=temperature)


def whisper_cpp_verbose(verbose: dict, segments: Sequence[Mapping], language: str | None,
                        language_prob: float | None, words: bool) -> dict:
    """whisper.cpp server's verbose_json: OpenAI's, plus `detected_language` (its English name) and
    `detected_language_probability` (null when the language was given, not detected), and with
    `word_timestamps` each segment's `words`."""
    body = {**verbose, "detected_language": language_name(language), "detected_language_probability":
            None if language_prob is None else round(float(language_prob), 4)}
    if words:
        body["segments"] = [{**shown, "words": list(segment.get("words") or [])}
                            for shown, segment in zip(verbose["segments"], segments)]
    return body


def render(fmt: str, text: str, segments: Sequence[Mapping], json_body: dict,
           verbose_body: dict | None = None) -> Response:
    """One response for any format; `json_body` is the endpoint's own JSON shape."""
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt == "srt":
        return PlainTextResponse(subtitles.to_srt(segments), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(subtitles.to_vtt(segments), media_type="text/vtt")
    if fmt == "verbose_json" and verbose_body is not None:
        return JSONResponse(verbose_body)
    return JSONResponse(json_body)


def as_json(fmt: str, text: str, segments: Sequence[Mapping], json_body: dict, verbose_body: dict) -> dict:
    """The answer `render` would give, as one JSON object (for an event): the JSON shapes as they
    are, the text formats as {format, content}."""
    if fmt == "json":
        return json_body
    if fmt == "verbose_json":
        return verbose_body
    content = text + "\n" if fmt == "text" else subtitles.to_srt(segments) if fmt == "srt" else \
        subtitles.to_vtt(segments)
    return {"format": fmt, "content": content}
