"""The `info` answer to `describe`: voxbus as one Wyoming ASR program with the model asr serves.

Built from the asr heartbeats (the same figures as GET /model/info), so it names the
model actually loaded; an English-only model (`*.en`) offers only English, a
multilingual one asr.allowed_languages or every Whisper language.
"""
from __future__ import annotations

import time

from config import Config
from gateway import health, models
from gateway.router import Router
from gateway.version import VERSION

PROGRAM = "voxbus"
WHISPER = {"name": "OpenAI", "url": "https://github.com/openai/whisper"}
def languages(caps: models.Capabilities, allowed: tuple[str, ...]) -> list[str]:
    """What the served model can transcribe (gateway.models: from the workers, else from its name),
    narrowed to asr.allowed_languages when set."""
    return [code for code in caps.languages if code in allowed] if allowed and len(caps.languages) > 1 \
        else list(caps.languages)


def info_data(cfg: Config, router: Router) -> dict:
    model = health.model_info(router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s)
    name = model["model"] or cfg.asr.model  # no asr heard yet: the configured one, shown as not installed
    serving = [w for w in model["workers"] if w["model_loaded"]]
    loaded = bool(serving)
    precision = model["precision"] or "unknown precision"
    asr_model = {"name": name, "attribution": WHISPER, "installed": loaded, "version": model["precision"],
                 "description": f"Whisper {name} ({precision}) on ONNX Runtime {model['onnxruntime'] or ''}".strip(),
                 "languages": languages(models.served(router.health, time.monotonic(), cfg.bus.heartbeat_timeout_s,
                                                      cfg.asr.model).get(name) or models.unheard(name),
                                        cfg.asr.allowed_languages)}
    home = f"http://{cfg.gateway.host}:{cfg.gateway.port}/"  # the gateway's own page: the one address we know
    program = {"name": PROGRAM, "attribution": {"name": "voxbus", "url": home},
               "installed": True, "version": VERSION,
               "description": "voxbus speech-to-text (Whisper on ONNX Runtime over a ZeroMQ bus)",
               "models": [asr_model], "supports_transcript_streaming": True, "requires_external_vad": True}
    return {"asr": [program], "tts": [], "handle": [], "intent": [], "wake": [], "mic": [], "snd": []}
