"""File jobs are cut off the loop thread: one at a time, results handed back through a queue.

Cutting an hour of audio takes about a second here (several on a Pi), and the
vad loop must keep segmenting live streams meanwhile. The loop thread keeps every
socket: it hands the raw job bytes to `submit`, takes finished cuts from
`results()`, and reads the next job off its PULL socket only when `busy` is
False — backpressure instead of a second queue (the PUSH pipe holds the rest).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from bus import pcm, schemas
from config.schema import VadConfig
from vad.detector import VoiceDetector
from vad.job_options import check_job
from vad.jobs import cut_job

log = logging.getLogger(__name__)


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
                                    count=count, options=job.options, ts_end_of_speech=job.ts,
                                    voiced=p.voiced, voiced_frame_ms=self.cfg.frame_ms, model=job.model)
                    for i, p in enumerate(pieces)]
        duration = pcm.seconds(job.pcm)
        return schemas.JobSegments(job=job.job, count=count, duration=round(duration, 3)), segments


@dataclass
class CutResult:
    """A finished cut, or `error` (the job was bad and is dropped)."""
    job: str | None = None
    announce: schemas.JobSegments | None = None
    pieces: list[schemas.Segment] = field(default_factory=list)
    error: str = ""
    permanent: bool = True  # for an error: would sending the same job again fail the same way


class JobWorker:
    def __init__(self, cfg: VadConfig):
        self.cutter = JobCutter(cfg)
        self.busy = False          # loop thread only: a job was submitted and its result not yet taken
        self.current: str | None = None  # the job id being cut, for the shutdown log
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._results: queue.Queue[CutResult] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="vad-job-cutter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, data: bytes) -> None:
        if self.busy:
            raise RuntimeError("a job is already being cut: read the next one only when not busy")
        self.busy = True
        self._inbox.put(data)

    def results(self) -> list[CutResult]:
        """Finished cuts, if any (called by the loop thread)."""
        done = []
        while True:
            try:
                done.append(self._results.get_nowait())
            except queue.Empty:
                break
        if done:
            self.busy = False
        return done

    def stop(self, timeout: float = 2.0) -> None:
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            data = self._inbox.get()
            if data is None:
                return
            self._results.put(self._cut(data))

    def _cut(self, data: bytes) -> CutResult:
        self.current = None
        try:
            job = schemas.decode(data)
            if not isinstance(job, schemas.Job):
                raise schemas.SchemaError(f"expected a job on vad.jobs, got a {job.TYPE}")
            self.current = job.job
            check_job(job)
            announce, pieces = self.cutter.cut(job)
        except (schemas.SchemaError, ValueError) as exc:
            return CutResult(job=self.current, error=str(exc), permanent=True)
        except Exception as exc:  # a bug must not kill the cutter thread (busy would stay set for ever)
            log.exception("cutting a job failed", extra={"job": self.current})
            return CutResult(job=self.current, error=f"internal error cutting the job: {type(exc).__name__}: {exc}",
                             permanent=False)
        return CutResult(job=job.job, announce=announce, pieces=pieces)
