"""manifest.json of a speaker-embedding model directory: what the builder writes and the encoder checks."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FORMAT = 1
KIND = "speaker-embedding"
ENCODER_FILE = "voice_encoder.onnx"
DEFAULT_NAME = "speaker-ge2e"  # the folder under the models dir that `voxbus model build speaker` fills
BUILD_HINT = "build it with: voxbus model build speaker"
_BLOCK = 1 << 20


class SpeakerModelError(ValueError):
    """The speaker model directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class SpeakerManifest:
    name: str
    n_mels: int
    embedding_size: int
    window_frames: int  # frames per partial utterance the model was trained on (1.6 s)
    files: dict[str, str]  # file name -> sha256
    source: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def load_speaker_manifest(model_dir: Path, verify: bool = False) -> SpeakerManifest:
    """Read manifest.json (and with ``verify``, check every file's sha256); errors name the file."""
    path = Path(model_dir) / "manifest.json"
    if not path.is_file() or not (Path(model_dir) / ENCODER_FILE).is_file():
        raise SpeakerModelError(f"speaker model directory {model_dir} is missing or incomplete; {BUILD_HINT}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != MANIFEST_FORMAT or raw.get("kind") != KIND:
            raise SpeakerModelError(f"{path}: not a speaker model manifest (format {raw.get('format')!r}, "
                                    f"kind {raw.get('kind')!r})")
        manifest = SpeakerManifest(
            name=str(raw["name"]), n_mels=int(raw["n_mels"]), embedding_size=int(raw["embedding_size"]),
            window_frames=int(raw["window_frames"]), files={str(k): str(v) for k, v in raw["files"].items()},
            source=str(raw.get("source", "unknown")))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, SpeakerModelError):
            raise
        raise SpeakerModelError(f"{path}: missing or malformed entry ({exc})") from exc
    if verify:
        for name, expected in manifest.files.items():
            if sha256_file(Path(model_dir) / name) != expected:
                raise SpeakerModelError(f"{Path(model_dir) / name}: sha256 does not match manifest.json")
    return manifest
