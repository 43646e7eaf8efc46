"""Transcription options: what `transcribe` / `transcribe_segment` accept by name.

Options arrive as Python keywords or as a dict from a file job (JSON: lists,
not tuples). `split_options` sorts them into the per-window `DecodingOptions`
fields and the `TranscribeOptions` below, and raises ValueError naming the
option for anything unknown or out of range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from asr.whisper.decoding import DecodingOptions

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
# Given by the caller as separate arguments, not as options.
_ARGUMENT_FIELDS = {"language", "task", "prompt", "prefix"}
_TUPLE_FIELDS = {"suppress_tokens", "allowed_languages"}


@dataclass(frozen=True)
class TranscribeOptions:
    """How windows are decoded, checked, chained and timed beyond one decoding pass."""

    # temperatures tried in turn until a decode passes the checks below (fallback)
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    # decode again at the next temperature when the text's gzip ratio is above this ...
    compression_ratio_threshold: float | None = 2.4
    # ... or when the average log-probability is below this
    logprob_threshold: float | None = -1.0
    # a window is silence when no_speech_prob is above this and the decode looks unsure or loops
    no_speech_threshold: float | None = 0.6
    # the no-speech rule also fires when the transcript loops (compression ratio above its threshold)
    strict_no_speech: bool = True
    # windows with less voiced audio (webrtcvad) are not decoded; 0 decodes everything
    min_voiced_ms: int = 150
    # cut a transcript whose tokens loop after the first round
    repetition_guard: bool = True
    # a short window's second pass: decoded again on 30 s when its timestamps overshoot the audio,
    # and its unheard tail decoded when the decoder stopped early. A live partial, replaced within a
    # second, skips it: it costs up to four times the partial's encoder
    second_pass: bool = True
    # the model's shorter draft window (encoder_window.draft_floor_s): live partials, once words came
    draft_window: bool = False
    # the model's faster draft encoder (encoder_draft.onnx, when it has one): live partials
    draft_encoder: bool = False
    # feed the previous window's text as the prompt of the next one
    condition_on_previous_text: bool = True
    # stop conditioning on earlier text after a window decoded above this temperature
    prompt_reset_on_temperature: float = 0.5
    # text before everything else in the prompt: names, domain words, spelling style
    initial_prompt: str | None = None
    # word start/end times and probabilities from the alignment heads (needs decoder_attn.onnx)
    word_timestamps: bool = False
    # with word_timestamps: punctuation joined to the following / preceding word
    prepend_punctuations: str = PREPEND_PUNCTUATIONS
    append_punctuations: str = APPEND_PUNCTUATIONS

    def __post_init__(self) -> None:
        temperatures = self.temperature
        if not temperatures or not all(_is_number(t) and 0.0 <= t <= 10.0 for t in temperatures):
            raise ValueError(f"temperature must be a number in [0, 10] or a non-empty list of them, got {temperatures!r}")
        if list(temperatures) != sorted(temperatures):
            raise ValueError(f"temperature: the fallback list must be increasing, got {list(temperatures)}")
        _check_threshold("compression_ratio_threshold", self.compression_ratio_threshold, 0.0, None)
        _check_threshold("logprob_threshold", self.logprob_threshold, None, 0.0)
        _check_threshold("no_speech_threshold", self.no_speech_threshold, 0.0, 1.0)
        if not isinstance(self.min_voiced_ms, int) or isinstance(self.min_voiced_ms, bool) or self.min_voiced_ms < 0:
            raise ValueError(f"min_voiced_ms must be an int ≥ 0, got {self.min_voiced_ms!r}")
        for name in ("strict_no_speech", "repetition_guard", "second_pass", "draft_window",
                     "draft_encoder", "condition_on_previous_text", "word_timestamps"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not _is_number(self.prompt_reset_on_temperature) or not 0 <= self.prompt_reset_on_temperature <= 10:
            raise ValueError(f"prompt_reset_on_temperature must be in [0, 10], got {self.prompt_reset_on_temperature!r}")
        if self.initial_prompt is not None and not isinstance(self.initial_prompt, str):
            raise ValueError(f"initial_prompt must be a string or None, got {self.initial_prompt!r}")
        for name in ("prepend_punctuations", "append_punctuations"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_threshold(name: str, value: object, low: float | None, high: float | None) -> None:
    if value is None:
        return
    if not _is_number(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{name} must be a number in {bounds} or None, got {value!r}")


DECODING_FIELDS = frozenset(f.name for f in dataclasses.fields(DecodingOptions)) - _ARGUMENT_FIELDS
TRANSCRIBE_FIELDS = frozenset(f.name for f in dataclasses.fields(TranscribeOptions))
_DEFAULTS = {f.name: f.default for cls in (DecodingOptions, TranscribeOptions) for f in dataclasses.fields(cls)}


def _as_temperatures(value: object) -> tuple[float, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)  # type: ignore[return-value]  # checked in TranscribeOptions


def split_options(options: Mapping[str, object]) -> tuple[dict[str, object], TranscribeOptions]:
    """(DecodingOptions keywords, TranscribeOptions) from options given by name.

    `temperature` may be one number or the fallback list; the DecodingOptions
    keywords carry its first entry. Lists become tuples (JSON has no tuples);
    None for an option whose default is not None means that default.
    """
    unknown = set(options) - DECODING_FIELDS - TRANSCRIBE_FIELDS
    if unknown:
        known = ", ".join(sorted(DECODING_FIELDS | TRANSCRIBE_FIELDS))
        raise ValueError(f"unknown transcription option(s): {', '.join(sorted(unknown))} (known: {known})")
    decoding: dict[str, object] = {}
    transcribe: dict[str, object] = {}
    for name, value in options.items():
        if value is None and _DEFAULTS[name] is not None:
            continue  # JSON null for an option that needs a value: its default
        if name in _TUPLE_FIELDS and isinstance(value, list):
            value = tuple(value)
        if name == "temperature":
            transcribe[name] = _as_temperatures(value)
        elif name in DECODING_FIELDS:
            decoding[name] = value
        else:
            transcribe[name] = value
    chaining = TranscribeOptions(**transcribe)
    decoding["temperature"] = chaining.temperature[0]
    return decoding, chaining
