"""Which models are served and what each can do; a request's `model` and options checked against them.

The gateway learns what is served from the asr heartbeats (`schemas.ModelStatus`: name, loaded,
multilingual, languages, word_timestamps), plus the configured default (`asr.model`), which is
always a valid name even before a worker has reported. No sockets: a HealthTable in, answers out.

Refusing here, before an upload is decoded or a stream opened, is the point: a request the
chosen model cannot do (German on tiny.en, translate on an English-only model) gets a 400 or a
WebSocket error at once instead of a transcription that fails segment by segment.
"""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

from bus import schemas
from bus.status import HealthTable
from gateway.errors import ApiError
from gateway.languages import LANGUAGES
from gateway.params import shown
from gateway.ws_protocol import ProtocolError

ALIASES = ("whisper-1",)  # OpenAI's model name: clients send it; it means the configured default
_ENGLISH_ONLY = re.compile(r"\.en($|[-_.])")  # tiny.en, base.en-int8: Whisper's English-only models


@dataclass(frozen=True)
class Capabilities:
    name: str
    languages: tuple[str, ...]     # codes it transcribes (English-only models: just "en")
    translate: bool                # task=translate (into English) needs a multilingual model
    word_timestamps: bool | None   # None: no worker said (an older asr); asr decides per request
    loaded: bool                   # a worker has it loaded now
    workers: int = 0

    def as_json(self, default: str) -> dict:
        return {"id": self.name, "default": self.name == default, "loaded": self.loaded, "workers": self.workers,
                "languages": list(self.languages), "multilingual": len(self.languages) > 1,
                "translate": self.translate, "word_timestamps": self.word_timestamps}


def _capabilities(status: schemas.ModelStatus) -> Capabilities:
    languages = tuple(status.languages) if status.languages else (
        tuple(LANGUAGES) if status.multilingual else ("en",))
    return Capabilities(status.name, languages, status.multilingual, status.word_timestamps, status.loaded)


def served(table: HealthTable, now: float, timeout: float, default: str) -> dict[str, Capabilities]:
    """Every model a fresh asr worker reports, by name; the default is always listed (as `unheard`)
    until a worker reports it."""
    by_name: dict[str, list[schemas.ModelStatus]] = {}
    for row in table.fresh(now, timeout):
        status = row.heartbeat.model_status() if row.heartbeat.stage == "asr" else None
        if status is not None and status.name:
            by_name.setdefault(status.name, []).append(status)
    found = {}
    for name, statuses in by_name.items():
        best = max(statuses, key=lambda s: (s.loaded, s.languages is not None))  # a loaded worker knows most
        found[name] = dataclasses.replace(_capabilities(best), workers=len(statuses))
    if default not in found:
        found[default] = unheard(default)
    return found


def unheard(name: str) -> Capabilities:
    """A model no worker has reported yet: its name tells whether it is English-only (`*.en`)."""
    english_only = _ENGLISH_ONLY.search(name) is not None
    return Capabilities(name, ("en",) if english_only else tuple(LANGUAGES), not english_only, None, False)


class Catalogue:
    """The served models at one moment, for one request."""

    def __init__(self, models: dict[str, Capabilities], default: str, upload_default: str = ""):
        self.models = models
        self.default = default
        self.upload_default = upload_default if upload_default in models else default

    @classmethod
    def of(cls, bridge, cfg) -> Catalogue:
        """What the bridge's router has heard now, with the configured defaults (live, uploads)."""
        table = bridge.router.health
        found = served(table, time.monotonic(), cfg.bus.heartbeat_timeout_s, cfg.asr.model)
        if cfg.asr.upload_model and cfg.asr.upload_model not in found:
            found[cfg.asr.upload_model] = unheard(cfg.asr.upload_model)
        return cls(found, cfg.asr.model, cfg.asr.upload_model)

    @classmethod
    def from_state(cls, state) -> Catalogue:
        """From a request's or WebSocket's `state` (bridge + config)."""
        return cls.of(state.bridge, state.config)

    def names(self) -> list[str]:
        return [self.default] + sorted(set(self.models) - {self.default})

    def pick(self, requested: str | None, param: str = "model", language: str = "auto", task: str = "transcribe",
             upload: bool = False) -> Capabilities:
        """The model a request names; 400 unknown_model if it is not served. None, "" or an alias: the
        default (for uploads, asr.upload_model), unless it cannot do `language`/`task` and another
        loaded model can (German on a server whose default is tiny.en goes to a multilingual model)."""
        name = (requested or "").strip()
        if not name or name in ALIASES:
            default = self.models[self.upload_default if upload else self.default]
            if refusal(default, language, task) is None:
                return default
            able = [m for n, m in sorted(self.models.items()) if m.loaded and refusal(m, language, task) is None]
            return able[0] if able else default
        if name in self.models:
            return self.models[name]
        raise ApiError(400, "unknown_model", f"model {shown(name)} is not served here; served: "
                                             f"{', '.join(self.names())} (or {', '.join(ALIASES)} for "
                                             f"{self.default})", param)


def refusal(model: Capabilities, language: str, task: str, words: bool = False,
            diarize: bool = False) -> tuple[str, str, str] | None:
    """(code, message, param) when `model` cannot do this request, else None."""
    if language != "auto" and language not in model.languages:
        only = ("it transcribes only " + ", ".join(model.languages)) if len(model.languages) <= 5 else \
            f"not one of its {len(model.languages)} languages"
        return ("unsupported_language", f"model {model.name} cannot transcribe language {shown(language)}: {only}",
                "language")
    if task == "translate" and not model.translate:
        return ("unsupported_task", f"model {model.name} is English-only: it cannot translate (task=translate "
                                    "needs a multilingual model)", "task")
    if words and model.word_timestamps is False:
        return ("unsupported_word_timestamps", f"model {model.name} has no word timing decoder "
                                               "(decoder_attn.onnx): rebuild it with voxbus model build",
                "word_timestamps")
    if diarize and model.word_timestamps is False:  # speaker changes are placed by word
        return ("unsupported_diarize", f"diarize=true needs word timings, and model {model.name} has no word "
                                       "timing decoder (decoder_attn.onnx): rebuild it with voxbus model build",
                "diarize")
    return None


def check_request(model: Capabilities, language: str, task: str, words: bool = False,
                  diarize: bool = False) -> None:
    """400 naming what `model` cannot do, before any audio is decoded."""
    refused = refusal(model, language, task, words, diarize)
    if refused is not None:
        code, message, param = refused
        raise ApiError(400, code, message, param)


def session_check(catalogue: Catalogue):
    """For a /stream session: a check of each config (at ready time and on a `config` message) that raises
    the ProtocolError closing the session when its model is unknown or cannot do its language or task."""
    def check(config) -> str:
        """The model the session's segments go to (its own, or the default that can do its language)."""
        try:
            model = catalogue.pick(config.model, language=config.language, task=config.task)
            check_request(model, config.language, config.task)
        except ApiError as exc:
            raise ProtocolError(exc.code, exc.message, close_code=1008) from None
        return model.name
    return check
