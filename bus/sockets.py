"""Socket helpers: every voxbus socket is made here, from config, with explicit limits.

Named by zguide pattern: publishers connect PUB to the bus proxy's XSUB side,
subscribers connect SUB to its XPUB side; work goes PUSH → PULL and is never
dropped (PUSH blocks at its high-water mark instead).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable

import zmq

from bus import curve, schemas
from config.schema import BusConfig

SUBSCRIPTION_POLL_MS = 50
SUBSCRIPTION_GRACE_MS = 100  # after the first matching subscription, for the same subscriber's other prefixes


def _ensure_ipc_dir(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)


def make_socket(ctx: zmq.Context, kind: int, endpoint: str, cfg: BusConfig, *, bind: bool,
                hwm: int | None = None, immediate: bool = False) -> zmq.Socket:
    """A socket with linger, reconnect back-off and both high-water marks set explicitly.

    `immediate` queues messages only to completed connections, so a PUSH to a peer
    that is not there is refused at once instead of waiting in a pipe.
    """
    sock = ctx.socket(kind)
    if immediate:
        sock.setsockopt(zmq.IMMEDIATE, 1)
    limit = hwm if hwm is not None else cfg.pub_hwm
    sock.setsockopt(zmq.SNDHWM, limit)
    sock.setsockopt(zmq.RCVHWM, limit)
    sock.setsockopt(zmq.LINGER, cfg.linger_ms)
    sock.setsockopt(zmq.RECONNECT_IVL, cfg.reconnect_ivl_ms)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, cfg.reconnect_ivl_max_ms)
    try:
        curve.secure(sock, endpoint, cfg, bind=bind)
    except OSError:
        sock.close(linger=0)
        raise
    _attach(sock, endpoint, bind)
    return sock


def _attach(sock: zmq.Socket, endpoint: str, bind: bool) -> None:
    try:
        if bind:
            _ensure_ipc_dir(endpoint)
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise OSError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from None


def bind_remote(sock: zmq.Socket, endpoint: str, cfg: BusConfig) -> None:
    """A second, tcp bind of a bound socket, for peers on other hosts: CURVE unless bus.plain_tcp.
    libzmq takes a bind's security options when it binds, so the first (ipc) bind stays as it was."""
    if not endpoint:
        return
    curve.secure(sock, endpoint, cfg, bind=True)
    _attach(sock, endpoint, bind=True)


def publisher(ctx: zmq.Context, cfg: BusConfig) -> zmq.Socket:
    """PUB connected to the bus proxy's XSUB endpoint."""
    return make_socket(ctx, zmq.PUB, cfg.publish, cfg, bind=False, hwm=cfg.pub_hwm)


def subscriber(ctx: zmq.Context, cfg: BusConfig, prefixes: Iterable[str | bytes] = (b"",)) -> zmq.Socket:
    """SUB connected to the bus proxy's XPUB endpoint, subscribed to topic prefixes."""
    sock = make_socket(ctx, zmq.SUB, cfg.subscribe, cfg, bind=False, hwm=cfg.sub_hwm)
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix.encode() if isinstance(prefix, str) else prefix)
    return sock


def handshake_publisher(ctx: zmq.Context, cfg: BusConfig) -> zmq.Socket:
    """A publisher that can see subscriptions: an XPUB connected to the bus proxy's XSUB endpoint.

    The proxy hands every new publisher the subscriptions it holds, so `wait_for_subscription`
    tells when a subscriber would get a message: the zguide's slow joiner, cured without a sleep.
    Sends like a PUB (it drops at its high-water mark)."""
    return make_socket(ctx, zmq.XPUB, cfg.publish, cfg, bind=False, hwm=cfg.pub_hwm)


def wait_for_subscription(xpub: zmq.Socket, topic: bytes, timeout_s: float, stopping=None) -> bool:
    """Read the subscriptions the bus forwards until one covers `topic` (True) or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not (stopping is not None and stopping.is_set()) and (left := deadline - time.monotonic()) > 0:
        if xpub.poll(min(SUBSCRIPTION_POLL_MS, int(left * 1000) + 1)):
            frame = xpub.recv()
            if frame[:1] == b"\x01" and topic.startswith(frame[1:]):
                # A subscriber's other prefixes follow within moments; give them a grace period.
                while xpub.poll(SUBSCRIPTION_GRACE_MS):
                    xpub.recv()
                return True
    return False


def pusher(ctx: zmq.Context, endpoint: str, cfg: BusConfig, *, bind: bool,
           immediate: bool = False, hwm: int | None = None) -> zmq.Socket:
    """PUSH: blocks rather than drops at its high-water mark (bus.push_hwm unless given)."""
    return make_socket(ctx, zmq.PUSH, endpoint, cfg, bind=bind, hwm=hwm or cfg.push_hwm, immediate=immediate)


def puller(ctx: zmq.Context, endpoint: str, cfg: BusConfig, *, bind: bool) -> zmq.Socket:
    return make_socket(ctx, zmq.PULL, endpoint, cfg, bind=bind, hwm=cfg.push_hwm)


def router(ctx: zmq.Context, endpoint: str, cfg: BusConfig, hwm: int) -> zmq.Socket:
    """ROUTER bound at a broker's endpoint (vad.segments): addresses each DEALER peer by identity.
    A message to a peer that is gone is dropped by ZeroMQ; the broker's ledger covers that."""
    return make_socket(ctx, zmq.ROUTER, endpoint, cfg, bind=True, hwm=hwm)


def dealer(ctx: zmq.Context, endpoint: str, cfg: BusConfig, hwm: int) -> zmq.Socket:
    """DEALER connected to a broker; LINGER 0 on close, so a reconnect never waits on a dead peer."""
    sock = make_socket(ctx, zmq.DEALER, endpoint, cfg, bind=False, hwm=hwm)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


def received(sub: zmq.Socket, limit: int, on_bad: Callable[[schemas.SchemaError], None]):
    """The PUB messages waiting on `sub` now, decoded, at most `limit`; each malformed one goes to
    `on_bad` (count it, log it) instead of stopping the others."""
    for _ in range(limit):
        try:
            frames = sub.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            msg = schemas.unpack(frames)
        except schemas.SchemaError as exc:
            on_bad(exc)
            continue
        yield msg


def publish(sock: zmq.Socket, msg: schemas.Message) -> None:
    sock.send_multipart(schemas.pack(msg), copy=False)


def push(sock: zmq.Socket, msg: schemas.Message, timeout_ms: int | None = None) -> bool:
    """Send work; with a timeout, return False instead of blocking forever on a full pipe."""
    if timeout_ms is not None and not sock.poll(timeout_ms, zmq.POLLOUT):
        return False
    sock.send(schemas.encode(msg), copy=False)
    return True


def remove_ipc_file(endpoint: str) -> None:
    """A bound ipc:// endpoint leaves its file behind; the binder removes it on exit."""
    if endpoint.startswith("ipc://"):
        try:
            os.unlink(endpoint[len("ipc://"):])
        except FileNotFoundError:
            pass
