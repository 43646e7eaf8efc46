"""Who spoke when in a recording: sliding-window embeddings inside speech regions, clustered,
then every 10 ms of speech labelled by the windows that cover it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from speaker.diarize.clustering import SpeakerCount, cluster
from speaker.diarize.turns import Turn
from speaker.encoder.mel import HOP, SAMPLE_RATE, normalized_mel

FRAMES_PER_S = SAMPLE_RATE // HOP  # 100 mel frames a second
MAX_CLUSTER_ITEMS = 1000  # windows clustered one by one (6.7 min of speech at the 0.4 s step); beyond, a sample


class Embedder(Protocol):
    window_frames: int

    def embed_mels(self, windows: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class DiarizeOptions:
    step_s: float = 0.4  # between window starts (windows are the model's 1.6 s)
    min_window_s: float = 0.5  # a speech region shorter than this gets no window of its own
    threshold: float = 0.70  # cosine similarity above which two clusters are one speaker (tuned on data)
    min_turn_s: float = 0.4  # a shorter turn between two of one speaker is that speaker's
    min_speaker_s: float = 2.0  # a cluster with less speech than this (in window steps) is no speaker


@dataclass(frozen=True)
class Windows:
    spans: np.ndarray  # [n, 2] first and end mel frame of each window
    embeddings: np.ndarray  # [n, dim]


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index + 1}"


def window_spans(regions: list[tuple[float, float]], window: int, step: int, min_window: int) -> np.ndarray:
    """[n, 2] mel frame spans: ``window`` frames every ``step`` inside each region (the last one
    flush with its end); a region shorter than a window is one window of its length."""
    spans = []
    for start_s, end_s in regions:
        first, end = int(round(start_s * FRAMES_PER_S)), int(round(end_s * FRAMES_PER_S))
        if end - first < min_window:
            continue
        if end - first <= window:
            spans.append((first, end))
            continue
        starts = list(range(first, end - window + 1, step))
        if starts[-1] != end - window:
            starts.append(end - window)
        spans += [(s, s + window) for s in starts]
    return np.array(spans, int).reshape(-1, 2)


def embed_windows(wav: np.ndarray, regions: list[tuple[float, float]], encoder: Embedder,
                  options: DiarizeOptions) -> Windows:
    mel = normalized_mel(wav)
    spans = window_spans(regions, encoder.window_frames, int(round(options.step_s * FRAMES_PER_S)),
                         int(round(options.min_window_s * FRAMES_PER_S)))
    spans[:, 1] = np.minimum(spans[:, 1], len(mel))
    embeddings = encoder.embed_mels([mel[a:b] for a, b in spans]) if len(spans) else np.zeros((0, 256))
    return Windows(spans, embeddings)


def label_frames(regions: list[tuple[float, float]], spans: np.ndarray, labels: np.ndarray,
                 n_labels: int) -> np.ndarray:
    """Speaker per 10 ms frame (-1: no speech): the label most windows covering it carry,
    else (no window covers it) the label of the window whose centre is nearest."""
    n_frames = int(round(max([e for _, e in regions] + [0]) * FRAMES_PER_S)) + 1
    votes = np.zeros((n_labels, n_frames))
    centres = spans.mean(axis=1)
    for (a, b), label, centre in zip(spans, labels, centres):
        frames = np.arange(a, b)
        votes[label, a:b] += 1 + 1e-3 / (1 + np.abs(frames - centre))  # ties go to the nearer centre
    out = np.full(n_frames, -1)
    for start_s, end_s in regions:
        a, b = int(round(start_s * FRAMES_PER_S)), int(round(end_s * FRAMES_PER_S))
        for f in range(a, b):
            if votes[:, f].any():
                out[f] = int(np.argmax(votes[:, f]))
            else:
                out[f] = int(labels[np.argmin(np.abs(centres - f))])
    return out


def frames_to_turns(frames: np.ndarray, min_turn_s: float) -> list[Turn]:
    runs: list[list[int]] = []  # [label, first, end]
    for f, label in enumerate(frames):
        if runs and runs[-1][0] == label and runs[-1][2] == f:
            runs[-1][2] = f + 1
        elif label >= 0:
            runs.append([int(label), f, f + 1])
    min_frames = min_turn_s * FRAMES_PER_S
    for i in range(1, len(runs) - 1):  # a short run between two of one other speaker joins them
        before, run, after = runs[i - 1], runs[i], runs[i + 1]
        if run[2] - run[1] < min_frames and before[0] == after[0] != run[0] \
                and before[2] == run[1] and run[2] == after[1]:
            run[0] = before[0]
    turns: list[Turn] = []
    for label, first, end in runs:
        if turns and turns[-1].speaker == speaker_label(label) and abs(turns[-1].end - first / FRAMES_PER_S) < 1e-6:
            turns[-1] = Turn(turns[-1].start, end / FRAMES_PER_S, turns[-1].speaker)
        else:
            turns.append(Turn(first / FRAMES_PER_S, end / FRAMES_PER_S, speaker_label(label)))
    return turns


def diarize(wav: np.ndarray, regions: list[tuple[float, float]], encoder: Embedder,
            options: DiarizeOptions = DiarizeOptions(), count: SpeakerCount = SpeakerCount()) -> list[Turn]:
    """Speaker turns of float 16 kHz mono ``wav`` within its speech ``regions`` (seconds)."""
    return diarize_with_centroids(wav, regions, encoder, options, count)[0]


def diarize_with_centroids(wav: np.ndarray, regions: list[tuple[float, float]], encoder: Embedder,
                           options: DiarizeOptions = DiarizeOptions(), count: SpeakerCount = SpeakerCount()
                           ) -> tuple[list[Turn], dict[str, np.ndarray]]:
    """The turns, and each speaker's centroid (the mean of its windows' embeddings, unit length:
    what an enrolled voice is compared with)."""
    count.check()
    windows = embed_windows(wav, regions, encoder, options)
    if len(windows.spans) == 0:
        return [], {}
    labels = cluster_windows(windows.embeddings, options, count)
    turns = frames_to_turns(label_frames(regions, windows.spans, labels, int(labels.max()) + 1), options.min_turn_s)
    return turns, label_centroids(windows.embeddings, labels)


def label_centroids(embeddings: np.ndarray, labels) -> dict[str, np.ndarray]:
    """speaker label → the unit-length mean of the embeddings with that label."""
    labels = np.asarray(labels, int)
    out = {}
    for label in np.unique(labels):
        mean = embeddings[labels == label].astype(np.float64).mean(axis=0)
        out[speaker_label(int(label))] = (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)
    return out


def cluster_windows(embeddings: np.ndarray, options: DiarizeOptions, count: SpeakerCount = SpeakerCount(),
                    max_items: int = MAX_CLUSTER_ITEMS) -> np.ndarray:
    """A label per window. Clustering costs n² memory and about n³ time, so past ``max_items``
    windows (a long file) every k-th window is clustered (means of windows would not do: they
    are more alike than single windows, and the threshold is set for single windows), and every
    window then goes to the nearest of the speakers found."""
    per_item = -(-len(embeddings) // max_items)  # ceiling division
    items = embeddings[::per_item]
    # short recordings: a speaker needs only a tenth of the items (two turns of 1 s in 6 s count)
    min_size = max(1, min(int(round(options.min_speaker_s / (options.step_s * per_item))), len(items) // 10))
    labels = cluster(items, options.threshold, count, min_size)
    if per_item == 1:
        return labels
    centroids = np.stack([items[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    return np.argmax(embeddings @ centroids.T, axis=1)
