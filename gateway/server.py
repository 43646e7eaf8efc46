"""The gateway process: config, core pinning and logging from bus.stage, then uvicorn until SIGTERM."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading

import uvicorn

from bus.stage import StageRuntime, run_stage
from gateway import access, request_ids
from gateway.app import build_app
from gateway.http_limits import header_deadline_protocol

log = logging.getLogger(__name__)

STOP_POLL_S = 0.1
GRACEFUL_SHUTDOWN_S = 5
WS_SIZE_HEADROOM = 4  # uvicorn refuses bigger frames outright; below that our own limit answers with a message


def uvicorn_config(runtime: StageRuntime, app) -> uvicorn.Config:
    gw = runtime.config.gateway
    return uvicorn.Config(
        app, host=gw.host, port=gw.port, loop="asyncio", lifespan="on",
        http=header_deadline_protocol(gw.header_timeout_s),
        log_config=None, access_log=False, server_header=False,
        ws_max_size=gw.ws_max_frame_bytes * WS_SIZE_HEADROOM, ws_ping_interval=gw.ws_ping_interval_s,
        ws_ping_timeout=gw.ws_ping_interval_s, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


def bind_listener(host: str, port: int, settings: str = "gateway.host / gateway.port") -> socket.socket:
    """Bind before uvicorn starts, so a taken port is one clear line and exit 1, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto is IPPROTO_TCP,
    # and without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"voxbus-gateway: cannot listen on {host}:{port}: {exc.strerror or exc} "
                         f"({settings})") from None
    return sock


async def _serve_until_stopped(server: uvicorn.Server, listener: socket.socket, stopping: threading.Event,
                               shutdown: threading.Event) -> None:
    # While serving, uvicorn's own SIGTERM handler sets should_exit; either way, tell the streams.
    async def watch() -> None:
        while not stopping.is_set() and not server.should_exit:
            await asyncio.sleep(STOP_POLL_S)
        server.should_exit = True
        shutdown.set()

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=[listener])
    finally:
        watcher.cancel()


def refuse_unsafe_binds(cfg) -> None:
    """A gateway others can reach needs keys (or auth.mode = "none"); Wyoming, which has none, an explicit yes."""
    problems = access.check_startup(cfg, os.environ)
    if problems:
        raise SystemExit(f"voxbus-gateway: {'; '.join(problems)}")


def serve(runtime: StageRuntime) -> None:
    gw, wy = runtime.config.gateway, runtime.config.wyoming
    refuse_unsafe_binds(runtime.config)
    request_ids.install_log_filter()
    listener = bind_listener(gw.host, gw.port)
    wyoming = bind_listener(wy.host, wy.port, "wyoming.host / wyoming.port, or wyoming.enabled = false") \
        if wy.enabled else None
    try:
        app = build_app(runtime.config, runtime.ctx, wyoming_listener=wyoming)
    except ValueError as exc:
        for sock in (listener, wyoming):
            if sock is not None:
                sock.close()
        raise SystemExit(f"voxbus-gateway: {exc}") from None
    try:
        server = uvicorn.Server(uvicorn_config(runtime, app))
        log.info("serving", extra={"host": gw.host, "port": gw.port})
        asyncio.run(_serve_until_stopped(server, listener, runtime.stopping, app.state.shutdown))
    finally:
        listener.close()
        if wyoming is not None:
            wyoming.close()


def main(argv: list[str] | None = None) -> int:
    return run_stage("gateway", serve, sys.argv[1:] if argv is None else argv)
