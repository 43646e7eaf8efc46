"""Decoding one 30 s window: options, the task that runs filters and a token decoder.

Shaped after openai-whisper's decoding.py: each job is a small class (logit
filters in asr/whisper/logit_filters.py, token decoders and the ranker in asr/whisper/beam.py),
only `DecodingTask.__init__` chooses implementations, and `_main_loop` just
cycles filters and a decoder step. The network sits behind the `Inference`
protocol so this module needs nothing but numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.whisper.beam import (BeamSearchDecoder, GreedyDecoder, Inference, MaximumLikelihoodRanker,  # noqa: F401
                      SequenceRanker, TokenDecoder)
from asr.whisper.logit_filters import (ApplyTimestampRules, LogitFilter, SuppressBlank, SuppressTokens,  # noqa: F401
                               compression_ratio, log_softmax)
from asr.whisper.tokenizer import TASKS, Tokenizer

logger = logging.getLogger(__name__)

SUPPRESS_NON_SPEECH = -1  # in suppress_tokens: Whisper's non-speech symbol list


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode one window. Every field is checked when the options are made."""

    # "transcribe" (same language) or "translate" (into English)
    task: str = "transcribe"
    # language code; None detects it on multilingual models, English-only models use "en"
    language: str | None = None
    # detection only picks among these codes; None allows every language of the model
    allowed_languages: tuple[str, ...] | None = None
    # 0.0 picks the most likely token (or beam search); above 0 samples (temperature fallback)
    temperature: float = 0.0
    # maximum number of tokens to sample (a prefix's included); None means half the text context (224)
    sample_len: int | None = None
    # beam width used at temperature 0; None (or 1) is greedy
    beam_size: int | None = None
    # independent samples drawn at temperature > 0, the most likely kept; None draws one
    best_of: int | None = None
    # beam search stops after round(beam_size * patience) finished sequences; None = 1.0
    patience: float | None = None
    # None ranks by summed logprob / length, else Google NMT length penalty alpha
    length_penalty: float | None = None
    # previous text (str) or its token ids, fed after <|startofprev|> as context
    prompt: str | tuple[int, ...] | None = None
    # token ids forced right after the sot sequence (timestamps included) and returned as the
    # start of the decode: a live partial resumes from the words its last two partials agreed on
    prefix: tuple[int, ...] | None = None
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

    @property
    def n_group(self) -> int:
        """Rows decoded together for the one audio: beams at temperature 0, best-of samples above."""
        if self.temperature == 0:
            return self.beam_size or 1
        return self.best_of or 1


# Sane bounds: every row of a beam or best-of batch costs a copy of the decoder's caches, so an
# unbounded beam_size (a client's 10**9) would take a worker's memory; sample_len is capped by the
# decoder's context anyway.
LIMITS = {"sample_len": 448, "beam_size": 32, "best_of": 32}
MAX_PATIENCE = 10.0


def _positive_int_or_none(name: str, value: object) -> None:
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= LIMITS[name]):
        raise ValueError(f"{name} must be an int from 1 to {LIMITS[name]} or None, got {value!r:.40}")


