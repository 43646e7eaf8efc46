"""Speaker turns merged into transcript segments: who said each word, and a segment split at
the word where the speaker changes.

Pure functions of the shapes the gateway and CLI already use: segments `{start, end, text,
words?}` (bus/subtitles.py) and turns `{start, end, speaker}` (seconds). The speaker stage
makes the turns; whoever renders the transcript merges them here, so no stage imports another.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

# A file job's diarization answers on job/<job><suffix>/ (the gateway's own job id for it, so its
# answer never mixes with the transcript's); the store maps it back to the job's rows by it.
DIARIZE_JOB_SUFFIX = ".speakers"


def speaker_at(start: float, end: float, turns: Sequence[Mapping]) -> str | None:
    """The speaker whose turns overlap [start, end] most; else (a word of no duration, or in a gap)
    the turn around its middle, else the nearest turn's."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for turn in turns:
        shared = min(end, float(turn["end"])) - max(start, float(turn["start"]))
        if shared > 0:
            overlap[turn["speaker"]] = overlap.get(turn["speaker"], 0.0) + shared
    if overlap:
        return max(overlap, key=overlap.__getitem__)
    middle = (start + end) / 2
    around = [t for t in turns if float(t["start"]) <= middle <= float(t["end"])]
    if around:
        return str(around[0]["speaker"])
    nearest = min(turns, key=lambda t: min(abs(middle - float(t["start"])), abs(middle - float(t["end"]))))
    return str(nearest["speaker"])


def _split_by_words(segment: Mapping, words: list[dict]) -> list[dict]:
    pieces: list[dict] = []
    for word in words:
        if pieces and pieces[-1]["speaker"] == word["speaker"]:
            pieces[-1]["words"].append(word)
        else:
            pieces.append({"speaker": word["speaker"], "words": [word]})
    out = []
    for i, piece in enumerate(pieces):
        first, last = piece["words"][0], piece["words"][-1]
        out.append({**segment,
                    "start": float(segment["start"]) if i == 0 else float(first["start"]),
                    "end": float(segment["end"]) if i == len(pieces) - 1 else float(last["end"]),
                    "text": "".join(str(w["word"]) for w in piece["words"]).strip(),
                    "words": piece["words"], "speaker": piece["speaker"]})
    return out


def assign_speakers(segments: Sequence[Mapping], turns: Sequence[Mapping]) -> list[dict]:
    """Copies of ``segments`` with a `speaker`; a segment with word timings whose words change
    speaker becomes one segment per run of one speaker's words (each word has its `speaker`)."""
    out: list[dict] = []
    for segment in segments:
        words = [{**w, "speaker": speaker_at(float(w["start"]), float(w["end"]), turns)}
                 for w in segment.get("words") or []]
        if len({w["speaker"] for w in words}) > 1:
            out += _split_by_words(segment, words)
        else:
            speaker = speaker_at(float(segment["start"]), float(segment["end"]), turns)
            out.append({**segment, "speaker": speaker, **({"words": words} if words else {})})
    return out


def speakers_in(start: float, end: float, turns: Sequence[Mapping]) -> list[str]:
    """The distinct speakers of [start, end]: whoever spoke most of it first, then by first turn."""
    main = speaker_at(start, end, turns)
    if main is None:
        return []
    inside = [str(t["speaker"]) for t in turns if min(end, float(t["end"])) > max(start, float(t["start"]))]
    return list(dict.fromkeys([main, *inside]))
