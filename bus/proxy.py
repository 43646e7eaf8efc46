"""The bus: an XSUB/XPUB forwarder (zguide "espresso" pattern) run as its own process.

Publishers connect PUB to the XSUB side (`bus.publish`), subscribers connect SUB
to the XPUB side (`bus.subscribe`). We forward in a poll loop rather than with
`zmq.proxy`, because `zmq.proxy` blocks in C: a poll loop lets the bus count what
it forwards, publish its own heartbeat on health/bus/, and stop on SIGTERM within
one poll timeout. Messages are forwarded as opaque frames, never decoded.
"""
from __future__ import annotations

import logging
import socket
import sys

import zmq

from bus import schemas, sockets
from bus.stage import StageRuntime, run_stage

log = logging.getLogger(__name__)

POLL_MS = 100          # SIGTERM is noticed within this
BATCH = 1000           # messages drained per wake-up before looking at the other side again
FAMILIES = tuple(family.encode() for family in schemas.TOPIC_FAMILIES)


class ForwardStats:
    """What the bus has forwarded, for its heartbeat. Knows nothing of sockets."""

    def __init__(self):
        self.forwarded = 0
        self.bytes = 0
        self.not_two_frames = 0   # forwarded anyway: the bus is transparent, but it is worth a count
        self.subscribes = 0
        self.unsubscribes = 0
        self.by_family: dict[str, int] = {f.decode(): 0 for f in FAMILIES}
        self.by_family["other"] = 0

    def message(self, frames: list[bytes]) -> None:
        self.forwarded += 1
        self.bytes += sum(len(f) for f in frames)
        if len(frames) != 2:
            self.not_two_frames += 1
        family = frames[0].split(b"/", 1)[0] if frames else b""
        key = family.decode() if family in FAMILIES else "other"
        self.by_family[key] += 1

    def subscription(self, frame: bytes) -> None:
        """XPUB delivers b"\\x01prefix" for subscribe and b"\\x00prefix" for unsubscribe."""
        if frame[:1] == b"\x01":
            self.subscribes += 1
        elif frame[:1] == b"\x00":
            self.unsubscribes += 1

    def counters(self) -> dict:
        out = {"forwarded": self.forwarded, "bytes": self.bytes, "subscribes": self.subscribes,
               "unsubscribes": self.unsubscribes, "not_two_frames": self.not_two_frames}
        out.update({f"forwarded_{k}": v for k, v in self.by_family.items()})
        return out


def ipc_in_use(endpoint: str) -> bool:
    """True if a live process listens on this ipc:// endpoint.

    libzmq unlinks an existing socket file when it binds, so a second bus would
    silently steal the endpoint from the first; we refuse instead. A file nobody
    listens on is stale and may be replaced.
    """
    if not endpoint.startswith("ipc://"):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(endpoint[len("ipc://"):])
        return True
    except OSError:
        return False
    finally:
        probe.close()


def forward_messages(frontend: zmq.Socket, backend: zmq.Socket, stats: ForwardStats) -> None:
    """Drain up to BATCH published messages from XSUB into XPUB without blocking."""
    for _ in range(BATCH):
        try:
            frames = frontend.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        # XPUB never blocks: at a subscriber's high-water mark ZeroMQ drops for that
        # subscriber only, and audio receivers count the gap from sequence numbers.
        backend.send_multipart(frames)
        stats.message(frames)


def forward_subscriptions(frontend: zmq.Socket, backend: zmq.Socket, stats: ForwardStats) -> None:
    """Pass (un)subscriptions upstream so publishers filter at the source."""
    for _ in range(BATCH):
        try:
            frame = backend.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        frontend.send(frame)
        stats.subscription(frame)


def bind_both(runtime: StageRuntime) -> tuple[zmq.Socket, zmq.Socket]:
    cfg = runtime.config.bus
    for endpoint in (cfg.publish, cfg.subscribe):
        if ipc_in_use(endpoint):
            raise OSError(f"another bus is already bound at {endpoint}")
    frontend = sockets.make_socket(runtime.ctx, zmq.XSUB, cfg.publish, cfg, bind=True, hwm=cfg.sub_hwm)
    try:
        sockets.bind_remote(frontend, cfg.remote_publish, cfg)  # remote asr workers publish here
        backend = sockets.make_socket(runtime.ctx, zmq.XPUB, cfg.subscribe, cfg, bind=True, hwm=cfg.pub_hwm)
    except OSError:
        frontend.close(linger=0)
        sockets.remove_ipc_file(cfg.publish)
        raise
    return frontend, backend


def serve(runtime: StageRuntime) -> None:
    """The bus process loop: forward, heartbeat, stop on SIGTERM, remove the ipc files."""
    cfg = runtime.config.bus
    try:
        frontend, backend = bind_both(runtime)
    except OSError as exc:
        log.error("cannot start the bus: %s", exc)
        raise SystemExit(1) from None
    stats = ForwardStats()
    # The bus publishes its own heartbeat straight out of the XPUB side.
    heartbeat = runtime.heartbeater(backend, lambda: (True, "ok", stats.counters()))
    poller = zmq.Poller()
    poller.register(frontend, zmq.POLLIN)
    poller.register(backend, zmq.POLLIN)
    log.info("forwarding", extra={"publish": cfg.publish, "subscribe": cfg.subscribe})
    try:
        while not runtime.stopping.is_set():
            events = dict(poller.poll(POLL_MS))
            if frontend in events:
                forward_messages(frontend, backend, stats)
            if backend in events:
                forward_subscriptions(frontend, backend, stats)
            heartbeat.tick()
    finally:
        frontend.close(linger=0)
        backend.close(linger=cfg.linger_ms)
        sockets.remove_ipc_file(cfg.publish)
        sockets.remove_ipc_file(cfg.subscribe)
        log.info("bus closed", extra=stats.counters())


def main(argv: list[str] | None = None) -> int:
    return run_stage("bus", serve, sys.argv[1:] if argv is None else argv)
