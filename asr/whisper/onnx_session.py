"""onnxruntime sessions of a voxbus model: encoder, cached decoder, attention decoder.

The graphs are described in asr/whisper/MODEL_FORMAT.md. Everything that touches
onnxruntime lives here; decoding.py and beam.py only see numpy arrays through
the `Inference` protocol (`logits`, `reset`, `rearrange_kv_cache`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from asr.whisper.manifest import DRAFT_ENCODER, ModelFormatError

logger = logging.getLogger(__name__)
_ORT_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.NoSuchFile, ort_errors.InvalidProtobuf,
               ort_errors.InvalidGraph, ort_errors.RuntimeException, ort_errors.NotImplemented)


def session_options(threads: int | None, allow_spinning: bool = False) -> ort.SessionOptions:
    """Options for every session of a model.

    Spinning intra-op threads are off by default: with them, two threads on a
    shared two-core box collapsed from 4.8 to 13.8 ms per decoder token (see
    asr/whisper/MODEL_FORMAT.md, "Measurements").
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime picks the core count
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def load_session(path: Path, threads: int | None, allow_spinning: bool = False) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), session_options(threads, allow_spinning),
                                    providers=["CPUExecutionProvider"])
    except _ORT_ERRORS as exc:  # onnxruntime's errors are not OSError/ValueError subclasses
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(f"{path}: onnxruntime cannot load it ({reason})") from exc


def _check_inputs(session: ort.InferenceSession, path: Path, n_layer: int) -> None:
    names = {node.name for node in session.get_inputs()}
    wanted = {"tokens"} | {f"{kind}_{layer}" for kind in ("self_k", "self_v", "cross_k", "cross_v")
                           for layer in range(n_layer)}
    if not wanted <= names:
        missing = ", ".join(sorted(wanted - names)[:4])
        raise ModelFormatError(f"{path}: not a per-layer cache decoder (missing inputs {missing}); rebuild the model")


class EncodedWindows:
    """Cross-attention keys/values of one or more windows: float32 [n_layer, batch, n_head, n_ctx, head_dim]."""

    def __init__(self, cross_k: np.ndarray, cross_v: np.ndarray):
        self.cross_k = cross_k
        self.cross_v = cross_v

    @property
    def batch(self) -> int:
        return self.cross_k.shape[1]

    def window(self, index: int, copies: int = 1) -> EncodedWindows:
        """One window, repeated `copies` times along the batch (beams or best-of samples)."""
        if self.batch == 1 and index == 0 and copies == 1:
            return self
        pick = [index] * copies
        return EncodedWindows(np.ascontiguousarray(self.cross_k[:, pick]), np.ascontiguousarray(self.cross_v[:, pick]))


