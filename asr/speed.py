"""How fast this worker decodes lately: its real-time factor (decode seconds per audio second),
a moving average over recent decodes. Workers report it in their heartbeats to the segment
broker and on the bus, so `voxbus status` and `/model/info` show each worker's speed (the
broker's credit already gives a faster worker more); a test throttle slows decodes on purpose."""
from __future__ import annotations

import time

WEIGHT = 0.2  # of the newest decode in the average: about the last ten decodes count


class RecentSpeed:
    def __init__(self):
        self.rtf = 0.0   # 0 until the first decode
        self.decodes = 0

    def add(self, decode_s: float, audio_s: float) -> None:
        if audio_s <= 0:
            return
        sample = decode_s / audio_s
        self.rtf = sample if self.decodes == 0 else (1 - WEIGHT) * self.rtf + WEIGHT * sample
        self.decodes += 1


def throttled(decode, throttle: float, speed: RecentSpeed, audio_s, clock=time.monotonic, sleep=time.sleep):
    """`decode` wrapped: timed into `speed`, and, with throttle > 1, stretched to throttle × its time
    (a slow worker on a fast box, for tests and benches)."""
    def run(segment, *args):
        start = clock()
        result = decode(segment, *args)
        if throttle > 1.0:
            sleep((throttle - 1.0) * (clock() - start))
        speed.add(clock() - start, audio_s(segment))
        return result
    return run
