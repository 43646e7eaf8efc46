"""The vad process: wires the bus, the job PULL and the segment PUSH around StreamTable.

SUB audio/ and ctl/ → StreamTable → PUB vad/ events (and errors), PUSH segments
through a SegmentOutbox (finals first, never dropped). PULL vad.jobs → cut_job →
PUB job_segments, PUSH pieces. One thread owns every socket.
"""
from __future__ import annotations

import logging
import time

import zmq

from bus import schemas, sockets
from bus.stage import StageRuntime, run_stage
from config.schema import VadConfig
from vad.detector import VoiceDetector
from vad.jobs import cut_job
from vad.outbox import SegmentOutbox
from vad.streams import StreamTable

log = logging.getLogger(__name__)
POLL_MS = 50
MAX_BATCH = 500  # bus messages handled per turn before the outbox and heartbeat get their turn
EXPIRE_EVERY_S = 1.0


class JobCutter:
    """Turns a Job into its JobSegments announcement and Segment pieces."""

    def __init__(self, cfg: VadConfig):
        self.cfg = cfg
        self.detector = VoiceDetector(cfg.aggressiveness, cfg.frame_ms, cfg.energy_gate_dbfs)

    def cut(self, job: schemas.Job) -> tuple[schemas.JobSegments, list[schemas.Segment]]:
        pieces = cut_job(job.pcm, self.detector, self.cfg.job_max_segment_s)
        count = len(pieces)
        segments = [schemas.Segment(utt=i, kind="final", offset=p.offset, pcm=p.pcm, job=job.job,
                                    language=job.language, task=job.task, prompt=job.prompt, index=i,
                                    count=count, options=job.options, ts_end_of_speech=job.ts)
                    for i, p in enumerate(pieces)]
        duration = len(job.pcm) / 2 / 16000
        return schemas.JobSegments(job=job.job, count=count, duration=round(duration, 3)), segments


class VadLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        cfg = runtime.config
        self.table = StreamTable(cfg.vad)
        self.outbox = SegmentOutbox()
        self.cutter = JobCutter(cfg.vad)
        self.bad_messages = 0
        self.jobs = 0
        self.bad_jobs = 0
        self.next_expire = 0.0

    def state(self) -> tuple[bool, str, dict]:
        counters = self.table.snapshot()
        counters.update(bad_messages=self.bad_messages, jobs=self.jobs, bad_jobs=self.bad_jobs,
                        outbox_depth=len(self.outbox), **{f"outbox_{k}": v for k, v in vars(self.outbox.counters).items()})
        status = "backlog" if len(self.outbox) > self.rt.config.bus.push_hwm else "ok"
        return True, status, counters

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        sub = pub = jobs = segments = None
        try:
            sub = sockets.subscriber(ctx, cfg.bus, [b"audio/", b"ctl/"])
            pub = sockets.publisher(ctx, cfg.bus)
            jobs = sockets.puller(ctx, cfg.vad.jobs, cfg.bus, bind=True)
            segments = sockets.pusher(ctx, cfg.vad.segments, cfg.bus, bind=True)
            heart = self.rt.heartbeater(pub, self.state)
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            poller.register(jobs, zmq.POLLIN)
            log.info("vad ready", extra={"jobs": cfg.vad.jobs, "segments": cfg.vad.segments})
            while not self.rt.stopping.is_set():
                ready = dict(poller.poll(POLL_MS if not self.outbox else 10))
                if sub in ready:
                    self.drain_bus(sub, pub)
                if jobs in ready:
                    self.take_job(jobs, pub)
                self.send_segments(segments)
                self.expire(pub)
                heart.tick()
        finally:
            for sock in (sub, pub, jobs, segments):
                if sock is not None:
                    sock.close(linger=0 if sock is sub else cfg.bus.linger_ms)
            sockets.remove_ipc_file(cfg.vad.jobs)
            sockets.remove_ipc_file(cfg.vad.segments)

    def drain_bus(self, sub: zmq.Socket, pub: zmq.Socket) -> None:
        for _ in range(MAX_BATCH):
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = schemas.unpack(frames)
            except schemas.SchemaError as exc:
                self.bad_messages += 1
                log.warning("bad bus message dropped", extra={"error": str(exc), "count": self.bad_messages})
                continue
            self.route(self.table.handle(msg, time.time()), pub)

    def route(self, messages: list[schemas.Message], pub: zmq.Socket) -> None:
        for msg in messages:
            if isinstance(msg, schemas.Segment):
                self.outbox.add(msg)
            else:
                sockets.publish(pub, msg)

    def take_job(self, jobs: zmq.Socket, pub: zmq.Socket) -> None:
        data = jobs.recv(zmq.NOBLOCK)
        try:
            job = schemas.decode(data)
            if not isinstance(job, schemas.Job):
                raise schemas.SchemaError(f"expected a job on vad.jobs, got a {job.TYPE}")
            announce, pieces = self.cutter.cut(job)
        except (schemas.SchemaError, ValueError) as exc:
            self.bad_jobs += 1
            log.error("bad job dropped", extra={"error": str(exc), "count": self.bad_jobs})
            return
        self.jobs += 1
        sockets.publish(pub, announce)
        for piece in pieces:
            self.outbox.add(piece)
        log.info("job cut", extra={"job": job.job, "count": announce.count, "duration_s": announce.duration})

    def send_segments(self, segments: zmq.Socket) -> None:
        while self.outbox:
            if not sockets.push(segments, self.outbox.peek(), timeout_ms=0):
                self.outbox.counters.blocked += 1
                return
            self.outbox.pop()

    def expire(self, pub: zmq.Socket) -> None:
        now = time.time()
        if time.monotonic() < self.next_expire:
            return
        self.next_expire = time.monotonic() + EXPIRE_EVERY_S
        self.route(self.table.expire(now), pub)


def loop(runtime: StageRuntime) -> None:
    VadLoop(runtime).run()


def main(argv: list[str] | None = None) -> int:
    return run_stage("vad", loop, argv)
