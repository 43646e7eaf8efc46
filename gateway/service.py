"""The one path every upload endpoint takes: a job slot, decode, check limits, run the job, time it."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import numpy as np

from bus import schemas
from gateway import audio, diarization, jobs, rate_limits
from gateway.errors import ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5  # what a refused client is told to wait: a short job takes about this long
READERS_PER_JOB = 4  # bodies being read at once, per job slot: bounds the memory of uploads in flight


class JobSlots:
    """Counts file jobs in progress (from the body being in to the answer) against gateway.max_jobs:
    every job holds its upload and decoded audio in memory, and they share the asr workers.

    `UploadSlots` counts bodies being read the same way, so memory stays bounded by
    (readers + jobs) × max_upload_mb however many clients upload at once; a stalled body holds
    a reader slot only until its deadline (http_limits.BodyDeadline), never a job slot.
    """

    code = "too_many_jobs"
    what = "file jobs (gateway.max_jobs)"
    headers = {"Retry-After": str(RETRY_AFTER_S)}

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self.refused = 0

    @contextlib.contextmanager
    def hold(self):
        if self.active >= self.limit:
            self.refused += 1
            raise ApiError(503, self.code, f"the gateway is already running {self.limit} {self.what}; "
                                           f"retry in a few seconds", headers=self.headers)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


class UploadSlots(JobSlots):
    code = "too_many_uploads"
    what = f"upload reads ({READERS_PER_JOB} × gateway.max_jobs)"
    headers = {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"}  # its body is never read


@dataclass
class Request:
    data: bytes
    language: str = "auto"
    task: str = "transcribe"
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False      # word timestamps wanted in the answer (if asr produces them)
    model: str = ""          # the served model chosen (gateway.models); "" = the default
    normalize: bool = False
    trim_silence: bool = False
    diarize: diarization.Diarize | None = None  # speakers wanted (diarize=true and its hints)

    def options(self) -> dict:
        """Options for asr's decoder, by its names (it refuses unknown keys); the response
        format is the gateway's business and never leaves it."""
        options: dict = {"temperature": self.temperature}
        if self.words or self.diarize:  # diarization splits segments at the word where the speaker changes
            options["word_timestamps"] = True
        return options


@dataclass
class Outcome:
    result: jobs.JobResult
    job: str
    duration: float         # seconds of audio sent (after trimming)
    inference_time: float   # seconds from handing the job to vad until the last final
    total_time: float       # seconds from the start of decoding until the answer was ready
    language: str | None

    @property
    def rtf(self) -> float:
        return round(self.inference_time / self.duration, 4) if self.duration else 0.0


def decode(data: bytes, max_seconds: float, normalize: bool, trim: bool,
           memory_bytes: int | None = None) -> np.ndarray:
    pcm = audio.decode_upload(data, max_seconds, memory_bytes)
    if trim:
        pcm = audio.trim_silence(pcm)
        if pcm.size == 0:
            raise audio.AudioError("empty_audio", "the audio is silent: nothing is left after trim_silence")
    return audio.normalize_peak(pcm) if normalize else pcm


def prepare(req: Request, max_seconds: float, memory_bytes: int | None = None) -> jobs.EncodedJob:
    """Runs in a worker thread: decoding, the PCM copy and the msgpack encoding of an hour of
    audio (~115 MB each) would otherwise stall every stream and request for their duration."""
    try:
        pcm = decode(req.data, max_seconds, req.normalize, req.trim_silence, memory_bytes)
    except audio.AudioError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    job = schemas.Job(job=jobs.new_job_id(), pcm=pcm.tobytes(), language=req.language, task=req.task,
                      prompt=req.prompt, options=req.options(), ts=time.time(), model=req.model)
    speaker_job = diarization.encode_job(job.job, job.pcm, req.diarize) if req.diarize else None
    return jobs.EncodedJob(job.job, schemas.encode(job), pcm.size / schemas.SAMPLE_RATE, speaker_job)


async def transcribe(bridge, gateway_cfg, req: Request, progress=None) -> Outcome:
    """Decode, run the job, time it; `progress` sees each job_segments and final (jobs.run_job)."""
    started = time.monotonic()
    job = await asyncio.to_thread(prepare, req, gateway_cfg.max_audio_s, gateway_cfg.job_memory_mb * audio.MB)
    rate_limits.charge_audio(job.duration)  # limits.audio_s_per_min: this job is served; the next may wait
    bridge.counters["jobs_started"] += 1
    pushed = time.monotonic()
    speakers = None
    if job.speaker_payload is not None:  # the speaker stage works while asr transcribes
        speakers = asyncio.create_task(diarization.run(bridge, job.job, job.speaker_payload,
                                                       jobs.job_timeout(gateway_cfg, job.duration)))
        speakers.add_done_callback(lambda task: task.cancelled() or task.exception())  # never "not retrieved"
    try:
        result = await jobs.run_job(bridge, job, jobs.job_timeout(gateway_cfg, job.duration), progress)
        if speakers is not None:
            result = diarization.merge(result, await speakers, keep_words=req.words)
    except ApiError:
        bridge.counters["jobs_failed"] += 1
        raise
    finally:
        if speakers is not None:
            speakers.cancel()  # a no-op once it is done
    finished = time.monotonic()
    bridge.counters["jobs_done"] += 1
    log.info("job done", extra={"job": job.job, "audio_s": round(job.duration, 2),
                                "seconds": round(finished - pushed, 3), "segments": len(result.segments)})
    return Outcome(result, job.job, job.duration, round(finished - pushed, 4), round(finished - started, 4),
                   result.language or (req.language if req.language != "auto" else None))
