"""Watch, record and replay bus traffic: `voxbus tap`, `voxbus record`, `voxbus replay`.

A recording is a plain msgpack stream of maps `{t_ns, topic, payload}` (ARCHITECTURE.md §8):
`topic` and `payload` are the two PUB frames exactly as they crossed the bus, and
`t_ns` is when the recorder received them, in epoch nanoseconds taken from a
monotonic clock anchored once at start (so an NTP step mid-recording cannot
bend the pacing). Replay republishes topic and payload unchanged.

Slow joiner: replay connects an XPUB (not a PUB) to the bus's XSUB side. The bus
hands every new publisher the current subscriptions, so the XPUB *sees* when a
subscriber for the recording's first topic is reachable (then allows 100 ms for that
subscriber's other prefixes), and sends only then
(or after --settle seconds if nobody subscribes). XPUB_NODROP makes replay wait
at the high-water mark instead of dropping when replaying as fast as possible.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import msgpack

from bus import schemas

POLL_MS = 100
FLUSH_EVERY_S = 1.0


class RecordingError(ValueError):
    """A recording file that is not a msgpack stream of {t_ns, topic, payload}."""


@dataclass(frozen=True)
class Record:
    t_ns: int
    topic: bytes
    payload: bytes


# ---- file format: pure functions and classes ---------------------------------

class RecordingWriter:
    """Appends records to an open binary file."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.packer = msgpack.Packer(use_bin_type=True)
        self.count = 0

    def write(self, record: Record) -> None:
        self.out.write(self.packer.pack({"t_ns": record.t_ns, "topic": record.topic, "payload": record.payload}))
        self.count += 1

    def flush(self) -> None:
        self.out.flush()


def read_records(source: BinaryIO) -> Iterator[Record]:
    """Yield every record; raise RecordingError naming the first bad one.

    A file cut short mid-record (a recorder killed with SIGKILL) raises after the
    complete records have been yielded, so callers can keep what was good.
    """
    unpacker = msgpack.Unpacker(source, raw=False, strict_map_key=True, max_buffer_size=256 << 20)
    index = -1
    try:
        for index, item in enumerate(unpacker):
            yield _as_record(item, index + 1)
    except RecordingError:
        raise
    except (ValueError, TypeError) as exc:   # msgpack's unpack errors are ValueErrors
        raise RecordingError(f"record {index + 2}: not msgpack: {exc}") from None
    if unpacker.tell() != _size(source):
        raise RecordingError(f"truncated after record {index + 1}: the file ends mid-record")


def _size(source: BinaryIO) -> int:
    position = source.tell()
    source.seek(0, 2)
    size = source.tell()
    source.seek(position)
    return size


def _as_record(item, number: int) -> Record:
    if not isinstance(item, dict):
        raise RecordingError(f"record {number}: a {type(item).__name__}, expected a map {{t_ns, topic, payload}}")
    t_ns, topic, payload = item.get("t_ns"), item.get("topic"), item.get("payload")
    if not isinstance(t_ns, int) or isinstance(t_ns, bool):
        raise RecordingError(f"record {number}: t_ns = {t_ns!r:.40}: expected an integer")
    if not isinstance(topic, bytes) or not isinstance(payload, bytes):
        raise RecordingError(f"record {number}: topic and payload must be bytes")
    return Record(t_ns, topic, payload)


class RecordClock:
    """Epoch nanoseconds that never go backwards: wall clock once, monotonic after."""

    def __init__(self):
        self.wall0 = time.time_ns()
        self.mono0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.wall0 + time.monotonic_ns() - self.mono0


class ReplaySchedule:
    """When each record is due: recorded gaps divided by `speed`; speed 0 = at once."""

    def __init__(self, speed: float, start: float):
        if speed < 0:
            raise ValueError(f"speed {speed}: expected 0 (as fast as possible) or a positive factor")
        self.speed = speed
        self.start = start          # time.monotonic() of the first record
        self.first_ns: int | None = None

    def due(self, t_ns: int) -> float:
        if self.first_ns is None:
            self.first_ns = t_ns
        if self.speed == 0:
            return self.start
        return self.start + (t_ns - self.first_ns) / 1e9 / self.speed


def describe(frames: list[bytes]) -> str:
    """One JSON line for tap: the decoded message with bytes shown as "<N bytes>"."""
    try:
        msg = schemas.unpack(frames)
    except schemas.SchemaError as exc:
        topic = frames[0].decode(errors="replace") if frames else ""
        return json.dumps({"topic": topic, "error": str(exc)}, ensure_ascii=False)
    body = {"topic": frames[0].decode()}
    body.update(msg.payload())
    return json.dumps(body, default=_show_bytes, ensure_ascii=False)


def _show_bytes(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    raise TypeError(f"cannot show {type(value).__name__}")


# ---- the commands ----------------------------------------------------------------

def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="TOML file over the defaults")
    return parser


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping


def _listen(cfg, prefixes: list[str], stopping: threading.Event, limit: int, seconds: float | None):
    """Yield [topic, payload] frames from the bus until stopped, `limit` messages or `seconds`."""
    import zmq
    from bus import sockets

    ctx = zmq.Context()
    sub = sockets.subscriber(ctx, cfg.bus, prefixes)
    deadline = None if seconds is None else time.monotonic() + seconds
    seen = 0
    try:
        while not stopping.is_set() and (limit == 0 or seen < limit):
            if deadline is not None and time.monotonic() >= deadline:
                return
            if sub.poll(POLL_MS):
                seen += 1
                yield sub.recv_multipart()
        while stopping.is_set() and (limit == 0 or seen < limit):  # stopped: what already came is kept
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            seen += 1
            yield frames
    finally:
        sub.close(linger=0)
        ctx.term()


