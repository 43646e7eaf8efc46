"""Token decoders (greedy or sampled, beam search) and the ranker that picks a candidate.

Shapes follow openai-whisper's decoding.py: a decoder sees the tokens so far
[n_batch, n_seq], where n_batch = n_audio * n_group (beams or best-of samples of
each audio, adjacent rows), and the filtered logits of the next position.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from asr.whisper.logit_filters import log_softmax

Candidates = tuple[list[list[np.ndarray]], list[list[float]]]  # tokens and logprobs per audio


class Inference(Protocol):
    """The decoder network with its key/value cache, for encoded audio."""

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens int64 [n_batch, n_seq], the whole sequence so far; returns float32
        [n_batch, n_new, n_vocab] for the n_new tokens not yet in the cache."""

    def reset(self) -> None:
        """Forget the key/value cache (next call starts from position 0)."""

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        """Row b of the cache becomes the old row source_indices[b] (beam search only)."""


class TokenDecoder:
    def reset(self, inference: Inference) -> None:
        """Start a new window decoded by `inference`."""

    def update(self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray) -> tuple[np.ndarray, bool]:
        """Choose the next tokens. tokens int64 [n_batch, n_seq], logits float32
        [n_batch, n_vocab], sum_logprobs float64 [n_batch] (updated in place).
        Returns the tokens with one column appended and whether all are finished."""
        raise NotImplementedError

    def finalize(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> Candidates:
        """Candidates per audio: tokens [n_audio][n_candidates] (each ending with eot) and their logprobs."""
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """Most likely token at temperature 0, else a sample from softmax(logits / T) per row."""

    def __init__(self, temperature: float, eot: int, rng: np.random.Generator, n_group: int = 1):
        self.temperature = temperature
        self.eot = eot
        self.rng = rng
        self.n_group = n_group  # rows per audio: best-of samples

    def update(self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray) -> tuple[np.ndarray, bool]:
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

    def finalize(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> Candidates:
        # Make sure each candidate ends with eot, then group the rows per audio.
        tokens = np.pad(tokens, ((0, 0), (0, 1)), constant_values=self.eot)
        n_audio = tokens.shape[0] // self.n_group
        rows = [list(tokens[i * self.n_group : (i + 1) * self.n_group]) for i in range(n_audio)]
        logprobs = [[float(lp) for lp in sum_logprobs[i * self.n_group : (i + 1) * self.n_group]]
                    for i in range(n_audio)]
        return rows, logprobs


class BeamSearchDecoder(TokenDecoder):
    """Beam search: keep the beam_size best unfinished sequences per audio.

    Finishes when round(beam_size * patience) sequences of every audio have
    reached end-of-text (patience as in arXiv:2204.05424). The key/value cache
    is shared by reordering its rows to follow the surviving beams.
    """

    def __init__(self, beam_size: int, eot: int, patience: float | None = None):
        self.beam_size = beam_size
        self.eot = eot
        self.patience = patience or 1.0
        self.max_candidates = round(beam_size * self.patience)
        if self.max_candidates <= 0:
            raise ValueError(f"patience: beam_size {beam_size} * patience {self.patience} keeps no candidates")
        self.inference: Inference | None = None
        self.finished_sequences: list[dict[tuple[int, ...], float]] | None = None

    def reset(self, inference: Inference) -> None:
        self.inference = inference
        self.finished_sequences = None

    def update(self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray) -> tuple[np.ndarray, bool]:
        if tokens.shape[0] % self.beam_size != 0:
            raise ValueError(f"{tokens.shape[0]} rows is not a multiple of beam_size {self.beam_size}")
        n_audio = tokens.shape[0] // self.beam_size
        if self.finished_sequences is None:
            self.finished_sequences = [{} for _ in range(n_audio)]
        logprobs = log_softmax(logits)
        next_tokens: list[tuple[int, ...]] = []
        source_indices: list[int] = []
        next_logprobs: list[float] = []
        for audio in range(n_audio):
            scores, sources = self._expand(tokens, logprobs, sum_logprobs, audio)
            finished: dict[tuple[int, ...], float] = {}
            for sequence in sorted(scores, key=scores.get, reverse=True):
                if sequence[-1] == self.eot:
                    finished[sequence] = scores[sequence]
                    continue
                next_tokens.append(sequence)
                source_indices.append(sources[sequence])
                next_logprobs.append(scores[sequence])
                if len(next_tokens) == (audio + 1) * self.beam_size:
                    break
            self._add_finished(self.finished_sequences[audio], finished)
        sum_logprobs[:] = next_logprobs
        self.inference.rearrange_kv_cache(source_indices)
        completed = all(len(done) >= self.max_candidates for done in self.finished_sequences)
        return np.array(next_tokens, dtype=np.int64), completed

    def _expand(self, tokens: np.ndarray, logprobs: np.ndarray, sum_logprobs: np.ndarray,
                audio: int) -> tuple[dict[tuple[int, ...], float], dict[tuple[int, ...], int]]:
        """Every beam of one audio extended by its beam_size + 1 best tokens (duplicates merge)."""
        scores: dict[tuple[int, ...], float] = {}
        sources: dict[tuple[int, ...], int] = {}
        for row in range(audio * self.beam_size, (audio + 1) * self.beam_size):
            prefix = tuple(int(t) for t in tokens[row])
            best = np.argpartition(-logprobs[row], self.beam_size)[: self.beam_size + 1]
            for token in best:
                sequence = prefix + (int(token),)
                scores[sequence] = float(sum_logprobs[row] + logprobs[row, token])
                sources[sequence] = row
        return scores, sources

    def _add_finished(self, done: dict[tuple[int, ...], float], new: dict[tuple[int, ...], float]) -> None:
        for sequence in sorted(new, key=new.get, reverse=True):
            if len(done) >= self.max_candidates:
                break
            done[sequence] = new[sequence]

    def finalize(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> Candidates:
        n_audio = tokens.shape[0] // self.beam_size
        finished = self.finished_sequences or [{} for _ in range(n_audio)]
        for audio, done in enumerate(finished):
            if len(done) >= self.beam_size:
                continue
            # Not enough finished in time: the best unfinished beams join, closed with eot.
            rows = range(audio * self.beam_size, (audio + 1) * self.beam_size)
            for row in sorted(rows, key=lambda r: sum_logprobs[r], reverse=True):
                done[tuple(int(t) for t in tokens[row]) + (self.eot,)] = float(sum_logprobs[row])
                if len(done) >= self.beam_size:
                    break
        candidates = [[np.array(sequence, dtype=np.int64) for sequence in done] for done in finished]
        return candidates, [list(done.values()) for done in finished]


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
