"""Transcript renderings: json, text, srt, vtt, verbose_json (OpenAI's shape)."""
from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.languages import language_name

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    return _clock(seconds, ".")


def _cues(segments: list[dict]) -> list[dict]:
    return [s for s in segments if str(s.get("text", "")).strip()]


def to_srt(segments: list[dict]) -> str:
    blocks = [f"{i}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\n{s['text'].strip()}\n"
              for i, s in enumerate(_cues(segments), start=1)]
    return "\n".join(blocks)


def to_vtt(segments: list[dict]) -> str:
    blocks = [f"{vtt_time(s['start'])} --> {vtt_time(s['end'])}\n{s['text'].strip()}\n" for s in _cues(segments)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def openai_segments(segments: list[dict], temperature: float) -> list[dict]:
    """Every field OpenAI's TranscriptionSegment has; token ids are not kept, so `tokens` is empty."""
    return [{"id": i, "seek": int(round(s["start"] * 100)), "start": s["start"], "end": s["end"],
             "text": s.get("text", ""), "tokens": [], "temperature": temperature,
             "avg_logprob": s.get("avg_logprob", 0.0), "compression_ratio": s.get("compression_ratio", 0.0),
             "no_speech_prob": s.get("no_speech_prob", 0.0)}
            for i, s in enumerate(segments)]


def verbose_json(text: str, segments: list[dict], words: list[dict] | None, *, task: str,
                 language: str | None, duration: float, temperature: float = 0.0) -> dict:
    body = {"task": task, "language": language_name(language), "duration": round(duration, 3), "text": text,
            "segments": openai_segments(segments, temperature)}
    if words is not None:
        body["words"] = [{"word": w.get("word", w.get("text", "")), "start": w["start"], "end": w["end"]}
                         for w in words]
    return body


def render(fmt: str, text: str, segments: list[dict], json_body: dict, verbose_body: dict | None = None) -> Response:
    """One response for any format; `json_body` is the endpoint's own JSON shape."""
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt == "srt":
        return PlainTextResponse(to_srt(segments), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(segments), media_type="text/vtt")
    if fmt == "verbose_json" and verbose_body is not None:
        return JSONResponse(verbose_body)
    return JSONResponse(json_body)
