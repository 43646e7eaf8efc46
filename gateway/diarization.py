"""diarize=true on the upload endpoints: the request's hints, the speaker stage's job, and the merge.

The speaker stage (speaker/, its own process) answers a `DiarizeJob` pushed to `speaker.jobs`
with `Speakers` on job/<job>.speakers/ while asr transcribes the same upload; the turns are then
merged into the transcript's segments and words (bus/speaker_turns.py). Only the request
fields and the waiting live here, so the endpoints change by a line or two.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from bus import schemas
from bus.speaker_turns import DIARIZE_JOB_SUFFIX as JOB_SUFFIX, assign_speakers, speaker_at
from gateway import params
from gateway.errors import ApiError
from gateway.jobs import PUSH_TIMEOUT_MS, JobResult

FIELDS = ("diarize", "num_speakers", "min_speakers", "max_speakers")
HINTS = FIELDS[1:]


@dataclass(frozen=True)
class Diarize:
    """What the client asked for: speakers, and optionally how many."""
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


def parse(fields, speaker_cfg) -> Diarize | None:
    """The diarize fields of a form or JSON body; None when diarize is off. A bad value is a 400."""
    wanted = params.flag(fields.get("diarize"), False, "diarize")
    hints = {name: params.integer(fields.get(name), 0, 1, speaker_cfg.max_speakers, name) or None
             for name in HINTS if fields.get(name) not in (None, "")}
    if hints and not wanted:
        name = next(iter(hints))
        raise ApiError(400, "diarize_required", f"{name} needs diarize=true", name)
    if not wanted:
        return None
    request = Diarize(**hints)
    if request.num_speakers and (request.min_speakers or request.max_speakers):
        raise ApiError(400, "bad_num_speakers", "give num_speakers, or min_speakers/max_speakers, not both",
                       "num_speakers")
    if request.min_speakers and request.max_speakers and request.min_speakers > request.max_speakers:
        raise ApiError(400, "bad_min_speakers", f"min_speakers ({request.min_speakers}) is more than "
                                                f"max_speakers ({request.max_speakers})", "min_speakers")
    if not speaker_cfg.enabled:
        raise ApiError(503, "speaker_disabled", "speaker diarization is not enabled on this server "
                                                "([speaker] enabled = true, then: voxbus model build speaker)")
    return request


def encode_job(job: str, pcm: bytes, request: Diarize) -> bytes:
    """The DiarizeJob for the speaker stage (encoded in the upload's worker thread, like the asr job)."""
    return schemas.encode(schemas.DiarizeJob(job=job + JOB_SUFFIX, pcm=pcm, num_speakers=request.num_speakers,
                                             min_speakers=request.min_speakers,
                                             max_speakers=request.max_speakers, ts=time.time()))


def failure(error: schemas.Error) -> ApiError:
    if error.permanent:
        return ApiError(400, error.code or "bad_audio", f"the audio could not be diarized: {error.message}")
    return ApiError(503, error.code or "diarization_failed", f"diarization failed (may pass on retry): "
                                                             f"{error.message}")


async def ask(bridge, job: str, payload: bytes, timeout_s: float, answer: type[schemas.Message],
              failed=failure) -> schemas.Message:
    """Push an encoded job to the speaker stage and wait for its `answer` on job/<job>/; ApiError on
    refusal, failure (`failed(error)` says which) or deadline."""
    queue = bridge.router.watch_job(job)
    try:
        if not await bridge.push_speaker_job(payload, PUSH_TIMEOUT_MS):
            raise ApiError(503, "speaker_unavailable", f"the speaker stage did not take the job within "
                                                       f"{PUSH_TIMEOUT_MS} ms (is it running?)")
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await queue.get()
                if isinstance(msg, answer):
                    return msg
                if isinstance(msg, schemas.Error):
                    raise failed(msg)
    except TimeoutError:
        raise ApiError(504, "diarization_timeout", f"the speaker stage did not answer within {timeout_s:g} s "
                                                   f"(the job's deadline: gateway.job_timeout_s + "
                                                   f"job_timeout_per_audio_s × its length)") from None
    finally:
        bridge.router.forget_job(job)


async def run(bridge, job: str, payload: bytes, timeout_s: float) -> list[dict]:
    """The speaker stage's turns of a file job."""
    return (await ask(bridge, job + JOB_SUFFIX, payload, timeout_s, schemas.Speakers)).turns


def merge(result: JobResult, turns: list[dict], keep_words: bool) -> JobResult:
    """The transcript with a speaker on every segment and word (a segment split where the speaker
    changes); `keep_words` False: the word timings asked of asr for the split are not returned."""
    words = [{**w, "speaker": speaker_at(float(w["start"]), float(w["end"]), turns)} for w in result.words]
    segments = assign_speakers(with_words(result.segments, result.words), turns)
    if not keep_words:
        segments = [{k: v for k, v in s.items() if k != "words"} for s in segments]
    return replace(result, segments=segments, words=words if keep_words else [], speakers=turns)


def with_words(segments: list[dict], words: list[dict]) -> list[dict]:
    """Each segment with the words inside its time span (asr sends a job segment's words flat)."""
    if not words or any(s.get("words") for s in segments):
        return segments
    out, i = [], 0
    for segment in segments:
        mine = []
        while i < len(words) and float(words[i]["start"]) < float(segment["end"]):
            mine.append(words[i])
            i += 1
        out.append({**segment, "words": mine} if mine else dict(segment))
    if i < len(words) and out:  # words after the last segment's end belong to it
        out[-1] = {**out[-1], "words": out[-1].get("words", []) + words[i:]}
    return out
