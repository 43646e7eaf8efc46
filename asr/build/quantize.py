"""int8 weights for the exported Whisper graphs: blocks of 32 weights share one scale.

Every MatMul with a constant [K, N] weight becomes com.microsoft.MatMulNBits
(8 bits, symmetric, one fp32 scale per 32 consecutive weights of an output
column). With accuracy_level 4 the kernel also quantises the activations to int8
per block of 32, so the arithmetic is integer, like onnxruntime's dynamic
quantisation, but with scales that follow the data closely.

Why blocks and not one scale per matrix (what ORT's quantize_dynamic does, and
what voxbus shipped before): on base, per-matrix scales leave the encoder's
output 27 % away from fp32 (blocks: 5 %) and cost 0.5-1.2 WER points with
beam search, where log-probabilities rank beams and trigger fallback. Blocks
decode faster and encode about as fast as CTranslate2's int8 (asr/whisper/MODEL_FORMAT.md).

Layout (no zero_points input, so the zero point is 128):
  weight [K, N] fp32  ->  q [N, K/block, block] uint8,  scales [N, K/block] fp32
The decoder's token embedding reads the same q and scales as its logits
projection: row t of q is token t's vector, so there is no fp32 copy of the
vocabulary matrix.

The draft encoder (encoder_draft.onnx, live partials only) trades some of that
closeness for speed: `quantize_graph_per_column` gives each weight column one
scale and has com.microsoft.DynamicQuantizeMatMul quantise the activations with
one scale per run, which onnxruntime computes as a plain int8 GEMM. On one
thread tiny.en's encoder takes 40 instead of 70 ms for an 8 s window, base's 94
instead of 167 ms. A partial's text is as good for tiny.en and 1.6 WER points worse
for base (tests/bench/partial_prefix_bench.py), and beam search on base loses 0.45
points, so finals keep the block encoder.
The decoder gains nothing from it: its step is mostly the vocabulary projection,
which the tied embedding keeps in blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

BITS = 8
ZERO_POINT = 1 << (BITS - 1)
DEFAULT_BLOCK = 32


def block_quantize(weight: np.ndarray, block: int = DEFAULT_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] fp32 -> (q [N, K/block, block] uint8, scales [N, K/block] fp32), symmetric per block."""
    k, n = weight.shape
    if k % block:
        raise ValueError(f"input dimension {k} is not a multiple of the block size {block}")
    cols = weight.T.reshape(n, k // block, block).astype(np.float32)
    scales = np.abs(cols).max(axis=2) / (ZERO_POINT - 1)
    scales[scales == 0] = 1.0  # an all-zero block: any scale reproduces it
    q = np.clip(np.rint(cols / scales[..., None]), 1 - ZERO_POINT, ZERO_POINT - 1) + ZERO_POINT
    return q.astype(np.uint8), scales.astype(np.float32)


def block_dequantize(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Inverse of block_quantize (for tests): [K, N] fp32."""
    n, blocks, block = q.shape
    cols = (q.astype(np.float32) - ZERO_POINT) * scales[..., None]
    return cols.reshape(n, blocks * block).T


class _Packed:
    """The quantised copy of each weight, made once even when two nodes share it."""

    def __init__(self, model: onnx.ModelProto, block: int) -> None:
        self.model, self.block = model, block
        self.inits = {t.name: t for t in model.graph.initializer}
        self.names: dict[str, tuple[str, str]] = {}

    def shape(self, name: str) -> tuple[int, int] | None:
        """[K, N] of a constant weight that packs into whole blocks, else None (the MatMul stays fp32)."""
        init = self.inits.get(name)
        if init is None or len(init.dims) != 2 or init.dims[0] % self.block:
            return None
        return init.dims[0], init.dims[1]

    def get(self, name: str) -> tuple[str, str]:
        if name not in self.names:
            q, scales = block_quantize(numpy_helper.to_array(self.inits[name]), self.block)
            names = (f"{name}_q8", f"{name}_scales")
            self.model.graph.initializer.extend([numpy_helper.from_array(q, names[0]),
                                                 numpy_helper.from_array(scales, names[1])])
            self.names[name] = names
        return self.names[name]


def _matmul_nbits(node: onnx.NodeProto, packed: _Packed, accuracy_level: int) -> onnx.NodeProto | None:
    shape = packed.shape(node.input[1])
    if shape is None:
        return None
    q, scales = packed.get(node.input[1])
    k, n = shape
    return helper.make_node("MatMulNBits", [node.input[0], q, scales], list(node.output), name=f"{node.name}_q8",
                            domain="com.microsoft", K=k, N=n, bits=BITS, block_size=packed.block,
                            accuracy_level=accuracy_level)


def _embedding_nodes(gather: onnx.NodeProto, out: str, q: str, scales: str) -> list[onnx.NodeProto]:
    """tokens [B, N] -> [B, N, D] fp32 from the packed rows of q, dequantising only those rows."""
    tokens, p = gather.input[1], f"{gather.name}_q8"
    zero_point = numpy_helper.from_array(np.array(ZERO_POINT, np.float32), f"{p}_zero_point")
    keep_bn = numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"{p}_shape")
    last = numpy_helper.from_array(np.array([-1], np.int64), f"{p}_last_axis")
    return [
        helper.make_node("Constant", [], [zero_point.name], value=zero_point),
        helper.make_node("Constant", [], [keep_bn.name], value=keep_bn),
        helper.make_node("Constant", [], [last.name], value=last),
        helper.make_node("Gather", [q, tokens], [f"{p}_rows"], axis=0),  # [B, N, blocks, block]
        helper.make_node("Cast", [f"{p}_rows"], [f"{p}_rows_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Sub", [f"{p}_rows_f", zero_point.name], [f"{p}_centred"]),
        helper.make_node("Gather", [scales, tokens], [f"{p}_scales"], axis=0),  # [B, N, blocks]
        helper.make_node("Unsqueeze", [f"{p}_scales", last.name], [f"{p}_scales_1"]),
        helper.make_node("Mul", [f"{p}_centred", f"{p}_scales_1"], [f"{p}_blocks"]),
        helper.make_node("Reshape", [f"{p}_blocks", keep_bn.name], [out]),
    ]


def _share_embedding(model: onnx.ModelProto, packed: _Packed, consumers: dict) -> list:
    """Replace Gather(emb_t [D, V], tokens, axis=1) -> Transpose(1, 2, 0) with a read of the packed rows."""
    replaced = []
    for node in model.graph.node:
        if node.op_type != "Gather" or node.input[0] not in packed.names:
            continue
        follow = consumers.get(node.output[0], [])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if axis != 1 or len(follow) != 1 or follow[0].op_type != "Transpose" \
                or list(follow[0].attribute[0].ints) != [1, 2, 0]:
            continue  # not the embedding pattern the exporter writes: leave it fp32
        replaced.append((node, follow[0], _embedding_nodes(node, follow[0].output[0], *packed.names[node.input[0]])))
    return replaced


def quantize_graph(model: onnx.ModelProto, block: int = DEFAULT_BLOCK, accuracy_level: int = 4) -> onnx.ModelProto:
    """Every MatMul with a constant [K, N] weight becomes MatMulNBits; fp32 weights left unused are dropped.

    accuracy_level 4: int8 activations per block too (integer arithmetic). Level 1 keeps fp32
    activations; measured several times slower on x86-64 and used only to check the packing.
    """
    packed = _Packed(model, block)
    nodes = list(model.graph.node)
    replacement = {}
    for node in nodes:
        if node.op_type == "MatMul" and (new := _matmul_nbits(node, packed, accuracy_level)) is not None:
            replacement[id(node)] = new
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    embedding = _share_embedding(model, packed, consumers)
    rebuilt = []
    dropped = {id(n) for gather, transpose, _ in embedding for n in (gather, transpose)}
    inserts = {id(gather): new for gather, _, new in embedding}
    for node in nodes:
        if id(node) in inserts:
            rebuilt.extend(inserts[id(node)])
        elif id(node) in replacement:
            rebuilt.append(replacement[id(node)])
        elif id(node) not in dropped:
            rebuilt.append(node)
    del model.graph.node[:]
    model.graph.node.extend(rebuilt)
    _drop_unused(model)
    return model


def _drop_unused(model: onnx.ModelProto) -> None:
    """Remove the initializers no node reads (the fp32 weights a quantised node replaced)."""
    used = {name for node in model.graph.node for name in node.input}
    for init in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(init)


def column_quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, N] fp32 -> (q [K, N] int8, scales [N] fp32): symmetric, one scale per output column."""
    scales = np.abs(weight).max(axis=0) / (ZERO_POINT - 1)
    scales[scales == 0] = 1.0
    q = np.clip(np.rint(weight / scales), 1 - ZERO_POINT, ZERO_POINT - 1)
    return q.astype(np.int8), scales.astype(np.float32)


def quantize_graph_per_column(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every MatMul with a constant [K, N] weight becomes com.microsoft.DynamicQuantizeMatMul
    (int8 weights with a scale per column, activations quantised per run); unused fp32 weights
    are dropped. For the encoder (a tied embedding would keep its fp32 copy)."""
    inits = {t.name: t for t in model.graph.initializer}
    rebuilt, added = [], {}
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            rebuilt.append(node)
            continue
        name = weight.name
        if name not in added:
            q, scales = column_quantize(numpy_helper.to_array(weight).astype(np.float32))
            added[name] = [numpy_helper.from_array(q, f"{name}_i8"), numpy_helper.from_array(scales, f"{name}_col_scales"),
                           numpy_helper.from_array(np.zeros_like(q[0]), f"{name}_zero")]
        rebuilt.append(helper.make_node("DynamicQuantizeMatMul", [node.input[0], *(t.name for t in added[name])],
                                        list(node.output), name=f"{node.name}_dq8", domain="com.microsoft"))
    del model.graph.node[:]
    model.graph.node.extend(rebuilt)
    model.graph.initializer.extend(t for tensors in added.values() for t in tensors)
    _drop_unused(model)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def quantize_file(src: Path, dst: Path, block: int = DEFAULT_BLOCK, per_column: bool = False) -> Path:
    """Quantise the graph at ``src`` into ``dst`` (in blocks, or with `per_column` per column)."""
    model = onnx.load(src)
    onnx.save(quantize_graph_per_column(model) if per_column else quantize_graph(model, block), dst)
    return dst