def tap_main(argv: list[str]) -> int:
    from bus.stage import load_or_exit

    parser = _parser("voxbus tap", "print bus messages live, one JSON line each")
    parser.add_argument("prefix", nargs="+", help="topic prefix, e.g. audio/mic1/ or text/ ('' = all)")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0 = never)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error(f"--count {args.count}: expected 0 or more")
    cfg = load_or_exit(args.config, "voxbus tap")
    try:
        for frames in _listen(cfg, args.prefix, _stop_on_signals(), args.count, None):
            sys.stdout.write(describe(frames) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:   # `voxbus tap text/ | head`: the reader left, which is fine
        sys.stderr.close()
    return 0


def record_main(argv: list[str]) -> int:
    from bus.stage import load_or_exit

    parser = _parser("voxbus record", "record bus traffic to a file until SIGINT/SIGTERM")
    parser.add_argument("prefix", nargs="+", help="topic prefix to record ('' = all)")
    parser.add_argument("-o", "--output", required=True, help="recording file to write")
    parser.add_argument("--duration", type=float, help="stop after S seconds")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0 = no limit)")
    args = parser.parse_args(argv)
    if args.count < 0 or (args.duration is not None and args.duration <= 0):
        parser.error("--count must be ≥ 0 and --duration > 0")
    cfg = load_or_exit(args.config, "voxbus record")
    try:
        out = open(args.output, "wb")
    except OSError as exc:
        sys.stderr.write(f"voxbus record: cannot write {args.output}: {exc.strerror or exc}\n")
        return 1
    writer, clock, last_flush = RecordingWriter(out), RecordClock(), time.monotonic()
    with out:
        for topic, *rest in _listen(cfg, args.prefix, _stop_on_signals(), args.count, args.duration):
            if len(rest) != 1:
                sys.stderr.write(f"voxbus record: skipped a {len(rest) + 1}-frame message on {topic!r}\n")
                continue
            writer.write(Record(clock.now_ns(), topic, rest[0]))
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                writer.flush()
                last_flush = time.monotonic()
        writer.flush()
    sys.stderr.write(f"voxbus record: {writer.count} messages written to {args.output}\n")
    return 0


def replay_main(argv: list[str]) -> int:
    from bus.stage import load_or_exit

    parser = _parser("voxbus replay", "publish a recording back onto the bus")
    parser.add_argument("file", help="recording made by voxbus record")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="1 = recorded pace (default), N = N times faster, 0 = as fast as possible")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait for a subscriber of the first topic (default 2)")
    args = parser.parse_args(argv)
    if args.speed < 0 or args.settle < 0:
        parser.error("--speed and --settle must be ≥ 0")
    cfg = load_or_exit(args.config, "voxbus replay")
    try:
        source = open(args.file, "rb")
    except OSError as exc:
        sys.stderr.write(f"voxbus replay: cannot read {args.file}: {exc.strerror or exc}\n")
        return 1
    with source:
        try:
            sent = _replay(cfg, read_records(source), args.speed, args.settle, _stop_on_signals())
        except RecordingError as exc:
            sys.stderr.write(f"voxbus replay: {args.file}: {exc}\n")
            return 1
    sys.stderr.write(f"voxbus replay: {sent} messages published from {args.file}\n")
    return 0


def _replay(cfg, records: Iterator[Record], speed: float, settle: float, stopping: threading.Event) -> int:
    import zmq
    from bus import sockets

    ctx = zmq.Context()
    pub = sockets.make_socket(ctx, zmq.XPUB, cfg.bus.publish, cfg.bus, bind=False, hwm=cfg.bus.pub_hwm)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    sent, schedule = 0, None
    try:
        for record in records:
            if schedule is None:
                _wait_for_subscriber(pub, record.topic, settle, stopping)
                schedule = ReplaySchedule(speed, time.monotonic())
            if not _sleep_until(schedule.due(record.t_ns), stopping) or not _send(pub, record, stopping):
                break
            sent += 1
    finally:
        pub.close(linger=max(cfg.bus.linger_ms, 2000))
        ctx.term()
    return sent


def _wait_for_subscriber(pub, topic: bytes, settle: float, stopping: threading.Event) -> bool:
    """Read subscriptions the bus forwards until one covers `topic` or `settle` runs out."""
    from bus import sockets

    if sockets.wait_for_subscription(pub, topic, settle, stopping):
        return True
    sys.stderr.write(f"voxbus replay: no subscriber for {topic!r} after {settle:g} s; replaying anyway\n")
    return False


def _sleep_until(when: float, stopping: threading.Event) -> bool:
    left = when - time.monotonic()
    return not stopping.wait(left) if left > 0 else not stopping.is_set()


def _send(pub, record: Record, stopping: threading.Event) -> bool:
    """Send, waiting (never dropping) while a subscriber's queue is full."""
    import zmq

    while not stopping.is_set():
        try:
            pub.send_multipart([record.topic, record.payload], zmq.NOBLOCK)
            return True
        except zmq.Again:
            stopping.wait(0.001)   # XPUB always polls writable, so back off briefly instead
    return False
