"""The one path every upload endpoint takes: decode, check limits, run the job, time it."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from bus import schemas
from gateway import audio, jobs
from gateway.errors import ApiError

log = logging.getLogger(__name__)


@dataclass
class Request:
    data: bytes
    language: str = "auto"
    task: str = "transcribe"
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False      # word timestamps wanted in the answer (if asr produces them)
    normalize: bool = False
    trim_silence: bool = False

    def options(self) -> dict:
        """Options for asr's decoder, by its names (it refuses unknown keys); the response
        format is the gateway's business and never leaves it."""
        options: dict = {"temperature": self.temperature}
        if self.words:
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


def decode(data: bytes, max_seconds: float, normalize: bool, trim: bool) -> np.ndarray:
    """Runs in a worker thread: decoding must never block the event loop."""
    pcm = audio.decode_upload(data, max_seconds)
    if trim:
        pcm = audio.trim_silence(pcm)
        if pcm.size == 0:
            raise audio.AudioError("empty_audio", "the audio is silent: nothing is left after trim_silence")
    return audio.normalize_peak(pcm) if normalize else pcm


async def transcribe(bridge, gateway_cfg, req: Request) -> Outcome:
    started = time.monotonic()
    try:
        pcm = await asyncio.to_thread(decode, req.data, gateway_cfg.max_audio_s, req.normalize, req.trim_silence)
    except audio.AudioError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    duration = pcm.size / schemas.SAMPLE_RATE
    job = schemas.Job(job=jobs.new_job_id(), pcm=pcm.tobytes(), language=req.language, task=req.task,
                      prompt=req.prompt, options=req.options(), ts=time.time())
    bridge.counters["jobs_started"] += 1
    pushed = time.monotonic()
    try:
        result = await jobs.run_job(bridge, job, duration, gateway_cfg.job_timeout_s)
    except ApiError:
        bridge.counters["jobs_failed"] += 1
        raise
    finished = time.monotonic()
    bridge.counters["jobs_done"] += 1
    log.info("job done", extra={"job": job.job, "audio_s": round(duration, 2),
                                "seconds": round(finished - pushed, 3), "segments": len(result.segments)})
    return Outcome(result, job.job, duration, round(finished - pushed, 4), round(finished - started, 4),
                   result.language or (req.language if req.language != "auto" else None))
