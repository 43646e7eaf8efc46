"""int8 weight quantisation of the exported Whisper graphs.

onnxruntime's dynamic quantisation turns every MatMul with a constant weight
into DynamicQuantizeLinear + MatMulInteger (fused by ORT into
DynamicQuantizeMatMul / MatMulIntegerToFloat at load time); activations stay
fp32 between layers. The scheme below was chosen by measurement (see
asr/MODEL_FORMAT.md): it is the fastest at equal transcripts on tiny.en.

The decoder uses one [D, V] matrix both for the token embedding (Gather on
axis 1) and for the logits MatMul. After quantisation the Gather is rewired to
read the int8 matrix and dequantise only the gathered columns, so the fp32
copy is dropped and the file shrinks ~4x.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper
from onnxruntime.quantization import QuantType, quantize_dynamic

EMBEDDING = "decoder/embedding_t"


@dataclass(frozen=True)
class QuantScheme:
    """One int8 configuration; DEFAULT_SCHEME is the measured winner."""

    weight_type: QuantType = QuantType.QInt8
    per_channel: bool = False
    # Conv weights in the encoder stem; ConvInteger is slow on CPU, so off.
    quantize_conv: bool = False


DEFAULT_SCHEME = QuantScheme()
# Per-channel scales were measured and not kept: in the decoder every step got 43 % slower;
# in the encoder they cost no time and cut base's unguarded WER (17.1 → 15.4 %) but raised
# the shipped, guarded WER (11.9 → 15.0 %) and let silence through as "The".


def _find_init(model: onnx.ModelProto, name: str) -> onnx.TensorProto | None:
    return next((t for t in model.graph.initializer if t.name == name), None)


def _dequant_gather_nodes(
    q_name: str, scale: str, zp: str, per_column: bool
) -> tuple[list[onnx.NodeProto], str]:
    """Nodes computing (q[:, tokens] - zero_point) as fp32 [D, B, N] from the int8 [D, V].

    Scale/zero point are scalars (per tensor) or [V] (per column = per token);
    returns the nodes and the name of the scale to multiply by.
    """
    nodes = [
        helper.make_node("Gather", [q_name, "tokens"], ["emb_q"], axis=1, name="emb_gather_q"),
        helper.make_node("Cast", ["emb_q"], ["emb_i"], to=onnx.TensorProto.FLOAT, name="emb_cast"),
    ]
    s, z = scale, zp
    if per_column:  # [V] -> [B, N], broadcast over D
        nodes.append(helper.make_node("Gather", [scale, "tokens"], ["emb_s"], name="emb_gather_s"))
        nodes.append(helper.make_node("Gather", [zp, "tokens"], ["emb_z"], name="emb_gather_z"))
        s, z = "emb_s", "emb_z"
    nodes.append(helper.make_node("Cast", [z], ["emb_zf"], to=onnx.TensorProto.FLOAT, name="emb_cast_z"))
    nodes.append(helper.make_node("Sub", ["emb_i", "emb_zf"], ["emb_c"], name="emb_sub"))
    return nodes, s


def _share_quantized_embedding(model: onnx.ModelProto) -> None:
    """Rewire the embedding Gather to the int8 weight and drop the fp32 copy."""
    q_name, scale, zp = f"{EMBEDDING}_quantized", f"{EMBEDDING}_scale", f"{EMBEDDING}_zero_point"
    gathers = [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == EMBEDDING]
    if len(gathers) != 1 or _find_init(model, q_name) is None:
        return  # not a decoder, or quantiser naming changed: keep fp32 embedding
    gather = gathers[0]
    per_column = len(_find_init(model, scale).dims) == 1
    nodes, s = _dequant_gather_nodes(q_name, scale, zp, per_column)
    nodes.append(helper.make_node("Mul", ["emb_c", s], [gather.output[0]], name="emb_scale"))
    position = list(model.graph.node).index(gather)
    model.graph.node.remove(gather)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(position + offset, node)
    fp32 = _find_init(model, EMBEDDING)
    if fp32 is not None:
        model.graph.initializer.remove(fp32)


def quantize_file(src: Path, dst: Path, scheme: QuantScheme = DEFAULT_SCHEME) -> Path:
    """Quantise the ONNX model at ``src`` into ``dst`` (int8 weights)."""
    op_types = ["MatMul"] + (["Conv"] if scheme.quantize_conv else [])
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        staged = Path(tmp) / dst.name
        quantize_dynamic(
            src,
            staged,
            op_types_to_quantize=op_types,
            per_channel=scheme.per_channel,
            weight_type=scheme.weight_type,
            # Shape inference cannot type outputs of com.microsoft ops
            # (MultiHeadAttention); everything in these graphs is fp32.
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        model = onnx.load(staged)
    _share_quantized_embedding(model)
    onnx.save(model, dst)
    return dst


def node_types(path: Path) -> dict[str, int]:
    """Count of op types in a saved model (used in tests and measurements)."""
    counts: dict[str, int] = {}
    for node in onnx.load(path, load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts

