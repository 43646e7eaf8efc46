"""The client's settings, checked before use: every bad value is named with what is allowed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from config.names import TASKS
END_SILENCE_RANGE = (300, 2000)   # the gateway's default min_end_silence_ms / max_end_silence_ms


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    server: str = "http://127.0.0.1:8000"
    api_key: str = ""
    language: str = "auto"
    task: str = "transcribe"
    end_silence_ms: int = 800

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        """Saved or typed values → Settings; SettingsError lists every bad one."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known and v is not None}
        problems = []
        server = str(fields.get("server", cls.server)).strip().rstrip("/")
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"server {server!r}: expected http://host:port or https://host")
        task = str(fields.get("task", cls.task))
        if task not in TASKS:
            problems.append(f"task {task!r}: expected {' or '.join(TASKS)}")
        language = str(fields.get("language", cls.language)).strip().lower() or "auto"
        if not (language == "auto" or language.isalpha() and 2 <= len(language) <= 3):
            problems.append(f"language {language!r}: expected auto or a language code such as en, de")
        try:
            silence = int(fields.get("end_silence_ms", cls.end_silence_ms))
        except (TypeError, ValueError):
            silence = -1
        low, high = END_SILENCE_RANGE
        if not low <= silence <= high:
            problems.append(f"end_silence_ms {fields.get('end_silence_ms')!r}: expected {low} to {high}")
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(server, str(fields.get("api_key", "")).strip(), language, task, silence)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
