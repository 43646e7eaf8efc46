"""CURVE on tcp endpoints: ZeroMQ's public-key encryption and authentication (issue 18).

Every socket that binds or connects a tcp:// endpoint is secured here unless `bus.plain_tcp`
(ipc:// stays as it is: the run dir's permissions guard it). Keys live in `bus.curve_dir`
(`voxbus keys curve`, bus/curve_keys.py), in pyzmq's certificate files:

    server.key, server.key_secret   the stack's keypair (the side that binds)
    allowed/NAME.key                the public keys of workers allowed in (the allow-list)
    worker.key, worker.key_secret   on a worker's host: its own keypair, beside server.key

A binding process runs one ZAP handler (pyzmq's ThreadAuthenticator) that asks `Allowlist`
for each CURVE handshake; the list is read again for every handshake, so a key added or
removed takes effect for the next connection without a restart. A refused key is logged.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

from config.schema import BusConfig

log = logging.getLogger(__name__)
SERVER = "server"
WORKER = "worker"
ALLOWED = "allowed"
DOMAIN = "voxbus"


def keys_dir(cfg: BusConfig) -> Path:
    """bus.curve_dir, else /etc/voxbus/curve as root, else $XDG_CONFIG_HOME/voxbus/curve."""
    if cfg.curve_dir:
        return Path(cfg.curve_dir).expanduser()
    if os.geteuid() == 0:
        return Path("/etc/voxbus/curve")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "voxbus" / "curve"


def is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def _keypair(directory: Path, name: str, endpoint: str) -> tuple[bytes, bytes]:
    path = directory / f"{name}.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise OSError(f"{endpoint}: no CURVE keypair {path} ({exc}); make keys with `voxbus keys curve` "
                      f"or set bus.plain_tcp = true") from None
    if secret is None:
        raise OSError(f"{endpoint}: {path} holds no secret key")
    return public, secret


def secure(sock: zmq.Socket, endpoint: str, cfg: BusConfig, *, bind: bool) -> None:
    """Before bind/connect: CURVE server (bind) or client (connect) on a tcp endpoint; else nothing."""
    if not is_tcp(endpoint) or cfg.plain_tcp:
        return
    directory = keys_dir(cfg)
    if bind:
        public, secret = _keypair(directory, SERVER, endpoint)
        Gatekeepers.start(sock.context, directory)
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.zap_domain = DOMAIN.encode()
        sock.curve_server = True
    else:
        public, secret = _keypair(directory, WORKER, endpoint)
        server_public, _ = _server_public(directory, endpoint)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = secret, public, server_public


def _server_public(directory: Path, endpoint: str) -> tuple[bytes, None]:
    path = directory / f"{SERVER}.key"
    try:
        return zmq.auth.load_certificate(path)[0], None
    except (OSError, ValueError) as exc:
        raise OSError(f"{endpoint}: no server public key {path} ({exc}); copy it from the stack's "
                      f"curve dir (`voxbus keys curve worker` puts it beside the worker's keys)") from None


class HandshakeWatch:
    """The connecting side's view: a socket monitor that logs when the stack refuses this key
    (otherwise a refused worker would only wait, silently). `check()` from the owner's loop."""
    EVENTS = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED

    def __init__(self, sock: zmq.Socket, endpoint: str, refused: int = 0):
        self.endpoint = endpoint
        self.monitor = sock.get_monitor_socket(self.EVENTS)
        self.refused = refused  # carried over from the socket before (a reconnect makes a new one)
        self.accepted = 0

    def check(self) -> None:
        while self.monitor.poll(0):
            event = parse_monitor_message(self.monitor.recv_multipart())
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.accepted += 1
                continue
            self.refused += 1
            if self.refused in (1, 10) or self.refused % 100 == 0:  # it retries every few seconds: not every time
                log.error("the stack refused this worker's CURVE key: is it on the allow-list "
                          "(voxbus keys curve list)?", extra={"endpoint": self.endpoint, "refused": self.refused})

    def close(self, sock: zmq.Socket) -> None:
        sock.disable_monitor()
        self.monitor.close(linger=0)


def watch(sock: zmq.Socket, endpoint: str, cfg: BusConfig, refused: int = 0) -> HandshakeWatch | None:
    """A HandshakeWatch on a connecting CURVE socket, else None."""
    return HandshakeWatch(sock, endpoint, refused) if is_tcp(endpoint) and not cfg.plain_tcp else None


class Allowlist:
    """The public keys allowed in: every allowed/*.key, read again for each handshake."""

    def __init__(self, directory: Path):
        self.directory = directory / ALLOWED
        self.refused = 0

    def keys(self) -> dict[bytes, str]:
        found = {}
        for path in sorted(self.directory.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as exc:
                log.warning("unreadable CURVE public key skipped", extra={"path": str(path), "error": str(exc)})
                continue
            found[public] = path.stem
        return found

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP asks: may the client with this public key (z85) in? (zmq.auth's credentials provider)"""
        name = self.keys().get(key)
        if name is None:
            self.refused += 1
            log.warning("CURVE key refused: not in the allow-list", extra={
                "key": key.decode(), "allowed_dir": str(self.directory), "refused": self.refused})
            return False
        log.info("CURVE key allowed", extra={"worker_key": name})
        return True


class Gatekeepers:
    """One ZAP handler per context (a process binds tcp once or twice); stopped before the context ends."""
    _running: dict[int, ThreadAuthenticator] = {}
    _lock = threading.Lock()

    @classmethod
    def start(cls, ctx: zmq.Context, directory: Path) -> None:
        with cls._lock:
            if id(ctx) in cls._running:
                return
            auth = ThreadAuthenticator(ctx, log=logging.getLogger("zmq.auth"))
            auth.start()
            auth.configure_curve_callback(domain=DOMAIN, credentials_provider=Allowlist(directory))
            cls._running[id(ctx)] = auth

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            for auth in cls._running.values():
                auth.stop()
            cls._running.clear()
