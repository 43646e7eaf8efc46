"""The speaker process: PULL speaker.jobs (DiarizeJob from the gateway) → DiarizeService → PUB job/<job>/.

Its own process, on the light stages' core, so that diarizing a long upload never takes a core
from asr's live decodes. One job at a time runs in a worker thread; the loop thread owns the
sockets and keeps heartbeating meanwhile. A job waits in the gateway's PUSH pipe until then.
"""
from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import Future, ThreadPoolExecutor

import zmq

from bus import pcm, schemas, sockets
from bus.stage import StageRuntime, run_stage
from speaker.service import DiarizeService

log = logging.getLogger(__name__)
POLL_MS = 50


class SpeakerLoop:
    def __init__(self, runtime: StageRuntime):
        self.rt = runtime
        self.cfg = runtime.config.speaker
        self.service = DiarizeService(self.cfg, runtime.config.models_dir)
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        self.bad_messages = 0

    def run(self) -> None:
        cfg, ctx = self.rt.config, self.rt.ctx
        jobs = pub = None
        try:
            jobs = sockets.puller(ctx, self.cfg.jobs, cfg.bus, bind=True)
            pub = self.rt.publisher()
            heart = self.rt.heartbeater(pub, self.service.state, instance=self.worker)
            log.info("speaker ready", extra={"jobs": self.cfg.jobs, "model": str(self.service.model_path)})
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
                running: tuple[str, Future] | None = None
                while not self.rt.stopping.is_set():
                    heart.tick()
                    if running is not None and running[1].done():
                        sockets.publish(pub, self.answer(*running))
                        running = None
                    if running is None and jobs.poll(POLL_MS, zmq.POLLIN):
                        job = self.receive(jobs)
                        if job is not None:
                            running = (job.job, pool.submit(self.service.handle, job, self.worker))
                    elif running is not None:
                        self.rt.stopping.wait(POLL_MS / 1000)
        finally:
            for sock in (jobs, pub):
                if sock is not None:
                    sock.close(linger=cfg.bus.linger_ms if sock is pub else 0)
            sockets.remove_ipc_file(self.cfg.jobs)

    def answer(self, job: str, done: Future) -> schemas.Message:
        """The job's result; a bug in diarizing one job answers that job with an error, and the stage goes on."""
        try:
            return done.result()
        except Exception as exc:  # noqa: BLE001 - reported to the requester and logged with its traceback
            log.exception("diarization failed", extra={"job": job})
            return schemas.Error(code="diarization_failed", message=f"{type(exc).__name__}: {exc}", job=job,
                                 permanent=False, stage="speaker")

    def receive(self, jobs: zmq.Socket) -> schemas.DiarizeJob | None:
        data = jobs.recv()
        try:
            msg = schemas.decode(data)
        except schemas.SchemaError as exc:
            self.bad_messages += 1
            log.warning("bad diarization job dropped", extra={"error": str(exc), "count": self.bad_messages})
            return None
        if not isinstance(msg, schemas.DiarizeJob):
            self.bad_messages += 1
            log.warning("not a diarization job, dropped", extra={"type": msg.TYPE})
            return None
        log.info("diarizing", extra={"job": msg.job, "audio_s": round(len(msg.pcm) / (2 * pcm.SAMPLE_RATE), 2)})
        return msg


def main(argv: list[str] | None = None) -> int:
    return run_stage("speaker", lambda runtime: SpeakerLoop(runtime).run(), argv)
