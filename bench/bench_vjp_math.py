"""Formulation choices of the math and loss VJP rules (onnxsym/autograd/vjp/math.py, loss.py), timed as plain ORT
sessions on CPU: each variant is a small graph computing the same gradient.

    python bench/bench_vjp_math.py

- loss: d scores of SoftmaxCrossEntropyLoss (mean, class weights) from log_prob, 256 x 1000: as the rule writes it
  (softmax * c_i, then c_i subtracted at the labels: GatherElements + ScatterElements), against a class mask (Equal
  against the class range, Where) and a scatter of -c_i into zeros, each followed by LogSoftmax's backward, and
  against onnxruntime-training's own SoftmaxCrossEntropyLossGrad kernel (com.microsoft, training builds only);
- mask: dy * (x > t) as Mul(dy, Cast(Greater)) against Where(Greater, dy, 0) (ThresholdedRelu, Shrink);
- select: Elu's derivative as an arithmetic select (the rule) against Where;
- gelu: Gelu's CDF term as 0.5 (1 + Erf(x / sqrt 2)) (the rule) against y / x.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from _common import per_call
from onnxsym.runtime.ort import create_session

F = TensorProto.FLOAT


def _session(nodes, inputs, outputs, inits=(), ms=False):
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    graph = helper.make_graph(nodes, "bench", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    return create_session(model)


def _value(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def loss_variants(n=256, classes=1000):
    rng = np.random.RandomState(0)
    feeds = {"lp": np.log(rng.dirichlet(np.ones(classes), n)).astype(np.float32),
             "l": rng.randint(0, classes, n).astype(np.int64), "w": rng.uniform(0.5, 2, classes).astype(np.float32),
             "dy": np.array(1.0, np.float32)}
    inputs = [_value("lp", [n, classes]), _value("l", [n], TensorProto.INT64), _value("w", [classes]),
              _value("dy", [])]
    out = [_value("ds", [n, classes])]
    node = helper.make_node
    tail = [node("Exp", ["lp"], ["p"]), node("ReduceSum", ["dlp", "one"], ["total"], keepdims=1),
            node("Mul", ["p", "total"], ["pt"]), node("Sub", ["dlp", "pt"], ["ds"])]
    common = [("one", np.array([1], np.int64)), ("zero", np.array(0, np.float32))]
    mask = _session([
        node("Unsqueeze", ["l", "one"], ["lu"]), node("Equal", ["lu", "classes"], ["hit"]),
        node("Reshape", ["w", "row"], ["wr"]), node("Where", ["hit", "wr", "zero"], ["weighted"]),
        node("ReduceSum", ["weighted"], ["W"], keepdims=0), node("Div", ["dy", "W"], ["c"]),
        node("Mul", ["weighted", "c"], ["m"]), node("Neg", ["m"], ["dlp"])] + tail, inputs, out,
        common + [("classes", np.arange(classes, dtype=np.int64).reshape(1, classes)),
                  ("row", np.array([1, classes], np.int64))])
    scatter = _session([
        node("Unsqueeze", ["l", "one"], ["lu"]), node("Gather", ["w", "l"], ["wi"]),
        node("ReduceSum", ["wi"], ["W"], keepdims=0), node("Div", ["dy", "W"], ["c"]),
        node("Mul", ["wi", "c"], ["m"]), node("Neg", ["m"], ["nm"]), node("Unsqueeze", ["nm", "one"], ["nmu"]),
        node("ScatterElements", ["zeros", "lu", "nmu"], ["dlp"], axis=1)] + tail, inputs, out,
        common + [("zeros", np.zeros((n, classes), np.float32))])
    fused = _session([
        node("Unsqueeze", ["l", "one"], ["lu"]), node("Gather", ["w", "l"], ["wi"]),
        node("ReduceSum", ["wi"], ["W"], keepdims=0), node("Div", ["dy", "W"], ["c"]),
        node("Mul", ["wi", "c"], ["m"]), node("Unsqueeze", ["m", "one"], ["mu"]), node("Exp", ["lp"], ["p"]),
        node("Mul", ["p", "mu"], ["pm"]), node("GatherElements", ["pm", "lu"], ["picked"], axis=1),
        node("Sub", ["picked", "mu"], ["at_label"]),
        node("ScatterElements", ["pm", "lu", "at_label"], ["ds"], axis=1)], inputs, out, common)
    results = {"mask": mask, "scatter": scatter, "p * c, scatter at labels (rule)": fused}
    try:
        results["ORT SoftmaxCrossEntropyLossGrad"] = _session(
            [node("SoftmaxCrossEntropyLossGrad", ["dy", "lp", "l", "w"], ["ds"], domain="com.microsoft",
                  reduction="mean")], inputs, out, ms=True)
    except Exception as err:      # noqa: BLE001 - plain onnxruntime builds have no training kernels
        print("  (no SoftmaxCrossEntropyLossGrad kernel: %s)" % str(err)[:80])
    expected = None
    for name, session in results.items():
        got = session.run(None, feeds)[0]
        expected = got if expected is None else expected
        assert np.allclose(got, expected, rtol=1e-4, atol=1e-7), name
        print("  loss %-32s %8.1f us" % (name, 1e6 * per_call(lambda: session.run(None, feeds), 50, 7, min)))


def mask_variants(size=1 << 20):
    rng = np.random.RandomState(0)
    feeds = {"x": rng.randn(size).astype(np.float32), "dy": rng.randn(size).astype(np.float32)}
    inputs, out = [_value("x", [size]), _value("dy", [size])], [_value("dx", [size])]
    node = helper.make_node
    inits = [("t", np.array(0.3, np.float32)), ("zero", np.array(0, np.float32))]
    variants = {
        "Mul(dy, Cast(x > t)) (rule)": [node("Greater", ["x", "t"], ["c"]), node("Cast", ["c"], ["m"], to=F),
                                        node("Mul", ["dy", "m"], ["dx"])],
        "Where(x > t, dy, 0)": [node("Greater", ["x", "t"], ["c"]), node("Where", ["c", "dy", "zero"], ["dx"])]}
    for name, nodes in variants.items():
        session = _session(nodes, inputs, out, inits)
        print("  mask %-32s %8.1f us" % (name, 1e6 * per_call(lambda: session.run(None, feeds), 20, 7, min)))


def select_variants(size=1 << 20):
    rng = np.random.RandomState(0)
    x = rng.randn(size).astype(np.float32)
    feeds = {"x": x, "y": np.where(x > 0, x, 0.7 * np.expm1(x)).astype(np.float32),
             "dy": rng.randn(size).astype(np.float32)}
    inputs, out = [_value("x", [size]), _value("y", [size]), _value("dy", [size])], [_value("dx", [size])]
    node = helper.make_node
    inits = [("zero", np.array(0, np.float32)), ("one", np.array(1, np.float32)),
             ("alpha", np.array(0.7, np.float32)), ("alpha_1", np.array(-0.3, np.float32))]
    variants = {
        "dy (1 + [x <= 0] (y + a - 1)) (rule)": [
            node("LessOrEqual", ["x", "zero"], ["c"]), node("Cast", ["c"], ["m"], to=F),
            node("Add", ["y", "alpha_1"], ["ya"]), node("Mul", ["m", "ya"], ["mya"]),
            node("Add", ["mya", "one"], ["d"]), node("Mul", ["dy", "d"], ["dx"])],
        "dy Where(x > 0, 1, y + a)": [
            node("Greater", ["x", "zero"], ["c"]), node("Add", ["y", "alpha"], ["ya"]),
            node("Where", ["c", "one", "ya"], ["d"]), node("Mul", ["dy", "d"], ["dx"])]}
    for name, nodes in variants.items():
        session = _session(nodes, inputs, out, inits)
        print("  elu  %-32s %8.1f us" % (name, 1e6 * per_call(lambda: session.run(None, feeds), 20, 7, min)))


def gelu_variants(size=1 << 20):
    rng = np.random.RandomState(0)
    x = rng.randn(size).astype(np.float32)
    from math import erf
    y = (0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))).astype(np.float32)
    feeds = {"x": x, "y": y}
    inputs, out = [_value("x", [size]), _value("y", [size])], [_value("cdf", [size])]
    node = helper.make_node
    inits = [("half", np.array(0.5, np.float32)), ("one", np.array(1, np.float32)),
             ("r2", np.array(1 / np.sqrt(2), np.float32)), ("tiny", np.array(4 * np.finfo(np.float32).tiny,
                                                                              np.float32))]
    variants = {
        "y / x": [node("Abs", ["x"], ["a"]), node("Less", ["a", "tiny"], ["small"]),
                         node("Div", ["y", "x"], ["q"]), node("Where", ["small", "half", "q"], ["cdf"])],
        "0.5 (1 + Erf(x / sqrt 2)) (rule)": [node("Mul", ["x", "r2"], ["s"]), node("Erf", ["s"], ["e"]),
                                      node("Add", ["e", "one"], ["e1"]), node("Mul", ["e1", "half"], ["cdf"])]}
    for name, nodes in variants.items():
        session = _session(nodes, inputs, out, inits)
        print("  gelu %-32s %8.1f us" % (name, 1e6 * per_call(lambda: session.run(None, feeds), 20, 7, min)))


if __name__ == "__main__":
    loss_variants()
    mask_variants()
    select_variants()
    gelu_variants()
