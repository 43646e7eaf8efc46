"""`voxbus status`: listen to health/ for a while and print each stage's last heartbeat.

`HealthTable` is the reusable part (the gateway's /health uses the same logic):
it keeps the last heartbeat per (stage, instance) and says which required stages
have not been heard from recently. Importing this module has no side effects.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass

from bus import schemas
from config.cores import STAGES

USAGE_EXIT = 2


@dataclass(frozen=True)
class HealthRow:
    heartbeat: schemas.Heartbeat
    received: float   # the receiver's clock (time.monotonic()), not the sender's


class HealthTable:
    """The last heartbeat of every (stage, instance); pure, no sockets."""

    def __init__(self, forget_after_s: float = 300.0):
        self._rows: dict[tuple[str, str], HealthRow] = {}
        # Every restart of a stage is a new instance; a long-running reader forgets old ones.
        self.forget_after_s = forget_after_s

    def see(self, heartbeat: schemas.Heartbeat, now: float) -> None:
        self._rows[(heartbeat.stage, heartbeat.instance)] = HealthRow(heartbeat, now)
        stale = [key for key, row in self._rows.items() if now - row.received > self.forget_after_s]
        for key in stale:
            del self._rows[key]

    def rows(self) -> list[HealthRow]:
        """Sorted by stage (in pipeline order), then instance."""
        order = {name: i for i, name in enumerate(STAGES)}
        return sorted(self._rows.values(),
                      key=lambda r: (order.get(r.heartbeat.stage, len(order)), r.heartbeat.stage,
                                     r.heartbeat.instance))

    def fresh(self, now: float, timeout: float) -> list[HealthRow]:
        return [row for row in self.rows() if now - row.received <= timeout]

    def missing(self, required, now: float, timeout: float) -> list[str]:
        """Required stages with no instance heard from within `timeout` seconds."""
        alive = {row.heartbeat.stage for row in self.fresh(now, timeout)}
        return [stage for stage in required if stage not in alive]

    def not_ok(self, now: float, timeout: float) -> list[HealthRow]:
        return [row for row in self.fresh(now, timeout) if not row.heartbeat.ok]


# ---- rendering -------------------------------------------------------------

COLUMNS = ("stage", "instance", "pid", "host", "uptime", "ok", "status", "counters")


def format_uptime(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_counters(counters: dict, prefix: str = "") -> str:
    """Flat `key=value` pairs; nested maps become `outer.inner=value`."""
    parts = []
    for key, value in counters.items():
        if isinstance(value, dict):
            parts.append(format_counters(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}={value}")
    return " ".join(p for p in parts if p)


def row_cells(row: HealthRow) -> tuple[str, ...]:
    hb = row.heartbeat
    return (hb.stage, hb.instance, str(hb.pid), hb.host, format_uptime(hb.uptime_s),
            "yes" if hb.ok else "NO", hb.status, format_counters(hb.counters))


def render_table(rows: list[HealthRow], missing: list[str]) -> str:
    cells = [COLUMNS] + [row_cells(r) for r in rows]
    cells += [(stage, "-", "-", "-", "-", "MISSING", "no heartbeat", "") for stage in missing]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1] for line in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_json(rows: list[HealthRow], missing: list[str]) -> str:
    stages = [_heartbeat_dict(r) for r in rows]
    return json.dumps({"stages": stages, "missing": missing}, indent=2) + "\n"


def _heartbeat_dict(row: HealthRow) -> dict:
    hb = row.heartbeat
    return {"stage": hb.stage, "instance": hb.instance, "pid": hb.pid, "host": hb.host,
            "uptime_s": hb.uptime_s, "ok": hb.ok, "status": hb.status, "counters": hb.counters}


# ---- the command -------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voxbus status",
                                     description="print each stage's heartbeat; exit 1 if a stage is missing")
    parser.add_argument("--config", help="TOML file over the defaults")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to listen (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 600:
        parser.error(f"--timeout {args.timeout}: expected a number of seconds from 0 to 600")
    return args


def collect(cfg, seconds: float, stopping: threading.Event) -> HealthTable:
    """Listen on health/ for `seconds`; malformed heartbeats are counted on stderr, not fatal."""
    import zmq
    from bus import sockets

    table, bad = HealthTable(), 0
    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, cfg.bus, [b"health/"])
    deadline = time.monotonic() + seconds
    try:
        while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            if not sub.poll(min(100, int(left * 1000) + 1)):
                continue
            try:
                msg = schemas.unpack(sub.recv_multipart())
            except schemas.SchemaError as exc:
                bad += 1
                sys.stderr.write(f"voxbus status: ignored a malformed heartbeat: {exc}\n")
                continue
            if isinstance(msg, schemas.Heartbeat):
                table.see(msg, time.monotonic())
    finally:
        sub.close(linger=0)
        ctx.term()
    return table


def main(argv: list[str]) -> int:
    from bus.stage import load_or_exit

    args = parse_args(argv)
    cfg = load_or_exit(args.config, "voxbus status")
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    table = collect(cfg, args.timeout, stopping)
    now = time.monotonic()
    rows = table.fresh(now, args.timeout + 1)
    missing = table.missing(STAGES, now, args.timeout + 1)
    sys.stdout.write(render_json(rows, missing) if args.json else render_table(rows, missing))
    if missing:
        sys.stderr.write(f"voxbus status: missing: {', '.join(missing)} (no heartbeat in {args.timeout:g} s)\n")
        return 1
    return 0
