"""Online speaker assignment for a live stream: each utterance, as it is finalised, gets the
labels of the speakers heard so far on that stream, or new ones.

Each final's 1.6 s windows are embedded and the stream's windows so far are clustered again,
as for a file (the count can grow at any time); the new clusters take the stable labels of the
old windows they hold most of, so a speaker keeps its label for the session, and the final's
own windows then label its audio (a change inside the utterance splits it). The history is
capped (oldest windows dropped) so the cost per final stays bounded on long streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from speaker.diarize.pipeline import (FRAMES_PER_S, DiarizeOptions, Embedder, cluster_windows, frames_to_turns,
                                      label_centroids, label_frames, window_spans)
from speaker.diarize.turns import Turn
from speaker.encoder.mel import SAMPLE_RATE, normalized_mel


def stable_labels(previous: list[int], clusters: np.ndarray, next_label: int) -> tuple[np.ndarray, int]:
    """Stable labels for ``clusters`` (one per window; the first len(previous) windows had the labels
    ``previous``): each cluster takes the old label it holds most windows of, one cluster per
    label, the biggest overlap first; a cluster with no old label left gets ``next_label``, +1 each."""
    old = np.asarray(previous, int)
    pairs = sorted(((int(np.sum((clusters[:len(old)] == c) & (old == label))), c, label)
                    for c in np.unique(clusters) for label in np.unique(old)), reverse=True)
    mapping: dict[int, int] = {}
    for shared, c, label in pairs:
        if shared and c not in mapping and label not in mapping.values():
            mapping[c] = label
    for c in np.unique(clusters):
        if c not in mapping:
            mapping[c], next_label = next_label, next_label + 1
    return np.array([mapping[c] for c in clusters], int), next_label


@dataclass
class OnlineSpeakers:
    """The speakers of one stream; ``assign`` is called once per final utterance, in order."""

    encoder: Embedder
    options: DiarizeOptions = DiarizeOptions()
    max_windows: int = 600  # the stream's last 4 minutes of speech (at the 0.4 s step) are clustered at each final
    embeddings: np.ndarray | None = None
    labels: list[int] = field(default_factory=list)
    next_label: int = 0

    def assign(self, wav: np.ndarray, start_s: float) -> list[Turn]:
        """Turns of one utterance (float 16 kHz audio that starts ``start_s`` into the stream)."""
        duration = len(wav) / SAMPLE_RATE
        mel = normalized_mel(wav)
        spans = window_spans([(0.0, duration)], self.encoder.window_frames,
                             int(round(self.options.step_s * FRAMES_PER_S)), 1)
        spans[:, 1] = np.minimum(spans[:, 1], len(mel))
        if not len(spans):
            return []
        new = self.encoder.embed_mels([mel[a:b] for a, b in spans])
        history = new if self.embeddings is None else np.concatenate([self.embeddings, new])
        clusters = cluster_windows(history, self.options)
        labels, self.next_label = stable_labels(self.labels, clusters, self.next_label)
        keep = max(0, len(history) - self.max_windows)
        self.embeddings, self.labels = history[keep:], [int(x) for x in labels[keep:]]
        mine = labels[len(history) - len(new):]
        frames = label_frames([(0.0, duration)], spans, mine, int(labels.max()) + 1)
        return [Turn(round(start_s + t.start, 3), round(start_s + t.end, 3), t.speaker)
                for t in frames_to_turns(frames, self.options.min_turn_s)]

    def centroids(self) -> dict[str, np.ndarray]:
        """Each speaker of the stream's recent windows: the mean of its windows (for enrolled voices)."""
        return {} if self.embeddings is None else label_centroids(self.embeddings, self.labels)
