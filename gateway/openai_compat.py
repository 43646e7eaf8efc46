"""OpenAI-compatible audio API, so the official client libraries work unchanged.

POST /v1/audio/transcriptions and /v1/audio/translations (multipart `file`, `model`,
`language`, `prompt`, `response_format`, `temperature`, `timestamp_granularities[]`)
and GET /v1/models. Fields newer clients add and we do not know are ignored, as
OpenAI's own server tolerates optional fields.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bus import subtitles
from gateway import diarization, formats, job_stream, models, params, service
from gateway.rest import read_upload
from gateway.errors import ApiError

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
    stream = params.flag(form.get("stream"), False, "stream")
    fmt = params.choice(form.get("response_format"), subtitles.FORMATS, "json", "response_format")
    granularities = _granularities(form)
    temperature = params.number(form.get("temperature"), 0.0, 0.0, 1.0, "temperature")
    words = "word" in granularities
    language = params.language(form.get("language")) if task == "transcribe" else "auto"
    model = models.Catalogue.from_state(request.state).pick(params.text(form.get("model"), 200, "model"),
                                                            language=language, task=task, upload=True)
    req = service.Request(
        data=upload.data, task=task, language=language,
        prompt=params.text(form.get("prompt"), params.PROMPT_MAX_CHARS, "prompt"),
        temperature=temperature, words=words, model=model.name,
        diarize=diarization.parse(form, cfg.speaker))
    models.check_request(model, req.language, task, words, diarize=req.diarize is not None)
    if stream:
        if task != "transcribe" or fmt not in ("json", "text"):
            raise ApiError(400, "stream_unsupported", "stream=true is for /v1/audio/transcriptions with "
                                                      "response_format json or text (as OpenAI's)", "stream")
        return job_stream.response(request.state.jobs, job_stream.openai_events(bridge, cfg.gateway, req))
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


def _model_object(caps: models.Capabilities, default: str, alias: str | None = None) -> dict:
    """OpenAI's model object, with what the model can do beside it (clients ignore keys they do not know)."""
    body = {**caps.as_json(default), "object": "model", "created": CREATED, "owned_by": "voxbus"}
    if alias is not None:
        body.update(id=alias, serves=caps.name)
    return body


async def models_list(request: Request) -> JSONResponse:
    """GET /v1/models: whisper-1 (the default's alias) and every served model, with what it can do."""
    catalogue = models.Catalogue.from_state(request.state)
    default = catalogue.models[catalogue.default]
    data = [_model_object(default, catalogue.default, alias) for alias in models.ALIASES]
    data += [_model_object(catalogue.models[name], catalogue.default) for name in catalogue.names()]
    return JSONResponse({"object": "list", "data": data})
