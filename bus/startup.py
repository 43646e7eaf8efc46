"""`voxbus up` waits for every stage to be healthy, not only started.

supervisord calls a program RUNNING one second after it starts, and restarts it forever
when it exits: a gateway whose port is taken would show as running. So `up` also listens
to health/ and watches each program's pid: a stage is up when its heartbeat says ok; a
program that exits (its pid changes, or supervisord gives up) fails `up` at once with
the last line of its log; asr reporting a model it cannot load fails it at once too (the
model must be built first). A capture source whose device is missing is only a warning:
devices come and go, and capture waits for them; so is a placeholder stage (bus/placeholder.py).

`StartupWatch` is the pure judgement (states and heartbeats in, a verdict out);
`wait_healthy` feeds it from supervisord and the bus.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bus import schemas
from bus.placeholder import STATUS as PLACEHOLDER

POLL_S = 0.2
GAVE_UP = ("BACKOFF", "EXITED", "FATAL", "STOPPED")
ASR_LOADING = "loading model"


@dataclass(frozen=True)
class Verdict:
    done: bool               # stop waiting
    ok: bool = False
    reason: str = ""         # why not ok: one line
    warnings: tuple[str, ...] = ()


class StartupWatch:
    """Judges start-up from supervisord's program states (name → (state, pid)) and heartbeats."""

    def __init__(self, programs: tuple[str, ...], last_log_line=lambda program: ""):
        self.programs = programs
        self.last_log_line = last_log_line
        self.first_pid: dict[str, int] = {}
        self.beats: dict[str, schemas.Heartbeat] = {}

    def heard(self, heartbeat: schemas.Heartbeat) -> None:
        if heartbeat.stage in self.programs:
            self.beats[heartbeat.stage] = heartbeat

    def judge(self, states: dict[str, tuple[str, int]]) -> Verdict:
        for program in self.programs:
            state, pid = states.get(program, ("", 0))
            if pid and self.first_pid.setdefault(program, pid) != pid or state in GAVE_UP:
                return Verdict(True, reason=f"{program} exited ({state or 'restarted'}): "
                                            f"{self.last_log_line(program) or 'no output'}")
        asr = self.beats.get("asr")
        if asr is not None and not asr.ok and asr.status not in (ASR_LOADING, PLACEHOLDER):
            return Verdict(True, reason=f"asr: {asr.status}")
        if all(self._up(program) for program in self.programs):
            return Verdict(True, ok=True, warnings=self._warnings())
        return Verdict(False)

    def _up(self, program: str) -> bool:
        beat = self.beats.get(program)
        return beat is not None and (beat.ok or program == "capture" or beat.status == PLACEHOLDER)

    def _warnings(self) -> tuple[str, ...]:
        return tuple(f"{program}: {beat.status}" for program, beat in self.beats.items() if not beat.ok)

    def timeout_reason(self, timeout: float) -> str:
        waiting = [f"{p} ({'no heartbeat' if p not in self.beats else self.beats[p].status})"
                   for p in self.programs if not self._up(p)]
        return f"not healthy after {timeout:g} s: {', '.join(waiting)}"


def last_line(path: Path) -> str:
    """The last non-empty line of a log (its tail only: logs may be large)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))
            lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def wait_healthy(cfg, watch: StartupWatch, states, timeout: float) -> Verdict:
    """Listen on health/ and poll `states()` until `watch` decides or `timeout` passes."""
    import zmq
    from bus import sockets

    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, cfg.bus, [b"health/"])
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if sub.poll(int(min(POLL_S, left) * 1000) + 1):
                for msg in sockets.received(sub, 1000, lambda exc: None):  # a bad heartbeat is no verdict
                    if isinstance(msg, schemas.Heartbeat):
                        watch.heard(msg)
            verdict = watch.judge(states())
            if verdict.done:
                return verdict
        return Verdict(True, reason=watch.timeout_reason(timeout))
    finally:
        sub.close(linger=0)
        ctx.term()
