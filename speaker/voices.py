"""Named speakers: voices enrolled from a sample, kept on disk, and the labels they name.

A voice is the normalised mean of the GE2E embeddings of a sample's 1.6 s windows inside its
speech regions, kept as `<folder>/<name>.json` (under the data dir: `[speaker] voices_dir`).
A diarization's speaker (the mean of its windows' embeddings) takes a voice's name when their
cosine similarity is at least `[speaker] name_threshold` and no other speaker of the same
recording is closer to that voice; otherwise it keeps its SPEAKER_n label.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.names import valid_id
from speaker.diarize.pipeline import DiarizeOptions, Embedder, embed_windows, label_centroids, speaker_label

log = logging.getLogger(__name__)
MIN_SPEECH_S = 2.0   # speech a sample must hold (webrtcvad's regions): more than one 1.6 s window
MAX_VOICES = 1000
MAX_NAME = 64


class VoiceError(ValueError):
    """A sample or name that cannot be enrolled: `code` for the client (the gateway's 400)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise VoiceError("bad_name", "name: required (the speaker's name)")
    name = name.strip()
    if len(name) > MAX_NAME or not valid_id(name) or name.upper().startswith("SPEAKER_"):
        raise VoiceError("bad_name", f"name = {name[:40]!r}: expected up to {MAX_NAME} letters, digits, - _ . "
                                     "(and not SPEAKER_n, the labels of unnamed speakers)")
    return name


@dataclass(frozen=True)
class Voice:
    name: str
    embedding: np.ndarray  # [dim], unit length
    speech_s: float
    enrolled_at: float

    def summary(self) -> dict:
        return {"name": self.name, "speech_s": round(self.speech_s, 2), "enrolled_at": round(self.enrolled_at, 3)}


def voice_of(wav: np.ndarray, regions: list[tuple[float, float]], encoder: Embedder,
             options: DiarizeOptions) -> tuple[np.ndarray, float]:
    """The embedding of a sample (float 16 kHz) within its speech regions, and its seconds of speech;
    VoiceError when it has no speech or too little."""
    speech = sum(end - start for start, end in regions)
    if not regions:
        raise VoiceError("no_speech", "the sample has no speech to enrol")
    if speech < MIN_SPEECH_S:
        raise VoiceError("sample_too_short", f"the sample has {speech:.1f} s of speech; a voice needs at least "
                                             f"{MIN_SPEECH_S:g} s (5-30 s of one person speaking is best)")
    windows = embed_windows(wav, regions, encoder, options)
    return label_centroids(windows.embeddings, np.zeros(len(windows.embeddings), int))[speaker_label(0)], speech


def names_for(centroids: dict[str, np.ndarray], voices: list[Voice], threshold: float) -> dict[str, str]:
    """label → name for the labels whose centroid matches a voice (≥ threshold), each voice and label
    once, the most similar pairs first."""
    pairs = sorted(((float(np.dot(c, v.embedding)), label, v.name) for label, c in centroids.items()
                    for v in voices), reverse=True)
    named: dict[str, str] = {}
    for similarity, label, name in pairs:
        if similarity >= threshold and label not in named and name not in named.values():
            named[label] = name
    return named


class VoiceBook:
    """The enrolled voices: a folder of JSON files, read at start, written on each change."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.voices: dict[str, Voice] = {}
        self.load()

    def load(self) -> None:
        voices = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                body = json.loads(path.read_text())
                voices[body["name"]] = Voice(body["name"], np.asarray(body["embedding"], np.float32),
                                             float(body["speech_s"]), float(body["enrolled_at"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("enrolled voice skipped", extra={"path": str(path), "error": str(exc)})
        self.voices = voices  # replaced whole: the live thread reads it while a voice job runs

    def listing(self) -> list[dict]:
        return [v.summary() for v in sorted(self.voices.values(), key=lambda v: v.name)]

    def enroll(self, name: str, embedding: np.ndarray, speech_s: float) -> Voice:
        name = check_name(name)
        if name not in self.voices and len(self.voices) >= MAX_VOICES:
            raise VoiceError("too_many_voices", f"at most {MAX_VOICES} voices are enrolled; delete one first")
        voice = Voice(name, embedding, speech_s, time.time())
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / f"{name}.json"
        part = path.with_suffix(".json.part")
        part.write_text(json.dumps({"name": name, "embedding": [round(float(x), 6) for x in embedding],
                                    "speech_s": speech_s, "enrolled_at": voice.enrolled_at}))
        os.replace(part, path)  # a crash never leaves half a voice
        self.voices = {**self.voices, name: voice}
        return voice

    def delete(self, name: str) -> bool:
        if name not in self.voices:
            return False
        (self.folder / f"{name}.json").unlink(missing_ok=True)
        self.voices = {k: v for k, v in self.voices.items() if k != name}
        return True

    def name_turns(self, turns: list[dict], centroids: dict[str, np.ndarray], threshold: float) -> list[dict]:
        """Turns whose speakers match an enrolled voice, renamed to it."""
        if not self.voices or not centroids:
            return turns
        named = names_for(centroids, list(self.voices.values()), threshold)
        return [{**t, "speaker": named.get(t["speaker"], t["speaker"])} for t in turns]
