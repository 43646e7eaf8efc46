"""Reading request bodies under the size limit: multipart uploads and JSON with base64 audio.

A JSON body can be ~133 MB of base64. json.loads and b64decode are single C calls
that hold the GIL, so a worker thread alone would still stall the event loop for
their whole run: the base64 value is cut out of the body by position (base64 needs
no JSON escapes), only the small rest goes through json.loads, and the base64 is
decoded in 1 MB chunks, between which the loop gets the GIL back. Anything unusual
(escapes inside the value, a nested object) takes the plain json.loads path.
"""
from __future__ import annotations

import asyncio
import binascii
import re
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from gateway.errors import ApiError
from gateway.http_limits import BodyDeadline
from gateway.params import loads, shown

MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
B64_CHUNK = 1 << 20  # characters per b64 decode call (a multiple of 4): a few ms of GIL each
_AUDIO_KEY = re.compile(rb'"audio_base64"\s*:\s*"')
_DATA_URL_MAX = 100  # "data:audio/wav;base64," fits well within this


@dataclass
class Upload:
    data: bytes
    filename: str
    form: FormData   # closed already: its text fields are still readable


def too_large(limit_bytes: int) -> ApiError:
    # Connection: close, so a client still sending the refused body is cut off instead of read to the end.
    return ApiError(413, "too_large", f"the request body is larger than the limit of "
                                      f"{limit_bytes // (1024 * 1024)} MB (gateway.max_upload_mb)",
                    headers={"Connection": "close"})


def limited(request: Request, limit_bytes: int, deadline: BodyDeadline | None = None) -> Request:
    """The same request, but reading past `limit_bytes` raises 413 (a Content-Length can lie or be absent),
    and a body that does not keep up with `deadline` raises 408."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(limit_bytes)
    received = 0

    async def receive():
        nonlocal received
        if deadline is None:
            message = await request.receive()
        else:
            try:
                async with asyncio.timeout(max(deadline.remaining(), 0.0)):
                    message = await request.receive()
            except TimeoutError:
                raise deadline.error() from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if deadline is not None:
                deadline.add(len(message.get("body", b"")))
            if received > limit_bytes:
                raise too_large(limit_bytes)
        return message

    return Request(request.scope, receive)


def _file_item(form: FormData, file_field: str) -> UploadFile:
    item = form.get(file_field)
    if item is None:
        files = [key for key, value in form.multi_items() if isinstance(value, UploadFile)]
        hint = f"; the body has file field(s) {', '.join(files)}" if files else "; the body has no file at all"
        raise ApiError(400, "missing_file", f"missing the audio file in field '{file_field}'{hint}", file_field)
    if not isinstance(item, UploadFile):
        raise ApiError(400, "missing_file", f"field '{file_field}' must be a file upload, not a text value",
                       file_field)
    return item


async def read_upload(request: Request, file_field: str, limit_bytes: int,
                      deadline: BodyDeadline | None = None) -> Upload:
    """A multipart body with one audio file in `file_field`; 400 naming what is missing or wrong."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        got = shown(content_type) if content_type else "none"
        raise ApiError(400, "not_multipart", f"expected a multipart/form-data body with the audio file in field "
                                             f"'{file_field}' (got content type {got})")
    body = limited(request, limit_bytes, deadline)
    # Starlette closes the parts itself when parsing fails; from here on, closing is ours on every path.
    form = await body.form(max_files=4, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    try:
        item = _file_item(form, file_field)
        return Upload(await item.read(), item.filename or "", form)
    finally:
        await form.close()


async def read_json_audio(request: Request, limit_bytes: int,
                          deadline: BodyDeadline | None = None) -> tuple[bytes, dict]:
    """A JSON object with base64 audio in `audio_base64`; returns (audio bytes, the other fields)."""
    body_limit = limit_bytes * 4 // 3 + MAX_FIELD_BYTES  # base64 is 4/3 of the audio
    chunks = [chunk async for chunk in limited(request, body_limit, deadline).stream()]
    return await asyncio.to_thread(lambda: parse_json_audio(b"".join(chunks), limit_bytes))


def parse_json_audio(raw: bytes, limit_bytes: int) -> tuple[bytes, dict]:
    """The body → (audio bytes, the other fields); ApiError naming what is wrong. Runs in a worker thread."""
    cut = _cut_audio(raw)
    if cut is not None:
        payload, (start, end) = cut
        return b64decode_chunked(memoryview(raw)[start:end], limit_bytes), payload
    try:
        payload = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, not a {type(payload).__name__}")
    encoded = payload.pop("audio_base64", None)
    if not isinstance(encoded, str) or not encoded:
        raise ApiError(400, "missing_audio", "missing field 'audio_base64' (a base64 string of the audio file)",
                       "audio_base64")
    if "," in encoded[:_DATA_URL_MAX] and encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[1]  # a data: URL, as browsers make them
    try:
        data = encoded.encode("ascii")
    except UnicodeEncodeError:
        raise ApiError(400, "bad_base64", "audio_base64 is not valid base64: it has non-ASCII characters",
                       "audio_base64") from None
    return b64decode_chunked(data, limit_bytes), payload


def _cut_audio(raw: bytes) -> tuple[dict, tuple[int, int]] | None:
    """(the other fields, the base64's span in raw) without parsing the big string; None: use json.loads."""
    match = _AUDIO_KEY.search(raw)
    if match is None or raw[match.start() - 1:match.start()] == b"\\":
        return None
    start = match.end()
    end = raw.find(b'"', start)  # base64 has no quotes; an escaped one means an escape, handled below
    # A second key (a duplicate, whose value json would keep, or a nested one): let json decide.
    if end < 0 or raw.find(b"\\", start, end) >= 0 or _AUDIO_KEY.search(raw, end) is not None:
        return None
    try:
        payload = loads(raw[:start] + raw[end:])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("audio_base64") != "":  # not the top-level key after all
        return None
    del payload["audio_base64"]
    if start == end:
        raise ApiError(400, "missing_audio", "missing field 'audio_base64' (a base64 string of the audio file)",
                       "audio_base64")
    if raw.startswith(b"data:", start):
        comma = raw.find(b",", start, min(end, start + _DATA_URL_MAX))
        start = comma + 1 if comma >= 0 else start
    return payload, (start, end)


def b64decode_chunked(encoded, limit_bytes: int | None = None) -> bytes:
    """Strict base64 (bytes, str or a memoryview) → bytes, in chunks; ApiError bad_base64 / too_large."""
    if isinstance(encoded, str):
        encoded = encoded.encode("ascii")
    view = memoryview(encoded)
    if limit_bytes is not None and len(view) // 4 * 3 > limit_bytes + 2:
        raise too_large(limit_bytes)
    parts = []
    try:
        for at in range(0, len(view), B64_CHUNK):
            chunk = view[at:at + B64_CHUNK]
            if at + B64_CHUNK < len(view) and chunk[-1] == ord("="):
                raise binascii.Error("padding before the end")  # each chunk alone would accept it
            parts.append(binascii.a2b_base64(chunk, strict_mode=True))
    except binascii.Error as exc:
        raise ApiError(400, "bad_base64", f"audio_base64 is not valid base64: {exc}", "audio_base64") from None
    data = b"".join(parts)
    if limit_bytes is not None and len(data) > limit_bytes:
        raise too_large(limit_bytes)
    return data
