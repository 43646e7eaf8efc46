"""API errors: one exception type, one JSON shape for every endpoint.

The shape is OpenAI's (`{"error": {"message", "type", "code", "param"}}`) so the
official client libraries surface our messages unchanged.
"""
from __future__ import annotations

import logging
import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway import request_ids, security_headers

log = logging.getLogger(__name__)

# A Python object's repr (`<_io.BytesIO object at 0x7f...>`) that a library put into its message.
_OBJECT_REPR = re.compile(r"<[\w.]+ (?:object )?at 0x[0-9a-fA-F]+>")


def public(message: str) -> str:
    """A message fit for a client: no object reprs, whatever a library wrote into it."""
    return _OBJECT_REPR.sub("the upload", message)


class ApiError(Exception):
    """A request the gateway refuses or cannot serve; `status` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers  # e.g. Retry-After on a 503


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": public(message), "type": kind, "code": code, "param": param}}
    if (rid := request_ids.current()) is not None:
        body["error"]["request_id"] = rid
    return body


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    if exc.status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "status": exc.status, "code": exc.code,
                                             "detail": exc.message})
    return JSONResponse(error_body(exc.status, exc.code, exc.message, exc.param), status_code=exc.status,
                        headers=exc.headers)


async def http_error_handler(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own 404/405/400 (e.g. a broken multipart body) in our JSON shape."""
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    message = exc.detail if exc.status_code != 404 else f"no such endpoint: {request.method} {request.url.path}"
    return JSONResponse(error_body(exc.status_code, codes.get(exc.status_code, "http_error"), str(message)),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"path": request.url.path})
    # Starlette answers this one outside every middleware: the guard's headers are added here.
    return JSONResponse(error_body(500, "internal_error", f"internal error: {type(exc).__name__}"),
                        status_code=500, headers=security_headers.for_error())
