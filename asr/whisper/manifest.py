"""manifest.json of a voxbus model directory: read, check, and verify checksums.

The format is described in asr/whisper/MODEL_FORMAT.md; `asr.build.builder` writes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FORMAT = 1  # the "format" key: what this reader understands and the builder writes
_BLOCK = 1 << 20

MODEL_FILES = ("encoder.onnx", "decoder.onnx", "tokenizer.json")
WORD_TIMING_FILE = "decoder_attn.onnx"  # optional: only needed for word timestamps
DRAFT_ENCODER = "encoder_draft.onnx"  # optional: live partials' faster encoder, int8 per column
BUILD_HINT = "build one with: voxbus model build tiny --out DIR"
DIM_NAMES = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
             "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_vocab")
SPECIAL_ROLES = ("sot", "eot", "transcribe", "translate", "no_timestamps", "no_speech",
                 "timestamp_begin", "sot_prev", "sot_lm")


class ModelNotFoundError(FileNotFoundError):
    """The model directory or one of its files is missing."""


class ModelFormatError(ValueError):
    """The model directory exists but its manifest or files do not fit together."""


@dataclass(frozen=True)
class ModelManifest:
    name: str
    dims: dict[str, int]
    multilingual: bool
    special_tokens: dict[str, int]  # role -> id, see SPECIAL_ROLES
    languages: dict[str, int]  # code -> language token id
    precision: str
    files: dict[str, str]  # file name -> sha256
    alignment_heads: tuple[tuple[int, int], ...] = ()  # (layer, head) pairs, for word timestamps
    encoder_window: EncoderWindow | None = None  # None: every window is 30 s (builders before 6)


@dataclass(frozen=True)
class EncoderWindow:
    """The encoder window rule: max(floor_s, audio + pad_s) seconds, at most 30 s.

    pad: how the window is filled after the audio's frames in mel space, "zeros"
    (whisper's padding) or "silence" (the log-mel of digital silence).
    draft_floor_s: the floor for drafts (live partials, soon replaced), where a little accuracy
    buys a cheaper encoder; None: floor_s.
    first_words_draft: an utterance's partials before its first words are drafts too; False:
    they take floor_s, for a model that finds the first words sooner on the full window.
    """

    floor_s: float = 30.0
    pad_s: float = 0.0
    pad: str = "zeros"
    draft_floor_s: float | None = None
    first_words_draft: bool = False

    @classmethod
    def from_json(cls, raw: object) -> EncoderWindow:
        if not isinstance(raw, dict):
            raise ValueError(f"encoder_window must be an object, got {raw!r}")
        draft = raw.get("draft_floor_s")
        first_words_draft = raw.get("first_words_draft", False)
        if not isinstance(first_words_draft, bool):
            raise ValueError(f"encoder_window.first_words_draft must be true or false, got {first_words_draft!r}")
        window = cls(float(raw.get("floor_s", 30.0)), float(raw.get("pad_s", 0.0)), str(raw.get("pad", "zeros")),
                     None if draft is None else float(draft), first_words_draft)
        if not (0 < window.floor_s <= 30 and 0 <= window.pad_s <= 30 and window.pad in ("zeros", "silence")
                and (window.draft_floor_s is None or 0 < window.draft_floor_s <= window.floor_s)):
            raise ValueError(f"encoder_window out of range: {raw!r}")
        return window

    def to_json(self) -> dict:
        draft = {} if self.draft_floor_s is None else {"draft_floor_s": self.draft_floor_s}
        first_words = {"first_words_draft": True} if self.first_words_draft else {}
        return {"floor_s": self.floor_s, "pad_s": self.pad_s, "pad": self.pad, **draft, **first_words}

    def floor(self, draft: bool = False) -> float:
        return self.draft_floor_s if draft and self.draft_floor_s is not None else self.floor_s


def load_manifest(model_dir: Path) -> ModelManifest:
    """Read and check manifest.json; any problem names the file and the key."""
    path = model_dir / "manifest.json"
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"model directory {model_dir} does not exist; {BUILD_HINT}")
    for name in ("manifest.json", *MODEL_FILES):
        if not (model_dir / name).is_file():
            raise ModelNotFoundError(f"model directory {model_dir} has no {name}; {BUILD_HINT}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ModelFormatError(f"{path}: format {found!r} is not supported (expected {MANIFEST_FORMAT})")
    try:
        dims = {name: int(raw["dims"][name]) for name in DIM_NAMES}
        special = {role: int(raw["special_tokens"][role]) for role in SPECIAL_ROLES}
        # The builder writes "languages"; the first draft of the format said "lang".
        language_map = raw["special_tokens"].get("languages", raw["special_tokens"].get("lang", {}))
        languages = {str(code): int(i) for code, i in language_map.items()}
        heads = tuple((int(layer), int(head)) for layer, head in raw.get("alignment_heads", []))
        window = EncoderWindow.from_json(raw["encoder_window"]) if "encoder_window" in raw else None
        manifest = ModelManifest(
            name=str(raw.get("name", model_dir.name)), dims=dims, multilingual=bool(raw["multilingual"]),
            special_tokens=special, languages=languages, precision=str(raw.get("precision", "unknown")),
            files={str(k): str(v) for k, v in raw.get("files", {}).items()}, alignment_heads=heads,
            encoder_window=window,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: missing or malformed entry {exc}") from exc
    if min(dims.values()) <= 0 or dims["n_mels"] not in (80, 128):
        raise ModelFormatError(f"{path}: implausible dims {dims}")
    return manifest


def verify_checksums(model_dir: Path, manifest: ModelManifest) -> None:
    """Compare each file against the manifest's sha256 (slow for big models: opt-in)."""
    for name, expected in manifest.files.items():
        if sha256_files([model_dir / name]) != expected:
            raise ModelFormatError(f"{model_dir / name}: sha256 does not match manifest.json")


def sha256_files(paths: Iterable[Path], sinks: Iterable[Callable[[bytes], object]] = ()) -> str:
    """sha256 of the files' bytes one after another, read in 1 MB blocks; each block also goes
    to every sink (another digest's update, a file's write), so a copy and its checks take one read."""
    digest = hashlib.sha256()
    sinks = (digest.update, *sinks)
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(_BLOCK):
                for sink in sinks:
                    sink(block)
    return digest.hexdigest()
