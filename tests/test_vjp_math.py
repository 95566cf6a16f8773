"""onnxsym's own VJP rules of the math and loss ONNX ops (onnxsym/autograd/vjp/math.py, loss.py), against float64
central finite differences of onnx's reference implementation or numpy.

- The imported-ONNX cases of tests/ops/test_input_gradients.py for these ops, with the node kept as it is in the
  training graph (ops/onnx_training.py's rewrite turned off: the default for all but SoftmaxCrossEntropyLoss), so
  that the VJP rule itself is what is checked.
- One-node models differentiated by `gradient_model` directly, for what import cannot reach (opset 18+ ops: Mish,
  Gelu) or the import cases miss (SoftmaxCrossEntropyLoss's log_prob output, mean reductions, ignore_index inside
  the class range, N-D losses, int32 labels, single-input Sum and Mean, Det).
"""
import dataclasses
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxsym.ops.onnx_node as onnx_node
from onnxsym.autograd.reverse import gradient_model
from onnxsym.runtime.ort import create_session, max_opset
from onnxsym.test_utils import assert_almost_equal, random_projection

from .ops.onnx_gradcase import central_differences, run_onnx_gradient_case
from .ops.test_input_gradients import ONNX_CASES, UNARY, _unary_case

I64 = np.int64

# the op types whose VJP rule lives in vjp/math.py or vjp/loss.py
RULE_OPS = {"Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cosh", "Sinh", "Tan", "Softplus", "Softsign", "Elu",
            "Selu", "Celu", "HardSigmoid", "HardSwish", "Shrink", "ThresholdedRelu", "Mod", "PRelu", "Sum", "Mean",
            "CastLike", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss",
            "Hardmax", "Floor", "Ceil", "Round", "Sign"}     # (no gradient: zeros, as finite differences say)
# ONNX Runtime has no float64 CPU kernel for these: their import cases run in float32 with the node kept
NO_FLOAT64_KERNEL = {"Mean"}


def _kept_cases():
    cases = [c for c in ONNX_CASES if c.op_type in RULE_OPS]
    cases += [_unary_case(op) for op in sorted(UNARY) if op in RULE_OPS]
    return [dataclasses.replace(c, float64=False) if c.op_type in NO_FLOAT64_KERNEL else c for c in cases]


