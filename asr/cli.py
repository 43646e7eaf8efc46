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

from asr.whisper.audio import load_audio
from bus import subtitles
from bus.schemas import TASKS
from config import ConfigError, load_config
from config.paths import model_dir

logger = logging.getLogger(__name__)

PROG = "voxbus transcribe"
MODEL_ENV = "VOXBUS_MODEL_DIR"  # one model directory, over the config's run.models_dir + asr.model
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


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc


def _temperatures(text: str) -> list[float]:
    """"0" or "0,0.2,0.4": one temperature or the fallback list."""
    values = [_number(part) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give one number or a comma-separated list, e.g. 0,0.2,0.4")
    return values


def _codes(text: str) -> list[str]:
    codes = [part.strip() for part in text.split(",") if part.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("give language codes separated by commas, e.g. en,de")
    return codes


# command-line flag -> transcription option (asr/whisper/options.py, asr/whisper/decoding.py), for the flags given
_OPTION_FLAGS = {
    "beam_size": "--beam-size", "best_of": "--best-of", "patience": "--patience",
    "length_penalty": "--length-penalty", "temperature": "--temperature",
    "no_speech_threshold": "--no-speech-threshold", "logprob_threshold": "--logprob-threshold",
    "compression_ratio_threshold": "--compression-ratio-threshold", "initial_prompt": "--initial-prompt",
    "word_timestamps": "--word-timestamps", "allowed_languages": "--allowed-languages",
    "condition_on_previous_text": "--no-condition-on-previous-text",
}


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding (defaults: greedy, fallback 0,0.2,...,1.0, Whisper's thresholds)")
    group.add_argument("--beam-size", type=_positive_int, metavar="N", help="beam search width at temperature 0")
    group.add_argument("--best-of", type=_positive_int, metavar="N", help="samples per fallback temperature")
    group.add_argument("--patience", type=_number, metavar="P", help="beam search patience (needs --beam-size)")
    group.add_argument("--length-penalty", type=_number, metavar="A", help="Google NMT length penalty in [0, 1]")
    group.add_argument("--temperature", type=_temperatures, metavar="T[,T...]", help="temperature or fallback list")
    group.add_argument("--no-speech-threshold", type=_number, metavar="P")
    group.add_argument("--logprob-threshold", type=_number, metavar="L")
    group.add_argument("--compression-ratio-threshold", type=_number, metavar="R")
    group.add_argument("--initial-prompt", metavar="TEXT", help="names, domain words or style for the first window")
    group.add_argument("--no-condition-on-previous-text", dest="condition_on_previous_text",
                       action="store_const", const=False, help="do not prompt a window with the text before it")
    group.add_argument("--word-timestamps", action="store_const", const=True, help="word times and probabilities")
    group.add_argument("--allowed-languages", type=_codes, metavar="xx,yy", help="restrict language detection")


def decoding_options(args: argparse.Namespace) -> dict:
    """The transcription options the command line set (unset flags keep the engine's defaults)."""
    return {option: getattr(args, option) for option in _OPTION_FLAGS if getattr(args, option) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Transcribe audio files with a voxbus Whisper model.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, MP3, OGG (or anything ffmpeg reads)")
    parser.add_argument("--model", metavar="DIR",
                        help=f"model directory, or a model name under run.models_dir (default: ${MODEL_ENV}, "
                             f"else the config's asr.model under run.models_dir)")
    parser.add_argument("--config", metavar="FILE", help="TOML over the defaults (else $VOXBUS_CONFIG, "
                                                         "/etc/voxbus/voxbus.toml)")
    parser.add_argument("--language", default="auto", metavar="xx|auto", help="language code, or auto to detect")
    parser.add_argument("--task", choices=TASKS, default="transcribe")
    parser.add_argument("--format", choices=subtitles.FORMATS, default="text", dest="output_format")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="inference threads (default: all cores)")
    _add_decoding_flags(parser)
    return parser


def _model_dir(option: str | None, config_file: str | None) -> Path:
    """--model (a directory, else a name under run.models_dir), else $VOXBUS_MODEL_DIR, else the
    configured asr.model under run.models_dir ($VOXBUS_MODELS_DIR, as the asr stage finds it)."""
    if option and Path(option).expanduser().is_dir():
        return Path(option).expanduser()
    if not option and os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV]).expanduser()
    try:
        cfg = load_config(config_file, check_cores=False)
    except ConfigError as exc:
        raise UsageError("; ".join(exc.problems)) from None
    return model_dir(cfg.models_dir, option or cfg.asr.model)


def _error(message: str) -> None:
    # One line, whatever the exception text held.
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def _segment_dicts(result) -> list[dict]:
    return [{"start": s.start, "end": s.end, "text": s.text, "avg_logprob": round(s.avg_logprob, 4),
             "no_speech_prob": round(s.no_speech_prob, 4), "temperature": s.temperature,
             "compression_ratio": round(s.compression_ratio, 4),
             **({"words": s.words} if s.words is not None else {})}
            for s in result.segments]


def _as_json(path: str, result, load_ms: float) -> dict:
    return {
        "file": path, "text": result.text, "segments": _segment_dicts(result), "language": result.language,
        "language_prob": result.language_prob, "duration": round(result.duration, 3),
        "timings": {"audio_ms": round(load_ms, 1), "encode_ms": round(result.encode_ms, 1),
                    "decode_ms": round(result.decode_ms, 1)},
    }


def _as_verbose_json(path: str, result, task: str) -> dict:
    segments = _segment_dicts(result)
    body = subtitles.verbose_json(result.text, segments, result.words, task=task, language=result.language,
                                  duration=result.duration)
    return {"file": path, **body}


def _render(output_format: str, result) -> str:
    """text, srt or vtt of one file, without its trailing newline."""
    if output_format == "text":
        return result.text
    segments = _segment_dicts(result)
    rendered = subtitles.to_srt(segments) if output_format == "srt" else subtitles.to_vtt(segments)
    return rendered.rstrip("\n")


def _transcribe_files(model, args: argparse.Namespace, language: str | None, options: dict) -> tuple[list, int]:
    """Transcribe each file in turn; returns (outputs, number of failed files)."""
    outputs, failures = [], 0
    for path in args.files:
        started = time.perf_counter()
        try:
            audio = load_audio(path)
            load_ms = (time.perf_counter() - started) * 1000
            result = model.transcribe(audio, language=language, task=args.task, **options)
        except ValueError as exc:  # unreadable file or unusable audio: report, go on
            _error(str(exc))
            failures += 1
            continue
        outputs.append((path, result, load_ms))
        if args.output_format in ("text", "srt", "vtt"):
            header = f"{path}:\n" if len(args.files) > 1 else ""
            print(f"{header}{_render(args.output_format, result)}" + ("\n" if len(args.files) > 1 else ""),
                  flush=True)
    return outputs, failures


def _flag_named(message: str) -> str:
    """An engine message that starts with an option's name, with the command-line flag instead."""
    for option, flag in _OPTION_FLAGS.items():
        if message.startswith(option + " ") or message.startswith(option + ":"):
            return flag + message[len(option):]
    return message


def _run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    options = decoding_options(args)
    from asr.whisper.engine import WhisperModel  # onnxruntime loads slowly: not for --help or usage errors

    try:
        model = WhisperModel(_model_dir(args.model, args.config), threads=args.threads)
        language = model.resolve_language(args.language, args.task)
    except (OSError, ValueError) as exc:  # missing/broken model, unsupported language or task
        _error(str(exc))
        return EXIT_USAGE
    try:
        model.check_options(language, args.task, **options)
    except ValueError as exc:
        _error(_flag_named(str(exc)))
        return EXIT_USAGE
    outputs, failures = _transcribe_files(model, args, language, options)
    if args.output_format in ("json", "verbose_json"):
        documents = [_as_json(path, result, load_ms) if args.output_format == "json"
                     else _as_verbose_json(path, result, args.task) for path, result, load_ms in outputs]
        if len(args.files) == 1 and documents:
            print(json.dumps(documents[0], ensure_ascii=False, indent=2))
        elif len(args.files) > 1:
            print(json.dumps(documents, ensure_ascii=False, indent=2))
    if failures == 0:
        return EXIT_OK
    return EXIT_USAGE if len(args.files) == 1 else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `voxbus transcribe` (cli/main.py passes the arguments after it)."""
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
