"""Decoding one 30 s window: options, logit filters, token decoders, ranking.

Shaped after openai-whisper's decoding.py: each job is a small class
(`LogitFilter` subclasses, `TokenDecoder`, `SequenceRanker`), only
`DecodingTask.__init__` chooses implementations, and `_main_loop` just cycles
filters and a decoder step. The network itself sits behind the `Inference`
protocol so this module needs nothing but numpy.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from asr.tokenizer import TASKS, TIME_PRECISION, Tokenizer

logger = logging.getLogger(__name__)

SUPPRESS_NON_SPEECH = -1  # in suppress_tokens: Whisper's non-speech symbol list


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode one window. Every field is checked when the options are made."""

    # "transcribe" (same language) or "translate" (into English)
    task: str = "transcribe"
    # language code; None detects it on multilingual models, English-only models use "en"
    language: str | None = None
    # 0.0 picks the most likely token; above 0 samples (for temperature fallback)
    temperature: float = 0.0
    # maximum number of tokens to sample; None means half the text context (224)
    sample_len: int | None = None
    # beam search width; None means greedy (beam search is not implemented yet)
    beam_size: int | None = None
    # None ranks by summed logprob / length, else Google NMT length penalty alpha
    length_penalty: float | None = None
    # previous text (str) or its token ids, fed after <|startofprev|> as context
    prompt: str | tuple[int, ...] | None = None
    # token ids never sampled; SUPPRESS_NON_SPEECH (-1) expands to Whisper's list
    suppress_tokens: tuple[int, ...] = (SUPPRESS_NON_SPEECH,)
    # forbid a blank or end-of-text as the first sampled token
    suppress_blank: bool = True
    # sample text only, no <|t|> tokens (then no segment times within a window)
    without_timestamps: bool = False
    # latest first timestamp allowed, in seconds; None lifts the limit
    max_initial_timestamp: float | None = 1.0
    # seed for temperature sampling, so fallback runs are reproducible
    seed: int | None = 0

    def __post_init__(self) -> None:
        _verify_options(self)


def _verify_options(options: DecodingOptions) -> None:
    if options.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {options.task!r}")
    if options.language is not None and not isinstance(options.language, str):
        raise ValueError(f"language must be a code string or None, got {options.language!r}")
    if not (isinstance(options.temperature, (int, float)) and 0.0 <= options.temperature <= 10.0):
        raise ValueError(f"temperature must be in [0, 10], got {options.temperature!r}")
    if options.sample_len is not None and not (
        isinstance(options.sample_len, int) and options.sample_len > 0
    ):
        raise ValueError(f"sample_len must be a positive int or None, got {options.sample_len!r}")
    if options.beam_size is not None:
        raise ValueError("beam_size: beam search is not implemented yet; use None (greedy)")
    if options.length_penalty is not None and not 0.0 <= options.length_penalty <= 1.0:
        raise ValueError(f"length_penalty must be in [0, 1] or None, got {options.length_penalty}")
    if options.prompt is not None and not isinstance(options.prompt, (str, tuple)):
        raise ValueError(f"prompt must be a str, a tuple of token ids or None, got {options.prompt!r}")
    if any(not isinstance(t, int) or t < SUPPRESS_NON_SPEECH for t in options.suppress_tokens):
        raise ValueError(f"suppress_tokens must be token ids or -1, got {options.suppress_tokens!r}")
    if options.max_initial_timestamp is not None and options.max_initial_timestamp < 0:
        raise ValueError(f"max_initial_timestamp must be ≥ 0 or None, got {options.max_initial_timestamp}")


@dataclass(frozen=True)
class DecodingResult:
    """What decoding one window produced."""

    language: str
    language_prob: float | None  # None when the language was given, not detected
    tokens: tuple[int, ...]  # sampled tokens incl. timestamps, without the final eot
    text: str
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    language_probs: dict[str, float] = field(default_factory=dict, repr=False)


class Inference(Protocol):
    """The decoder network with its key/value cache, for one encoded window."""

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens int64 [n_batch, n_seq], the whole sequence so far; returns float32
        [n_batch, n_new, n_vocab] for the n_new tokens not yet in the cache."""

    def reset(self) -> None:
        """Forget the key/value cache (next call starts from position 0)."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log_softmax over the last axis, in float32, without overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def compression_ratio(text: str) -> float:
    """Bytes over zlib-compressed bytes: high values flag repetition loops."""
    text_bytes = text.encode("utf-8")
    if not text_bytes:
        return 0.0
    return len(text_bytes) / len(zlib.compress(text_bytes))