@pytest.mark.parametrize("case", _kept_cases(), ids=str)
def test_rule_with_the_node_kept(case, tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXSYM_AUTOGRAD", "onnxsym")
    original = onnx_node.rule_for
    monkeypatch.setattr(onnx_node, "rule_for", lambda op_type, training, dtypes, gradients: None if training
                        and op_type == case.op_type else original(op_type, training, dtypes, gradients))
    run_onnx_gradient_case(case, tmp_path)


# ---------------------------------------------------------------- one-node models, gradient_model directly
def _model(op_type, arrays, wrt, attrs, outputs, opset):
    """A one-node float64 model: `wrt` inputs as graph inputs, the other arrays as initializers."""
    node = helper.make_node(op_type, list(arrays), ["out%d" % i for i in range(outputs)], **attrs)
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(arrays[n].dtype), arrays[n].shape)
              for n in wrt]
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items() if n not in wrt]
    outs = [helper.make_tensor_value_info("out%d" % i, onnx.TensorProto.UNDEFINED, None) for i in range(outputs)]
    model = helper.make_model(helper.make_graph([node], op_type, inputs, outs, inits),
                              opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    del model.graph.output[:]
    model.graph.output.extend(inferred.output)
    return model


def check_vjp(op_type, arrays, wrt, attrs=None, outputs=1, opset=17, reference=None, seeded=None, dtype=np.float64):
    """gradient_model's VJP (every output in `seeded` projected by a random head) against float64 central
    differences of onnx's reference evaluator (or `reference(**arrays) -> outputs`). dtype float32: the graph runs
    in float32 (ops without float64 kernels in ONNX Runtime), the reference still in float64."""
    if opset > max_opset():
        pytest.skip("opset %d: the installed onnxruntime runs up to %d" % (opset, max_opset()))
    arrays = {n: np.asarray(a) for n, a in arrays.items()}
    cast = {n: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a for n, a in arrays.items()}
    model = _model(op_type, cast, wrt, attrs or {}, outputs, opset)
    seeded = list(range(outputs)) if seeded is None else seeded
    if reference is None:
        evaluator = ReferenceEvaluator(_model(op_type, arrays, wrt, attrs or {}, outputs, opset))
        evaluate = lambda feeds: evaluator.run(None, feeds)
    else:
        evaluate = lambda feeds: reference(**{**arrays, **feeds})
    expected = [np.asarray(o) for o in evaluate({n: arrays[n] for n in wrt})]
    heads = {i: np.asarray(random_projection(expected[i].shape, seed=i), dtype) for i in seeded}
    head_names = {i: "out%d_head" % i for i in seeded}
    model.graph.input.extend(helper.make_tensor_value_info(head_names[i], helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype)), expected[i].shape) for i in seeded)
    grad, names, _ = gradient_model(model, [("out%d" % i, head_names[i]) for i in seeded], wrt)
    feeds = {n: cast[n] for n in wrt}
    feeds.update({head_names[i]: heads[i] for i in seeded})
    results = dict(zip([o.name for o in grad.graph.output], create_session(grad).run(None, feeds)))
    exact = np.dtype(dtype) == np.float64
    rtol, atol = (1e-9, 1e-12) if exact else (1e-5, 1e-6)
    for i in range(outputs):
        assert_almost_equal(results["out%d" % i], expected[i].astype(dtype), rtol, atol, names=("forward", "reference"))
    probe = {n: arrays[n].copy() for n in wrt}

    def objective():
        outs = evaluate(probe)
        return sum(float((np.asarray(outs[i], np.float64) * heads[i]).sum()) for i in seeded)
    numeric = central_differences(probe, wrt, objective)
    rtol, atol = (1e-6, 1e-7) if exact else (1e-3, 1e-4)
    for name in wrt:
        got = results[name + "_grad"] if name in names else np.zeros_like(cast[name])
        scale = max(1.0, float(np.abs(numeric[name]).max()))
        assert_almost_equal(got, numeric[name].astype(dtype), rtol, atol * scale,
                            names=("%s: gradient of %s" % (op_type, name), "float64 finite differences"))


def _uniform(shape, low=-1.0, high=1.0, seed=0):
    return np.random.RandomState(seed).uniform(low, high, size=shape)


def _gelu(x, approximate):
    """Gelu in float64 (onnx's reference evaluates erf in float32)."""
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    """(ONNX Runtime's float64 Gelu is its function body, whose Erf has no float64 kernel.)"""
    check_vjp("Gelu", {"x": _uniform((3, 4), -3, 3)}, ["x"], {"approximate": approximate}, opset=20,
              dtype=np.float32, reference=lambda x: [_gelu(x, approximate)])


def test_mish():
    check_vjp("Mish", {"x": _uniform((3, 4), -3, 3)}, ["x"], opset=18)


@pytest.mark.parametrize("op_type", ["Sum", "Mean"])
def test_single_input_sum_and_mean(op_type):
    check_vjp(op_type, {"x": _uniform((2, 3))}, ["x"], dtype=np.float32 if op_type == "Mean" else np.float64)


def test_sum_of_one_input_repeated():
    """Sum(x, x, b): x's gradient is counted twice."""
    model_arrays = {"x": _uniform((2, 3)), "b": _uniform((3,), seed=1)}
    node = helper.make_node("Sum", ["x", "x", "b"], ["out0"])
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, a.shape) for n, a in
                      model_arrays.items()] + [helper.make_tensor_value_info("head", onnx.TensorProto.DOUBLE, (2, 3))],
        [helper.make_tensor_value_info("out0", onnx.TensorProto.DOUBLE, (2, 3))]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    grad, _, _ = gradient_model(model, [("out0", "head")], ["x", "b"])
    head = _uniform((2, 3), seed=2)
    out = ort.InferenceSession(grad.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["x_grad", "b_grad"], {**model_arrays, "head": head})
    np.testing.assert_allclose(out[0], 2 * head, rtol=1e-15)
    np.testing.assert_allclose(out[1], head.sum(axis=0), rtol=1e-15)


