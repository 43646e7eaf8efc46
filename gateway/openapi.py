"""GET /openapi.json (OpenAPI 3.1, written by hand from one table) and GET /docs (a page of our own
that renders it offline: no CDN, no framework).

Every HTTP route of the app is in `OPERATIONS` and nothing else is (tests/gateway/test_openapi.py
holds the two equal): a new route needs a row here. The WebSocket `/stream` is described on its
plain-HTTP `GET /stream` (OpenAPI has no WebSockets); `/ui/` stands for the static page's files.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from bus.subtitles import FORMATS
from gateway.version import VERSION

DOCS_PAGE = Path(__file__).parent / "static" / "docs.html"

_S, _I, _N, _B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
_FILE = {"type": "string", "format": "binary"}
_LANG = {"type": "string", "description": "a Whisper code or English name (en, de, german) or auto"}
_FMT = {"type": "string", "enum": list(FORMATS)}
_TASK = {"type": "string", "enum": ["transcribe", "translate"]}
_MODEL = {"type": "string", "description": "a served model (GET /v1/models); whisper-1 = the default"}
_JOB_FIELDS = {"language": _LANG, "task": _TASK, "response_format": _FMT, "prompt": _S,
               "temperature": {**_N, "minimum": 0, "maximum": 1}, "word_timestamps": _B, "normalize": _B,
               "trim_silence": _B, "model": _MODEL}
_COUNT = {**_I, "minimum": 1}
_DIARIZE = {"diarize": {**_B, "description": "label speakers (segments and words get `speaker`); needs the speaker "
                                            "stage ([speaker] enabled)"},
            "num_speakers": _COUNT, "min_speakers": _COUNT, "max_speakers": _COUNT}
_JOB_FIELDS = {**_JOB_FIELDS, **_DIARIZE}
_SSE = {"text/event-stream": {"schema": _S}}
_JSON = {"application/json": {"schema": {"type": "object"}}}
_ERRORS = "4xx/5xx: {\"error\": {message, type, code, param}} (see the gateway README, Errors)"


def _q(name: str, schema: dict, description: str = "", where: str = "query", required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def _multipart(file_field: str, fields: dict) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [file_field], "properties": {file_field: _FILE, **fields}}}}}


def _op(summary: str, params: list | None = None, body: dict | None = None, content: dict | None = None,
        description: str = "") -> dict:
    op = {"summary": summary, "description": (description + "\n\n" if description else "") + _ERRORS,
          "parameters": params or [], "responses": {"200": {"description": "OK", "content": content or _JSON}}}
    if body is not None:
        op["requestBody"] = body
    return op


_PROGRESS = _q("progress", _B, "true: answer with Server-Sent Events (job_segments, final per segment, then "
                               "done with the answer, or error) instead of one response")
_RANGE = [_q("since", _S, "epoch seconds or ISO 8601"), _q("until", _S, "epoch seconds or ISO 8601")]
_OPENAI = {"model": _MODEL, "language": _LANG, "prompt": _S, "response_format": _FMT,
           "temperature": {**_N, "minimum": 0, "maximum": 1},
           "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}},
           "stream": {**_B, "description": "Server-Sent Events transcript.text.delta / transcript.text.done"},
           **_DIARIZE}
_WS_PARAMS = [_q("language", _LANG), _q("task", _TASK), _q("model", _MODEL),
              _q("sample_rate", {**_I, "minimum": 8000, "maximum": 192000}),
              _q("encoding", {"type": "string", "enum": ["f32", "s16", "webm", "ogg"]}),
              _q("partials", _B), _q("end_silence_ms", _I), _q("prompt", _S),
              _q("speakers", _B, "finals carry `speaker`, `speakers` (turns) and per-segment/word speakers "
                                 "([speaker] live on the server)"),
              _q("resume", _S, "the `resume` token of the last event: the same session goes on, missed finals first")]

OPERATIONS: dict[tuple[str, str], dict] = {
    ("/", "get"): _op("Service name, version, status and endpoints"),
    ("/health", "get"): _op("200 when bus, vad and an asr with a loaded model are heard, else 503"),
    ("/model/info", "get"): _op("The asr workers and the served models with their capabilities"),
    ("/transcribe", "post"): _op("Transcribe an uploaded file (voxbus's own API)", [_PROGRESS],
                                 _multipart("audio_file", _JOB_FIELDS), {**_JSON, **_SSE}),
    ("/transcribe/base64", "post"): _op("Transcribe base64 audio in a JSON body", [_PROGRESS], {
        "required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["audio_base64"], "properties": {"audio_base64": _S, **_JOB_FIELDS}}}}},
        {**_JSON, **_SSE}),
    ("/inference", "post"): _op("whisper.cpp server's endpoint", body=_multipart("file", {
        "language": _LANG, "response_format": _FMT, "temperature": _N, "prompt": _S, "translate": _B,
        "model": _MODEL, "word_timestamps": _B, **_DIARIZE}), description="Other whisper.cpp tuning fields are accepted "
                                                                 "(sane values) and ignored."),
    ("/v1/audio/transcriptions", "post"): _op("OpenAI's transcription endpoint", body=_multipart("file", _OPENAI),
                                              content={**_JSON, **_SSE}),
    ("/v1/audio/translations", "post"): _op("OpenAI's translation endpoint (into English)", body=_multipart(
        "file", {k: v for k, v in _OPENAI.items() if k not in ("language", "stream")})),
    ("/v1/models", "get"): _op("OpenAI's model list: whisper-1 and every served model with its capabilities"),
    ("/events", "get"): _op("Server-Sent Events of every transcript, vad, job and alert event",
                            [_q("stream", _S), _q("job", _S),
                             _q("last_event_id", _S, "as the Last-Event-ID header: the finals after that one first"),
                             _q("Last-Event-ID", _S, "the `id` of the last final received", where="header")],
                            content=_SSE),
    ("/stream", "get"): _op("The live WebSocket (ws://): plain HTTP gets 426", _WS_PARAMS, description=(
        "Binary frames: PCM in `encoding` at `sample_rate`, or WebM/Ogg Opus chunks; text frames: flush, eof, "
        "config, ping. Server events: ready, vad, partial, final, alert, error, pong.")),
    ("/ui", "get"): _op("Redirect to /ui/", content={"text/html": {"schema": _S}}),
    ("/ui/", "get"): _op("The web page and its files (static)", content={"text/html": {"schema": _S}}),
    ("/openapi.json", "get"): _op("This document"),
    ("/docs", "get"): _op("This document as a page (offline)", content={"text/html": {"schema": _S}}),
    ("/metrics", "get"): _op("Prometheus metrics of the whole pipeline (text exposition format)",
                             content={"text/plain": {"schema": _S}}),
    ("/v1/transcripts", "get"): _op("Search stored finals", [_q("stream", _S), _q("q", _S, "FTS5 query"),
                                                             _q("language", _S),
                                                             _q("speaker", _S, "a speaker heard in it"),
                                                             _q("limit", _I),
                                                             _q("cursor", _S), *_RANGE]),
    ("/v1/transcripts", "delete"): _op("Delete stored finals", [_q("stream", _S), _q("until", _S)]),
    ("/v1/transcripts/{id}", "get"): _op("One stored final", [_q("id", _I, where="path")]),
    ("/v1/transcripts/{id}", "delete"): _op("Delete one stored final", [_q("id", _I, where="path")]),
    ("/v1/streams", "get"): _op("Streams with stored finals"),
    ("/v1/streams/{stream}/export", "get"): _op("A stream's finals as a file", [
        _q("stream", _S, where="path"), _q("format", {"type": "string", "enum": ["srt", "vtt", "txt", "json"]}),
        *_RANGE], content={**_JSON, "text/plain": {"schema": _S}}),
    ("/v1/alerts", "post"): _op("Add an alert rule (keywords, regex, silence_min or speaker)",
                                body={"required": True, "content": _JSON}),
    ("/v1/speakers", "post"): _op("Enrol a named speaker from a sample of their voice (2 s of speech at least)",
                                  body=_multipart("file", {"name": {**_S, "description": "letters, digits, - _ ."}})),
    ("/v1/speakers", "get"): _op("The enrolled speakers"),
    ("/v1/speakers/{name}", "delete"): _op("Forget an enrolled speaker", [_q("name", _S, where="path")]),
    ("/v1/alerts", "get"): _op("Alert rules"),
    ("/v1/alerts", "delete"): _op("Delete an alert rule", [_q("id", _S)]),
    ("/v1/alerts/fired", "get"): _op("Alerts that fired", [_q("rule", _S), _q("stream", _S), _q("limit", _I)]),
    ("/v1/alerts/{id}", "delete"): _op("Delete an alert rule", [_q("id", _S, where="path")]),
}


def document() -> dict:
    paths: dict[str, dict] = {}
    for (path, method), op in OPERATIONS.items():
        paths.setdefault(path, {})[method] = op
    # Keys (README "Security and access"): optional until one exists; which scope a path needs is gateway/access.py's.
    schemes = {"bearer": {"type": "http", "scheme": "bearer"},
               "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    return {"openapi": "3.1.0", "paths": paths, "components": {"securitySchemes": schemes},
            "security": [{}, {"bearer": []}, {"apiKey": []}],
            "info": {"title": "voxbus", "version": VERSION,
                     "description": "Self-hosted speech-to-text: REST (OpenAI- and whisper.cpp-compatible), "
                                    "Server-Sent Events and a WebSocket (/stream)."}}


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(document())


async def docs_page(request: Request) -> FileResponse:
    return FileResponse(DOCS_PAGE, media_type="text/html")
