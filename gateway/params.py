"""Request fields → typed values, each bad one a 400 that names the field and what it accepts."""
from __future__ import annotations

import math

from bus.schemas import TASKS
from gateway.errors import ApiError
from gateway.languages import language_code

PROMPT_MAX_CHARS = 1000  # every endpoint and the WebSocket: context for the decoder
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def _string(value, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ApiError(400, f"bad_{param}", f"{param} {value!r}: expected a string", param)


def language(value: str | None, param: str = "language") -> str:
    code = language_code(_string(value, param) or "")
    if code is None:
        raise ApiError(400, "bad_language", f"{param} {value!r} is not a Whisper language code or name "
                                            f"(e.g. en, de, english, auto)", param)
    return code


def task(value: str | None, param: str = "task") -> str:
    value = (_string(value, param) or "transcribe").strip().lower()
    if value not in TASKS:
        raise ApiError(400, "bad_task", f"{param} {value!r}: expected transcribe or translate", param)
    return value


def choice(value: str | None, allowed: tuple[str, ...], default: str, param: str) -> str:
    value = (_string(value, param) or default).strip().lower()
    if value not in allowed:
        raise ApiError(400, f"bad_{param}", f"{param} {value!r}: expected one of {', '.join(allowed)}", param)
    return value


def number(value: str | float | None, default: float, low: float, high: float, param: str) -> float:
    if value is None or value == "":
        return default
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        parsed = math.nan
    if not low <= parsed <= high:  # also false for NaN
        raise ApiError(400, f"bad_{param}", f"{param} {value!r}: expected a number from {low:g} to {high:g}", param)
    return parsed


def flag(value: str | bool | None, default: bool, param: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ApiError(400, f"bad_{param}", f"{param} {value!r}: expected true or false", param)


def text(value: str | None, limit: int, param: str) -> str | None:
    value = _string(value, param)
    if value is None or value == "":
        return None
    if len(value) > limit:
        raise ApiError(400, f"bad_{param}", f"{param} is {len(value)} characters; the limit is {limit}", param)
    return value


def no_unknown(fields, known: tuple[str, ...]) -> None:
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s) {', '.join(unknown)} "
                                             f"(this endpoint takes: {', '.join(known)})", unknown[0])
