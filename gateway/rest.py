"""voxbus's own HTTP API: service info, health, model info, /transcribe, and whisper.cpp's /inference."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bus import subtitles
from gateway import access, diarization, formats, health, host_stats, job_stream, models, params, service, uploads
from gateway.version import VERSION
from gateway.errors import ApiError
from gateway.http_limits import BodyDeadline

TRANSCRIBE_FIELDS = ("audio_file", "language", "task", "normalize", "trim_silence", "response_format",
                     "prompt", "temperature", "word_timestamps", "model") + diarization.FIELDS
BASE64_FIELDS = tuple(f for f in TRANSCRIBE_FIELDS if f != "audio_file")


def _state(request: Request):
    return request.state.bridge, request.state.config


def body_deadline(request: Request) -> BodyDeadline:
    gw = request.state.config.gateway
    return BodyDeadline(gw.body_timeout_s, gw.body_min_rate_kbps)


async def read_upload(request: Request, file_field: str) -> uploads.Upload:
    """The multipart body, read before any job slot is taken (a slow or stalled upload holds none),
    under a reader slot (service.UploadSlots) and the body deadline."""
    with request.state.uploads.hold():
        return await uploads.read_upload(request, file_field,
                                         request.state.config.gateway.max_upload_mb * 1024 * 1024,
                                         body_deadline(request))


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def info(request: Request) -> JSONResponse:
    bridge, cfg = _state(request)
    gone = health.missing(bridge.router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    return JSONResponse({
        "name": "voxbus", "version": VERSION, "status": "ok" if not gone else "degraded",
        **({"missing": gone} if access.sees_details(request.scope) else {}),
        "endpoints": ["/health", "/model/info", "/transcribe", "/transcribe/base64", "/v1/audio/transcriptions",
                      "/v1/audio/translations", "/v1/models", "/inference", "/stream (WebSocket)", "/events",
                      "/ui", "/docs", "/openapi.json"]})


async def health_check(request: Request) -> JSONResponse:
    bridge, cfg = _state(request)
    ok, body = health.report(bridge.router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    dead = bridge.dead_tasks()
    if dead:  # the gateway itself is broken, whatever the other stages say
        ok = False
        body.update(status="unavailable", missing=body["missing"] + [f"gateway (task died: {'; '.join(dead)})"])
    if not access.sees_details(request.scope):  # anonymous, keys enforced: ok or not, nothing about the host
        return JSONResponse({"status": body["status"]}, status_code=200 if ok else 503)
    body["board"] = host_stats.board_report()
    return JSONResponse(body, status_code=200 if ok else 503)


async def model_info(request: Request) -> JSONResponse:
    bridge, cfg = _state(request)
    body = health.model_info(bridge.router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    catalogue = models.Catalogue.from_state(request.state)  # what each served model can do (issue 12)
    body.update(default=catalogue.default, models=[catalogue.models[n].as_json(catalogue.default)
                                                   for n in catalogue.names()])
    return JSONResponse(body)


def _job_request(request: Request, data: bytes, fields, default_format: str,
                 diarize_fields=None) -> tuple[service.Request, str]:
    """The checked request; a model that cannot do it is refused here, before the audio is decoded.
    `diarize_fields`: where diarize and its hints are read (default: `fields`)."""
    fmt = params.choice(fields.get("response_format"), subtitles.FORMATS, default_format, "response_format")
    temperature = params.number(fields.get("temperature"), 0.0, 0.0, 1.0, "temperature")
    words = params.flag(fields.get("word_timestamps"), False, "word_timestamps")
    language, task = params.language(fields.get("language")), params.task(fields.get("task"))
    model = models.Catalogue.from_state(request.state).pick(params.text(fields.get("model"), 200, "model"),
                                                            language=language, task=task, upload=True)
    req = service.Request(
        data=data, language=language, task=task,
        prompt=params.text(fields.get("prompt"), params.PROMPT_MAX_CHARS, "prompt"),
        temperature=temperature, words=words, model=model.name,
        normalize=params.flag(fields.get("normalize"), False, "normalize"),
        trim_silence=params.flag(fields.get("trim_silence"), False, "trim_silence"),
        diarize=diarization.parse(fields if diarize_fields is None else diarize_fields,
                                  request.state.config.speaker))
    models.check_request(model, req.language, req.task, words, diarize=req.diarize is not None)
    return req, fmt


def _transcribe_bodies(outcome: service.Outcome, req: service.Request, started: float) -> tuple[dict, dict]:
    """/transcribe's JSON answer and its verbose_json."""
    result, task = outcome.result, req.task
    body = {"text": result.text, "language": outcome.language, "duration": round(outcome.duration, 3),
            "inference_time": outcome.inference_time, "total_time": round(time.monotonic() - started, 4),
            "rtf": outcome.rtf, "timestamp": _now_iso(), "segments": result.segments, "job": outcome.job,
            "model": req.model}
    if req.words:
        body["words"] = result.words
    if result.speakers is not None:
        body["speakers"] = result.speakers
    verbose = formats.verbose_json(result.text, result.segments, result.words if req.words else None, task=task,
                                   language=outcome.language, duration=outcome.duration)
    return body, verbose


