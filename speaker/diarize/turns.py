"""Speaker turns: the diarization result, and RTTM (NIST's "who spoke when" text format)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def parse_rttm(text: str, uri: str | None = None) -> list[Turn]:
    """SPEAKER lines of an RTTM file (of one recording if ``uri`` is given), sorted by start."""
    turns = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields, got {len(fields)}")
        if uri is not None and fields[1] != uri:
            continue
        start, duration = float(fields[3]), float(fields[4])
        turns.append(Turn(start, start + duration, fields[7]))
    return sorted(turns, key=lambda t: (t.start, t.end))


def to_rttm(turns: list[Turn], uri: str) -> str:
    return "".join(f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
                   for t in turns)
