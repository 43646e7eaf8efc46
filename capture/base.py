"""What every capture source reader is: open, read interleaved int16 at its own rate, close."""
from __future__ import annotations

from typing import Protocol


class SourceUnavailable(Exception):
    """The source cannot be opened now (device missing, ffmpeg would not start): retry later."""


class SourceLost(Exception):
    """A running source failed (device unplugged, ffmpeg died or stalled): reopen later."""


class Reader(Protocol):
    rate: int
    channels: int

    def open(self) -> None:
        """Start the source; raise SourceUnavailable."""

    def read(self) -> bytes | None:
        """Interleaved s16le at `rate`; b"" = nothing yet, None = end of source; raise SourceLost."""

    def close(self) -> None:
        """Release the device or child process; safe to call twice."""

    def counters(self) -> dict:
        """Reader-specific counts for the heartbeat (overruns, restarts, ...)."""
