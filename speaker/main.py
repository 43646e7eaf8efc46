"""The speaker process: PULL speaker.jobs (DiarizeJob, VoiceJob from the gateway) → DiarizeService → PUB job/<job>/;
with `[speaker] live`, also SUB audio/, text/, ctl/ → LiveSpeakers → PUB speaker/<stream>/ per final.

Its own process, on the light stages' core, so that diarizing a long upload never takes a core
from asr's live decodes. File jobs run one at a time in one worker thread, live finals in
another (so a long file never holds up a live label); the loop thread owns the sockets, keeps
the live audio and heartbeats meanwhile. A file job waits in the gateway's PUSH pipe until then.
"""
from __future__ import annotations

import logging
import os
import socket
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import zmq

from bus import pcm, schemas, sockets
from bus.stage import StageRuntime, run_stage
from speaker.live import LiveSpeakers
from speaker.service import STAGE, DiarizeService

log = logging.getLogger(__name__)
POLL_MS = 50
LIVE_TOPICS = tuple(schemas.prefix(family) for family in ("audio", "text", "ctl"))
MAX_BATCH = 2000  # bus messages taken per turn
MAX_LIVE_BACKLOG = 32  # finals waiting for a label; beyond, the newest is dropped (counted)


class SpeakerLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        self.cfg = runtime.config.speaker
        self.service = DiarizeService(self.cfg, runtime.config.models_dir)
        self.live = LiveSpeakers(self.service.encoder, self.service.options, self.cfg.live_buffer_s,
                                 self.service.voices, self.cfg.name_threshold) if self.cfg.live else None
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        self.bad_messages = self.live_dropped = 0

    def state(self) -> tuple[bool, str, dict]:
        ok, status, counters = self.service.state()
        counters["bad_messages"] = self.bad_messages
        if self.live is not None:
            counters.update(self.live.counters(), live_dropped=self.live_dropped)
        return ok, status, counters

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        jobs = pub = sub = None
        try:
            jobs = sockets.puller(ctx, self.cfg.jobs, cfg.bus, bind=True)
            pub = self.rt.publisher()
            sub = sockets.subscriber(ctx, cfg.bus, LIVE_TOPICS) if self.live is not None else None
            heart = self.rt.heartbeater(pub, self.state, instance=self.worker)
            log.info("speaker ready", extra={"jobs": self.cfg.jobs, "model": str(self.service.model_path),
                                             "live": self.live is not None})
            with ThreadPoolExecutor(1, "diarize") as files, ThreadPoolExecutor(1, "live") as finals:
                self.serve(jobs, pub, sub, heart, files, finals)
        finally:
            for sock in (jobs, pub, sub):
                if sock is not None:
                    sock.close(linger=cfg.bus.linger_ms if sock is pub else 0)
            sockets.remove_ipc_file(self.cfg.jobs)

    def serve(self, jobs, pub, sub, heart, files: ThreadPoolExecutor, finals: ThreadPoolExecutor) -> None:
        running: tuple[str, str, Future] | None = None  # ("job", id, future)
        labelling: deque[tuple[str, str, Future]] = deque()  # ("stream", id, future), in order
        while not self.rt.stopping.is_set():
            heart.tick()
            if running is not None and running[2].done():
                sockets.publish(pub, self.answer(*running))
                running = None
            while labelling and labelling[0][2].done():
                sockets.publish(pub, self.answer(*labelling.popleft()))
            poller = zmq.Poller()
            if running is None:
                poller.register(jobs, zmq.POLLIN)
            if sub is not None:
                poller.register(sub, zmq.POLLIN)
            if not poller.sockets:  # a file job runs and no live streams are followed
                self.rt.stopping.wait(POLL_MS / 1000)
                continue
            ready = dict(poller.poll(POLL_MS))
            if sub is not None and sub in ready:
                self.take_live(sub, labelling, finals)
            if jobs in ready:
                job = self.receive(jobs)
                if job is not None:
                    running = ("job", job.job, files.submit(self.service.handle, job, self.worker))

    def take_live(self, sub, labelling: deque, finals: ThreadPoolExecutor) -> None:
        self.live.encoder = self.service.encoder  # the model may have been loaded since (by a file job)
        for msg in sockets.received(sub, MAX_BATCH, self.bad_message):
            utterance = self.live.take(msg)
            if utterance is None:
                continue
            if len(labelling) >= MAX_LIVE_BACKLOG:
                self.live_dropped += 1
                continue
            labelling.append(("stream", utterance.stream, finals.submit(self.live.label, utterance, self.worker)))

    @staticmethod
    def answer(kind: str, ident: str, done: Future) -> schemas.Message:
        """The result; a bug in one job or final answers it (kind "job" or "stream") with an error,
        and the stage goes on."""
        try:
            return done.result()
        except Exception as exc:  # noqa: BLE001 - reported on the bus and logged with its traceback
            log.exception("diarization failed", extra={kind: ident})
            return schemas.Error(code="diarization_failed", message=f"{type(exc).__name__}: {exc}",
                                 **{kind: ident}, permanent=False, stage=STAGE)

    def bad_message(self, exc: schemas.SchemaError) -> None:
        self.bad_messages += 1
        log.warning("bad bus message dropped", extra={"error": str(exc), "count": self.bad_messages})

    def receive(self, jobs: zmq.Socket) -> schemas.DiarizeJob | schemas.VoiceJob | None:
        data = jobs.recv()
        try:
            msg = schemas.decode(data)
        except schemas.SchemaError as exc:
            self.bad_message(exc)
            return None
        if isinstance(msg, schemas.VoiceJob):
            return msg  # enrol, list or delete: in the file jobs' thread, one at a time with them
        if not isinstance(msg, schemas.DiarizeJob):
            self.bad_messages += 1
            log.warning("not a diarization job, dropped", extra={"type": msg.TYPE})
            return None
        log.info("diarizing", extra={"job": msg.job, "audio_s": round(len(msg.pcm) / (2 * pcm.SAMPLE_RATE), 2)})
        return msg


def main(argv: list[str] | None = None) -> int:
    return run_stage("speaker", lambda runtime: SpeakerLoop(runtime).run(), argv)
