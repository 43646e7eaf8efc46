"""What every stage's `main` shares: config, JSON logs, core pinning, a zmq context, SIGTERM.

A stage's `__main__` calls `run_stage(name, loop, argv)`; `loop(runtime)` owns its
sockets and returns when `runtime.stopping` is set.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

import zmq

from bus.health import Heartbeater
from bus.log import setup_logging
from bus import curve, sockets
from config import Config, ConfigError, load_config
from config.cores import pin

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage that cannot run (e.g. a file it needs is unusable): logged as one line, exit 1."""


@dataclass
class StageRuntime:
    name: str
    config: Config
    ctx: zmq.Context
    stopping: threading.Event = field(default_factory=threading.Event)
    cores: tuple[int, ...] = ()

    def heartbeater(self, pub: zmq.Socket, state: Callable[[], tuple[bool, str, dict]],
                    instance: str = "", model=None) -> Heartbeater:
        return Heartbeater(pub, self.name, state, self.config.bus.heartbeat_interval_s, instance, model)

    def publisher(self) -> zmq.Socket:
        return sockets.publisher(self.ctx, self.config.bus)


def parse_stage_args(name: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"voxbus-{name}", description=f"the voxbus {name} stage")
    parser.add_argument("--config", help="TOML file over the defaults (else $VOXBUS_CONFIG, /etc/voxbus/voxbus.toml)")
    return parser.parse_args(argv)


def load_or_exit(path: str | None, prog: str) -> Config:
    """Load config or print one line per problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            sys.stderr.write(f"{prog}: {line}\n")
        raise SystemExit(2) from None


def run_stage(name: str, loop: Callable[[StageRuntime], None], argv: list[str] | None = None) -> int:
    args = parse_stage_args(name, argv)
    cfg = load_or_exit(args.config, f"voxbus-{name}")
    setup_logging(name, cfg.run.log_level)
    runtime = StageRuntime(name, cfg, zmq.Context())
    runtime.cores = pin(cfg.cores, name)

    def on_signal(signum, _frame):
        log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
        runtime.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting", extra={"cores": list(runtime.cores), "config_file": cfg.source_file or None})
    try:
        loop(runtime)
    except StageError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    except zmq.ContextTerminated:
        log.info("context terminated")
    finally:
        curve.Gatekeepers.stop_all()  # its ZAP socket is in this context
        runtime.ctx.destroy(linger=cfg.bus.linger_ms)
    log.info("stopped")
    return 0
