"""`voxbus transcribe FILE...`: in-process transcription, no bus needed.

Every error is one line on stderr, `voxbus transcribe: error: ...`. Exit status:
0 all files done, 2 bad usage, a missing model or (with one file) bad input,
1 when some of several files failed (the others are still transcribed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from asr.audio_file import load_audio

logger = logging.getLogger(__name__)

PROG = "voxbus transcribe"
MODEL_ENV = "VOXBUS_MODEL_DIR"
DEFAULT_MODEL_DIR = Path("~/.local/share/voxbus/models/tiny.en-int8")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Transcribe audio files with a voxbus Whisper model.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, MP3, OGG (or anything ffmpeg reads)")
    parser.add_argument("--model", metavar="DIR",
                        help=f"model directory (default: ${MODEL_ENV}, else {DEFAULT_MODEL_DIR})")
    parser.add_argument("--language", default="auto", metavar="xx|auto", help="language code, or auto to detect")
    parser.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    parser.add_argument("--format", choices=("text", "json"), default="text", dest="output_format")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="inference threads (default: all cores)")
    return parser


def _model_dir(option: str | None) -> Path:
    chosen = option or os.environ.get(MODEL_ENV) or str(DEFAULT_MODEL_DIR)
    return Path(chosen).expanduser()


def _error(message: str) -> None:
    # One line, whatever the exception text held.
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def _as_json(path: str, result, load_ms: float) -> dict:
    segments = [
        {"start": s.start, "end": s.end, "text": s.text,
         "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4)}
        for s in result.segments
    ]
    return {
        "file": path, "text": result.text, "segments": segments, "language": result.language,
        "language_prob": result.language_prob, "duration": round(result.duration, 3),
        "timings": {"audio_ms": round(load_ms, 1), "encode_ms": round(result.encode_ms, 1),
                    "decode_ms": round(result.decode_ms, 1)},
    }


def _transcribe_files(model, args: argparse.Namespace, language: str | None) -> tuple[list, int]:
    """Transcribe each file in turn; returns (outputs, number of failed files)."""
    outputs, failures = [], 0
    for path in args.files:
        started = time.perf_counter()
        try:
            audio = load_audio(path)
            load_ms = (time.perf_counter() - started) * 1000
            result = model.transcribe(audio, language=language, task=args.task)
        except ValueError as exc:  # unreadable file or unusable audio: report, go on
            _error(str(exc))
            failures += 1
            continue
        outputs.append((path, result, load_ms))
        if args.output_format == "text":
            header = f"{path}:\n" if len(args.files) > 1 else ""
            print(f"{header}{result.text}" + ("\n" if len(args.files) > 1 else ""), flush=True)
    return outputs, failures


def _run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    from asr.engine import WhisperModel  # onnxruntime loads slowly: not for --help or usage errors

    try:
        model = WhisperModel(_model_dir(args.model), threads=args.threads)
        language = model.resolve_language(args.language, args.task)
    except (OSError, ValueError) as exc:  # missing/broken model, unsupported language or task
        _error(str(exc))
        return EXIT_USAGE
    outputs, failures = _transcribe_files(model, args, language)
    if args.output_format == "json":
        documents = [_as_json(path, result, load_ms) for path, result, load_ms in outputs]
        if len(args.files) == 1 and documents:
            print(json.dumps(documents[0], ensure_ascii=False, indent=2))
        elif len(args.files) > 1:
            print(json.dumps(documents, ensure_ascii=False, indent=2))
    if failures == 0:
        return EXIT_OK
    return EXIT_USAGE if len(args.files) == 1 else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `voxbus transcribe` (bus/cli.py passes the arguments after it)."""
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # argparse after --help: it printed the help already
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - CLI boundary: one line, never a traceback
        logger.debug("transcription failed", exc_info=True)
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
