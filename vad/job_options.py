"""A file job's language, task and decoding options, checked where the job enters vad.

The gateway checks what its clients send, but vad.jobs is a socket anyone on the box may
push to, and asr would take a `beam_size` of 10**9 at its word (12 GB in under a minute).
So a job with an option asr does not know, or a value outside what [asr]'s own setting of
that name allows (config/schema.py, the one home of those bounds), is refused before any
cutting, with an error that names the option: the gateway turns it into a 400.
"""
from __future__ import annotations

import dataclasses
import math
import re

from bus import schemas
from config.schema import AsrConfig

LANGUAGE = re.compile(r"^(auto|[a-z]{2,3})$")  # Whisper's codes are 2-3 lowercase letters (yue, haw)
TEMPERATURES_MAX = 10
# job option → the [asr] setting whose bounds it shares
BOUNDED = {"beam_size": "beam_size", "best_of": "best_of", "patience": "patience",
           "length_penalty": "length_penalty", "compression_ratio_threshold": "compression_ratio_threshold",
           "logprob_threshold": "logprob_threshold", "no_speech_threshold": "no_speech_threshold"}
INTEGERS = ("beam_size", "best_of")
KNOWN = tuple(sorted((*BOUNDED, "temperature", "word_timestamps")))


def _bounds() -> dict[str, tuple[float, float]]:
    meta = {f.name: f.metadata for f in dataclasses.fields(AsrConfig)}
    return {option: (meta[setting]["min"], meta[setting]["max"]) for option, setting in BOUNDED.items()}


BOUNDS = _bounds()


def check_job(job: schemas.Job) -> None:
    """ValueError naming the first bad field; nothing when the job may be cut."""
    if not LANGUAGE.match(job.language):
        raise ValueError(f"job language {job.language!r:.40}: expected a Whisper language code (en, de, ...) or auto")
    for name, value in job.options.items():
        _check_option(name, value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_option(name: str, value) -> None:
    if name == "word_timestamps":
        if not isinstance(value, bool):
            raise ValueError(f"job option word_timestamps = {value!r:.40}: expected true or false")
    elif name == "temperature":
        values = value if isinstance(value, list) else [value]
        if not 1 <= len(values) <= TEMPERATURES_MAX or not all(_number(t) and 0.0 <= t <= 1.0 for t in values):
            raise ValueError(f"job option temperature = {value!r:.60}: expected a number from 0 to 1, or a list "
                             f"of 1 to {TEMPERATURES_MAX} of them")
    elif name in BOUNDS:
        low, high = BOUNDS[name]
        whole = name not in INTEGERS or isinstance(value, int)
        if not (_number(value) and whole and low <= value <= high):
            kind = "an integer" if name in INTEGERS else "a number"
            raise ValueError(f"job option {name} = {value!r:.40}: expected {kind} from {low:g} to {high:g}")
    else:
        raise ValueError(f"job option {name!r:.40} is unknown (known: {', '.join(KNOWN)})")
