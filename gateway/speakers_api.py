"""Named speakers: POST /v1/speakers (enrol a voice from an audio sample), GET /v1/speakers,
DELETE /v1/speakers/{name}.

The speaker stage keeps the voices (speaker/voices.py, on disk under the data dir) and names the
speakers it finds with them; the gateway only decodes the sample and asks it over `speaker.jobs`
(a `VoiceJob`, answered with `Voices` or an `Error` on job/<id>/). Enrolment is from an uploaded
sample only: the store keeps a final's text and times, not its audio.
"""
from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bus import schemas
from gateway import audio, diarization, jobs, rest
from gateway.errors import ApiError

MAX_SAMPLE_S = 120.0  # a longer sample adds nothing to a voice
ANSWER_S = 30.0        # beyond the sample's own decoding: the stage may be finishing a file job first


def _enabled(request: Request):
    cfg = request.state.config
    if not cfg.speaker.enabled:
        raise ApiError(503, "speaker_disabled", "named speakers need the speaker stage "
                                                "([speaker] enabled = true, then: voxbus model build speaker)")
    return cfg


def _refused(error: schemas.Error) -> ApiError:
    if error.permanent:
        status = 404 if error.code == "unknown_speaker" else 400
        return ApiError(status, error.code or "bad_sample", error.message, "name" if "name" in error.code else None)
    return ApiError(503, error.code or "speaker_failed", f"the speaker stage failed (may pass on retry): "
                                                         f"{error.message}")


async def _ask(request: Request, op: str, name: str = "", pcm: bytes = b"") -> schemas.Voices:
    job = schemas.VoiceJob(job=jobs.new_job_id(), op=op, name=name, pcm=pcm, ts=time.time())
    return await diarization.ask(request.state.bridge, job.job, schemas.encode(job),
                                 ANSWER_S + len(pcm) / (2 * schemas.SAMPLE_RATE), schemas.Voices, _refused)


async def enroll(request: Request) -> JSONResponse:
    """multipart: `name` and `file` (a sample of that one person speaking, 2 s of speech at least)."""
    _enabled(request)
    upload = await rest.read_upload(request, "file")
    name = upload.form.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "bad_name", "name: required (the speaker's name: letters, digits, - _ .)", "name")
    try:
        pcm = await asyncio.to_thread(audio.decode_upload, upload.data, MAX_SAMPLE_S)
    except audio.AudioError as exc:
        raise ApiError(400, exc.code, exc.message, "file") from None
    answer = await _ask(request, "enroll", name.strip(), pcm.tobytes())
    enrolled = next(v for v in answer.voices if v["name"] == name.strip())
    return JSONResponse({**enrolled, "speakers": answer.voices}, status_code=201)


async def list_speakers(request: Request) -> JSONResponse:
    _enabled(request)
    return JSONResponse({"speakers": (await _ask(request, "list")).voices})


async def delete_speaker(request: Request) -> JSONResponse:
    _enabled(request)
    name = request.path_params["name"]
    return JSONResponse({"deleted": name, "speakers": (await _ask(request, "delete", name)).voices})


ROUTES = [
    Route("/v1/speakers", enroll, methods=["POST"]),
    Route("/v1/speakers", list_speakers, methods=["GET"]),
    Route("/v1/speakers/{name}", delete_speaker, methods=["DELETE"]),
]
