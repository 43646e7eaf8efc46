"""WhisperModel: a voxbus model directory on onnxruntime, and transcription.

The model directory (built by `voxbus model build`) holds encoder.onnx,
decoder.onnx (with a key/value cache), tokenizer.json and manifest.json. Both
sessions are made once; `transcribe` does Whisper's sequential 30 s windowing
for audio of any length, `transcribe_segment` is the one-window fast path the
live asr stage uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from asr.audio_file import validate_audio
from asr.decoding import DecodingOptions, DecodingResult, DecodingTask
from asr.features import (FRAMES_PER_SECOND, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE, content_frames,
                          log_mel_spectrogram, pad_or_trim, window_mel)
from asr.tokenizer import TIME_PRECISION, Tokenizer

logger = logging.getLogger(__name__)
_ORT_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.NoSuchFile, ort_errors.InvalidProtobuf,
               ort_errors.InvalidGraph, ort_errors.RuntimeException, ort_errors.NotImplemented)

INPUT_STRIDE = 2  # mel frames per encoder frame, i.e. per timestamp step
MODEL_FILES = ("encoder.onnx", "decoder.onnx", "tokenizer.json")
BUILD_HINT = "build one with: voxbus model build tiny --out DIR"
_DIM_NAMES = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
              "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_vocab")
_SPECIAL_ROLES = ("sot", "eot", "transcribe", "translate", "no_timestamps", "no_speech",
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
    special_tokens: dict[str, int]  # role -> id, see _SPECIAL_ROLES
    languages: dict[str, int]  # code -> language token id
    precision: str
    files: dict[str, str]  # file name -> sha256


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
        if raw.get("format") != 1:
            raise ModelFormatError(f"{path}: format {raw.get('format')!r} is not supported (expected 1)")
        dims = {name: int(raw["dims"][name]) for name in _DIM_NAMES}
        special = {role: int(raw["special_tokens"][role]) for role in _SPECIAL_ROLES}
        # The builder writes "languages"; the first draft of the format said "lang".
        language_map = raw["special_tokens"].get("languages", raw["special_tokens"].get("lang", {}))
        languages = {str(code): int(i) for code, i in language_map.items()}
        manifest = ModelManifest(
            name=str(raw.get("name", model_dir.name)), dims=dims, multilingual=bool(raw["multilingual"]),
            special_tokens=special, languages=languages, precision=str(raw.get("precision", "unknown")),
            files={str(k): str(v) for k, v in raw.get("files", {}).items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"{path}: missing or malformed entry {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from exc
    if min(dims.values()) <= 0 or dims["n_mels"] not in (80, 128):
        raise ModelFormatError(f"{path}: implausible dims {dims}")
    return manifest


def verify_checksums(model_dir: Path, manifest: ModelManifest) -> None:
    """Compare each file against the manifest's sha256 (slow for big models: opt-in)."""
    for name, expected in manifest.files.items():
        digest = hashlib.sha256()
        with open(model_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise ModelFormatError(f"{model_dir / name}: sha256 does not match manifest.json")


@dataclass(frozen=True)
class TranscribeOptions:
    """How windows are chained and when a window counts as silence."""

    # feed the previous window's text as the prompt of the next one
    condition_on_previous_text: bool = True
    # a window is silence if no_speech_prob is above this ...
    no_speech_threshold: float | None = 0.6
    # ... and avg_logprob is below this
    logprob_threshold: float | None = -1.0

    def __post_init__(self) -> None:
        if self.no_speech_threshold is not None and not 0.0 <= self.no_speech_threshold <= 1.0:
            raise ValueError(f"no_speech_threshold must be in [0, 1] or None, got {self.no_speech_threshold}")
        if self.logprob_threshold is not None and self.logprob_threshold > 0:
            raise ValueError(f"logprob_threshold must be ≤ 0 or None, got {self.logprob_threshold}")


@dataclass(frozen=True)
class Segment:  # not slots: the asr worker reads it with vars()
    start: float  # seconds from the start of the audio
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: tuple[int, ...]  # sampled ids, timestamps included


@dataclass(frozen=True)
class Result:
    text: str
    segments: list[Segment]
    language: str
    language_prob: float | None  # None when the language was given, not detected
    duration: float  # seconds of audio
    encode_ms: float  # features + encoder
    decode_ms: float  # decoder loop

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class _Timings:  # accumulated over the windows of one call
    encode_ms: float = 0.0
    decode_ms: float = 0.0


def _layer_names(names: Sequence[str], base: str, n_layer: int) -> list[str]:
    """[base] when the graph stacks all layers in one tensor, else [base_0, base_1, ...]."""
    return [base] if base in names else [f"{base}_{layer}" for layer in range(n_layer)]


def _relayout(values: list[ort.OrtValue], n_wanted: int) -> list[ort.OrtValue]:
    """Stacked [n_layer, ...] <-> one value per layer, whichever the next graph takes."""
    if len(values) == n_wanted:
        return values  # same layout: hand the OrtValues straight back in, no copy
    if n_wanted == 1:
        return [ort.OrtValue.ortvalue_from_numpy(np.stack([v.numpy() for v in values]))]
    stacked = values[0].numpy()  # OrtValues made from it keep it alive
    return [ort.OrtValue.ortvalue_from_numpy(stacked[layer]) for layer in range(n_wanted)]


class _OnnxDecoderInference:
    """The decoder session bound to one window's cross-attention keys/values.

    Keys and values stay OrtValues between steps; only the tokens not yet in the
    cache are fed, so each step after the first is one token. Caches and cross
    keys/values may be stacked over layers or one input per layer: the names in
    the graph decide (the builder's choice, see asr/onnx_export.py).
    """

    def __init__(self, session: ort.InferenceSession, cross: dict[str, list[ort.OrtValue]], n_layer: int):
        self._session = session
        inputs = {node.name: node.shape for node in session.get_inputs()}
        outputs = [node.name for node in session.get_outputs()]
        self._cache_inputs = {kind: _layer_names(list(inputs), f"self_{kind}", n_layer) for kind in "kv"}
        self._cache_outputs = {kind: _layer_names(outputs, f"new_self_{kind}", n_layer) for kind in "kv"}
        self._empty_shapes = {name: inputs[name] for kind in "kv" for name in self._cache_inputs[kind]}
        self._feeds: dict[str, ort.OrtValue] = {}
        for kind in "kv":
            names = _layer_names(list(inputs), f"cross_{kind}", n_layer)
            self._feeds.update(zip(names, _relayout(cross[kind], len(names))))
        self._output_names = ["logits", *self._cache_outputs["k"], *self._cache_outputs["v"]]
        self.reset()

    def reset(self) -> None:
        self._cache: dict[str, ort.OrtValue] | None = None
        self._n_cached = 0

    def _empty_cache(self, batch: int) -> dict[str, ort.OrtValue]:
        def size(dim: int | str | None) -> int:  # symbolic dims: batch, else the past length (0)
            return dim if isinstance(dim, int) else batch if dim and "batch" in dim else 0

        return {name: ort.OrtValue.ortvalue_from_numpy(np.zeros([size(d) for d in shape], np.float32))
                for name, shape in self._empty_shapes.items()}

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        cache = self._cache if self._cache is not None else self._empty_cache(tokens.shape[0])
        new_tokens = np.ascontiguousarray(tokens[:, self._n_cached :], dtype=np.int64)
        feeds = {**self._feeds, **cache, "tokens": ort.OrtValue.ortvalue_from_numpy(new_tokens)}
        logits, *new_cache = self._session.run_with_ort_values(self._output_names, feeds)
        n_k = len(self._cache_outputs["k"])
        self._cache = {}
        for kind, values in (("k", new_cache[:n_k]), ("v", new_cache[n_k:])):
            names = self._cache_inputs[kind]
            self._cache.update(zip(names, _relayout(values, len(names))))
        self._n_cached = tokens.shape[1]
        return logits.numpy()


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime picks the core count
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    return options


def _load_session(path: Path, threads: int | None) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), _session_options(threads), providers=["CPUExecutionProvider"])
    except _ORT_ERRORS as exc:  # onnxruntime's errors are not OSError/ValueError subclasses
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(f"{path}: onnxruntime cannot load it ({reason})") from exc


