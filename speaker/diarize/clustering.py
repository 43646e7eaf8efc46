"""Agglomerative clustering of speaker embeddings (average linkage on cosine similarity).

The speaker count is automatic (merge while the two closest clusters are more similar than
``threshold``) unless a hint fixes it (``num_speakers``) or bounds it (``min_``/``max_speakers``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerCount:
    """The caller's hint; None: unknown."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def check(self) -> None:
        """ValueError naming the bad hint."""
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers ({self.min_speakers}) is more than max_speakers ({self.max_speakers})")
        if self.num_speakers and (self.min_speakers or self.max_speakers):
            raise ValueError("give num_speakers, or min_speakers/max_speakers, not both")

    def bounds(self, n_items: int) -> tuple[int, int]:
        low = self.num_speakers or self.min_speakers or 1
        high = self.num_speakers or self.max_speakers or n_items
        return min(low, n_items), max(1, min(high, n_items))


def cluster(embeddings: np.ndarray, threshold: float, count: SpeakerCount = SpeakerCount(),
            min_size: int = 1) -> np.ndarray:
    """Cluster index per row of ``embeddings`` (L2-normalised), 0 for the cluster that appears first.

    Merge while the closest clusters are more similar than ``threshold``; clusters of fewer than
    ``min_size`` rows then join the nearest big one; a count hint merges further or starts again
    with the threshold ignored, so small clusters never count towards the speakers asked for.
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, int)
    low, high = count.bounds(n)
    singletons = [[i] for i in range(n)]
    groups = _absorb_small(embeddings, _merge(embeddings, singletons, 1, threshold), min_size, low)
    if len(groups) > high:
        groups = _merge(embeddings, groups, high, np.inf)
    elif len(groups) < low:
        groups = _absorb_small(embeddings, _merge(embeddings, singletons, low, np.inf), min_size, low)
    labels = np.zeros(n, int)
    for label, rows in enumerate(sorted(groups, key=min)):
        labels[rows] = label
    return labels


def _merge(embeddings: np.ndarray, groups: list[list[int]], down_to: int, threshold: float) -> list[list[int]]:
    """Average linkage: merge the two most similar groups while more than ``down_to`` remain and
    (unless ``threshold`` is inf: merge regardless) their similarity is at least ``threshold``."""
    members = {i: list(g) for i, g in enumerate(groups)}
    sizes = np.array([len(g) for g in groups], float)
    indicator = np.zeros((len(groups), len(embeddings)))
    for i, g in enumerate(groups):
        indicator[i, g] = 1.0
    summed = indicator @ embeddings
    similarity = (summed @ summed.T) / np.outer(sizes, sizes)  # mean pairwise cosine between groups
    np.fill_diagonal(similarity, -np.inf)
    while len(members) > down_to:
        i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
        if np.isfinite(threshold) and similarity[i, j] < threshold:
            break
        merged = (sizes[i] * similarity[i] + sizes[j] * similarity[j]) / (sizes[i] + sizes[j])  # Lance-Williams
        similarity[i, :], similarity[:, i] = merged, merged
        similarity[i, i] = -np.inf
        similarity[j, :], similarity[:, j] = -np.inf, -np.inf
        sizes[i] += sizes[j]
        members[i] += members.pop(j)
    return list(members.values())


def _absorb_small(embeddings: np.ndarray, groups: list[list[int]], min_size: int, keep_at_least: int) -> list[list[int]]:
    """Clusters of fewer than ``min_size`` windows (a cough, a laugh, a short overlap) join the
    nearest big cluster by centroid, so they do not count as speakers of their own."""
    big = [g for g in groups if len(g) >= min_size]
    small = sorted((g for g in groups if len(g) < min_size), key=len, reverse=True)
    while small and len(big) < keep_at_least:
        big.append(small.pop(0))  # a count hint that asks for more speakers keeps them
    if not big:
        return groups
    centroids = np.stack([embeddings[g].mean(axis=0) for g in big])
    for group in small:
        for row in group:
            big[int(np.argmax(centroids @ embeddings[row]))].append(row)
    return big