def test_gradient_graph_has_no_dead_nodes():
    """Gemm(a, b, c) differentiated for b only: the rule builds a's and c's gradients too, and ONNX Runtime would
    run them (a first layer's data gradient); the gradient graph keeps only what an output needs."""
    arrays = {"a": _uniform((5, 7)), "b": _uniform((7, 3), seed=1), "c": _uniform((3,), seed=2)}
    model = _model("Gemm", arrays, ["a", "b"], {}, 1, 17)
    model.graph.input.append(helper.make_tensor_value_info("head", onnx.TensorProto.DOUBLE, (5, 3)))
    grad, names, _ = gradient_model(model, [("out0", "head")], ["b"])
    assert list(names) == ["b"]
    read = {i for node in grad.graph.node for i in node.input} | {o.name for o in grad.graph.output}
    assert [n.name for n in grad.graph.node if not any(o in read for o in n.output)] == []
    assert [n.op_type for n in grad.graph.node].count("Gemm") == 2      # the forward and dB = a^T head
    head = _uniform((5, 3), seed=3)
    out = ort.InferenceSession(grad.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["b_grad"], {"a": arrays["a"], "b": arrays["b"], "head": head})
    np.testing.assert_allclose(out[0], arrays["a"].T @ head, rtol=1e-12)


def test_det():
    check_vjp("Det", {"a": _uniform((2, 3, 3)) + 2 * np.eye(3)}, ["a"], dtype=np.float32)


def test_prelu_with_a_scalar_like_slope():
    check_vjp("PRelu", {"x": _uniform((2, 3, 4)), "slope": _uniform((1,), 0.1, 0.5)}, ["x", "slope"])


def test_mod_broadcast():
    check_vjp("Mod", {"a": _uniform((2, 3), -5, 5), "b": _uniform((3,), 0.7, 2, seed=1)}, ["a", "b"], {"fmod": 1})


_SCORES = _uniform((3, 4, 2), -2, 2)
_LABELS = np.array([[0, 3], [1, 1], [2, 0]], I64)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("ignore_index", [None, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_with_log_prob(reduction, ignore_index, weighted):
    """Both outputs seeded, N-D scores, ignore_index inside the class range."""
    arrays = {"s": _SCORES, "l": _LABELS}
    if weighted:
        arrays["w"] = _uniform((4,), 0.5, 2, seed=3)
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    wrt = ["s", "w"] if weighted else ["s"]
    check_vjp("SoftmaxCrossEntropyLoss", arrays, wrt, attrs, outputs=2)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_cross_entropy_loss_only(reduction):
    """Only the loss seeded, a declared log_prob output unused; int32 labels."""
    arrays = {"s": _uniform((5, 3)), "l": np.array([0, 2, 1, 2, 1], np.int32), "w": _uniform((3,), 0.5, 2, seed=3)}
    check_vjp("SoftmaxCrossEntropyLoss", arrays, ["s", "w"], {"reduction": reduction}, outputs=2, seeded=[0])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_negative_log_likelihood_nd(reduction, weighted):
    arrays = {"x": _SCORES, "l": _LABELS}
    if weighted:
        arrays["w"] = _uniform((4,), 0.5, 2, seed=3)
    check_vjp("NegativeLogLikelihoodLoss", arrays, ["x", "w"] if weighted else ["x"],
              {"reduction": reduction, "ignore_index": 3})


def test_quantized_values_pass_no_gradient():
    """x -> QuantizeLinear -> DequantizeLinear -> y: piecewise constant, so x gets no gradient (zeros)."""
    scale, zero = numpy_helper.from_array(np.array(0.1, np.float32), "scale"), \
        numpy_helper.from_array(np.array(0, np.uint8), "zero")
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
             helper.make_node("Add", ["y", "x"], ["out0"])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (2, 3))],
        [helper.make_tensor_value_info("out0", onnx.TensorProto.FLOAT, (2, 3))], [scale, zero]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    grad, _, _ = gradient_model(model, [("out0", None)], ["x"])
    x = _uniform((2, 3)).astype(np.float32)
    out = create_session(grad).run(["x_grad"], {"x": x})[0]
    np.testing.assert_array_equal(out, np.ones((2, 3), np.float32))      # through the Add only