# --- logit filters --------------------------------------------------------------


class LogitFilter:
    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        """Mask logits in place. logits float32 [n_batch, n_vocab]; tokens int64
        [n_batch, n_seq], everything so far including the initial tokens."""
        raise NotImplementedError


class SuppressBlank(LogitFilter):
    """At the first sampled position, forbid a bare space and end-of-text."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int):
        self.blank_ids = tokenizer.encode(" ") + [tokenizer.special.eot]
        self.sample_begin = sample_begin

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.blank_ids] = -np.inf


class SuppressTokens(LogitFilter):
    """Never sample these tokens."""

    def __init__(self, suppress_ids: Sequence[int]):
        self.suppress_ids = np.asarray(sorted(set(suppress_ids)), dtype=np.int64)

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        logits[:, self.suppress_ids] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """Whisper's timestamp grammar: pairs, non-decreasing, start early enough, and
    a timestamp whenever all timestamps together outweigh the best text token."""

    def __init__(self, tokenizer: Tokenizer, sample_begin: int, max_initial_timestamp_index: int | None):
        self.eot = tokenizer.special.eot
        self.no_timestamps = tokenizer.special.no_timestamps
        self.timestamp_begin = tokenizer.special.timestamp_begin
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        begin = self.timestamp_begin
        logits[:, self.no_timestamps] = -np.inf  # without_timestamps decides that
        for k in range(tokens.shape[0]):
            self._apply_pairing(logits[k], tokens[k, self.sample_begin :])
        if tokens.shape[1] == self.sample_begin:
            logits[:, :begin] = -np.inf  # the first sampled token is a timestamp
            if self.max_initial_timestamp_index is not None:
                logits[:, begin + self.max_initial_timestamp_index + 1 :] = -np.inf
        # Compared in logits, not log-probabilities: the softmax normaliser cancels.
        timestamp_mass = np.logaddexp.reduce(logits[:, begin:], axis=-1)
        best_text = logits[:, :begin].max(axis=-1)
        logits[timestamp_mass > best_text, :begin] = -np.inf

    def _apply_pairing(self, logits: np.ndarray, sampled: np.ndarray) -> None:
        """logits [n_vocab] and sampled tokens [n_sampled] of one sequence."""
        begin = self.timestamp_begin
        last_was_timestamp = len(sampled) >= 1 and sampled[-1] >= begin
        penultimate_was_timestamp = len(sampled) < 2 or sampled[-2] >= begin
        if last_was_timestamp:
            if penultimate_was_timestamp:  # a pair just closed: text or eot next
                logits[begin:] = -np.inf
            else:  # an open timestamp: another timestamp or eot, not text
                logits[: self.eot] = -np.inf
        timestamps = sampled[sampled >= begin]
        if timestamps.size > 0:
            # Never go back in time; after a closed pair also move forward, so a
            # zero-length segment cannot loop forever.
            if last_was_timestamp and not penultimate_was_timestamp:
                timestamp_last = timestamps[-1]
            else:
                timestamp_last = timestamps[-1] + 1
            logits[begin:timestamp_last] = -np.inf


# --- token decoders and ranking -----------------------------------------------------


class TokenDecoder:
    def reset(self) -> None:
        """Start a new window."""  # greedy keeps no state; beam search will

    def update(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        """Choose the next tokens. tokens int64 [n_batch, n_seq], logits float32
        [n_batch, n_vocab], sum_logprobs float64 [n_batch] (updated in place).
        Returns the tokens with one column appended and whether all are finished."""
        raise NotImplementedError

    def finalize(
        self, tokens: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[list[list[np.ndarray]], list[list[float]]]:
        """Candidates per audio: tokens [n_audio][n_candidates] and their logprobs."""
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """Most likely token at temperature 0, else a sample from softmax(logits / T)."""

    def __init__(self, temperature: float, eot: int, rng: np.random.Generator):
        self.temperature = temperature
        self.eot = eot
        self.rng = rng

    def update(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        if self.temperature == 0:
            next_tokens = logits.argmax(axis=-1)
        else:  # Gumbel-max: an exact sample from the tempered softmax
            gumbel = -np.log(-np.log(self.rng.uniform(1e-20, 1.0, size=logits.shape)))
            next_tokens = (logits / self.temperature + gumbel).argmax(axis=-1)
        # log p(token) = logit - logsumexp(logits): no full log-softmax array needed.
        peak = logits.max(axis=-1)
        normaliser = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=-1))
        current_logprobs = logits[np.arange(logits.shape[0]), next_tokens] - normaliser
        still_going = tokens[:, -1] != self.eot
        sum_logprobs += current_logprobs * still_going
        next_tokens = np.where(still_going, next_tokens, self.eot)
        tokens = np.concatenate([tokens, next_tokens[:, None].astype(np.int64)], axis=-1)
        return tokens, bool((tokens[:, -1] == self.eot).all())

    def finalize(
        self, tokens: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[list[list[np.ndarray]], list[list[float]]]:
        # Greedy keeps one candidate per audio; make sure each one ends with eot.
        tokens = np.pad(tokens, ((0, 0), (0, 1)), constant_values=self.eot)
        return [[row] for row in tokens], [[float(lp)] for lp in sum_logprobs]


class SequenceRanker:
    def rank(self, tokens: list[list[np.ndarray]], sum_logprobs: list[list[float]]) -> list[int]:
        """Index of the best candidate per audio; tokens are sampled tokens only."""
        raise NotImplementedError


class MaximumLikelihoodRanker(SequenceRanker):
    """Highest length-normalised log probability (whisper's default ranker)."""

    def __init__(self, length_penalty: float | None):
        self.length_penalty = length_penalty

    def rank(self, tokens: list[list[np.ndarray]], sum_logprobs: list[list[float]]) -> list[int]:
        def scores(logprobs: list[float], lengths: list[int]) -> list[float]:
            if self.length_penalty is None:
                return [lp / length for lp, length in zip(logprobs, lengths)]
            return [lp / (((5 + n) / 6) ** self.length_penalty) for lp, n in zip(logprobs, lengths)]

        # An empty candidate still ended with eot, so count at least one token.
        lengths = [[max(len(t), 1) for t in candidates] for candidates in tokens]
        return [int(np.argmax(scores(lp, ln))) for lp, ln in zip(sum_logprobs, lengths)]

# --- the task ----------------------------------------------------------------------


def detect_language(
    inference: Inference, tokenizer: Tokenizer, allowed: Sequence[str] | None = None
) -> tuple[str, float, dict[str, float]]:
    """Most likely language from one decoder step on <|startoftranscript|>.

    Returns (code, its probability, probabilities of every allowed code). The
    cache is reset afterwards so decoding starts clean.
    """
    codes = list(allowed) if allowed is not None else list(tokenizer.language_codes)
    if not tokenizer.multilingual:
        return "en", 1.0, {"en": 1.0}
    language_ids = np.array([tokenizer.language_token(code) for code in codes], dtype=np.int64)
    sot = np.array([[tokenizer.special.sot]], dtype=np.int64)
    try:
        first_logits = inference.logits(sot)[0, 0]
    finally:
        inference.reset()
    language_logits = first_logits[language_ids].astype(np.float64)
    probs = np.exp(language_logits - np.logaddexp.reduce(language_logits))
    best = int(probs.argmax())
    return codes[best], float(probs[best]), dict(zip(codes, probs.tolist()))


class DecodingTask:
    """Decodes one encoded window with the chosen filters, decoder and ranker."""

    def __init__(self, tokenizer: Tokenizer, options: DecodingOptions, n_text_ctx: int, n_audio_ctx: int):
        self.tokenizer = tokenizer
        self.options = options
        self.n_ctx = n_text_ctx
        self.sample_len = options.sample_len or n_text_ctx // 2
        self.initial_tokens: tuple[int, ...] = ()  # set per run: depends on the language
        self.decoder: TokenDecoder = GreedyDecoder(
            options.temperature, tokenizer.special.eot, np.random.default_rng(options.seed)
        )
        self.ranker: SequenceRanker = MaximumLikelihoodRanker(options.length_penalty)
        self.prompt_tokens = self._prompt_tokens()
        # Every language gives an sot sequence of the same length, so "en" stands in
        # for the language that may only be detected in run().
        self.sample_begin = len(self.prompt_tokens) + len(self._sot_sequence("en"))
        self.logit_filters: list[LogitFilter] = []
        if options.suppress_blank:
            self.logit_filters.append(SuppressBlank(tokenizer, self.sample_begin))
        self.logit_filters.append(SuppressTokens(self._suppress_ids()))
        if not options.without_timestamps:
            precision = 30.0 / n_audio_ctx  # seconds per encoder frame (0.02)
            max_initial = options.max_initial_timestamp
            max_index = None if max_initial is None else round(max_initial / precision)
            self.logit_filters.append(ApplyTimestampRules(tokenizer, self.sample_begin, max_index))

    def _sot_sequence(self, language: str) -> tuple[int, ...]:
        return self.tokenizer.sot_sequence(language, self.options.task, not self.options.without_timestamps)

    def _prompt_tokens(self) -> tuple[int, ...]:
        prompt = self.options.prompt
        if prompt is None:
            return ()
        if isinstance(prompt, str):
            prompt = tuple(self.tokenizer.encode(" " + prompt.strip()))
        if not prompt:
            return ()
        # Keep the newest context; half the text context stays free for sampling.
        return (self.tokenizer.special.sot_prev, *prompt[-(self.n_ctx // 2 - 1) :])

    def _suppress_ids(self) -> list[int]:
        ids = [t for t in self.options.suppress_tokens if t >= 0]
        if SUPPRESS_NON_SPEECH in self.options.suppress_tokens:
            ids += self.tokenizer.non_speech_tokens()
        # The control tokens are never text, whatever the caller asked for.
        ids += self.tokenizer.control_tokens()
        return ids

    def run(self, inference: Inference) -> DecodingResult:
        """Decode one window whose audio the `inference` was built for."""
        language, language_prob, language_probs = self.options.language, None, {}
        if language is None:
            language, language_prob, language_probs = detect_language(inference, self.tokenizer)
        self.initial_tokens = self.prompt_tokens + self._sot_sequence(language)
        tokens = np.array([self.initial_tokens], dtype=np.int64)
        self.decoder.reset()
        try:
            tokens, sum_logprobs, no_speech_probs = self._main_loop(inference, tokens)
        finally:
            inference.reset()
        candidates, candidate_logprobs = self.decoder.finalize(tokens, sum_logprobs)
        eot = self.tokenizer.special.eot
        sampled = [[c[self.sample_begin : int(np.flatnonzero(c == eot)[0])] for c in group] for group in candidates]
        best = self.ranker.rank(sampled, candidate_logprobs)[0]
        best_tokens = tuple(int(t) for t in sampled[0][best])
        text = self.tokenizer.decode(best_tokens).strip()
        return DecodingResult(
            language=language,
            language_prob=language_prob,
            tokens=best_tokens,
            text=text,
            avg_logprob=candidate_logprobs[0][best] / (len(best_tokens) + 1),
            no_speech_prob=float(no_speech_probs[0]),
            temperature=self.options.temperature,
            compression_ratio=compression_ratio(text),
            language_probs=language_probs,
        )

    def _main_loop(self, inference: Inference, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sum_logprobs = np.zeros(tokens.shape[0], dtype=np.float64)
        no_speech_probs = np.full(tokens.shape[0], np.nan)
        sot_index, no_speech = self.initial_tokens.index(self.tokenizer.special.sot), self.tokenizer.special.no_speech
        for step in range(self.sample_len):
            logits = inference.logits(tokens)
            if step == 0:  # what the model thinks of the window before saying anything
                no_speech_probs = np.exp(log_softmax(logits[:, sot_index].astype(np.float64))[:, no_speech])
            last_logits = np.array(logits[:, -1], dtype=np.float32)  # filters write into it
            for logit_filter in self.logit_filters:
                logit_filter.apply(last_logits, tokens)
            tokens, completed = self.decoder.update(tokens, last_logits, sum_logprobs)
            if completed or tokens.shape[-1] > self.n_ctx:
                break
        return tokens, sum_logprobs, no_speech_probs
