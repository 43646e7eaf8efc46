"""Bad input of every kind, generated from a seed (issue 11, "Bad input"); used by tests/e2e/test_fuzz.py.

Each generator takes a `random.Random` and returns one case; none is valid input, so every
REST case must be a 4xx, every WebSocket case an error event (or a documented close), every
bus case a dropped and counted message. Pure: no sockets here.
"""
from __future__ import annotations

import base64
import io
import json
import random
import struct
from dataclasses import dataclass, field

import msgpack
import numpy as np
import soundfile

from bus import schemas


def _audio(fmt: str, seconds: float = 0.5, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, 0.3 * np.sin(2 * np.pi * 300 * t), rate, format=fmt,
                    subtype="PCM_16" if fmt == "WAV" else None)
    return buf.getvalue()


WAV, FLAC = _audio("WAV"), _audio("FLAC")
ENDPOINTS = {"/transcribe": "audio_file", "/inference": "file", "/v1/audio/transcriptions": "file",
             "/v1/audio/translations": "file"}
ABSURD = ["nan", "NaN", "inf", "-inf", "-1", "1e309", "-0.5", "2", "10" * 30, "", " ", "0x10", "\x00", "9" * 400]


@dataclass
class RestCase:
    kind: str
    method: str
    path: str
    files: dict | None = None
    data: dict = field(default_factory=dict)
    content: bytes | None = None
    headers: dict = field(default_factory=dict)


def _random_bytes(rng: random.Random) -> bytes:
    head = rng.choice([b"", b"RIFF", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\x1a\x45\xdf\xa3", b"#!AMR",
                       b"\x00\x00\x00\x18ftyp"])
    return head + rng.randbytes(rng.choice([1, 7, 44, 300, 5000]))


def _lying_wav(rng: random.Random) -> bytes:
    out = bytearray(WAV)
    offset, fmt, value = rng.choice([
        (22, "<H", 0), (24, "<I", 0), (24, "<I", 1), (24, "<I", 10 ** 9), (24, "<I", rng.randrange(1, 8000)),
        (32, "<H", 0), (40, "<I", len(WAV) + rng.randrange(2, 10 ** 6)), (40, "<I", 3600 * 32000)])
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _truncated(rng: random.Random) -> bytes:
    data = rng.choice([WAV, FLAC])
    return data[: rng.randrange(1, len(data) - 64)]


def _upload(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["random", "lying_wav", "truncated", "empty"])
    data = {"random": _random_bytes, "lying_wav": _lying_wav, "truncated": _truncated,
            "empty": lambda _rng: b""}[kind](rng)
    return kind, data


FIELDS = {  # the fields each endpoint reads (the OpenAI and whisper.cpp ones ignore others, as their servers do)
    "/transcribe": ["temperature", "prompt", "language", "response_format", "task", "normalize", "trim_silence",
                    "word_timestamps"],
    "/transcribe/base64": ["temperature", "prompt", "language", "response_format", "task", "normalize"],
    "/inference": ["temperature", "prompt", "language", "response_format", "beam_size", "best_of",
                   "temperature_inc", "translate"],
    "/v1/audio/transcriptions": ["temperature", "prompt", "language", "response_format"],
    "/v1/audio/translations": ["temperature", "prompt", "response_format"],
}


def _absurd_fields(rng: random.Random, path: str) -> dict:
    name = rng.choice(FIELDS[path])
    value = "x" * rng.choice([1001, 5000, 60000]) if name == "prompt" else rng.choice(ABSURD + ["zz", "klingon"])
    if name in ("beam_size", "best_of"):  # -1, 2 are whisper.cpp's own values
        value = rng.choice(["nan", "inf", "-inf", "1e309", "-5", str(10 ** 9), "2.5", "0x10", "9" * 400])
    if value.strip() == "":
        value = "nan"  # an empty value means "the default": valid
    return {name: value}


def rest_case(rng: random.Random) -> RestCase:
    path = rng.choice(list(ENDPOINTS) + ["/transcribe/base64"])
    roll = rng.random()
    if path == "/transcribe/base64":
        return _base64_case(rng)
    field_name = ENDPOINTS[path]
    if roll < 0.55:
        kind, data = _upload(rng)
        return RestCase(kind, "POST", path, files={field_name: ("x.wav", data, rng.choice(
            ["audio/wav", "application/octet-stream", "text/plain"]))})
    if roll < 0.8:
        return RestCase("absurd_param", "POST", path, files={field_name: ("a.wav", WAV, "audio/wav")},
                        data=_absurd_fields(rng, path))
    if roll < 0.9:
        return RestCase("wrong_content_type", "POST", path, content=rng.randbytes(100),
                        headers={"content-type": rng.choice(["text/plain", "application/json", "audio/wav",
                                                             "multipart/form-data; boundary=zz"])})
    return RestCase("missing_file", "POST", path, files={"other": ("a.wav", WAV)})