def _verify_options(options: DecodingOptions) -> None:
    if options.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {options.task!r}")
    if options.language is not None and not isinstance(options.language, str):
        raise ValueError(f"language must be a code string or None, got {options.language!r}")
    allowed = options.allowed_languages
    if allowed is not None and (not isinstance(allowed, tuple) or not allowed
                                or not all(isinstance(code, str) for code in allowed)):
        raise ValueError(f"allowed_languages must be a non-empty list of language codes or None, got {allowed!r}")
    temperature = options.temperature
    if isinstance(temperature, bool) or not (isinstance(temperature, (int, float)) and 0.0 <= temperature <= 10.0):
        raise ValueError(f"temperature must be in [0, 10], got {temperature!r}")
    for name in ("sample_len", "beam_size", "best_of"):
        _positive_int_or_none(name, getattr(options, name))
    if options.patience is not None:
        if not isinstance(options.patience, (int, float)) or not 0 < options.patience <= MAX_PATIENCE:
            raise ValueError(f"patience must be a number > 0 and ≤ {MAX_PATIENCE:g} or None, got {options.patience!r:.40}")
        if options.beam_size is None:
            raise ValueError("patience only applies to beam search: set beam_size too")
    penalty = options.length_penalty
    if penalty is not None and not (isinstance(penalty, (int, float)) and 0.0 <= penalty <= 1.0):
        raise ValueError(f"length_penalty must be in [0, 1] or None, got {penalty!r}")
    if options.prompt is not None and not isinstance(options.prompt, (str, tuple)):
        raise ValueError(f"prompt must be a str, a tuple of token ids or None, got {options.prompt!r}")
    prefix = options.prefix
    if prefix is not None and not (isinstance(prefix, tuple) and all(isinstance(t, int) and t >= 0 for t in prefix)):
        raise ValueError(f"prefix must be a tuple of token ids or None, got {prefix!r:.60}")
    if not isinstance(options.suppress_tokens, tuple) or any(
            not isinstance(t, int) or t < SUPPRESS_NON_SPEECH for t in options.suppress_tokens):
        raise ValueError(f"suppress_tokens must be token ids or -1, got {options.suppress_tokens!r}")
    initial = options.max_initial_timestamp
    if initial is not None and not (isinstance(initial, (int, float)) and initial >= 0):
        raise ValueError(f"max_initial_timestamp must be ≥ 0 or None, got {initial!r}")


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
    token_logprobs: tuple[float, ...] = ()  # log p of each of `tokens`, so each segment gets its own avg_logprob


