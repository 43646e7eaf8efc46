"""int8 weights: blocks (every graph) and per column (the draft encoder); the packing, and small graphs
run by onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from asr.build.quantize import (ZERO_POINT, block_dequantize, block_quantize, column_quantize, quantize_graph,
                                quantize_graph_per_column)

D, V = 64, 50


def test_round_trip_error_is_at_most_half_a_step_per_block():
    w = np.random.default_rng(0).standard_normal((D, V)).astype(np.float32)
    q, scales = block_quantize(w, block=32)
    assert q.shape == (V, 2, 32) and scales.shape == (V, 2) and q.dtype == np.uint8
    step = np.repeat(scales.T, 32, axis=0)  # [D, V]: the scale of each weight's block
    assert np.all(np.abs(block_dequantize(q, scales) - w) <= step / 2 + 1e-7)
    assert q.min() >= 1 and q.max() <= 2 * ZERO_POINT - 1  # symmetric: -127..127 around 128


def test_an_all_zero_block_stays_zero_and_a_ragged_input_is_refused():
    w = np.zeros((32, 3), np.float32)
    q, scales = block_quantize(w, block=32)
    assert np.all(block_dequantize(q, scales) == 0)
    with pytest.raises(ValueError, match="not a multiple of the block size 32"):
        block_quantize(np.ones((40, 3), np.float32), block=32)


def _tied_embedding_graph(emb_t: np.ndarray) -> onnx.ModelProto:
    """tokens -> embedding (Gather axis 1 + Transpose, as the exporter writes it) -> MatMul by the same matrix."""
    nodes = [
        helper.make_node("Gather", ["emb_t", "tokens"], ["gathered"], axis=1, name="emb_gather"),
        helper.make_node("Transpose", ["gathered"], ["x"], perm=[1, 2, 0], name="emb_transpose"),
        helper.make_node("MatMul", ["x", "emb_t"], ["logits"], name="logits_matmul"),
    ]
    graph = helper.make_graph(
        nodes, "tied", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["b", "n"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "n", D]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "n", V])],
        [numpy_helper.from_array(emb_t, "emb_t")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _run(model: onnx.ModelProto, tokens: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["x", "logits"], {"tokens": tokens})


def test_the_embedding_and_the_logits_share_one_packed_matrix():
    emb_t = np.random.default_rng(1).standard_normal((D, V)).astype(np.float32)
    tokens = np.array([[3, 7, 49], [0, 1, 2]], np.int64)
    model = quantize_graph(_tied_embedding_graph(emb_t), block=32, accuracy_level=1)  # fp32 arithmetic
    ops = [n.op_type for n in model.graph.node]
    assert "MatMulNBits" in ops and "Transpose" not in ops and "MatMul" not in ops
    assert {t.name for t in model.graph.initializer} == {"emb_t_q8", "emb_t_scales"}  # fp32 copy dropped
    x, logits = _run(model, tokens)
    dequantized = block_dequantize(*block_quantize(emb_t, 32))
    expected_x = dequantized.T[tokens]
    np.testing.assert_allclose(x, expected_x, atol=1e-6)
    np.testing.assert_allclose(logits, expected_x @ dequantized, rtol=1e-4, atol=1e-4)
    _, reference = _run(_tied_embedding_graph(emb_t), tokens)
    assert np.array_equal(logits.argmax(-1), reference.argmax(-1))


def _matmul_graph(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """x [b, t, K] -> one MatMul per named weight, plus a MatMul of x by itself (no constant weight)."""
    k = next(iter(weights.values())).shape[0]
    nodes = [helper.make_node("MatMul", ["x", name], [f"y_{name}"], name=f"mm_{name}") for name in weights]
    nodes += [helper.make_node("Transpose", ["x"], ["x_t"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["x", "x_t"], ["gram"], name="mm_gram")]
    outputs = [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, None) for name in weights]
    graph = helper.make_graph(
        nodes, "matmuls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", k])],
        outputs + [helper.make_tensor_value_info("gram", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, name) for name, w in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                             ir_version=8)


def test_integer_arithmetic_on_a_batch_of_frames_stays_close_to_fp32():
    """The encoder's case: many rows at once, activations quantised per block (accuracy_level 4)."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 96)).astype(np.float32)
    x = rng.standard_normal((2, 50, 64)).astype(np.float32)
    model = quantize_graph(_matmul_graph({"w": w}), block=32, accuracy_level=4)
    assert [n.op_type for n in model.graph.node].count("MatMulNBits") == 1
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, gram = session.run(["y_w", "gram"], {"x": x})
    assert np.linalg.norm(y - x @ w) / np.linalg.norm(x @ w) < 0.02
    np.testing.assert_allclose(gram, x @ x.transpose(0, 2, 1), rtol=1e-5, atol=1e-4)  # not a weight: untouched


def test_a_weight_whose_input_dimension_is_not_a_whole_number_of_blocks_stays_fp32():
    w = np.ones((40, 8), np.float32)
    model = quantize_graph(_matmul_graph({"w": w}), block=32)
    assert "MatMulNBits" not in [n.op_type for n in model.graph.node]
    assert [t.name for t in model.graph.initializer] == ["w"]


def test_per_column_weights_are_within_half_a_step_of_their_column():
    w = np.random.default_rng(3).standard_normal((64, 96)).astype(np.float32)
    w[:, 5] = 0.0  # an all-zero column keeps a usable scale
    q, scales = column_quantize(w)
    assert q.dtype == np.int8 and q.shape == w.shape and scales.shape == (96,)
    assert np.all(np.abs(q.astype(np.float32) * scales - w) <= scales / 2 + 1e-7)
    assert np.abs(q).max() <= ZERO_POINT - 1 and np.all(q[:, 5] == 0)


def test_the_per_column_graph_runs_integer_matmuls_close_to_fp32_and_shares_a_weight_read_twice():
    """The draft encoder's case: activations quantised once per run, weights per column."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((64, 96)).astype(np.float32)
    x = rng.standard_normal((2, 50, 64)).astype(np.float32)
    graph = _matmul_graph({"w": w})
    graph.graph.node.append(helper.make_node("MatMul", ["x", "w"], ["y_again"], name="mm_again"))
    graph.graph.output.append(helper.make_tensor_value_info("y_again", TensorProto.FLOAT, None))
    model = quantize_graph_per_column(graph)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 2 and ops.count("MatMul") == 1  # the gram has no weight
    assert sorted(t.name for t in model.graph.initializer) == ["w_col_scales", "w_i8", "w_zero"]  # one copy
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, again, gram = session.run(["y_w", "y_again", "gram"], {"x": x})
    assert np.linalg.norm(y - x @ w) / np.linalg.norm(x @ w) < 0.03
    assert np.array_equal(y, again)
    np.testing.assert_allclose(gram, x @ x.transpose(0, 2, 1), rtol=1e-5, atol=1e-4)
