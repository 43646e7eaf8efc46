"""Rate limits per caller ([limits]): requests and audio seconds per minute, concurrent /stream sessions.

A caller is its key (`key:<name>`) or, without one, its address (`addr:<ip>`); loopback
addresses without a key are not limited when `limits.exempt_loopback` (local tools, or a
reverse proxy in front, where per-address counting would lump every user together).
Windows slide over the last 60 s. Pure: no sockets, the clock is passed in.

Audio is charged where its length becomes known: an upload once decoded (gateway/service.py),
a /stream session per frame (gateway/ws_session.py), through `charge_audio`, which finds the
caller's meter in a context variable the guard sets for the request.
"""
from __future__ import annotations

import math
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

SPAN_S = 60.0
MAX_CALLERS = 10000  # past this many callers in the table, the idle ones are swept
SWEEP_EVERY_S = 1.0  # (not on every request: many addresses at once must not make each request cost a sweep)


class Window:
    """Amounts per caller over the last `span_s` seconds against `limit` (0 = no limit)."""

    def __init__(self, limit: float, span_s: float = SPAN_S):
        self.limit = limit
        self.span_s = span_s
        self.entries: dict[str, deque[tuple[float, float]]] = {}
        self.totals: dict[str, float] = {}
        self.swept = float("-inf")

    def _prune(self, who: str, now: float) -> deque[tuple[float, float]]:
        entries = self.entries.setdefault(who, deque())
        while entries and entries[0][0] <= now - self.span_s:
            _, amount = entries.popleft()
            self.totals[who] -= amount
        return entries

    def retry_after(self, who: str, now: float) -> float | None:
        """None while the caller is under its limit, else the seconds until it is again."""
        if self.limit <= 0:
            return None
        entries = self._prune(who, now)
        total = self.totals.get(who, 0.0)
        if total < self.limit:
            return None
        for at, amount in entries:  # the oldest amounts leave the window first
            total -= amount
            if total < self.limit:
                return max(0.0, at + self.span_s - now)
        return self.span_s

    def charge(self, who: str, amount: float, now: float) -> None:
        if self.limit <= 0 or amount <= 0:
            return
        self._prune(who, now).append((now, amount))
        self.totals[who] = self.totals.get(who, 0.0) + amount
        if len(self.entries) > MAX_CALLERS and now - self.swept >= SWEEP_EVERY_S:  # at most once a second
            self.sweep(now)

    def sweep(self, now: float) -> None:
        self.swept = now
        for who in list(self.entries):
            if not self._prune(who, now):
                del self.entries[who], self.totals[who]


class Sessions:
    """Concurrent sessions per caller against `limit` (0 = no limit)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, who: str) -> bool:
        if self.limit > 0 and self.open.get(who, 0) >= self.limit:
            return False
        self.open[who] = self.open.get(who, 0) + 1
        return True

    def release(self, who: str) -> None:
        left = self.open.get(who, 0) - 1
        if left > 0:
            self.open[who] = left
        else:
            self.open.pop(who, None)


def retry_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


@dataclass
class AudioMeter:
    """One caller's audio budget, as the handlers of its request see it."""
    window: Window
    who: str
    clock: object = time.monotonic

    def charge(self, seconds: float) -> float | None:
        """Count `seconds` of audio; the wait until the caller may send more if it is now over, else None."""
        now = self.clock()
        self.window.charge(self.who, seconds, now)
        return self.window.retry_after(self.who, now)


METER: ContextVar[AudioMeter | None] = ContextVar("voxbus_audio_meter", default=None)


def charge_audio(seconds: float) -> float | None:
    """Charge the current request's caller (no-op outside a limited request); see AudioMeter.charge."""
    meter = METER.get()
    return meter.charge(seconds) if meter is not None else None


class Limiter:
    """The three limits of [limits], and who counts as whom."""

    def __init__(self, limits_cfg, clock=time.monotonic):
        self.cfg = limits_cfg
        self.clock = clock
        self.requests = Window(limits_cfg.requests_per_min)
        self.audio = Window(limits_cfg.audio_s_per_min)
        self.sessions = Sessions(limits_cfg.ws_sessions)
        self.refused = {"requests": 0, "audio": 0, "sessions": 0}

    def caller(self, key_name: str | None, address: str | None, loopback: bool) -> str | None:
        """The caller's identity, or None when it is not limited."""
        if key_name is not None:
            return f"key:{key_name}"
        if loopback and self.cfg.exempt_loopback:
            return None
        return f"addr:{address or 'unknown'}"

    def admit(self, who: str, audio: bool) -> tuple[str, float] | None:
        """Count one request; (which limit, retry after s) when it must be refused."""
        now = self.clock()
        wait = self.requests.retry_after(who, now)
        if wait is None and audio:
            wait, which = self.audio.retry_after(who, now), "audio"
        else:
            which = "requests"
        if wait is not None:
            self.refused[which] += 1
            return which, wait
        self.requests.charge(who, 1, now)
        return None

    def meter(self, who: str) -> AudioMeter:
        return AudioMeter(self.audio, who, self.clock)
