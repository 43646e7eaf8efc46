"""This session's history (live finals and file transcripts) and its export as TXT or SRT."""
from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("txt", "srt")


@dataclass(frozen=True)
class Entry:
    source: str     # "microphone", a file name, ...
    text: str
    start: float    # seconds on the source's own timeline
    end: float


def _timestamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


class History:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, source: str, text: str, start: float, end: float) -> Entry | None:
        text = text.strip()
        if not text:
            return None
        entry = Entry(source, text, start, max(start, end))
        self.entries.append(entry)
        return entry

    def clear(self) -> None:
        self.entries.clear()

    def as_text(self) -> str:
        return "".join(entry.text + "\n" for entry in self.entries)

    def as_srt(self) -> str:
        """SubRip cues in the order transcribed; a text's own blank lines would end a cue, so they are closed up."""
        cues = []
        for n, entry in enumerate(self.entries, 1):
            text = "\n".join(line for line in entry.text.splitlines() if line.strip()).replace("-->", "->")
            cues.append(f"{n}\n{_timestamp(entry.start)} --> {_timestamp(entry.end)}\n{text}\n")
        return "\n".join(cues)

    def export(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"export format {fmt!r}: expected {' or '.join(FORMATS)}")
        return self.as_text() if fmt == "txt" else self.as_srt()
