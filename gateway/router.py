"""Who gets which bus message: jobs, live sessions, SSE listeners and the health table.

Pure (no sockets): the bridge feeds it every message its one SUB socket receives.
Queues are asyncio queues because their readers are request handlers, but nothing
here awaits: routing never blocks the receive loop.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from typing import Callable

from bus import schemas
from bus.status import HealthTable

log = logging.getLogger(__name__)

STREAM_QUEUE_MAX = 2000   # bus events waiting for one WebSocket session
LISTENER_QUEUE_MAX = 1000  # events waiting for one SSE client
RECENT_FINALS = 512       # finals kept for a client that resumes: the store may not have the newest yet
CLIENT_MESSAGES = (schemas.Transcript, schemas.Error, schemas.SpeechStart, schemas.SpeechEnd, schemas.Alert)
VAD_REPLIES = (schemas.Ack, schemas.Flushed)  # for the stream's session only (bus/replay.py), never a client's


class Router:
    def __init__(self) -> None:
        self.health = HealthTable()
        self.jobs: dict[str, asyncio.Queue] = {}
        self.streams: dict[str, asyncio.Queue] = {}
        self.listeners: set[asyncio.Queue] = set()
        self.recent: deque[schemas.Final] = deque(maxlen=RECENT_FINALS)
        self.counters: Counter = Counter()
        self.observers: list[Callable[[schemas.Message, float], None]] = []  # e.g. metrics: see every message
        self.vad_instance: str | None = None  # the vad serving now (its heartbeat's instance)

    # ---- registrations -------------------------------------------------------

    def watch_job(self, job: str) -> asyncio.Queue:
        return self.jobs.setdefault(job, asyncio.Queue())

    def forget_job(self, job: str) -> None:
        self.jobs.pop(job, None)

    def watch_stream(self, stream: str) -> asyncio.Queue:
        return self.streams.setdefault(stream, asyncio.Queue(STREAM_QUEUE_MAX))

    def forget_stream(self, stream: str) -> None:
        self.streams.pop(stream, None)

    def listen(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(LISTENER_QUEUE_MAX)
        self.listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue) -> None:
        self.listeners.discard(queue)

    # ---- routing -------------------------------------------------------------

    def route(self, msg: schemas.Message, now: float) -> None:
        """Hand one message to whoever waits for it; anything unclaimed is counted."""
        self.counters["received"] += 1
        for observe in self.observers:
            try:
                observe(msg, now)
            except Exception:  # a metrics bug must never cost a client its message
                self.counters["observer_errors"] += 1
                log.exception("an observer failed", extra={"type": msg.TYPE})
        if isinstance(msg, schemas.Heartbeat):
            self.health.see(msg, now)
            if msg.stage == "vad":
                self._vad_heartbeat(msg)
            return
        if isinstance(msg, schemas.Final):
            self.recent.append(msg)
        job = getattr(msg, "job", None)
        stream = getattr(msg, "stream", None)
        if job is not None:
            self._to_job(job, msg)
        elif stream is not None and isinstance(msg, CLIENT_MESSAGES + (schemas.Speakers,) + VAD_REPLIES):
            self._to_stream(stream, msg)  # a live label (speakers=true) or vad's reply: only its session takes it
        else:
            self.counters["ignored"] += 1
            return
        if isinstance(msg, CLIENT_MESSAGES + (schemas.JobSegments,)):
            self._to_listeners(msg)

    def _vad_heartbeat(self, msg: schemas.Heartbeat) -> None:
        """Sessions and jobs see every vad heartbeat: a new vad instance is their cue to resend."""
        if msg.instance != self.vad_instance:
            if self.vad_instance is not None:
                self.counters["vad_restarts"] += 1
                log.warning("vad restarted: live streams resend, file jobs are resubmitted",
                            extra={"instance": msg.instance, "streams": len(self.streams), "jobs": len(self.jobs)})
            self.vad_instance = msg.instance
        for queue in list(self.streams.values()) + list(self.jobs.values()):
            try:
                queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.counters["stream_dropped"] += 1

    def _to_job(self, job: str, msg: schemas.Message) -> None:
        queue = self.jobs.get(job)
        if queue is None:
            self.counters["job_unclaimed"] += 1  # a job whose request already gave up
            return
        queue.put_nowait(msg)

    def _to_stream(self, stream: str, msg: schemas.Message) -> None:
        queue = self.streams.get(stream)
        if queue is None:
            return  # another source's stream (capture): only SSE listeners care
        try:
            queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.counters["stream_dropped"] += 1
            log.warning("session is not reading its bus events; dropped one", extra={"stream": stream})

    def _to_listeners(self, msg: schemas.Message) -> None:
        for queue in self.listeners:
            if queue.full():  # a slow dashboard loses its oldest event, never blocks the bus
                queue.get_nowait()
                self.counters["events_dropped"] += 1
            queue.put_nowait(msg)
