"""A stand-in for a stage that is not written yet: it heartbeats ok=false "not implemented".

`voxbus up` can then start every program, and `voxbus status` shows which stages
are real. A stage's `__main__.py` is three lines calling `main(stage)` until the
real stage replaces it.
"""
from __future__ import annotations

import sys

from bus.stage import StageRuntime, run_stage

POLL_S = 0.1
STATUS = "not implemented"


def not_implemented() -> tuple[bool, str, dict]:
    return False, STATUS, {}


def idle(runtime: StageRuntime) -> None:
    pub = runtime.publisher()
    heartbeat = runtime.heartbeater(pub, not_implemented)
    try:
        while not runtime.stopping.is_set():
            heartbeat.tick()
            runtime.stopping.wait(POLL_S)
    finally:
        pub.close()


def main(stage: str, argv: list[str] | None = None) -> int:
    return run_stage(stage, idle, sys.argv[1:] if argv is None else argv)
