"""Build Whisper encoder/decoder ONNX graphs straight from CTranslate2 weights.

No torch: the graphs are written node by node with ``onnx.helper`` (opset 17
plus onnxruntime's com.microsoft.MultiHeadAttention, so they need onnxruntime).
The interface (names, shapes) is documented in asr/whisper/MODEL_FORMAT.md.

CTranslate2 Whisper weight names (W is [out, in], as in torch.nn.Linear)::

    encoder/conv{1,2}/{weight [D, C, 3], bias}, encoder/position_encodings/encodings [n_audio_ctx, D]
    encoder/layer_i/self_attention/{layer_norm, linear_0 (fused qkv), linear_1 (out)}
    encoder/layer_i/ffn/{layer_norm, linear_0, linear_1}, encoder/layer_norm
    decoder/embeddings/weight [V, D], decoder/position_encodings/encodings [n_text_ctx, D]
    decoder/layer_i/self_attention/{layer_norm, linear_0 (qkv), linear_1 (out)}
    decoder/layer_i/attention/{layer_norm, linear_0 (q), linear_1 (fused kv), linear_2 (out)}
    decoder/layer_i/ffn/..., decoder/layer_norm
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# Masked scores: large but finite so a fully masked row could never produce NaN.
MASK_VALUE = -1e9
ENCODER_HIDDEN = "encoder_hidden"  # [B, S, D], internal tensor name


class GraphBuilder:
    """Accumulates nodes and initializers with unique generated names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self._consts: dict[tuple, str] = {}
        self._count = 0

    def _name(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def init(self, name: str, arr: np.ndarray) -> str:
        """Register a named initializer (names are unique per weight)."""
        # np.ascontiguousarray would turn 0-d scalars into 1-d arrays.
        self.inits[name] = numpy_helper.from_array(np.array(arr, order="C"), name)
        return name

    def _const(self, arr: np.ndarray) -> str:
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(self._name("const"), arr)
        return self._consts[key]

    def const_i64(self, values: list[int]) -> str:
        return self._const(np.asarray(values, dtype=np.int64))

    def const_f32(self, value: float) -> str:
        return self._const(np.asarray(value, dtype=np.float32))

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, out: str | None = None,
           domain: str = "", **attrs: object) -> str | list[str]:
        """Append a node; returns its output name (a list when n_out > 1)."""
        outputs = [out] if out else [self._name(op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(
            op_type, inputs, outputs, name=self._name(f"n_{op_type}"), domain=domain, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def to_model(self, name: str, inputs: list, outputs: list, opset: int) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, list(self.inits.values()))
        opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="voxbus")
        model.ir_version = 8  # onnxruntime >= 1.14 reads IR 8; keeps old runtimes working
        return model


@dataclass(frozen=True)
class WhisperDims:
    """Model sizes, all read from the weights themselves."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_vocab: int


def _count_layers(weights: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in weights:
        n += 1
    return n


def dims_from_weights(weights: dict[str, np.ndarray]) -> WhisperDims:
    """Derive WhisperDims; raises ValueError if a required weight is missing."""
    try:
        conv1 = weights["encoder/conv1/weight"]
        enc_pos = weights["encoder/position_encodings/encodings"]
        dec_pos = weights["decoder/position_encodings/encodings"]
        emb = weights["decoder/embeddings/weight"]
        enc_heads = int(weights["encoder/num_heads"])
        dec_heads = int(weights["decoder/num_heads"])
    except KeyError as exc:
        raise ValueError(f"not a CTranslate2 Whisper model: missing weight {exc}") from exc
    return WhisperDims(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(enc_pos.shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=enc_heads,
        n_audio_layer=_count_layers(weights, "encoder"),
        n_text_ctx=int(dec_pos.shape[0]),
        n_text_state=int(emb.shape[1]),
        n_text_head=dec_heads,
        n_text_layer=_count_layers(weights, "decoder"),
        n_vocab=int(emb.shape[0]),
    )


class _Weights:
    """fp32 views of the CT2 weights, with the per-use transforms in one place."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self._w = weights

    def f32(self, name: str) -> np.ndarray:
        arr = self._w[name]
        if arr.dtype == np.uint16:  # bfloat16 stored raw: widen to fp32 bit pattern
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def linear_t(self, name: str) -> np.ndarray:
        """[out, in] weight -> [in, out] so that y = x @ W_t."""
        return np.ascontiguousarray(self.f32(f"{name}/weight").T)

    def bias(self, name: str) -> np.ndarray:
        return self.f32(f"{name}/bias")


def _gelu(g: GraphBuilder, x: str) -> str:
    """Exact (erf) GELU as Whisper uses; ORT fuses this pattern into Gelu/BiasGelu."""
    half = g.op("Mul", [x, g.const_f32(0.5)])
    erf = g.op("Erf", [g.op("Div", [x, g.const_f32(float(np.sqrt(2.0)))])])
    return g.op("Mul", [half, g.op("Add", [erf, g.const_f32(1.0)])])


def _linear(g: GraphBuilder, w: _Weights, x: str, name: str, scale: float = 1.0) -> str:
    """x [..., in] -> [..., out]; ``scale`` folds a constant factor into W and b."""
    y = g.op("MatMul", [x, g.init(f"{name}/w", w.linear_t(name) * scale)])
    return g.op("Add", [y, g.init(f"{name}/b", w.bias(name) * scale)])


def _layer_norm(g: GraphBuilder, w: _Weights, x: str, name: str, out: str | None = None) -> str:
    gamma = g.init(f"{name}/gamma", w.f32(f"{name}/gamma"))
    beta = g.init(f"{name}/beta", w.f32(f"{name}/beta"))
    return g.op("LayerNormalization", [x, gamma, beta], out=out, axis=-1, epsilon=1e-5)


def _split_heads(g: GraphBuilder, x: str, n_head: int) -> str:
    """[B, T, D] -> [B, H, T, hd]."""
    shaped = g.op("Reshape", [x, g.const_i64([0, 0, n_head, -1])])
    return g.op("Transpose", [shaped], perm=[0, 2, 1, 3])


def attention(
    g: GraphBuilder, q: str, k: str, v: str, n_head: int, mask: str | None = None
) -> tuple[str, str]:
    """Plain-op attention that also returns the probabilities (word timestamps).

    q [B, Nq, D] already scaled by head_dim**-0.5; k/v head-split [B, H, Nk, hd];
    mask additive, broadcastable to [B, H, Nq, Nk].
    Returns (out [B, Nq, D], probs [B, H, Nq, Nk]).
    """
    qh = _split_heads(g, q, n_head)
    scores = g.op("MatMul", [qh, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    if mask is not None:
        scores = g.op("Add", [scores, mask])
    probs = g.op("Softmax", [scores], axis=-1)
    out = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return g.op("Reshape", [out, g.const_i64([0, 0, -1])]), probs


def fused_attention(g: GraphBuilder, q: str, k: str, v: str, n_head: int, mask: str | None = None) -> str:
    """Same maths as :func:`attention` in one com.microsoft.MultiHeadAttention node.

    q [B, Nq, D]; k/v [B, Nk, D] or already head-split [B, H, Nk, hd]; mask
    [1, 1, Nq, Nk] additive. ORT's CPU kernel runs the head split, both GEMMs
    and the softmax without the Reshape/Transpose copies of the plain graph.
    """
    inputs = [q, k, v, "", "", mask] if mask else [q, k, v]
    return g.op("MultiHeadAttention", inputs, domain="com.microsoft", num_heads=n_head, scale=1.0)


def _mlp(g: GraphBuilder, w: _Weights, x: str, name: str) -> str:
    """Pre-LN feed-forward block with residual: x + W2 gelu(W1 LN(x))."""
    h = _layer_norm(g, w, x, f"{name}/layer_norm")
    h = _gelu(g, _linear(g, w, h, f"{name}/linear_0"))
    return g.op("Add", [x, _linear(g, w, h, f"{name}/linear_1")])


def _split_last(g: GraphBuilder, x: str, parts: int, size: int) -> list[str]:
    return g.op("Split", [x, g.const_i64([size] * parts)], n_out=parts, axis=-1)


def _encoder_block(g: GraphBuilder, w: _Weights, x: str, name: str, dims: WhisperDims) -> str:
    """x [B, T, D] -> [B, T, D]: pre-LN self-attention + MLP."""
    d, heads = dims.n_audio_state, dims.n_audio_head
    scale = np.ones(3 * d, np.float32)
    scale[:d] = (d // heads) ** -0.5  # Whisper's q*k scaling, folded into Wq
    attn = f"{name}/self_attention"
    h = _layer_norm(g, w, x, f"{attn}/layer_norm")
    qkv = g.op(
        "Add",
        [
            g.op("MatMul", [h, g.init(f"{attn}/qkv_w", w.linear_t(f"{attn}/linear_0") * scale)]),
            g.init(f"{attn}/qkv_b", w.bias(f"{attn}/linear_0") * scale),
        ],
    )
    q, k, v = _split_last(g, qkv, 3, d)
    out = fused_attention(g, q, k, v, heads)
    x = g.op("Add", [x, _linear(g, w, out, f"{attn}/linear_1")])
    return _mlp(g, w, x, f"{name}/ffn")


def _conv(g: GraphBuilder, w: _Weights, x: str, name: str, stride: int) -> str:
    weight = g.init(f"{name}/w", w.f32(f"{name}/weight"))
    bias = g.init(f"{name}/b", w.bias(name))
    return _gelu(g, g.op("Conv", [x, weight, bias], pads=[1, 1], strides=[stride]))


def _cross_kv(g: GraphBuilder, w: _Weights, enc: str, dims: WhisperDims) -> tuple[str, str]:
    """enc [B, S, D] -> cross_k, cross_v [L, B, H, S, hd], one MatMul each for all layers.

    Head-split here, once per window, so the decoder's per-token attention reads
    them in place (no per-step transposes).
    """
    d, n_layer = dims.n_text_state, dims.n_text_layer
    ks, vs, vbs = [], [], []
    for i in range(n_layer):
        kv = w.linear_t(f"decoder/layer_{i}/attention/linear_1")  # [D, 2D]: K then V
        ks.append(kv[:, :d])
        vs.append(kv[:, d:])
        vbs.append(w.bias(f"decoder/layer_{i}/attention/linear_1")[d:])
    outs = []
    for kind, mats, bias in (("k", ks, None), ("v", vs, vbs)):
        y = g.op("MatMul", [enc, g.init(f"cross_{kind}/w", np.concatenate(mats, axis=1))])
        if bias is not None:  # Whisper's key projection has no bias
            y = g.op("Add", [y, g.init(f"cross_{kind}/b", np.concatenate(bias))])
        y = g.op("Reshape", [y, g.const_i64([0, 0, n_layer, dims.n_text_head, d // dims.n_text_head])])
        outs.append(g.op("Transpose", [y], perm=[2, 0, 3, 1, 4], out=f"cross_{kind}"))
    return outs[0], outs[1]


def build_encoder(weights: dict[str, np.ndarray], dims: WhisperDims) -> onnx.ModelProto:
    """mel [B, n_mels, T] -> cross_k, cross_v [n_text_layer, B, n_text_head, T/2, head_dim]."""
    g, w = GraphBuilder(), _Weights(weights)
    x = _conv(g, w, "mel", "encoder/conv1", 1)
    x = g.op("Transpose", [_conv(g, w, x, "encoder/conv2", 2)], perm=[0, 2, 1])  # [B, S, D]
    n_ctx = g.op("Slice", [g.op("Shape", [x]), g.const_i64([1]), g.const_i64([2])])
    pos = g.init("encoder/pos", w.f32("encoder/position_encodings/encodings"))
    x = g.op("Add", [x, g.op("Slice", [pos, g.const_i64([0]), n_ctx, g.const_i64([0])])])
    for i in range(dims.n_audio_layer):
        x = _encoder_block(g, w, x, f"encoder/layer_{i}", dims)
    # Named so tests can expose it and compare with CTranslate2's encode().
    x = _layer_norm(g, w, x, "encoder/layer_norm", out=ENCODER_HIDDEN)
    _cross_kv(g, w, x, dims)
    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", dims.n_mels, "n_frames"])]
    cross = [dims.n_text_layer, "batch", dims.n_text_head, "n_audio_ctx", dims.n_text_state // dims.n_text_head]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, cross) for n in ("cross_k", "cross_v")]
    return g.to_model("whisper_encoder", inputs, outputs, OPSET)


def _scalar_i64(g: GraphBuilder, value: int) -> str:
    return g._const(np.asarray(value, dtype=np.int64))


def _decoder_inputs(g: GraphBuilder, w: _Weights) -> tuple[str, str]:
    """Embed tokens at positions past..past+N-1 and build the causal mask.

    Returns x [B, N, D] and an additive mask [1, 1, N, past+N] (0 or MASK_VALUE).
    """
    zero, one = _scalar_i64(g, 0), _scalar_i64(g, 1)
    past = g.op("Gather", [g.op("Shape", ["self_k_0"]), _scalar_i64(g, 1)])
    total = g.op("Add", [past, g.op("Gather", [g.op("Shape", ["tokens"]), one])])
    q_pos = g.op("Range", [past, total, one])  # [N] absolute query positions
    k_pos = g.op("Range", [zero, total, one])  # [past+N]
    # One [D, V] matrix serves both the embedding (Gather on axis 1) and the
    # logits MatMul, so the largest weight is stored once.
    emb_t = g.init("decoder/embedding_t", w.linear_t("decoder/embeddings"))
    tok = g.op("Transpose", [g.op("Gather", [emb_t, "tokens"], axis=1)], perm=[1, 2, 0])
    pos = g.init("decoder/pos", w.f32("decoder/position_encodings/encodings"))
    x = g.op("Add", [tok, g.op("Gather", [pos, q_pos])])
    future = g.op("Greater", [g.op("Unsqueeze", [k_pos, g.const_i64([0])]),
                              g.op("Unsqueeze", [q_pos, g.const_i64([1])])])
    mask = g.op("Where", [future, g.const_f32(MASK_VALUE), g.const_f32(0.0)])
    return x, g.op("Unsqueeze", [mask, g.const_i64([0, 1])])


def _scaled_qkv(g: GraphBuilder, w: _Weights, h: str, name: str, d: int, heads: int) -> list[str]:
    """Fused q/k/v projection of h [B, N, D] with the q scaling folded in."""
    scale = np.ones(3 * d, np.float32)
    scale[:d] = (d // heads) ** -0.5
    y = g.op("MatMul", [h, g.init(f"{name}/qkv_w", w.linear_t(f"{name}/linear_0") * scale)])
    y = g.op("Add", [y, g.init(f"{name}/qkv_b", w.bias(f"{name}/linear_0") * scale)])
    return _split_last(g, y, 3, d)


def _decoder_block(g: GraphBuilder, w: _Weights, x: str, i: int, mask: str, dims: WhisperDims,
                   with_probs: bool) -> tuple[str, str, str, str | None]:
    """One pre-LN decoder layer on the per-layer inputs self_k_i, self_v_i, cross_k_i, cross_v_i.

    Returns x [B, N, D], self k/v [B, past+N, D] and (with_probs) cross probs [B, H, N, S].
    """
    d, heads, name = dims.n_text_state, dims.n_text_head, f"decoder/layer_{i}"
    h = _layer_norm(g, w, x, f"{name}/self_attention/layer_norm")
    q, k, v = _scaled_qkv(g, w, h, f"{name}/self_attention", d, heads)
    k = g.op("Concat", [f"self_k_{i}", k], axis=1)
    v = g.op("Concat", [f"self_v_{i}", v], axis=1)
    out = fused_attention(g, q, k, v, heads, mask)
    x = g.op("Add", [x, _linear(g, w, out, f"{name}/self_attention/linear_1")])
    h = _layer_norm(g, w, x, f"{name}/attention/layer_norm")
    q = _linear(g, w, h, f"{name}/attention/linear_0", scale=(d // heads) ** -0.5)
    probs = None
    if with_probs:
        out, probs = attention(g, q, f"cross_k_{i}", f"cross_v_{i}", heads)
    else:
        out = fused_attention(g, q, f"cross_k_{i}", f"cross_v_{i}", heads)
    x = g.op("Add", [x, _linear(g, w, out, f"{name}/attention/linear_2")])
    return _mlp(g, w, x, f"{name}/ffn"), k, v, probs


def _alignment_output(g: GraphBuilder, probs: list[str], heads: list[tuple[int, int]]) -> str:
    """Stack the chosen heads' probs [B, H, N, S] into cross_attn [A, B, N, S]."""
    picked = []
    for layer, head in heads:
        one = g.op("Gather", [probs[layer], g.const_i64([head])], axis=1)  # [B, 1, N, S]
        picked.append(g.op("Transpose", [one], perm=[1, 0, 2, 3]))
    return g.op("Concat", picked, axis=0, out="cross_attn")


def _decoder_io(dims: WhisperDims, alignment_heads: list | None) -> tuple[list, list]:
    """Graph inputs (per-layer caches) and outputs (stacked caches or cross_attn)."""
    f32, d, layers = TensorProto.FLOAT, dims.n_text_state, range(dims.n_text_layer)
    head_dim = d // dims.n_text_head
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "n_tokens"])]
    for kind in ("k", "v"):
        inputs += [helper.make_tensor_value_info(f"self_{kind}_{i}", f32, ["batch", "past_len", d]) for i in layers]
    for kind in ("k", "v"):
        inputs += [helper.make_tensor_value_info(
            f"cross_{kind}_{i}", f32, ["batch", dims.n_text_head, "n_audio_ctx", head_dim]) for i in layers]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "n_tokens", dims.n_vocab])]
    if alignment_heads is None:
        total = [dims.n_text_layer, "batch", "total_len", d]
        outputs += [helper.make_tensor_value_info(n, f32, total) for n in ("new_self_k", "new_self_v")]
    else:
        outputs.append(helper.make_tensor_value_info(
            "cross_attn", f32, [len(alignment_heads), "batch", "n_tokens", "n_audio_ctx"]))
    return inputs, outputs


def build_decoder(weights: dict[str, np.ndarray], dims: WhisperDims,
                  alignment_heads: list[tuple[int, int]] | None = None) -> onnx.ModelProto:
    """tokens [B, N] + per-layer caches -> logits [B, N, V], new_self_k/v [L, B, past+N, D].

    Inputs per layer i: self_k_i/self_v_i [B, past, D], cross_k_i/cross_v_i
    [B, H, S, hd] (slices of the stacked arrays, passed as zero-copy views).
    With ``alignment_heads`` the graph is the word-timestamp variant: no cache
    outputs, instead cross_attn [n_alignment_heads, B, N, S].
    """
    g, w = GraphBuilder(), _Weights(weights)
    x, mask = _decoder_inputs(g, w)
    ks, vs, probs = [], [], []
    for i in range(dims.n_text_layer):
        x, k, v, p = _decoder_block(g, w, x, i, mask, dims, alignment_heads is not None)
        ks.append(k)
        vs.append(v)
        probs.append(p)
    x = _layer_norm(g, w, x, "decoder/layer_norm")
    g.op("MatMul", [x, "decoder/embedding_t"], out="logits")
    if alignment_heads is None:
        for kind, caches in (("k", ks), ("v", vs)):
            stacked = [g.op("Unsqueeze", [c, g.const_i64([0])]) for c in caches]
            g.op("Concat", stacked, axis=0, out=f"new_self_{kind}")
    else:
        _alignment_output(g, probs, alignment_heads)
    inputs, outputs = _decoder_io(dims, alignment_heads)
    return g.to_model("whisper_decoder", inputs, outputs, OPSET)
