"""Logit filters: Whisper's rules on what may be sampled next.

Each filter masks a float32 [n_batch, n_vocab] logits array in place, given the
tokens so far [n_batch, n_seq] (initial tokens included).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from asr.whisper.tokenizer import Tokenizer


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
