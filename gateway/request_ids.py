"""The request id: taken from X-Request-ID when it is sane, else made; in every log line and error body.

Set by the guard (gateway/guard.py) at the start of each request or WebSocket; uvicorn runs
each request in a task of its own, so the context variable is that request's alone, and
tasks a handler starts inherit it.
"""
from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's id is echoed into headers and logs: no CR/LF, no JSON

CURRENT: ContextVar[str | None] = ContextVar("voxbus_request_id", default=None)


def choose(given: str | None) -> str:
    """The client's id if it is sane, else a fresh one."""
    return given if given is not None and _SANE.match(given) else uuid.uuid4().hex


def current() -> str | None:
    return CURRENT.get()


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = CURRENT.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True


def install_log_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
