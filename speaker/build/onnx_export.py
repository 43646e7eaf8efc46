"""The GE2E voice encoder (resemblyzer's 3-layer LSTM) as an ONNX graph, written node by node.

Graph: ``mels`` [batch, frames, 40] (power mel, not log) → three stacked ONNX LSTMs →
the last layer's final hidden state → Linear → ReLU → L2 norm → ``embedding`` [batch, 256].
Every window of a batch has the same number of frames (no padding inside the LSTM).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18  # ReduceL2 takes its axes as an input from 18 on
INPUT = "mels"
OUTPUT = "embedding"
# torch.nn.LSTM stacks its gates as (input, forget, cell, output); ONNX's LSTM wants (input, output, forget, cell).
TORCH_TO_ONNX_GATES = (0, 3, 1, 2)


def _onnx_gates(weight: np.ndarray, hidden: int) -> np.ndarray:
    gates = weight.reshape(4, hidden, *weight.shape[1:])
    return np.concatenate([gates[i] for i in TORCH_TO_ONNX_GATES], axis=0)


def count_lstm_layers(state: dict[str, np.ndarray]) -> int:
    layers = 0
    while f"lstm.weight_ih_l{layers}" in state:
        layers += 1
    return layers


def build_voice_encoder(state: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model of a resemblyzer state dict (lstm.*_l{i}, linear.weight/bias)."""
    layers = count_lstm_layers(state)
    if layers == 0 or "linear.weight" not in state:
        raise ValueError("not a GE2E voice encoder state dict: no lstm.weight_ih_l0 or linear.weight")
    hidden = state["lstm.weight_hh_l0"].shape[1]
    n_mels = state["lstm.weight_ih_l0"].shape[1]
    inits, nodes = [], []
    nodes.append(helper.make_node("Transpose", [INPUT], ["x0"], perm=[1, 0, 2]))  # → [frames, batch, mels]
    axis1 = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    axis0 = numpy_helper.from_array(np.array([0], np.int64), "axis0")
    inits += [axis1, axis0]
    x = "x0"
    for i in range(layers):
        w = _onnx_gates(state[f"lstm.weight_ih_l{i}"].astype(np.float32), hidden)[None]
        r = _onnx_gates(state[f"lstm.weight_hh_l{i}"].astype(np.float32), hidden)[None]
        b = np.concatenate([_onnx_gates(state[f"lstm.bias_ih_l{i}"].astype(np.float32), hidden),
                            _onnx_gates(state[f"lstm.bias_hh_l{i}"].astype(np.float32), hidden)])[None]
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(r, f"R{i}"),
                  numpy_helper.from_array(b, f"B{i}")]
        nodes.append(helper.make_node("LSTM", [x, f"W{i}", f"R{i}", f"B{i}"], [f"y{i}", f"h{i}"],
                                      hidden_size=hidden, direction="forward"))
        nodes.append(helper.make_node("Squeeze", [f"y{i}", "axis1"], [f"x{i + 1}"]))  # drop num_directions
        x = f"x{i + 1}"
    last = f"h{layers - 1}"
    nodes.append(helper.make_node("Squeeze", [last, "axis0"], ["hidden"]))
    inits += [numpy_helper.from_array(state["linear.weight"].astype(np.float32), "linear_w"),
              numpy_helper.from_array(state["linear.bias"].astype(np.float32), "linear_b")]
    nodes += [helper.make_node("Gemm", ["hidden", "linear_w", "linear_b"], ["projected"], transB=1),
              helper.make_node("Relu", ["projected"], ["positive"]),
              helper.make_node("ReduceL2", ["positive", "axis1"], ["norm"], keepdims=1),
              helper.make_node("Div", ["positive", "norm"], [OUTPUT])]
    graph = helper.make_graph(
        nodes, "ge2e_voice_encoder",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", "frames", n_mels])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", state["linear.weight"].shape[0]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxbus")
    model.ir_version = 8  # what onnxruntime ≥ 1.17 reads
    onnx.checker.check_model(model)
    return model
