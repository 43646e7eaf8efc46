"""Request fields → typed values, each bad one a 400 that names the field and what it accepts."""
from __future__ import annotations

import json
import math

from bus.schemas import TASKS
from gateway.errors import ApiError
from gateway.languages import language_code

PROMPT_MAX_CHARS = 1000  # every endpoint and the WebSocket: context for the decoder
BEAM_MAX = 16            # whisper.cpp clients' beam_size / best_of: more is never useful, 10^9 is an attack
# whisper.cpp's tuning fields: accepted and ignored (asr has its own settings), but only with sane values.
WHISPER_CPP_TUNING = {"beam_size": (-1, BEAM_MAX, True), "best_of": (-1, BEAM_MAX, True),
                      "temperature_inc": (0.0, 1.0, False), "max_context": (-1, 100000, True),
                      "max_len": (0, 100000, True), "offset_t": (0, 86400000, True), "offset_n": (0, 100000, True),
                      "duration": (0, 86400000, True), "word_thold": (0.0, 1.0, False),
                      "entropy_thold": (-100.0, 100.0, False), "logprob_thold": (-100.0, 100.0, False),
                      "no_speech_thold": (0.0, 1.0, False)}
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def shown(value, limit: int = 60) -> str:
    """A client's value for an error message: quoted and cut short; never a Python object's repr."""
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    if not isinstance(value, str):
        return f"(a {'file' if hasattr(value, 'filename') else type(value).__name__}, not a value)"
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def loads(raw: str | bytes):
    """json.loads, but nesting too deep for the parser (`[` × 100000) is a ValueError like any other
    bad JSON, not a RecursionError (a 500 on REST, a 1011 on the WebSocket)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _string(value, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ApiError(400, f"bad_{param}", f"{param} {shown(value)}: expected a string", param)


def language(value: str | None, param: str = "language") -> str:
    code = language_code(_string(value, param) or "")
    if code is None:
        raise ApiError(400, "bad_language", f"{param} {shown(value)} is not a Whisper language code or name "
                                            f"(e.g. en, de, english, auto)", param)
    return code


def task(value: str | None, param: str = "task") -> str:
    value = (_string(value, param) or "transcribe").strip().lower()
    if value not in TASKS:
        raise ApiError(400, "bad_task", f"{param} {shown(value)}: expected transcribe or translate", param)
    return value


def choice(value: str | None, allowed: tuple[str, ...], default: str, param: str) -> str:
    value = (_string(value, param) or default).strip().lower()
    if value not in allowed:
        raise ApiError(400, f"bad_{param}", f"{param} {shown(value)}: expected one of {', '.join(allowed)}", param)
    return value


def number(value: str | float | None, default: float, low: float, high: float, param: str) -> float:
    if value is None or value == "":
        return default
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        parsed = math.nan
    if not low <= parsed <= high:  # also false for NaN
        raise ApiError(400, f"bad_{param}", f"{param} {shown(value)}: expected a number from {low:g} to {high:g}",
                       param)
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
    raise ApiError(400, f"bad_{param}", f"{param} {shown(value)}: expected true or false", param)


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


def integer(value, default: int, low: int, high: int, param: str) -> int:
    """A whole number in [low, high] (a string or a JSON number); 400 bad_<param> otherwise."""
    if value is None or value == "":
        return default
    parsed = number(value, default, low, high, param)
    if parsed != int(parsed):
        raise ApiError(400, f"bad_{param}", f"{param} {shown(value)}: expected a whole number from {low} to {high}",
                       param)
    return int(parsed)


def whisper_cpp_tuning(form) -> None:
    """Check the whisper.cpp tuning fields /inference ignores: NaN, infinities, negative or huge values
    (a beam of 10^9) are refused with a 400 naming the field, as everywhere else."""
    for name, (low, high, whole) in WHISPER_CPP_TUNING.items():
        value = form.get(name)
        if whole:
            integer(value, 0, low, high, name)
        else:
            number(value, 0.0, low, high, name)