def _transcribe_response(outcome: service.Outcome, fmt: str, req: service.Request, started: float) -> Response:
    body, verbose = _transcribe_bodies(outcome, req, started)
    return formats.render(fmt, outcome.result.text, outcome.result.segments, body, verbose)


def _with_progress(request: Request, req: service.Request, fmt: str, started: float) -> Response:
    """`?progress=true`: the job as Server-Sent Events (gateway.job_stream), the answer in the last one."""
    def answer(outcome: service.Outcome) -> dict:
        body, verbose = _transcribe_bodies(outcome, req, started)
        return formats.as_json(fmt, outcome.result.text, outcome.result.segments, body, verbose)
    bridge, cfg = _state(request)
    return job_stream.response(request.state.jobs, job_stream.voxbus_events(bridge, cfg.gateway, req, answer))


def _progress_wanted(request: Request) -> bool:
    unknown = sorted(set(request.query_params) - {"progress"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown query parameter(s) {', '.join(unknown)} "
                                             "(this endpoint takes: progress)", unknown[0])
    return params.flag(request.query_params.get("progress"), False, "progress")


async def transcribe(request: Request) -> Response:
    """POST /transcribe: multipart `audio_file` plus options."""
    started = time.monotonic()
    bridge, cfg = _state(request)
    progress = _progress_wanted(request)
    upload = await read_upload(request, "audio_file")
    fields = {k: v for k, v in upload.form.multi_items() if k != "audio_file"}
    params.no_unknown(list(fields) + ["audio_file"], TRANSCRIBE_FIELDS)
    req, fmt = _job_request(request, upload.data, fields, "json")
    if progress:
        return _with_progress(request, req, fmt, started)
    with request.state.jobs.hold():  # only once the body is in: a stalled upload holds no slot
        outcome = await service.transcribe(bridge, cfg.gateway, req)
    return _transcribe_response(outcome, fmt, req, started)


async def transcribe_base64(request: Request) -> Response:
    """POST /transcribe/base64: JSON `audio_base64` plus the same options."""
    started = time.monotonic()
    bridge, cfg = _state(request)
    progress = _progress_wanted(request)
    with request.state.uploads.hold():
        data, fields = await uploads.read_json_audio(request, cfg.gateway.max_upload_mb * 1024 * 1024,
                                                     body_deadline(request))
    params.no_unknown(fields, BASE64_FIELDS)
    bad = [k for k, v in fields.items() if v is not None and not isinstance(v, (str, bool, int, float))]
    if bad:
        raise ApiError(400, "bad_field", f"field {params.shown(bad[0])} must be a string, number or boolean", bad[0])
    fields = {k: (v if isinstance(v, (str, bool)) or v is None else str(v)) for k, v in fields.items()}
    req, fmt = _job_request(request, data, fields, "json")
    if progress:
        return _with_progress(request, req, fmt, started)
    with request.state.jobs.hold():
        outcome = await service.transcribe(bridge, cfg.gateway, req)
    return _transcribe_response(outcome, fmt, req, started)


async def inference(request: Request) -> Response:
    """POST /inference, as whisper.cpp's server: `file`, `response_format`, `temperature`, `language`.

    whisper.cpp clients send many tuning fields we do not have; they are ignored, as there, once
    their values are sane (`params.whisper_cpp_tuning`: a beam of 10^9 is refused, not ignored).
    """
    bridge, cfg = _state(request)
    upload = await read_upload(request, "file")
    form = upload.form
    params.whisper_cpp_tuning(form)
    translate = params.flag(form.get("translate"), False, "translate")
    fields = {"language": form.get("language"), "temperature": form.get("temperature"),
              "response_format": form.get("response_format"), "prompt": form.get("prompt"),
              "task": "translate" if translate else "transcribe", "model": form.get("model"),
              "word_timestamps": form.get("word_timestamps")}
    req, fmt = _job_request(request, upload.data, fields, "json", diarize_fields=form)
    with request.state.jobs.hold():
        outcome = await service.transcribe(bridge, cfg.gateway, req)
    result = outcome.result
    verbose = formats.whisper_cpp_verbose(
        formats.verbose_json(result.text, result.segments, None, task=req.task, language=outcome.language,
                             duration=outcome.duration, temperature=req.temperature),
        result.segments, outcome.language, result.language_prob, req.words)
    return formats.render(fmt, result.text, result.segments, {"text": result.text}, verbose)
