"""Names that both the settings and the wire use, defined once (config is the lowest layer).

Ids of streams, jobs and stages become topic parts (`audio/<stream>/`), so no '/': config
validates the ids it is given (`[[capture.sources]] stream`) and bus.schemas the ids on the
wire, both with this pattern. TASKS are what a stream or a job may ask Whisper to do.
"""
from __future__ import annotations

import re

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
ID_RULE = "1-64 letters, digits, _ . : -"
TASKS = ("transcribe", "translate")


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.match(value) is not None
