"""The vad process: wires the bus, the job PULL and the segment broker around StreamTable.

SUB audio/, ctl/ and text/ (asr's partials, for endpoints that adapt to them) → StreamTable → PUB
vad/ events (and errors); segments wait in a SegmentOutbox (queue policy of bus.segment_queue,
bounded by vad.outbox_max_mb) until the SegmentBroker (bus/broker.py) gives them to asr workers
over a ROUTER (workers connect DEALER, say `ready` with their credit, heartbeat, and say `done`).
Finals seen on text/ and job/ tell the broker what is answered. PULL vad.jobs → JobWorker (cuts
in its own thread, one job at a time) → PUB job_segments, queue pieces. The loop thread owns every
socket. On SIGTERM open utterances are finished and the outbox gets ~1 s to drain. Every
vad.ack_interval_ms each live stream's `ack` tells its source which audio vad no longer needs
(bus/replay.py: what a source resends if vad restarts); a `flush` is answered with `flushed`.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter

import zmq

from bus import schemas, sockets, worker_protocol
from bus.broker import SegmentBroker
from bus.stage import StageRuntime, run_stage
from vad.deltas import PartialDeltas
from vad.job_worker import CutResult, JobWorker
from vad.outbox import STALL_S, SegmentOutbox
from vad.streams import StreamTable

log = logging.getLogger(__name__)
POLL_MS = 50
MAX_BATCH = 500  # bus messages handled per turn before the outbox and heartbeat get their turn
EXPIRE_EVERY_S = 1.0
DRAIN_ON_STOP_S = 1.0  # on SIGTERM: how long finished segments may wait for a worker
WORKER_HWM = 1000  # per worker on the segments ROUTER: credit bounds the segments, the rest is heartbeats
HANDSHAKE_S = 2.0  # longest wait at start for a subscriber of vad's heartbeat


class VadLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        cfg = runtime.config
        self.table = StreamTable(cfg.vad)
        self.outbox = SegmentOutbox(cfg.vad.outbox_max_mb * 1024 * 1024)
        self.job_worker = JobWorker(cfg.vad)
        self.broker = SegmentBroker(self.outbox.queue, cfg.vad.worker_heartbeat_ms / 1000, cfg.vad.worker_liveness)
        self.deltas = PartialDeltas()
        self.segment_bytes: Counter[str] = Counter()  # PCM bytes pushed to asr, by kind
        self.bad_messages = 0
        self.jobs = 0
        self.bad_jobs = 0
        self.unsent_at_stop = 0
        self.next_expire = 0.0
        self.next_ack = 0.0
        self.last_acks: dict[str, schemas.Ack] = {}

    def state(self) -> tuple[bool, str, dict]:
        counters = self.table.snapshot()
        counters.update(bad_messages=self.bad_messages, jobs=self.jobs, bad_jobs=self.bad_jobs,
                        job_cutting=self.job_worker.busy, outbox_depth=len(self.outbox),
                        outbox_mb=round(self.outbox.pcm_bytes / 2 ** 20, 1), asr_workers=len(self.broker.workers),
                        **{f"pushed_bytes_{k}": v for k, v in self.segment_bytes.items()},
                        partial_bytes_saved=self.deltas.bytes_saved,
                        **{f"outbox_{k}": v for k, v in vars(self.outbox.counters).items()},
                        **{f"broker_{k}": v for k, v in self.broker.snapshot().items()},
                        asr_roster={f"{w['worker']}@{w['host']}": {k: w[k] for k in ("model", "rtf", "given")}
                                    for w in self.broker.roster()})
        if self.outbox.stalled_for() > STALL_S:
            return False, f"backlog: {len(self.outbox)} segments waiting, no asr worker?", counters
        return True, "ok", counters

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        sub = pub = jobs = segments = None
        self.job_worker.start()
        try:
            # text/: asr's partials, which the endpoints adapt to, and its finals (answered, for the
            # broker's ledger); job/: the finals of file-job pieces
            sub = sockets.subscriber(ctx, cfg.bus, [b"audio/", b"ctl/", b"text/", b"job/"])
            pub = sockets.handshake_publisher(ctx, cfg.bus)
            # The first heartbeat is how live sources learn of a new vad and resend their streams: not
            # to the slow joiner. Bounded: with no subscriber yet, nobody is waiting for it either.
            sockets.wait_for_subscription(pub, b"health/vad/", HANDSHAKE_S, self.rt.stopping)
            jobs = sockets.puller(ctx, cfg.vad.jobs, cfg.bus, bind=True)
            segments = sockets.router(ctx, cfg.vad.segments, cfg.bus, hwm=WORKER_HWM)
            sockets.bind_remote(segments, cfg.vad.remote_segments, cfg.bus)  # workers on other hosts
            heart = self.rt.heartbeater(pub, self.state)
            self.table.instance = heart.instance  # acks name this vad, so sources can tell it from the next
            bus_only, bus_and_jobs = zmq.Poller(), zmq.Poller()
            for sock in (sub, segments):
                bus_only.register(sock, zmq.POLLIN)
                bus_and_jobs.register(sock, zmq.POLLIN)
            bus_and_jobs.register(jobs, zmq.POLLIN)
            log.info("vad ready", extra={"jobs": cfg.vad.jobs, "segments": cfg.vad.segments})
            while not self.rt.stopping.is_set():
                # A new job is read only when the cutter is free: the PUSH pipe holds the rest.
                poller = bus_only if self.job_worker.busy else bus_and_jobs
                ready = dict(poller.poll(min(POLL_MS, int(self.broker.wait_s() * 1000) + 1)))
                if sub in ready:
                    self.drain_bus(sub, pub)
                if segments in ready:
                    self.serve_workers(segments)
                if jobs in ready:
                    self.job_worker.submit(jobs.recv(zmq.NOBLOCK))
                self.collect_jobs(pub)
                self.send_segments(segments)
                self.send_replies(segments, self.broker.tick())
                self.expire(pub)
                self.acknowledge(pub)
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
            if isinstance(msg, schemas.Final):
                self.broker.final_seen(msg.stream, msg.job, msg.utt, msg.index)
            if isinstance(msg, (schemas.Transcript, schemas.Error, schemas.JobSegments)) and msg.job is not None:
                continue  # job/: only its finals matter here
            self.route(self.table.handle(msg, time.time()), pub)

    def route(self, messages: list[schemas.Message], pub: zmq.Socket) -> None:
        for msg in messages:
            if isinstance(msg, schemas.Segment):
                self.queue_segment(msg, pub)
            else:
                sockets.publish(pub, msg)

    def queue_segment(self, segment: schemas.Segment, pub: zmq.Socket) -> None:
        """Into the outbox, with the broker's ticket and the model it needs; a final pushed out by the
        memory bound is reported."""
        if not segment.model:
            asr = self.rt.config.asr
            segment = dataclasses.replace(segment, model=(segment.job and asr.upload_model) or asr.model)
        for dropped in self.outbox.add(self.broker.ticketed(segment)):
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

    def serve_workers(self, segments: zmq.Socket) -> None:
        """Every message the asr workers sent: ready, heartbeat, done, bye."""
        for _ in range(MAX_BATCH):
            try:
                frames = segments.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 2:
                    raise schemas.SchemaError(f"expected [identity, message] from a worker, got {len(frames)} frames")
                msg = worker_protocol.decode_from_worker(frames[1])
            except schemas.SchemaError as exc:
                self.bad_message(exc)
                continue
            if isinstance(msg, worker_protocol.Ready) and frames[0] not in self.broker.workers:
                log.info("asr worker joined", extra={"worker": msg.worker, "credit": msg.credit, "model": msg.model,
                                                     "host": msg.host, "pid": msg.pid})
            self.send_replies(segments, self.broker.on_message(frames[0], msg))

    def send_replies(self, segments: zmq.Socket, replies) -> None:
        for reply in replies:
            if isinstance(reply.message, worker_protocol.Reset):
                self.deltas.forget_worker(reply.worker)
                if reply.message.reason == "expired":
                    log.warning("asr worker dropped: its finals go to another worker",
                                extra={"broker": self.broker.snapshot()})
            segments.send_multipart([reply.worker, worker_protocol.encode(reply.message)])

    def send_segments(self, segments: zmq.Socket) -> None:
        """What the broker gives out now, each as a delta where its worker holds the rest."""
        for delivery in self.broker.dispatch():
            original = delivery.segment
            sent = self.deltas.shape(original, delivery.worker)
            segments.send_multipart([delivery.worker, worker_protocol.encode(sent)], copy=False)
            self.outbox.given()
            if (worker := self.broker.workers.get(delivery.worker)) is not None and worker.given == 1:
                log.info("asr worker took its first segment", extra={
                    "worker": worker.name, "host": worker.host, "model": worker.model,
                    "after_join_s": round(worker.last_given - worker.joined, 3)})
            self.deltas.pushed_ok(original, sent, delivery.worker)
            self.segment_bytes[original.kind if original.job is None else "job"] += len(sent.pcm)

    def expire(self, pub: zmq.Socket) -> None:
        if time.monotonic() < self.next_expire:
            return
        self.next_expire = time.monotonic() + EXPIRE_EVERY_S
        self.route(self.table.expire(time.time()), pub)

    def acknowledge(self, pub: zmq.Socket) -> None:
        """Every ack_interval_ms: each stream's ack, when it moved (an idle stream's moves with its audio)."""
        now = time.monotonic()
        if now < self.next_ack:
            return
        self.next_ack = now + self.rt.config.vad.ack_interval_ms / 1000
        acks = {ack.stream: ack for ack in self.table.acks()}
        for stream, ack in acks.items():
            if self.last_acks.get(stream) != ack:
                sockets.publish(pub, ack)
        self.last_acks = acks

    def finish(self, pub: zmq.Socket, segments: zmq.Socket) -> None:
        """On stop: finish open utterances, give the outbox DRAIN_ON_STOP_S, report what is left."""
        self.route(self.table.flush_all(time.time()), pub)
        deadline = time.monotonic() + DRAIN_ON_STOP_S
        while self.outbox and time.monotonic() < deadline:
            if segments.poll(max(1, min(50, int((deadline - time.monotonic()) * 1000)))):
                self.serve_workers(segments)
            self.send_segments(segments)
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
