"""The vad process: wires the bus, the job PULL and the segment PUSH around StreamTable.

SUB audio/, ctl/ and text/ (asr's partials, for endpoints that adapt to them) → StreamTable → PUB vad/ events (and errors), PUSH segments
through a SegmentOutbox (queue policy of bus.segment_queue, bounded by
vad.outbox_max_mb). PULL vad.jobs → JobWorker (cuts in its own thread, one job at
a time) → PUB job_segments, PUSH pieces. The loop thread owns every socket.
On SIGTERM open utterances are finished and the outbox gets ~1 s to drain.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

import zmq

from bus import schemas, sockets
from bus.stage import StageRuntime, run_stage
from bus.status import HealthTable
from vad.deltas import PartialDeltas
from vad.job_worker import CutResult, JobWorker
from vad.outbox import STALL_S, SegmentOutbox
from vad.streams import StreamTable

log = logging.getLogger(__name__)
POLL_MS = 50
MAX_BATCH = 500  # bus messages handled per turn before the outbox and heartbeat get their turn
EXPIRE_EVERY_S = 1.0
DRAIN_ON_STOP_S = 1.0  # on SIGTERM: how long finished segments may wait for a worker


class VadLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        cfg = runtime.config
        self.table = StreamTable(cfg.vad)
        self.outbox = SegmentOutbox(cfg.vad.outbox_max_mb * 1024 * 1024)
        self.job_worker = JobWorker(cfg.vad)
        self.workers = HealthTable(forget_after_s=cfg.bus.heartbeat_timeout_s * 2)
        self.deltas = PartialDeltas()
        self.segment_bytes: Counter[str] = Counter()  # PCM bytes pushed to asr, by kind
        self.bad_messages = 0
        self.jobs = 0
        self.bad_jobs = 0
        self.unsent_at_stop = 0
        self.next_expire = 0.0

    def state(self) -> tuple[bool, str, dict]:
        counters = self.table.snapshot()
        counters.update(bad_messages=self.bad_messages, jobs=self.jobs, bad_jobs=self.bad_jobs,
                        job_cutting=self.job_worker.busy, outbox_depth=len(self.outbox),
                        outbox_mb=round(self.outbox.pcm_bytes / 2 ** 20, 1), asr_workers=len(self.deltas.workers),
                        **{f"pushed_bytes_{k}": v for k, v in self.segment_bytes.items()},
                        partial_bytes_saved=self.deltas.bytes_saved,
                        **{f"outbox_{k}": v for k, v in vars(self.outbox.counters).items()})
        if self.outbox.stalled_for() > STALL_S:
            return False, f"backlog: {len(self.outbox)} segments waiting, no asr worker?", counters
        return True, "ok", counters

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        sub = pub = jobs = segments = None
        self.job_worker.start()
        try:
            # text/: asr's partials, which the endpoints adapt to; health/asr/: how many asr workers there are
            sub = sockets.subscriber(ctx, cfg.bus, [b"audio/", b"ctl/", b"text/", b"health/asr/"])
            pub = sockets.publisher(ctx, cfg.bus)
            jobs = sockets.puller(ctx, cfg.vad.jobs, cfg.bus, bind=True)
            segments = sockets.pusher(ctx, cfg.vad.segments, cfg.bus, bind=True)
            heart = self.rt.heartbeater(pub, self.state)
            bus_only, bus_and_jobs = zmq.Poller(), zmq.Poller()
            bus_only.register(sub, zmq.POLLIN)
            bus_and_jobs.register(sub, zmq.POLLIN)
            bus_and_jobs.register(jobs, zmq.POLLIN)
            log.info("vad ready", extra={"jobs": cfg.vad.jobs, "segments": cfg.vad.segments})
            while not self.rt.stopping.is_set():
                # A new job is read only when the cutter is free: the PUSH pipe holds the rest.
                poller = bus_only if self.job_worker.busy else bus_and_jobs
                ready = dict(poller.poll(POLL_MS if not self.outbox else 10))
                if sub in ready:
                    self.drain_bus(sub, pub)
                if jobs in ready:
                    self.job_worker.submit(jobs.recv(zmq.NOBLOCK))
                self.collect_jobs(pub)
                self.send_segments(segments)
                self.expire(pub)
                heart.tick()
            self.finish(pub, segments)
        finally:
            self.job_worker.stop(timeout=0.5)
            for sock in (sub, pub, jobs, segments):
                if sock is not None:
                    sock.close(linger=0 if sock is sub else cfg.bus.linger_ms)
            sockets.remove_ipc_file(cfg.vad.jobs)
            sockets.remove_ipc_file(cfg.vad.segments)

    def bad_message(self, exc: schemas.SchemaError) -> None:
        self.bad_messages += 1
        log.warning("bad bus message dropped", extra={"error": str(exc), "count": self.bad_messages})

    def drain_bus(self, sub: zmq.Socket, pub: zmq.Socket) -> None:
        for msg in sockets.received(sub, MAX_BATCH, self.bad_message):
            if isinstance(msg, schemas.Heartbeat):
                self.see_workers(msg)
                continue
            self.route(self.table.handle(msg, time.time()), pub)

    def route(self, messages: list[schemas.Message], pub: zmq.Socket) -> None:
        for msg in messages:
            if isinstance(msg, schemas.Segment):
                self.queue_segment(msg, pub)
            else:
                sockets.publish(pub, msg)

    def queue_segment(self, segment: schemas.Segment, pub: zmq.Socket) -> None:
        """Into the outbox; a final pushed out by the memory bound is reported on the bus."""
        for dropped in self.outbox.add(segment):
            self.report_unsent(pub, dropped, "overloaded",
                               f"vad's outbox is over vad.outbox_max_mb ({self.rt.config.vad.outbox_max_mb} MB) "
                               f"with no asr worker keeping up: segment dropped")
            if self.outbox.counters.dropped_finals % 100 == 1:
                log.error("outbox full: final segments dropped", extra={
                    "dropped_finals": self.outbox.counters.dropped_finals, "stream": dropped.stream,
                    "job": dropped.job, "utt": dropped.utt})

    def report_unsent(self, pub: zmq.Socket, segment: schemas.Segment, code: str, message: str) -> None:
        sockets.publish(pub, schemas.Error.about(segment, code, message, permanent=False, stage="vad"))

    def collect_jobs(self, pub: zmq.Socket) -> None:
        for result in self.job_worker.results():
            self.take_cut(result, pub)

    def take_cut(self, result: CutResult, pub: zmq.Socket) -> None:
        if result.error:
            self.bad_jobs += 1
            log.error("bad job dropped", extra={"job": result.job, "error": result.error, "count": self.bad_jobs})
            if result.job is not None:
                sockets.publish(pub, schemas.Error(code="bad_job" if result.permanent else "internal",
                                                   message=result.error, job=result.job,
                                                   permanent=result.permanent, stage="vad"))
            return
        self.jobs += 1
        sockets.publish(pub, result.announce)
        for piece in result.pieces:
            self.queue_segment(piece, pub)
        log.info("job cut", extra={"job": result.job, "count": result.announce.count,
                                   "duration_s": result.announce.duration})

    def send_segments(self, segments: zmq.Socket, timeout_ms: int = 0) -> None:
        while self.outbox:
            original = self.outbox.peek()
            sent = self.deltas.shape(original)
            if not sockets.push(segments, sent, timeout_ms=timeout_ms):
                self.outbox.counters.blocked += 1
                return
            self.outbox.pop()
            self.deltas.pushed_ok(original, sent)
            self.segment_bytes[original.kind if original.job is None else "job"] += len(sent.pcm)

    def see_workers(self, heartbeat: schemas.Heartbeat) -> None:
        """asr heartbeats tell how many workers share the segments pipe (see vad/deltas.py)."""
        now = time.monotonic()
        self.workers.see(heartbeat, now)
        alive = self.workers.fresh(now, self.rt.config.bus.heartbeat_timeout_s)
        self.deltas.set_workers(frozenset(row.heartbeat.instance for row in alive))

    def expire(self, pub: zmq.Socket) -> None:
        if time.monotonic() < self.next_expire:
            return
        self.next_expire = time.monotonic() + EXPIRE_EVERY_S
        self.route(self.table.expire(time.time()), pub)

    def finish(self, pub: zmq.Socket, segments: zmq.Socket) -> None:
        """On stop: finish open utterances, give the outbox DRAIN_ON_STOP_S, report what is left."""
        self.route(self.table.flush_all(time.time()), pub)
        deadline = time.monotonic() + DRAIN_ON_STOP_S
        while self.outbox and time.monotonic() < deadline:
            self.send_segments(segments, timeout_ms=max(1, min(50, int((deadline - time.monotonic()) * 1000))))
        left: Counter[str] = Counter()
        for segment in self.outbox.take_all():
            left["job_pieces" if segment.job is not None else f"{segment.kind}s"] += 1
            if segment.kind == "final":  # a client waits for it: say it will not come
                self.report_unsent(pub, segment, "stopping", "vad stopped before an asr worker took this segment")
        self.unsent_at_stop = sum(left.values())
        if self.job_worker.busy:
            log.warning("stopping while a job was being cut: it is dropped", extra={"job": self.job_worker.current})
        if self.unsent_at_stop:
            log.warning("stopping with segments no asr worker took", extra={"unsent": self.unsent_at_stop, **left})
        else:
            log.info("stopped with the outbox empty")


def loop(runtime: StageRuntime) -> None:
    VadLoop(runtime).run()


def main(argv: list[str] | None = None) -> int:
    return run_stage("vad", loop, argv)