class PrefixScores:
    """The cumulative log probability of every token sequence a decoder kept, step by step.

    Beam search reorders its rows, so a row's history is not a column of one array; keyed by the
    sequence itself, the chosen sequence's per-token log probabilities are the differences of
    its prefixes' scores (the token that ends it, eot, is never a kept row and is left out).
    """

    def __init__(self, tokens: np.ndarray, sum_logprobs: np.ndarray):
        self.cumulative: dict[tuple[int, ...], float] = {}
        self.see(tokens, sum_logprobs)

    def see(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> None:
        for row, total in zip(tokens.tolist(), sum_logprobs.tolist()):
            self.cumulative[tuple(row)] = total

    def per_token(self, initial: tuple[int, ...], sampled: tuple[int, ...]) -> tuple[float, ...]:
        """log p of each sampled token after `initial`; () when a prefix was not seen (never expected)."""
        out, before, prefix = [], self.cumulative.get(initial), initial
        for token in sampled:
            prefix = prefix + (token,)
            after = self.cumulative.get(prefix)
            if before is None or after is None:
                return ()
            out.append(after - before)
            before = after
        return tuple(out)


def detect_language(
    inference: Inference, tokenizer: Tokenizer, allowed: Sequence[str] | None = None, n_batch: int = 1
) -> tuple[str, float, dict[str, float]]:
    """Most likely language from one decoder step on <|startoftranscript|>.

    Returns (code, its probability among the allowed codes, probabilities of every
    allowed code). `n_batch` rows of the same window are fed (the inference's
    batch); the cache is reset afterwards so decoding starts clean.
    """
    codes = list(allowed) if allowed is not None else list(tokenizer.language_codes)
    if not tokenizer.multilingual:
        return "en", 1.0, {"en": 1.0}
    language_ids = np.array([tokenizer.language_token(code) for code in codes], dtype=np.int64)
    sot = np.full((n_batch, 1), tokenizer.special.sot, dtype=np.int64)
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
        self.n_group = options.n_group
        self.sample_len = options.sample_len or n_text_ctx // 2
        self.initial_tokens: tuple[int, ...] = ()  # set per run: depends on the language
        eot = tokenizer.special.eot
        if options.temperature == 0 and self.n_group > 1:
            self.decoder: TokenDecoder = BeamSearchDecoder(self.n_group, eot, options.patience)
        else:
            rng = np.random.default_rng(options.seed)
            self.decoder = GreedyDecoder(options.temperature, eot, rng, self.n_group)
        self.ranker: SequenceRanker = MaximumLikelihoodRanker(options.length_penalty)
        self.prompt_tokens = self._prompt_tokens()
        self.prefix_tokens = tuple(options.prefix or ())[: self.sample_len // 2]
        # Every language gives an sot sequence of the same length, so "en" stands in
        # for the language that may only be detected in run(). The prefix counts as sampled
        # text: the timestamp rules see it, and it starts the decode's tokens.
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

    def sot_sequence(self, language: str) -> tuple[int, ...]:
        """The start-of-transcript tokens this task decodes after (word timing re-feeds them)."""
        return self._sot_sequence(language)

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
        """Decode one window; `inference` holds that window n_group times over (its batch)."""
        language, language_prob, language_probs = self.options.language, None, {}
        if language is None:
            language, language_prob, language_probs = detect_language(
                inference, self.tokenizer, self.options.allowed_languages, self.n_group)
        self.initial_tokens = self.prompt_tokens + self._sot_sequence(language) + self.prefix_tokens
        tokens = np.repeat(np.array([self.initial_tokens], dtype=np.int64), self.n_group, axis=0)
        self.decoder.reset(inference)
        scores = PrefixScores(tokens, sum_logprobs=np.zeros(tokens.shape[0]))
        try:
            tokens, sum_logprobs, no_speech_probs = self._main_loop(inference, tokens, scores)
        finally:
            inference.reset()
        candidates, candidate_logprobs = self.decoder.finalize(tokens, sum_logprobs)
        eot = self.tokenizer.special.eot
        sampled = [[c[self.sample_begin : int(np.flatnonzero(c == eot)[0])] for c in group] for group in candidates]
        best = self.ranker.rank(sampled, candidate_logprobs)[0]
        best_tokens = tuple(int(t) for t in sampled[0][best])
        text = self.tokenizer.decode(best_tokens).strip()
        forced = len(self.prefix_tokens)  # not sampled: no log probabilities of their own
        return DecodingResult(
            language=language,
            language_prob=language_prob,
            tokens=best_tokens,
            text=text,
            avg_logprob=candidate_logprobs[0][best] / (len(best_tokens) - forced + 1),
            no_speech_prob=float(no_speech_probs[0]),
            temperature=self.options.temperature,
            compression_ratio=compression_ratio(text),
            language_probs=language_probs,
            token_logprobs=() if forced else scores.per_token(tuple(self.initial_tokens), best_tokens),
        )

    def _main_loop(self, inference: Inference, tokens: np.ndarray,
                   scores: PrefixScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sum_logprobs = np.zeros(tokens.shape[0], dtype=np.float64)
        no_speech_probs = np.full(tokens.shape[0], np.nan)
        sot_index, no_speech = self.initial_tokens.index(self.tokenizer.special.sot), self.tokenizer.special.no_speech
        for step in range(self.sample_len - len(self.prefix_tokens)):  # a prefix counts towards sample_len
            logits = inference.logits(tokens)
            if step == 0:  # what the model thinks of the window before saying anything
                no_speech_probs = np.exp(log_softmax(logits[:, sot_index].astype(np.float64))[:, no_speech])
            last_logits = np.array(logits[:, -1], dtype=np.float32)  # filters write into it
            for logit_filter in self.logit_filters:
                logit_filter.apply(last_logits, tokens)
            tokens, completed = self.decoder.update(tokens, last_logits, sum_logprobs)
            scores.see(tokens, sum_logprobs)
            if completed or tokens.shape[-1] > self.n_ctx:
                break
        return tokens, sum_logprobs, no_speech_probs
