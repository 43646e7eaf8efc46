"""Clustering with and without count hints, on embeddings whose groups are known."""
from __future__ import annotations

import numpy as np
import pytest

from speaker.diarize.clustering import SpeakerCount, cluster


def _groups(sizes, spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(len(sizes), 16)
    rows = [c + spread * rng.standard_normal(16) for c, n in zip(centres, sizes) for _ in range(n)]
    rows = np.array(rows)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_automatic_count_finds_the_groups():
    labels = cluster(_groups([6, 5, 4]), threshold=0.7)
    assert list(labels) == [0] * 6 + [1] * 5 + [2] * 4


def test_hints_fix_or_bound_the_count():
    emb = _groups([6, 5, 4])
    assert len(set(cluster(emb, 0.7, SpeakerCount(num_speakers=2)))) == 2
    assert len(set(cluster(emb, 0.7, SpeakerCount(max_speakers=2)))) == 2
    assert len(set(cluster(emb, 0.99, SpeakerCount(min_speakers=1, max_speakers=3)))) == 3
    assert len(set(cluster(emb, -1.0, SpeakerCount(min_speakers=3)))) == 3


def test_a_tiny_cluster_joins_the_nearest_big_one():
    emb = _groups([8, 8, 1])
    assert len(set(cluster(emb, 0.7, min_size=3))) == 2
    assert len(set(cluster(emb, 0.7, SpeakerCount(num_speakers=3), min_size=3))) == 3


@pytest.mark.parametrize("hint, message", [
    (SpeakerCount(num_speakers=0), "num_speakers must be a whole number ≥ 1, got 0"),
    (SpeakerCount(min_speakers=3, max_speakers=2), "min_speakers (3) is more than max_speakers (2)"),
    (SpeakerCount(num_speakers=2, max_speakers=3), "not both"),
])
def test_bad_hints_are_named(hint, message):
    with pytest.raises(ValueError) as error:
        hint.check()
    assert message in str(error.value)
