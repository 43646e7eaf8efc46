"""The /stream protocol from the client's side, without sockets: the URL to open and the live lines.

Partials of an utterance replace each other and are shown grey; the final replaces
them (gateway/README.md, "WebSocket /stream"). Everything the server says that is
not a transcript is returned as a status for the window's status line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from bus.pcm import SAMPLE_RATE  # what /stream takes as s16


class ProtocolError(ValueError):
    """Something from the server that does not follow the /stream protocol."""


@dataclass
class Line:
    utt: int
    text: str
    final: bool
    start: float = 0.0
    end: float = 0.0


def stream_url(server: str, language: str, task: str, end_silence_ms: int | None) -> str:
    """http(s)://host:port[/prefix] → ws(s)://host:port[/prefix]/stream?… for 16 kHz int16 audio."""
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"server URL {server!r}: expected http://host:port or https://host")
    query = {"language": language, "task": task, "sample_rate": SAMPLE_RATE, "encoding": "s16", "partials": "true"}
    if end_silence_ms is not None:
        query["end_silence_ms"] = end_silence_ms
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/stream", urlencode(query), ""))


def http_url(server: str, path: str) -> str:
    parts = urlsplit(server)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


class LiveTranscript:
    """The lines of one live session, in utterance order."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.session = ""
        self.offset = 0   # a reconnect starts a new server session whose utterances count from 0 again

    def _index(self, utt: int) -> int | None:
        for i, line in enumerate(self.lines):
            if line.utt == utt:
                return i
        return None

    def apply(self, raw: str) -> tuple[str, Line | str | None]:
        """One text frame → (kind, what changed): ("partial"|"final", Line), ("error"|"status", message)."""
        try:
            event = json.loads(raw)
        except ValueError:
            raise ProtocolError(f"server sent a text frame that is not JSON: {raw[:80]!r}") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ProtocolError(f"server event without a type: {raw[:80]!r}")
        kind = event["type"]
        if kind in ("partial", "final"):
            return kind, self._transcript(kind, event)
        if kind == "error":
            return "error", f"{event.get('code', 'error')}: {event.get('message', '')}"
        if kind == "ready":
            self.session = str(event.get("session", ""))
            self.offset = max((line.utt for line in self.lines), default=-1) + 1
            return "status", f"streaming (session {self.session})"
        return "status", None  # vad, pong, config: nothing to show

    def _transcript(self, kind: str, event: dict) -> Line | None:
        utt, text = int(event.get("utt", -1)) + self.offset, str(event.get("text", "")).strip()
        line = Line(utt, text, kind == "final", float(event.get("start") or 0.0), float(event.get("end") or 0.0))
        i = self._index(utt)
        if i is None:
            if kind == "final" and not text:
                return None   # an utterance that turned out to be no speech
            self.lines.append(line)
            self.lines.sort(key=lambda item: item.utt)
        elif self.lines[i].final and kind == "partial":
            return None       # late partial: the final already replaced it
        elif kind == "final" and not text:
            del self.lines[i]
        else:
            self.lines[i] = line
        return line

    def clear(self) -> None:
        self.lines.clear()
        self.offset = 0

    def finals(self) -> list[Line]:
        return [line for line in self.lines if line.final]
