"""What `voxbus listen` prints for each server event (gateway/README.md, "WebSocket /stream").

- On a terminal: the utterance in progress on one line, rewritten by each partial
  (carriage return, line cleared), replaced by its final, which ends the line.
- Not on a terminal (a pipe, a file): finals only, one per line.
- `--json`: every event as one JSON line, as the server sent it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

CLEAR_LINE = "\r\x1b[2K"   # back to column 0, erase the line


@dataclass(frozen=True)
class Mode:
    json: bool = False
    tty: bool = False
    width: int = 80        # terminal columns: a partial longer than this shows its end


def fit(text: str, width: int) -> str:
    """One terminal line: the end of `text` (what was just said) when it is too long."""
    room = max(width - 1, 2)   # never the last column: writing there wraps on some terminals
    return text if len(text) <= room else "…" + text[-(room - 1):]


def render(event: dict, mode: Mode) -> str | None:
    """The text to write for one event, or None for nothing."""
    if mode.json:
        return json.dumps(event, ensure_ascii=False) + "\n"
    kind, text = event.get("type"), " ".join(str(event.get("text", "")).split())
    if kind == "partial":
        return CLEAR_LINE + fit(text, mode.width) if mode.tty and text else None
    if kind == "final":
        prefix = CLEAR_LINE if mode.tty else ""
        if not text:   # an utterance that turned out not to be speech: only clear its partial
            return prefix or None
        return prefix + text + "\n"
    return None


def error_text(event: dict) -> str:
    """A server `error` event as the one line that goes to stderr."""
    message = " ".join(str(event.get("message", "")).split())
    return f"server error {event.get('code', 'error')}: {message}"


class Display:
    """Writes rendered events to `out`, remembering whether a partial line is open."""

    def __init__(self, out: TextIO, mode: Mode):
        self.out = out
        self.mode = mode
        self.partial_open = False
        self._printed: set[tuple] = set()

    def show(self, event: dict) -> None:
        if event.get("type") == "final" and not self.mode.json:
            key = (event.get("utt"), " ".join(str(event.get("text", "")).split()))
            if key in self._printed:   # the same final twice (the server has sent one again): once is enough
                return
            self._printed.add(key)
        text = render(event, self.mode)
        if text is None:
            return
        self.out.write(text)
        self.out.flush()
        self.partial_open = not self.mode.json and event.get("type") == "partial"

    def end_line(self) -> None:
        """Clear an open partial line (before a message on stderr, and at exit)."""
        if self.partial_open:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self.partial_open = False
