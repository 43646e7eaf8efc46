"""OpenAI-compatible audio API, so the official client libraries work unchanged.

POST /v1/audio/transcriptions and /v1/audio/translations (multipart `file`, `model`,
`language`, `prompt`, `response_format`, `temperature`, `timestamp_granularities[]`)
and GET /v1/models. Fields newer clients add and we do not know are ignored, as
OpenAI's own server tolerates optional fields.
"""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bus import subtitles
from gateway import formats, health, params, service
from gateway.rest import read_upload
from gateway.errors import ApiError

DEFAULT_MODEL = "whisper-1"
GRANULARITIES = ("segment", "word")
CREATED = 1700000000  # a fixed "created" time: models here have no creation date worth reporting


def _granularities(form) -> list[str]:
    values = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    for value in values:
        if value not in GRANULARITIES:
            raise ApiError(400, "bad_timestamp_granularities", f"timestamp_granularities[] {params.shown(value)}: "
                                                               "expected segment or word", "timestamp_granularities[]")
    return values or ["segment"]


async def _audio(request: Request, task: str) -> Response:
    bridge, cfg = request.state.bridge, request.state.config
    upload = await read_upload(request, "file")  # before the job slot: a stalled upload holds none
    form = upload.form
    if params.flag(form.get("stream"), False, "stream"):
        raise ApiError(400, "stream_unsupported", "stream=true is not supported here; use the /stream WebSocket "
                                                  "for live results", "stream")
    fmt = params.choice(form.get("response_format"), subtitles.FORMATS, "json", "response_format")
    granularities = _granularities(form)
    temperature = params.number(form.get("temperature"), 0.0, 0.0, 1.0, "temperature")
    words = "word" in granularities
    req = service.Request(
        data=upload.data, task=task,
        language=params.language(form.get("language")) if task == "transcribe" else "auto",
        prompt=params.text(form.get("prompt"), params.PROMPT_MAX_CHARS, "prompt"),
        temperature=temperature, words=words)
    with request.state.jobs.hold():
        outcome = await service.transcribe(bridge, cfg.gateway, req)
    result = outcome.result
    verbose = formats.verbose_json(result.text, result.segments if "segment" in granularities else [],
                                   result.words if words else None, task=task, language=outcome.language,
                                   duration=outcome.duration, temperature=temperature)
    return formats.render(fmt, result.text, result.segments, {"text": result.text}, verbose)


async def transcriptions(request: Request) -> Response:
    return await _audio(request, "transcribe")


async def translations(request: Request) -> Response:
    return await _audio(request, "translate")


async def models(request: Request) -> JSONResponse:
    bridge, cfg = request.state.bridge, request.state.config
    info = health.model_info(bridge.router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    names = [DEFAULT_MODEL] + sorted({w["model"] for w in info["workers"] if w["model"]} - {DEFAULT_MODEL})
    return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "created": CREATED,
                                                     "owned_by": "voxbus"} for name in names]})
