"""Transcript renderings shared by the CLI and the gateway: text, srt, vtt, verbose_json.

Pure functions of a list of segment dicts `{start, end, text, words?}` (seconds,
words as `{word, start, end, probability?}`); no I/O, no dependencies.
verbose_json has the shape of OpenAI's transcription response.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, int(round(float(seconds) * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    """00:01:02,345"""
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    """00:01:02.345"""
    return _clock(seconds, ".")


def _cue_text(segment: Mapping) -> str:
    # A blank line would end the cue early in both formats; "-->" would start a new timing line.
    lines = [line.strip() for line in str(segment.get("text", "")).strip().splitlines() if line.strip()]
    return "\n".join(lines).replace("-->", "->")


def _cues(segments: Sequence[Mapping]) -> list[tuple[float, float, str, str | None]]:
    cues = []
    for segment in segments:
        text = _cue_text(segment)
        if text:
            start = float(segment["start"])
            cues.append((start, max(start, float(segment["end"])), text, _speaker(segment)))
    return cues


def _speaker(item: Mapping) -> str | None:
    """A diarized segment's speaker label, cleaned for a cue (no markup, no line breaks)."""
    speaker = item.get("speaker")
    if not speaker:
        return None
    return " ".join(str(speaker).replace("<", "").replace(">", "").replace("&", "").split()) or None


def to_text(segments: Sequence[Mapping]) -> str:
    """Segment texts joined by spaces, one trailing newline."""
    texts = (" ".join(str(s.get("text", "")).split()) for s in segments)
    return " ".join(text for text in texts if text) + "\n"


def to_srt(segments: Sequence[Mapping]) -> str:
    blocks = [f"{i}\n{srt_time(start)} --> {srt_time(end)}\n{f'[{speaker}] ' if speaker else ''}{text}\n"
              for i, (start, end, text, speaker) in enumerate(_cues(segments), start=1)]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Mapping]) -> str:
    blocks = [f"{vtt_time(start)} --> {vtt_time(end)}\n{f'<v {speaker}>' if speaker else ''}{text}\n"
              for start, end, text, speaker in _cues(segments)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def openai_segments(segments: Sequence[Mapping], temperature: float = 0.0) -> list[dict]:
    """Every field OpenAI's TranscriptionSegment has; `tokens` are the text token ids when known."""
    return [{"id": i, "seek": int(round(float(s["start"]) * 100)), "start": s["start"], "end": s["end"],
             "text": s.get("text", ""), "tokens": [int(t) for t in s.get("text_tokens", ())],
             "temperature": s.get("temperature", temperature), "avg_logprob": s.get("avg_logprob", 0.0),
             "compression_ratio": s.get("compression_ratio", 0.0), "no_speech_prob": s.get("no_speech_prob", 0.0),
             **({"speaker": s["speaker"]} if "speaker" in s else {})}
            for i, s in enumerate(segments)]


def all_words(segments: Sequence[Mapping]) -> list[dict] | None:
    """Every segment's words in order, or None when no segment has a words list."""
    if not any(s.get("words") is not None for s in segments):
        return None
    return [w for s in segments for w in (s.get("words") or [])]


def verbose_json(text: str, segments: Sequence[Mapping], words: Sequence[Mapping] | None, *, task: str,
                 language: str | None, duration: float, temperature: float = 0.0) -> dict:
    """OpenAI's verbose_json body. language: as it should appear (OpenAI gives the
    English name, "english"; the caller maps codes to names); words: None leaves them out."""
    body = {"task": task, "language": language or "", "duration": round(float(duration), 3), "text": text,
            "segments": openai_segments(segments, temperature)}
    if words is not None:
        body["words"] = [{"word": w.get("word", w.get("text", "")), "start": w["start"], "end": w["end"],
                          **({"probability": w["probability"]} if "probability" in w else {}),
                          **({"speaker": w["speaker"]} if "speaker" in w else {})}
                         for w in words]
    return body
