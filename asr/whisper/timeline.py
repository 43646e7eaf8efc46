"""Moving result times from one timeline onto another (a tail onto its segment, a segment onto its stream)."""

from __future__ import annotations


def shift_times(item: dict, seconds: float) -> dict:
    """A copy of a segment or word dict with start/end (and its words') moved later by `seconds`."""
    out = dict(item, start=round(item["start"] + seconds, 3), end=round(item["end"] + seconds, 3))
    if item.get("words"):
        out["words"] = [shift_times(word, seconds) for word in item["words"]]
    return out
