"""Retry delays for sources that are missing or died: 1, 2, 5, 10, then 30 s for ever."""
from __future__ import annotations

SCHEDULE_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class Backoff:
    def __init__(self, schedule: tuple[float, ...] = SCHEDULE_S):
        self.schedule = schedule
        self.attempt = 0

    def next_delay(self) -> float:
        delay = self.schedule[min(self.attempt, len(self.schedule) - 1)]
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
