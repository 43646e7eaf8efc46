"""Reading request bodies under the size limit: multipart uploads and JSON with base64 audio."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from gateway.errors import ApiError

MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class Upload:
    data: bytes
    filename: str
    form: FormData


def too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than the limit of "
                                      f"{limit_bytes // (1024 * 1024)} MB (gateway.max_upload_mb)")


def limited(request: Request, limit_bytes: int) -> Request:
    """The same request, but reading past `limit_bytes` raises 413 (a Content-Length can lie or be absent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(limit_bytes)
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit_bytes:
                raise too_large(limit_bytes)
        return message

    return Request(request.scope, receive)


async def read_upload(request: Request, file_field: str, limit_bytes: int) -> Upload:
    """A multipart body with one audio file in `file_field`; 400 naming what is missing or wrong."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "not_multipart", f"expected a multipart/form-data body with the audio file in field "
                                             f"'{file_field}' (got content type {content_type or 'none'!r})")
    body = limited(request, limit_bytes)
    form = await body.form(max_files=4, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    item = form.get(file_field)
    if item is None:
        files = [key for key, value in form.multi_items() if isinstance(value, UploadFile)]
        hint = f"; the body has file field(s) {', '.join(files)}" if files else "; the body has no file at all"
        raise ApiError(400, "missing_file", f"missing the audio file in field '{file_field}'{hint}", file_field)
    if not isinstance(item, UploadFile):
        raise ApiError(400, "missing_file", f"field '{file_field}' must be a file upload, not a text value",
                       file_field)
    data = await item.read()
    await form.close()
    return Upload(data, item.filename or "", form)


async def read_json_audio(request: Request, limit_bytes: int) -> tuple[bytes, dict]:
    """A JSON object with base64 audio in `audio_base64`; returns (audio bytes, the other fields)."""
    body_limit = limit_bytes * 4 // 3 + MAX_FIELD_BYTES  # base64 is 4/3 of the audio
    raw = await limited(request, body_limit).body()
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, not a {type(payload).__name__}")
    encoded = payload.pop("audio_base64", None)
    if not isinstance(encoded, str) or not encoded:
        raise ApiError(400, "missing_audio", "missing field 'audio_base64' (a base64 string of the audio file)",
                       "audio_base64")
    if "," in encoded[:100] and encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[1]  # a data: URL, as browsers make them
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "bad_base64", f"audio_base64 is not valid base64: {exc}", "audio_base64") from None
    if len(data) > limit_bytes:
        raise too_large(limit_bytes)
    return data, payload