class WhisperSessions:
    """The encoder and decoder sessions of one model; the attention decoder is loaded on first use."""

    def __init__(self, model_dir: Path, n_layer: int, threads: int | None, allow_spinning: bool = False,
                 draft_encoder: bool = False):
        self.model_dir = model_dir
        self.n_layer = n_layer
        self._threads = threads
        self._allow_spinning = allow_spinning
        self.encoder = load_session(model_dir / "encoder.onnx", threads, allow_spinning)
        self.decoder = load_session(model_dir / "decoder.onnx", threads, allow_spinning)
        _check_inputs(self.decoder, model_dir / "decoder.onnx", n_layer)
        # The draft encoder (live partials), loaded only when asked for and the model has one;
        # else drafts run on the encoder.
        draft = model_dir / DRAFT_ENCODER
        self.draft_encoder = (load_session(draft, threads, allow_spinning) if draft_encoder and draft.is_file()
                              else self.encoder)
        self._attention_decoder: ort.InferenceSession | None = None

    def encode(self, mel: np.ndarray, draft: bool = False) -> EncodedWindows:
        """mel float32 [batch, n_mels, n_frames] -> the windows' cross keys/values.
        draft: on the draft encoder (faster, a little less exact) when the model has one."""
        encoder = self.draft_encoder if draft else self.encoder
        cross_k, cross_v = encoder.run(["cross_k", "cross_v"], {"mel": np.ascontiguousarray(mel, np.float32)})
        return EncodedWindows(cross_k, cross_v)

    def decoder_inference(self, encoded: EncodedWindows) -> DecoderInference:
        return DecoderInference(self.decoder, encoded, self.n_layer)

    @property
    def has_attention_decoder(self) -> bool:
        return (self.model_dir / "decoder_attn.onnx").is_file()

    def cross_attention(self, encoded: EncodedWindows, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run decoder_attn.onnx over a whole token sequence [1, n_tokens] with no cache.

        Returns (logits [1, n_tokens, n_vocab], cross_attn [n_heads, 1, n_tokens, n_audio_ctx]).
        """
        if self._attention_decoder is None:
            path = self.model_dir / "decoder_attn.onnx"
            if not path.is_file():
                raise ModelFormatError(f"{self.model_dir} has no decoder_attn.onnx: this model cannot give "
                                       "word timestamps (rebuild it from a source with alignment heads)")
            self._attention_decoder = load_session(path, self._threads, self._allow_spinning)
        inference = DecoderInference(self._attention_decoder, encoded, self.n_layer, outputs=("logits", "cross_attn"))
        logits, attention = inference.run_once(tokens)
        return logits, attention


class DecoderInference:
    """The decoder session bound to encoded windows, with its key/value cache.

    The cache is kept as stacked arrays [n_layer, batch, n_tokens, n_state];
    `array[i]` views go to the per-layer inputs without a copy. Beam search
    reorders the batch rows with `rearrange_kv_cache`.
    """

    def __init__(self, session: ort.InferenceSession, encoded: EncodedWindows, n_layer: int,
                 outputs: tuple[str, ...] = ("logits", "new_self_k", "new_self_v")):
        self._session = session
        self._encoded = encoded  # keeps the arrays behind the OrtValues alive
        self._n_layer = n_layer
        self._outputs = list(outputs)
        self.batch = encoded.batch
        self._cross_feeds = {}
        for layer in range(n_layer):
            self._cross_feeds[f"cross_k_{layer}"] = ort.OrtValue.ortvalue_from_numpy(encoded.cross_k[layer])
            self._cross_feeds[f"cross_v_{layer}"] = ort.OrtValue.ortvalue_from_numpy(encoded.cross_v[layer])
        self._n_state = encoded.cross_k.shape[2] * encoded.cross_k.shape[4]
        self.reset()

    def reset(self) -> None:
        empty = np.zeros((self._n_layer, self.batch, 0, self._n_state), np.float32)
        self._self_k, self._self_v = empty, empty
        self._n_cached = 0

    def _feeds(self, new_tokens: np.ndarray) -> dict[str, ort.OrtValue]:
        feeds = dict(self._cross_feeds)
        feeds["tokens"] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(new_tokens, dtype=np.int64))
        for layer in range(self._n_layer):
            feeds[f"self_k_{layer}"] = ort.OrtValue.ortvalue_from_numpy(self._self_k[layer])
            feeds[f"self_v_{layer}"] = ort.OrtValue.ortvalue_from_numpy(self._self_v[layer])
        return feeds

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens int64 [batch, n_seq], the whole sequence so far -> float32 logits
        [batch, n_new, n_vocab] of the tokens not yet in the cache."""
        if tokens.shape[0] != self.batch:
            raise ValueError(f"decoder bound to batch {self.batch}, got tokens of batch {tokens.shape[0]}")
        logits, new_k, new_v = self._session.run_with_ort_values(self._outputs, self._feeds(tokens[:, self._n_cached :]))
        self._self_k, self._self_v = new_k.numpy(), new_v.numpy()
        self._n_cached = tokens.shape[1]
        return logits.numpy()

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        """Row b of the cache becomes the old row source_indices[b] (beam search)."""
        if source_indices != list(range(self.batch)):
            self._self_k = np.ascontiguousarray(self._self_k[:, source_indices])
            self._self_v = np.ascontiguousarray(self._self_v[:, source_indices])

    def run_once(self, tokens: np.ndarray) -> tuple[np.ndarray, ...]:
        """One uncached pass over `tokens`; returns the named outputs as arrays."""
        self.reset()
        values = self._session.run_with_ort_values(self._outputs, self._feeds(tokens))
        return tuple(value.numpy() for value in values)
