"""The gateway's Starlette app, built explicitly: a route list and a lifespan that owns the sockets."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
from collections import Counter
from pathlib import Path

import zmq
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from config import Config
from gateway import events, keys, metrics, openai_compat, openapi, origins, rest, speakers_api, store_api
from gateway.access import Access
from gateway.bridge import Bridge
from gateway.errors import ApiError, api_error_handler, error_body, http_error_handler, unexpected_error_handler
from gateway.guard import Guard
from gateway.rate_limits import Limiter
from gateway.service import READERS_PER_JOB, JobSlots, UploadSlots
from gateway.ws_decoding import DecodingStreamHandler
from gateway.ws_resume import Resume
from gateway.ws_session import SessionSlots, stream_endpoint
from gateway.wyoming import WyomingServer

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


async def ui_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


async def stream_over_http(request: Request) -> JSONResponse:
    """Plain HTTP to the WebSocket endpoint: say how to connect instead of a bare 404."""
    return JSONResponse(error_body(426, "upgrade_required", "/stream is a WebSocket endpoint: connect with "
                                                            "ws:// (see GET / and the gateway README)"),
                        status_code=426, headers={"Upgrade": "websocket"})


ROUTES = [
    Route("/", rest.info, methods=["GET"]),
    Route("/health", rest.health_check, methods=["GET"]),
    Route("/model/info", rest.model_info, methods=["GET"]),
    Route("/transcribe", rest.transcribe, methods=["POST"]),
    Route("/transcribe/base64", rest.transcribe_base64, methods=["POST"]),
    Route("/inference", rest.inference, methods=["POST"]),
    Route("/v1/audio/transcriptions", openai_compat.transcriptions, methods=["POST"]),
    Route("/v1/audio/translations", openai_compat.translations, methods=["POST"]),
    Route("/v1/models", openai_compat.models_list, methods=["GET"]),
    Route("/events", events.events, methods=["GET"]),
    WebSocketRoute("/stream", functools.partial(stream_endpoint, handler=DecodingStreamHandler)),
    Route("/stream", stream_over_http, methods=["GET"]),
    Route("/ui", ui_redirect, methods=["GET"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/docs", openapi.docs_page, methods=["GET"]),
    Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
    *store_api.ROUTES,
    *speakers_api.ROUTES,
    Mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui"),
]


def build_app(cfg: Config, ctx: zmq.Context | None = None,
              wyoming_listener: socket.socket | None = None) -> Starlette:
    """The app for `cfg`; its lifespan connects to the bus (a context of its own unless given one)
    and, with wyoming.enabled, serves Wyoming on `wyoming_listener` (bound by the server; else it binds).

    `app.state.shutdown` is set by the server when it starts to stop, so long-lived
    streams (WebSocket, SSE) finish on their own instead of being cut off.
    ValueError names a bad gateway.allowed_hosts pattern or an unreadable keys file.
    """
    shutdown = threading.Event()
    hosts = origins.allowed_hosts(cfg.gateway.host, cfg.gateway.allowed_hosts)
    problems = origins.host_pattern_problems(hosts)
    if problems:
        raise ValueError("; ".join(problems))
    try:
        access = Access(cfg.auth, keys.KeyStore(keys.keys_path(cfg.auth, os.environ)))
    except keys.KeyFileError as exc:
        raise ValueError(str(exc)) from None
    limiter = Limiter(cfg.limits)
    refusals = Counter(dict.fromkeys(("refused_401", "refused_403", "refused_413", "refused_429",
                                      "origins_refused_rest"), 0))  # by the guard; in the heartbeat from the start

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        own_ctx = ctx is None
        context = zmq.Context() if own_ctx else ctx
        slots, job_slots = SessionSlots(cfg.gateway.max_sessions), JobSlots(cfg.gateway.max_jobs)
        readers = UploadSlots(cfg.gateway.max_jobs * READERS_PER_JOB)
        bridge = Bridge(cfg, context, lambda: {"sessions_active": slots.active, "sessions_refused": slots.refused,
                                               "jobs_active": job_slots.active, "jobs_refused": job_slots.refused,
                                               "uploads_reading": readers.active, "uploads_refused": readers.refused,
                                               **refusals,
                                               **{f"rate_limited_{k}": v for k, v in limiter.refused.items()}})
        observed = metrics.Metrics(bridge.router.health, lambda: cfg.bus.heartbeat_timeout_s)
        bridge.router.observers.append(observed.observations.observe)
        await bridge.start()
        wyoming = WyomingServer(cfg, bridge, slots) if cfg.wyoming.enabled else None
        store = store_api.StoreGateway(cfg, context)
        resume = Resume.load(cfg.run_dir, cfg.gateway.resume_window_s)
        try:
            if wyoming is not None:
                await wyoming.start(wyoming_listener)  # RuntimeError naming wyoming.host/port if it must bind
            yield {"bridge": bridge, "config": cfg, "sessions": slots, "jobs": job_slots, "uploads": readers,
                   "shutdown": shutdown, "wyoming": wyoming, "store": store,
                   "resume": resume, "metrics": observed}
        finally:
            store.close()
            if wyoming is not None:
                await wyoming.stop()
            await bridge.stop()
            if own_ctx:
                context.term()

    app = Starlette(routes=ROUTES, lifespan=lifespan,
                    middleware=[Middleware(Guard, cfg=cfg, access_=access, limiter=limiter, counters=refusals),
                                Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                    exception_handlers={ApiError: api_error_handler, HTTPException: http_error_handler,
                                        Exception: unexpected_error_handler})
    app.state.shutdown = shutdown
    app.state.access, app.state.limiter = access, limiter
    return app