class WhisperModel:
    """One loaded model: manifest, tokenizer and the two onnxruntime sessions."""

    def __init__(self, model_dir: Path | str, threads: int | None = None, check_files: bool = False):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        self.model_dir = Path(model_dir).expanduser()
        self.manifest = load_manifest(self.model_dir)
        if check_files:
            verify_checksums(self.model_dir, self.manifest)
        self.dims = self.manifest.dims
        self.tokenizer = Tokenizer.from_file(
            self.model_dir / "tokenizer.json", self.manifest.multilingual, self.manifest.languages or None
        )
        found = {role: getattr(self.tokenizer.special, role) for role in _SPECIAL_ROLES}
        wrong = {role: (i, found[role]) for role, i in self.manifest.special_tokens.items() if found[role] != i}
        if wrong:
            raise ModelFormatError(f"{self.model_dir}: manifest and tokenizer.json disagree on {wrong}")
        self._encoder = _load_session(self.model_dir / "encoder.onnx", threads)
        self._decoder = _load_session(self.model_dir / "decoder.onnx", threads)
        encoder_outputs = [node.name for node in self._encoder.get_outputs()]
        self._cross_outputs = {kind: _layer_names(encoder_outputs, f"cross_{kind}", self.dims["n_text_layer"])
                               for kind in "kv"}
        logger.info("loaded %s (%s) from %s, %s threads", self.manifest.name, self.manifest.precision,
                    self.model_dir, threads or "default")

    @property
    def languages(self) -> tuple[str, ...]:
        return self.tokenizer.language_codes

    @property
    def multilingual(self) -> bool:
        return self.tokenizer.multilingual

    def info(self) -> dict[str, str]:
        """What the health heartbeat reports about the loaded model."""
        return {"model_name": self.manifest.name, "precision": self.manifest.precision}

    def transcribe(self, audio: np.ndarray, language: str | None = None, task: str = "transcribe",
                   prompt: str | None = None, **options: object) -> Result:
        """Audio of any length: Whisper's sequential 30 s windows, seeking by timestamps.

        options: DecodingOptions or TranscribeOptions fields by name.
        """
        audio = validate_audio(audio)
        decoding, chaining = self._options(language, task, options)
        timings = _Timings()
        started = time.perf_counter()
        # Half an FFT of silence after the audio is all its frames can see of whisper's 30 s padding.
        mel = log_mel_spectrogram(audio, self.dims["n_mels"], padding=N_FFT)
        timings.encode_ms += (time.perf_counter() - started) * 1000
        n_content = content_frames(audio.shape[0])
        all_tokens = self.tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        prompt_reset_since, seek, segments = 0, 0, []
        language_prob = None
        while seek < n_content:
            window_frames = min(N_FRAMES, n_content - seek)
            window_prompt = tuple(all_tokens[prompt_reset_since:]) or None
            # Like whisper, a short window is zero-padded in mel space (not with silent frames).
            result = self._decode_window(pad_or_trim(mel[:, seek : seek + window_frames]),
                                         dataclasses.replace(decoding, prompt=window_prompt), timings)
            if decoding.language is None:  # detected on the first window, then kept
                decoding = dataclasses.replace(decoding, language=result.language)
                language_prob = result.language_prob
            if self._is_silence(result, chaining):
                seek += window_frames
                continue
            pieces, resume_at = self.tokenizer.split_at_timestamps(result.tokens, keep_trailing=False)
            segments += self._segments(pieces, seek / FRAMES_PER_SECOND, window_frames, result)
            all_tokens += [token for piece in pieces for token in piece[2]]
            seek += window_frames if resume_at is None else resume_at * INPUT_STRIDE
            if not chaining.condition_on_previous_text or result.temperature > 0.5:
                prompt_reset_since = len(all_tokens)
        return self._result(segments, decoding.language, language_prob, audio, timings)

    def transcribe_segment(self, audio: np.ndarray, language: str | None = None, task: str = "transcribe",
                           prompt: str | None = None, **options: object) -> Result:
        """Fast path for one live segment of at most 30 s: one encoder run, one decode."""
        audio = validate_audio(audio)
        if audio.shape[0] > N_SAMPLES:
            raise ValueError(f"segment is {audio.shape[0] / SAMPLE_RATE:.1f} s; at most 30 s, or use transcribe()")
        decoding, chaining = self._options(language, task, options)
        decoding = dataclasses.replace(decoding, prompt=prompt.strip() if prompt and prompt.strip() else None)
        timings = _Timings()
        if content_frames(audio.shape[0]) == 0:  # under 10 ms: not one mel frame to decode
            return self._result([], decoding.language, None, audio, timings)
        started = time.perf_counter()
        mel = window_mel(audio, self.dims["n_mels"])
        timings.encode_ms += (time.perf_counter() - started) * 1000
        result = self._decode_window(mel, decoding, timings)
        segments: list[Segment] = []
        if not self._is_silence(result, chaining):
            window_frames = content_frames(audio.shape[0])
            pieces, _ = self.tokenizer.split_at_timestamps(result.tokens, keep_trailing=True)
            segments = self._segments(pieces, 0.0, window_frames, result)
        return self._result(segments, result.language, result.language_prob, audio, timings)

    def resolve_language(self, language: str | None, task: str = "transcribe") -> str | None:
        """The language code to decode with, None to detect it; ValueError if the
        model cannot do this language or task."""
        if language == "auto":
            language = None
        if not self.tokenizer.multilingual:
            if language not in (None, "en"):
                raise ValueError(f"language {language!r}: {self.manifest.name} is an English-only model")
            if task == "translate":
                raise ValueError(f"task 'translate': {self.manifest.name} is an English-only model")
            return "en"
        if language is not None and language not in self.languages:
            raise ValueError(f"language {language!r} is not one of this model's {len(self.languages)} codes")
        return language

    def _options(self, language: str | None, task: str, options: dict) -> tuple[DecodingOptions, TranscribeOptions]:
        decoding_fields = {f.name for f in dataclasses.fields(DecodingOptions)} - {"language", "task", "prompt"}
        chaining_fields = {f.name for f in dataclasses.fields(TranscribeOptions)}
        unknown = set(options) - decoding_fields - chaining_fields
        if unknown:
            raise ValueError(f"unknown transcription option(s): {', '.join(sorted(unknown))}")
        language = self.resolve_language(language, task)
        decoding = DecodingOptions(language=language, task=task,
                                   **{k: v for k, v in options.items() if k in decoding_fields})
        return decoding, TranscribeOptions(**{k: v for k, v in options.items() if k in chaining_fields})

    def _decode_window(self, mel: np.ndarray, options: DecodingOptions, timings: _Timings) -> DecodingResult:
        started = time.perf_counter()
        mel_value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(mel[None]))
        names_k, names_v = self._cross_outputs["k"], self._cross_outputs["v"]
        values = self._encoder.run_with_ort_values(names_k + names_v, {"mel": mel_value})
        cross = {"k": values[: len(names_k)], "v": values[len(names_k) :]}
        encoded = time.perf_counter()
        inference = _OnnxDecoderInference(self._decoder, cross, self.dims["n_text_layer"])
        task = DecodingTask(self.tokenizer, options, self.dims["n_text_ctx"], self.dims["n_audio_ctx"])
        result = task.run(inference)
        timings.encode_ms += (encoded - started) * 1000
        timings.decode_ms += (time.perf_counter() - encoded) * 1000
        return result

    @staticmethod
    def _is_silence(result: DecodingResult, chaining: TranscribeOptions) -> bool:
        if chaining.no_speech_threshold is None or result.no_speech_prob <= chaining.no_speech_threshold:
            return False
        # A confident transcript wins over a high no-speech probability.
        return chaining.logprob_threshold is None or result.avg_logprob < chaining.logprob_threshold

    def _segments(self, pieces: list, time_offset: float, window_frames: int,
                  result: DecodingResult) -> list[Segment]:
        segments = []
        for start_step, end_step, tokens in pieces:
            start = time_offset + start_step * TIME_PRECISION
            end = time_offset + (window_frames / FRAMES_PER_SECOND if end_step is None else end_step * TIME_PRECISION)
            text = self.tokenizer.decode(t for t in tokens if t < self.tokenizer.special.eot).strip()
            if start == end or not text:  # Whisper drops instantaneous or empty segments
                continue
            segments.append(Segment(round(start, 3), round(end, 3), text, result.avg_logprob,
                                    result.no_speech_prob, tokens))
        return segments

    def _result(self, segments: list[Segment], language: str | None, language_prob: float | None,
                audio: np.ndarray, timings: _Timings) -> Result:
        # Decoding all tokens at once (not joining segment texts) keeps languages
        # written without spaces right.
        text = self.tokenizer.decode(t for s in segments for t in s.tokens if t < self.tokenizer.special.eot)
        return Result(text=text.strip(), segments=segments,
                      language=language or "en", language_prob=language_prob,
                      duration=audio.shape[0] / SAMPLE_RATE, encode_ms=timings.encode_ms,
                      decode_ms=timings.decode_ms)
