"""The gateway app on a real uvicorn server in a thread, configured as `python -m gateway` configures it
(gateway.server.uvicorn_config: the header deadline, frame limits), for tests that need real sockets:
raw clients that stall, trickle or never read. In-process, so tests can look at the app's counters."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import uvicorn

from gateway.app import build_app
from gateway.server import bind_listener, uvicorn_config


class LiveGateway:
    def __init__(self, cfg):
        self.cfg = cfg
        self.app = build_app(cfg)
        self.listener = bind_listener("127.0.0.1", 0)
        self.port = self.listener.getsockname()[1]
        self.base = f"127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(SimpleNamespace(config=cfg), self.app))
        self.thread = threading.Thread(target=self._run, daemon=True, name="live-gateway")
        self.state: dict = {}

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.listener]))

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live gateway did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.listener.close()

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def counters(self) -> dict:
        """The bridge's counters and the slots, from the app's lifespan state (uvicorn keeps it)."""
        state = self.server.lifespan.state if hasattr(self.server, "lifespan") else {}
        bridge, jobs, sessions = state["bridge"], state["jobs"], state["sessions"]
        return {**bridge.counters, "jobs_active": jobs.active, "sessions_active": sessions.active}


@contextmanager
def live_gateway(cfg):
    gateway = LiveGateway(cfg)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or `timeout`): (bytes, seconds it took)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, socket.timeout):
        chunks.append(b"<still open>")
    except ConnectionResetError:
        chunks.append(b"<reset>")
    return b"".join(chunks), time.monotonic() - started
