"""The `info` answer to `describe`: voxbus as one Wyoming ASR program with the model asr serves.

Built from the asr heartbeats (the same figures as GET /model/info), so it names the
model actually loaded; an English-only model (`*.en`) offers only English, a
multilingual one asr.allowed_languages or every Whisper language.
"""
from __future__ import annotations

import re
import time

from config import Config
from gateway import health
from gateway.languages import LANGUAGES
from gateway.router import Router
from gateway.version import VERSION

PROGRAM = "voxbus"
WHISPER = {"name": "OpenAI", "url": "https://github.com/openai/whisper"}
_ENGLISH_ONLY = re.compile(r"\.en($|[-_.])")


def languages(model: str | None, allowed: tuple[str, ...], multilingual: bool | None = None) -> list[str]:
    """What the served model can transcribe: the workers say whether it is multilingual; before any
    worker is heard, the name tells (`*.en` models are English-only)."""
    if multilingual is False or (multilingual is None and model and _ENGLISH_ONLY.search(model)):
        return ["en"]
    return list(allowed) if allowed else list(LANGUAGES)


def info_data(cfg: Config, router: Router) -> dict:
    model = health.model_info(router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    name = model["model"] or cfg.asr.model  # no asr heard yet: the configured one, shown as not installed
    serving = [w for w in model["workers"] if w["model_loaded"]]
    loaded = bool(serving)
    precision = model["precision"] or "unknown precision"
    asr_model = {"name": name, "attribution": WHISPER, "installed": loaded, "version": model["precision"],
                 "description": f"Whisper {name} ({precision}) on ONNX Runtime {model['onnxruntime'] or ''}".strip(),
                 "languages": languages(name, cfg.asr.allowed_languages,
                                        serving[0]["multilingual"] if serving else None)}
    home = f"http://{cfg.gateway.host}:{cfg.gateway.port}/"  # the gateway's own page: the one address we know
    program = {"name": PROGRAM, "attribution": {"name": "voxbus", "url": home},
               "installed": True, "version": VERSION,
               "description": "voxbus speech-to-text (Whisper on ONNX Runtime over a ZeroMQ bus)",
               "models": [asr_model], "supports_transcript_streaming": True, "requires_external_vad": True}
    return {"asr": [program], "tts": [], "handle": [], "intent": [], "wake": [], "mic": [], "snd": []}
