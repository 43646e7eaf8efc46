"""The gateway's sockets: one SUB for all it listens to, PUBs for sessions and heartbeats, the job PUSH.

Created by the app's lifespan, used only from the event loop's thread. The SUB is
subscribed to job/, text/, vad/, health/, alert/ and speaker/ from the start, so a job's answers can
never race its subscription (the zguide slow-joiner problem); audio is not
subscribed, so the gateway never carries the heavy traffic back.

If the receive or heartbeat task ends while the gateway runs, the gateway is deaf or
silent: the heartbeat then says ok=false with a status naming the task (a dead
heartbeat task shows as the gateway missing from `voxbus status`), and /health
answers 503. The process stays up, so the cause stays in its log; a restart heals it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Callable

import zmq
import zmq.asyncio

from bus import schemas, sockets
from bus.health import Heartbeater
from config import Config
from gateway.router import Router

log = logging.getLogger(__name__)

PREFIXES = tuple(schemas.prefix(family) for family in ("job", "text", "vad", "health", "alert", "speaker"))
HEARTBEAT_POLL_S = 0.1


class Bridge:
    def __init__(self, cfg: Config, ctx: zmq.Context, state: Callable[[], dict]):
        self.cfg = cfg
        self.ctx = ctx
        self.actx = zmq.asyncio.Context.shadow(ctx)
        self.router = Router()
        self.counters: Counter = Counter()  # jobs and sessions, for the heartbeat
        self.state = state  # live figures (e.g. open sessions) for the heartbeat
        self.sub: zmq.asyncio.Socket | None = None
        self.pub: zmq.Socket | None = None
        self.jobs_push: zmq.asyncio.Socket | None = None
        self.speaker_push: zmq.asyncio.Socket | None = None  # diarize=true jobs, to the speaker stage
        self.heartbeat_pub: zmq.Socket | None = None
        self.tasks: list[asyncio.Task] = []
        self.stopping = False

    async def start(self) -> None:
        bus = self.cfg.bus
        self.sub = sockets.subscriber(self.actx, bus, PREFIXES)
        # PUB never blocks (it drops at its high-water mark), so plain sockets are safe in the loop.
        self.pub = sockets.publisher(self.ctx, bus)
        self.heartbeat_pub = sockets.publisher(self.ctx, bus)
        # Every admitted job (at most gateway.max_jobs) may wait in the pipe while vad cuts another:
        # a smaller mark would turn a busy vad into a 503 "vad not taking jobs".
        self.jobs_push = sockets.pusher(self.actx, self.cfg.vad.jobs, bus, bind=False, immediate=True,
                                        hwm=self.cfg.gateway.max_jobs)
        if self.cfg.speaker.enabled:
            self.speaker_push = sockets.pusher(self.actx, self.cfg.speaker.jobs, bus, bind=False, immediate=True,
                                               hwm=self.cfg.gateway.max_jobs)
        self.tasks = [asyncio.create_task(self._receive_loop(), name="bus-receive"),
                      asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        for task in self.tasks:
            task.add_done_callback(_log_task_death)
        log.info("bridge connected", extra={"subscribe": bus.subscribe, "publish": bus.publish,
                                            "jobs": self.cfg.vad.jobs})

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sock in (self.sub, self.pub, self.heartbeat_pub, self.jobs_push, self.speaker_push):
            if sock is not None:
                sock.close(linger=0 if sock in (self.jobs_push, self.speaker_push) else self.cfg.bus.linger_ms)

    def publish(self, msg: schemas.Message) -> None:
        sockets.publish(self.pub, msg)

    async def push_job(self, payload: bytes, timeout_ms: int) -> bool:
        """Hand an encoded Job to vad; False when no vad takes it within the timeout (never queued blindly)."""
        if not await self.jobs_push.poll(timeout_ms, zmq.POLLOUT):
            return False
        await self.jobs_push.send(payload, copy=False)
        return True

    async def push_speaker_job(self, payload: bytes, timeout_ms: int) -> bool:
        """Hand an encoded DiarizeJob to the speaker stage; False when none takes it within the timeout."""
        if self.speaker_push is None or not await self.speaker_push.poll(timeout_ms, zmq.POLLOUT):
            return False
        await self.speaker_push.send(payload, copy=False)
        return True

    async def _receive_loop(self) -> None:
        while True:
            frames = await self.sub.recv_multipart()
            try:
                msg = schemas.unpack(frames)
            except schemas.SchemaError as exc:
                self.router.counters["bad_messages"] += 1
                log.warning("ignored a malformed bus message", extra={"reason": str(exc),
                                                                      "topic": frames[0][:64].decode(errors="replace")})
                continue
            try:
                self.router.route(msg, time.monotonic())
            except Exception:  # a bug with one message must not deafen the gateway to every other one
                self.router.counters["route_errors"] += 1
                log.exception("failed to route a bus message", extra={"type": msg.TYPE})

    async def _heartbeat_loop(self) -> None:
        beater = Heartbeater(self.heartbeat_pub, "gateway", self._heartbeat_state,
                             self.cfg.bus.heartbeat_interval_s)
        while True:
            beater.tick()
            await asyncio.sleep(HEARTBEAT_POLL_S)

    def dead_tasks(self) -> list[str]:
        """The essential tasks that ended while the gateway runs, each as "name (why)"."""
        if self.stopping:
            return []
        dead = []
        for task in self.tasks:
            if task.done():
                exc = None if task.cancelled() else task.exception()
                why = f"{type(exc).__name__}: {exc}" if exc is not None else "cancelled" if task.cancelled() \
                    else "returned"
                dead.append(f"{task.get_name()} ({why})")
        return dead

    def _heartbeat_state(self) -> tuple[bool, str, dict]:
        counters = dict(self.router.counters)
        counters.update(self.counters)
        counters.update(self.state())
        dead = self.dead_tasks()
        return not dead, "task died: " + "; ".join(dead) if dead else "ok", counters


def _log_task_death(task: asyncio.Task) -> None:
    """A loop that dies leaves the gateway deaf or silent: say so loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error("bridge task %s died", task.get_name(), exc_info=task.exception())
