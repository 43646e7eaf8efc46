"""When to try the server again: exponential backoff with a cap, reset by a connection that worked."""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1                  # ± this fraction, so many clients do not retry in step
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one attempt."""
        base = min(self.max_s, self.first_s * self.factor ** self.attempts)
        self.attempts += 1
        return max(0.0, base * (1 + self.rng.uniform(-self.jitter, self.jitter)))

    def succeeded(self) -> None:
        self.attempts = 0