def _base64_case(rng: random.Random) -> RestCase:
    roll = rng.random()
    if roll < 0.3:
        kind, data = _upload(rng)
        body = json.dumps({"audio_base64": base64.b64encode(data).decode()}).encode()
    elif roll < 0.5:
        kind = "absurd_param"
        fields = _absurd_fields(rng, "/transcribe/base64")
        body = json.dumps({"audio_base64": base64.b64encode(WAV).decode(), **fields}).encode()
        if rng.random() < 0.5 and "temperature" in fields:
            body = body.replace(json.dumps(fields["temperature"]).encode(), rng.choice([b"NaN", b"Infinity",
                                                                                       b"-Infinity", b"1e999"]))
    elif roll < 0.7:
        kind = "deep_json"
        depth = rng.choice([1000, 20000, 100000])
        body = rng.choice([b"[" * depth, b'{"audio_base64": "UklGRg==", "prompt": ' + b"[" * depth + b"}",
                           b'{"x": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"])
    elif roll < 0.85:
        kind = "bad_base64"
        body = json.dumps({"audio_base64": rng.choice(["!!!!", "QQ==QQ==", "data:,", "é", "QUJ"])}).encode()
    else:
        kind = "garbage_json"
        body = rng.randbytes(rng.choice([1, 50, 500]))
    return RestCase(kind, "POST", "/transcribe/base64", content=body, headers={"content-type": "application/json"})


# ---- WebSocket -------------------------------------------------------------------

@dataclass
class WsCase:
    kind: str
    payload: bytes | str
    code: str           # the error event expected


def ws_case(rng: random.Random, encoding: str) -> WsCase:
    roll = rng.random()
    if roll < 0.25:
        width = 4 if encoding == "f32" else 2
        size = rng.randrange(1, 200) * width + rng.randrange(1, width)
        return WsCase("odd_frame", rng.randbytes(size), "bad_frame")
    if roll < 0.45 and encoding == "f32":
        frame = np.zeros(rng.randrange(1, 2000), "<f4")
        frame[rng.randrange(frame.size)] = rng.choice([np.nan, np.inf, -np.inf])
        return WsCase("nan_frame", frame.tobytes(), "bad_frame")
    if roll < 0.65:
        return WsCase("text_garbage", rng.choice(["hello", "{", "", "null}", "\x00", "[" * rng.choice([10, 5000]),
                                                  "[" * 100000, "💥" * 50]), "bad_json")
    if roll < 0.85:
        return WsCase("unknown_message", json.dumps(rng.choice([{"type": "dance"}, [1, 2], 5, "eof", {"type": None},
                                                                {"type": ["flush"]}, {"no": "type"}])),
                      "unknown_message")
    return WsCase("config_after_audio", json.dumps({"type": "config", "language": "en"}), "illegal_state")


BAD_QUERIES = ["sample_rate=1", "sample_rate=nan", "sample_rate=1e9", "encoding=f64", "language=klingon",
               "end_silence_ms=-5", "end_silence_ms=inf", "prompt=" + "x" * 1500, "partials=maybe", "bogus=1",
               "task=dance"]


# ---- bus -------------------------------------------------------------------------

TOPICS = ["ctl", "audio", "text", "vad", "job", "health"]
_JUNK = [None, True, -1, 2 ** 63 - 1, -2 ** 63, 1.5, float("nan"), float("inf"), "", "x" * 300, b"\x00\x01",
         [], {}, [1, [2, [3]]], {"a": {"b": None}}]


def _junk(rng: random.Random):
    return rng.choice(_JUNK)


def bus_payload(rng: random.Random) -> bytes:
    """Random msgpack: garbage, wrong versions, known types with junk fields. Never an `options` map
    (asr's own bounds are another engineer's part of this issue)."""
    roll = rng.random()
    if roll < 0.2:
        return rng.randbytes(rng.randrange(0, 200))
    if roll < 0.35:
        return msgpack.packb(rng.choice([_junk(rng), [1, 2, 3], "string", 42]), use_bin_type=True)
    kind = rng.choice(list(schemas.MESSAGE_TYPES) + ["nope", ""])
    body = {"v": rng.choice([schemas.VERSION, schemas.VERSION, 0, 99, "1", None]), "type": kind}
    cls = schemas.MESSAGE_TYPES.get(kind)
    names = [f.name for f in cls.__dataclass_fields__.values()] if cls else ["x", "y"]
    for name in rng.sample(names, k=rng.randrange(0, len(names) + 1)):
        if name != "options":
            body[name] = _junk(rng)
    if rng.random() < 0.1:
        body["extra_field"] = 1
    return msgpack.packb(body, use_bin_type=True)


def bus_frames(rng: random.Random) -> list[bytes]:
    """One PUB message: usually [topic, payload]; sometimes a wrong frame count or a mismatched topic."""
    ident = rng.choice(["fuzz1", "ws-fuzz", "x" * 80, "..", "a/b", "", "ü"])
    topic = f"{rng.choice(TOPICS)}/{ident}/".encode()
    roll = rng.random()
    if roll < 0.1:
        return [topic]
    if roll < 0.2:
        return [topic, bus_payload(rng), b"extra"]
    return [topic, bus_payload(rng)]
