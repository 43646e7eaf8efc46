"""File jobs: push one Job to vad, collect job/<id>/ answers, assemble the finals in index order.

`JobAssembler` is pure: messages in, a result (or a failure) out. `run_job` adds
the socket and the deadlines, so a job that gets no answer fails with 503/504
instead of hanging.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from bus import schemas
from bus.replay import VadWatch
from gateway.errors import ApiError

log = logging.getLogger(__name__)

PUSH_TIMEOUT_MS = 2000
RESUBMIT_MAX = 3  # a job whose vad restarted before it was done is pushed again at most this often
# A resubmit goes to a vad whose heartbeat was just heard, but the PUSH socket's reconnect back-off
# (bus.reconnect_ivl_max_ms) grew while vad was away: give the reconnection that long.
RESUBMIT_PUSH_TIMEOUT_MS = 10000
# vad must answer with the segment count quickly; webrtcvad runs far faster than real time.
ACK_BASE_S = 15.0
ACK_PER_AUDIO_S = 0.05


@dataclass(frozen=True)
class EncodedJob:
    """A Job already encoded for the PUSH socket (encoding a long upload is work for a worker thread)."""
    job: str
    payload: bytes
    duration: float   # seconds of audio
    speaker_payload: bytes | None = None  # the DiarizeJob for the speaker stage, when diarize=true


@dataclass
class JobResult:
    text: str
    segments: list[dict]
    words: list[dict]
    language: str | None
    language_prob: float | None
    compute_ms: float          # encode + decode time summed over the job's segments
    workers: list[str] = field(default_factory=list)
    speakers: list[dict] | None = None  # diarize=true: the speaker turns merged into segments and words


class JobAssembler:
    """Collects JobSegments, per-segment finals and errors for one job."""

    def __init__(self, job: str):
        self.job = job
        self.count: int | None = None
        self.finals: dict[int, schemas.Transcript] = {}
        self.error: schemas.Error | None = None
        self.ignored = 0

    def see(self, msg: schemas.Message) -> None:
        if isinstance(msg, schemas.JobSegments):
            self.count = msg.count
        elif isinstance(msg, schemas.Error):
            self.error = self.error or msg
        elif isinstance(msg, schemas.Transcript) and msg.kind == "final":
            self._see_final(msg)
        else:
            self.ignored += 1

    def _see_final(self, msg: schemas.Transcript) -> None:
        if self.count is None and msg.count is not None:
            self.count = msg.count  # a final may overtake job_segments on a busy bus
        index = msg.index if msg.index is not None else 0
        if self.count is not None and not 0 <= index < self.count:
            self.ignored += 1
            log.warning("final with an index outside the job", extra={"job": self.job, "index": index,
                                                                      "count": self.count})
            return
        self.finals[index] = msg

    @property
    def acknowledged(self) -> bool:
        return self.count is not None

    @property
    def done(self) -> bool:
        return self.error is not None or (self.count is not None and len(self.finals) >= self.count)

    def result(self) -> JobResult:
        ordered = [self.finals[i] for i in sorted(self.finals)]
        segments, words = [], []
        for final in ordered:
            segments.extend(final.segments or ([{"start": final.start, "end": final.end, "text": final.text}]
                                               if final.text else []))
            words.extend(final.words or [])
        text = " ".join(f.text.strip() for f in ordered if f.text.strip())
        language = next((f.language for f in ordered if f.language), None)
        prob = next((f.language_prob for f in ordered if f.language_prob is not None), None)
        compute = sum(f.encode_ms + f.decode_ms for f in ordered)
        workers = sorted({f.worker for f in ordered if f.worker})
        return JobResult(text, segments, words, language, prob, round(compute, 2), workers)


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:16]}"


def failure(error: schemas.Error) -> ApiError:
    """A permanent error is the audio's fault (400); a transient one may pass on retry (503)."""
    where = f" in {error.stage}" if error.stage else ""
    if error.permanent:
        return ApiError(400, error.code or "bad_audio", f"the audio could not be transcribed{where}: {error.message}")
    return ApiError(503, error.code or "transcription_failed", f"transcription failed{where} "
                                                               f"(may pass on retry): {error.message}")


def job_timeout(gateway_cfg, audio_s: float) -> float:
    """A job's deadline grows with its audio: job_timeout_s + job_timeout_per_audio_s × seconds."""
    return gateway_cfg.job_timeout_s + gateway_cfg.job_timeout_per_audio_s * audio_s


async def run_job(bridge, job: EncodedJob, timeout_s: float, progress=None) -> JobResult:
    """Push the job and wait for its finals; ApiError on refusal, failure or deadline.
    `progress`, if given, is called with each job_segments and final as it arrives (the event loop's thread)."""
    queue = bridge.router.watch_job(job.job)  # watch first: answers may come before push returns
    assembler = JobAssembler(job.job)
    started = time.monotonic()
    try:
        await _push(bridge, job)
        vad = VadWatch(bridge.router.vad_instance)
        resubmits = 0
        ack_deadline = started + ACK_BASE_S + ACK_PER_AUDIO_S * job.duration
        deadline = started + timeout_s
        while not assembler.done:
            now = time.monotonic()
            limit = deadline if assembler.acknowledged else min(ack_deadline, deadline)
            if now >= limit:
                raise _timeout(assembler, limit == deadline, timeout_s)
            try:
                async with asyncio.timeout(limit - now):  # not wait_for: on 3.11 it can swallow a cancel
                    msg = await queue.get()
            except TimeoutError:
                continue
            if isinstance(msg, schemas.Heartbeat):
                if vad.restarted(msg) and not assembler.done:
                    # vad died holding (some of) the job: the new one cuts it again; finals are kept by index
                    resubmits += 1
                    if resubmits > RESUBMIT_MAX:
                        raise ApiError(503, "vad_restarting", f"vad restarted {resubmits} times while this job "
                                                              f"ran; giving up")
                    log.warning("vad restarted during a job: resubmitted", extra={
                        "job": job.job, "finals": len(assembler.finals), "count": assembler.count})
                    bridge.counters["jobs_resubmitted"] += 1
                    await _push(bridge, job, RESUBMIT_PUSH_TIMEOUT_MS)
                    ack_deadline = time.monotonic() + ACK_BASE_S + ACK_PER_AUDIO_S * job.duration
                continue
            assembler.see(msg)
            if progress is not None and isinstance(msg, (schemas.JobSegments, schemas.Final)):
                progress(msg)
    finally:
        bridge.router.forget_job(job.job)
    if assembler.error is not None:
        raise failure(assembler.error)
    return assembler.result()


async def _push(bridge, job: EncodedJob, timeout_ms: int = PUSH_TIMEOUT_MS) -> None:
    if not await bridge.push_job(job.payload, timeout_ms):
        raise ApiError(503, "vad_unavailable", f"the vad stage did not take the job within "
                                               f"{timeout_ms} ms (is it running?)")


def _timeout(assembler: JobAssembler, overall: bool, timeout_s: float) -> ApiError:
    if not overall:
        return ApiError(503, "vad_no_answer", "the vad stage took the job but never said how many segments "
                                              "it has (did it stop?)")
    got = len(assembler.finals)
    return ApiError(504, "job_timeout", f"the job got {got} of {assembler.count} segments transcribed within "
                                        f"{timeout_s:g} s (gateway.job_timeout_s + job_timeout_per_audio_s × "
                                        "its audio); are asr workers running?")
