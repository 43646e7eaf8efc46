"""Beam search, best-of sampling and ranking on a scripted decoder (asr/whisper/beam.py)."""

import numpy as np
import pytest

from asr.whisper.beam import BeamSearchDecoder, GreedyDecoder, MaximumLikelihoodRanker

EOT, A, B, C, D = 0, 1, 2, 3, 4
N_VOCAB = 8


def _logprobs(probabilities: dict[int, float]) -> np.ndarray:
    row = np.full(N_VOCAB, 1e-6)
    for token, p in probabilities.items():
        row[token] = p
    return np.log(row / row.sum()).astype(np.float32)


# After the prompt (9): A is likeliest, but after A nothing is sure; after B, C is almost certain.
NEXT = {9: {A: 0.5, B: 0.4, D: 0.1}, A: {C: 0.3, D: 0.3, EOT: 0.3}, B: {C: 0.99}, C: {EOT: 0.99},
        D: {EOT: 0.99}}


class LookupInference:
    """Logits depend only on the last token; records how the beam rows were reordered."""

    def __init__(self):
        self.rearranged = []

    def logits_for(self, tokens):
        return np.stack([_logprobs(NEXT.get(int(row[-1]), {EOT: 1.0})) for row in tokens])

    def rearrange_kv_cache(self, source_indices):
        self.rearranged.append(list(source_indices))

    def reset(self):
        pass


def _decode(decoder, inference, n_rows, steps=6):
    tokens = np.full((n_rows, 1), 9, dtype=np.int64)
    sum_logprobs = np.zeros(n_rows)
    decoder.reset(inference)
    for _ in range(steps):
        tokens, completed = decoder.update(tokens, inference.logits_for(tokens), sum_logprobs)
        if completed:
            break
    return decoder.finalize(tokens, sum_logprobs)


def test_greedy_takes_the_locally_best_path():
    candidates, logprobs = _decode(GreedyDecoder(0.0, EOT, np.random.default_rng(0)), LookupInference(), 1)
    assert candidates[0][0][1] == A


def test_beam_search_finds_the_more_likely_sequence():
    inference = LookupInference()
    candidates, logprobs = _decode(BeamSearchDecoder(3, EOT), inference, 3)
    best = MaximumLikelihoodRanker(None).rank([[c[1:] for c in candidates[0]]], logprobs)[0]
    assert candidates[0][best].tolist() == [9, B, C, EOT]
    assert len(candidates[0]) == 3 and all(c[-1] == EOT for c in candidates[0])
    assert inference.rearranged and all(len(rows) == 3 for rows in inference.rearranged)
    assert len(set(inference.rearranged[0])) == 1  # first step: every beam continues one (identical) prompt row


def test_patience_waits_for_more_finished_candidates():
    impatient, patient = BeamSearchDecoder(2, EOT, patience=1.0), BeamSearchDecoder(2, EOT, patience=2.0)
    assert impatient.max_candidates == 2 and patient.max_candidates == 4
    candidates, _ = _decode(patient, LookupInference(), 2)
    assert len(candidates[0]) >= 2


def test_unfinished_beams_are_closed_at_the_end():
    candidates, logprobs = _decode(BeamSearchDecoder(2, EOT), LookupInference(), 2, steps=1)
    assert len(candidates[0]) == 2 and all(c[-1] == EOT for c in candidates[0])
    assert all(np.isfinite(lp) for lp in logprobs[0])


def test_bad_beam_settings():
    with pytest.raises(ValueError, match="patience"):
        BeamSearchDecoder(2, EOT, patience=0.1)
    decoder = BeamSearchDecoder(2, EOT)
    decoder.reset(LookupInference())
    with pytest.raises(ValueError, match="beam_size"):
        decoder.update(np.zeros((3, 1), np.int64), np.zeros((3, N_VOCAB), np.float32), np.zeros(3))


def test_best_of_samples_are_grouped_per_audio():
    decoder = GreedyDecoder(1.0, EOT, np.random.default_rng(3), n_group=4)
    candidates, logprobs = _decode(decoder, LookupInference(), 4)
    assert len(candidates) == 1 and len(candidates[0]) == 4 and len(logprobs[0]) == 4
