"""Speaker embeddings on onnxruntime: float audio in, L2-normalised 256-dim vectors out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from speaker.encoder.manifest import ENCODER_FILE, load_speaker_manifest
from speaker.encoder.mel import HOP, mel_spectrogram

INPUT = "mels"
# resemblyzer's embed_utterance: 1.3 partial windows per second, a last window kept if 75 % covered
UTTERANCE_RATE = 1.3
MIN_COVERAGE = 0.75
MAX_BATCH = 64  # windows per onnxruntime run: the LSTM keeps every step's output, ~25 MB per 64 windows


class VoiceEncoder:
    """One onnxruntime session, loaded once; ``embed_mels`` takes windows of any lengths."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        self.manifest = load_speaker_manifest(Path(model_dir))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(Path(model_dir) / ENCODER_FILE), options,
                                             providers=["CPUExecutionProvider"])

    @property
    def window_frames(self) -> int:
        return self.manifest.window_frames

    def embed_mels(self, windows: list[np.ndarray]) -> np.ndarray:
        """[len(windows), embedding_size]: windows of equal length run as one batch."""
        out = np.zeros((len(windows), self.manifest.embedding_size), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(i)
        for indices in by_length.values():
            for first in range(0, len(indices), MAX_BATCH):
                chunk = indices[first:first + MAX_BATCH]
                batch = np.stack([windows[i] for i in chunk]).astype(np.float32)
                out[chunk] = self._session.run(None, {INPUT: batch})[0]
        return out

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """One embedding for a whole utterance: the normalised mean of 1.6 s partial windows
        (resemblyzer's embed_utterance with its defaults, for enrolment and the reference check)."""
        starts, stop = partial_window_starts(len(wav), self.window_frames)
        padded = np.pad(np.asarray(wav, np.float32), (0, max(0, stop * HOP - len(wav))))
        mel = mel_spectrogram(padded)
        partials = self.embed_mels([mel[s:s + self.window_frames] for s in starts])
        mean = partials.mean(axis=0)
        return mean / np.linalg.norm(mean)


def partial_window_starts(n_samples: int, window_frames: int) -> tuple[list[int], int]:
    """First frames of resemblyzer's partial windows over ``n_samples``, and the last window's end frame."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round(16000 / UTTERANCE_RATE / HOP))
    starts = list(range(0, max(1, n_frames - window_frames + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (window_frames * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts, starts[-1] + window_frames
