"""onnxsym's VJP rules of neural-network ONNX ops (autograd/vjp/nn.py), one node at a time: the gradient model run
in ORT (float32) against central differences of onnx's reference evaluator in float64, for the attribute
combinations the op suites do not reach (pads, strides, dilations, groups, ceil_mode, auto_pad, 1-D/3-D, ties)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnxsym as mx
from onnxsym.autograd.reverse import gradient_model

F32 = TensorProto.FLOAT


def _model(op_type, inputs, out_shapes, attrs, dtype=F32):
    names = ["in%d" % i for i in range(len(inputs))]
    outs = ["out%d" % i for i in range(len(out_shapes))]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, dtype, a.shape)
                                            for n, a in zip(names, inputs)],
                              [helper.make_tensor_value_info(o, dtype, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model)
    return model, inferred


class _OrtForward:
    """ORT's float32 forward as the numeric reference: for ops linear in each input (ConvTranspose, whose reference
    implementation lacks groups and output_shape) central differences with a large step are exact."""

    def __init__(self, model):
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(self, names, feeds):
        return [o.astype(np.float64) for o in self.session.run(
            names, {k: v.astype(np.float32) for k, v in feeds.items()})]


def check(op_type, inputs, attrs, wrt=None, n_outputs=1, seeds=None, rtol=2e-3, atol=2e-3, eps=1e-3,
          linear=False, forward=None):
    """Gradients of sum(out_i * proj_i) over the seeded outputs, analytic (ORT, float32) vs numeric (reference
    evaluator, float64; ORT's float32 forward with a unit step for `linear` ops)."""
    inputs = [np.asarray(a, np.float32) for a in inputs]
    wrt = list(range(len(inputs))) if wrt is None else wrt
    seeds = list(range(n_outputs)) if seeds is None else seeds
    ref64, _ = _model(op_type, [a.astype(np.float64) for a in inputs], [None] * n_outputs, attrs,
                      TensorProto.DOUBLE)
    evaluator = ReferenceEvaluator(ref64)
    if forward is not None:
        evaluator = type("NumpyForward", (), {"run": staticmethod(lambda names, feeds: forward(
            *[feeds["in%d" % i] for i in range(len(inputs))]))})
    if linear:
        evaluator, eps = _OrtForward(_model(op_type, inputs, [None] * n_outputs, attrs)[0]), 1.0
    feeds64 = {"in%d" % i: a.astype(np.float64) for i, a in enumerate(inputs)}
    outs = evaluator.run(None, feeds64)
    rng = np.random.default_rng(1)
    projs = {i: rng.random(outs[i].shape) + 0.1 for i in seeds}

    def loss(feeds):
        values = evaluator.run(None, feeds)
        return sum(float(np.sum(values[i] * projs[i])) for i in seeds)

    _, model = _model(op_type, inputs, [None] * n_outputs, attrs)
    grad_inputs = []
    for i in seeds:
        name = "head%d" % i
        model.graph.input.append(helper.make_tensor_value_info(name, F32, outs[i].shape))
        grad_inputs.append(("out%d" % i, name))
    full, grads, _ = gradient_model(model, grad_inputs, ["in%d" % i for i in wrt])
    session = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"in%d" % i: a for i, a in enumerate(inputs)}
    feeds.update({"head%d" % i: projs[i].astype(np.float32) for i in seeds})
    names = ["in%d_grad" % i for i in wrt]
    results = dict(zip(names, session.run(names, feeds)))
    for i in wrt:
        numeric = np.zeros(inputs[i].shape)
        flat = numeric.reshape(-1)
        base = feeds64["in%d" % i]
        for k in range(base.size):
            plus, minus = base.copy(), base.copy()
            plus.reshape(-1)[k] += eps
            minus.reshape(-1)[k] -= eps
            flat[k] = (loss({**feeds64, "in%d" % i: plus}) - loss({**feeds64, "in%d" % i: minus})) / (2 * eps)
        np.testing.assert_allclose(results["in%d_grad" % i], numeric, rtol=rtol, atol=atol,
                                   err_msg="%s input %d" % (op_type, i))


def _rand(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape)


CONV_CASES = [
    dict(x=(2, 3, 7), w=(4, 3, 3), attrs=dict(pads=[1, 1])),
    dict(x=(2, 3, 7), w=(4, 3, 3), attrs=dict(strides=[2], pads=[1, 0])),
    dict(x=(1, 4, 6, 7), w=(6, 2, 3, 2), attrs=dict(group=2, strides=[2, 1], pads=[1, 0, 0, 1])),
    dict(x=(1, 2, 7, 8), w=(3, 2, 3, 3), attrs=dict(dilations=[2, 1], pads=[2, 1, 2, 1])),
    dict(x=(1, 2, 8, 9), w=(2, 2, 3, 3), attrs=dict(strides=[3, 2], dilations=[1, 2])),
    dict(x=(1, 2, 6, 6), w=(2, 2, 3, 3), attrs=dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    dict(x=(1, 2, 6, 6), w=(2, 2, 3, 3), attrs=dict(auto_pad="SAME_LOWER")),
    dict(x=(1, 4, 5, 5), w=(4, 1, 3, 3), attrs=dict(group=4, pads=[1, 1, 1, 1])),
    dict(x=(1, 2, 4, 5, 4), w=(2, 1, 2, 3, 2), attrs=dict(group=2, strides=[1, 2, 1], pads=[1, 0, 1, 0, 1, 1])),
    dict(x=(1, 2, 5, 5), w=(3, 2, 3, 3), attrs=dict(pads=[3, 3, 0, 0])),    # pad > kernel - 1: ConvTranspose
    dict(x=(2, 4, 7, 7), w=(6, 2, 1, 1), attrs=dict(group=2, strides=[2, 2])),   # 1x1: x is its own im2col
    dict(x=(2, 3, 9), w=(4, 3, 3), attrs=dict(strides=[2], dilations=[2], pads=[1, 1])),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "%s-%s" % (c["x"], c["attrs"]))
@pytest.mark.parametrize("bias", [False, True])
def test_conv(case, bias):
    inputs = [_rand(*case["x"]), _rand(*case["w"], seed=1)]
    if bias:
        inputs.append(_rand(case["w"][0], seed=2))
    check("Conv", inputs, case["attrs"])


POOL_CASES = [
    dict(x=(2, 3, 9), attrs=dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    dict(x=(1, 2, 6, 7), attrs=dict(kernel_shape=[2, 2], strides=[2, 2])),
    dict(x=(1, 2, 7, 7), attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    dict(x=(1, 2, 7, 10), attrs=dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 0, 0], ceil_mode=1)),
    dict(x=(1, 2, 6, 6), attrs=dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    dict(x=(1, 2, 4, 5, 4), attrs=dict(kernel_shape=[2, 3, 2], strides=[1, 2, 2], pads=[1, 0, 1, 0, 1, 0])),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "%s-%s" % (c["x"], c["attrs"]))
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(case, include_pad):
    if include_pad and case["attrs"].get("ceil_mode"):
        pytest.skip("ORT and the reference evaluator differ in the forward divisor of a window past the padded "
                    "end (ORT: the whole kernel); the rule follows ORT's forward")
    check("AveragePool", [_rand(*case["x"])], dict(case["attrs"], count_include_pad=include_pad))


@pytest.mark.parametrize("case", POOL_CASES + [dict(x=(1, 2, 9, 8), attrs=dict(kernel_shape=[3, 2],
                                                                              dilations=[2, 2], pads=[1, 1, 0, 1]))],
                         ids=lambda c: "%s-%s" % (c["x"], c["attrs"]))
def test_max_pool(case):
    # distinct values a finite step cannot reorder
    x = np.random.default_rng(3).permutation(np.prod(case["x"])).reshape(case["x"]) * 0.05
    check("MaxPool", [x], case["attrs"], eps=1e-3)


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 2, 3, 2)])
def test_global_pool(op_type, shape):
    axes = tuple(range(2, len(shape)))
    reduce = np.max if op_type == "GlobalMaxPool" else np.mean
    # numpy truth: onnx's reference GlobalMaxPool gives 1-D and 3-D results the wrong shape
    check(op_type, [_rand(*shape)], {}, forward=lambda x: [reduce(x, axis=axes, keepdims=True)])


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("outputs", [1, 3])
def test_layer_normalization(axis, bias, outputs):
    shape = (2, 3, 4)
    inputs = [_rand(*shape), _rand(*shape[axis % 3:], seed=1)]
    if bias:
        inputs.append(_rand(*shape[axis % 3:], seed=2))
    check("LayerNormalization", inputs, dict(axis=axis), n_outputs=outputs)



CONV_TRANSPOSE_CASES = [
    dict(x=(2, 3, 5), w=(3, 2, 3), attrs=dict(strides=[2], pads=[1, 0], output_padding=[1])),
    dict(x=(1, 4, 3, 4), w=(4, 1, 3, 2), attrs=dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 1])),
    dict(x=(1, 2, 3, 3), w=(2, 3, 3, 3), attrs=dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    dict(x=(1, 2, 3, 3), w=(2, 3, 3, 3), attrs=dict(strides=[2, 2], output_shape=[6, 5])),
    dict(x=(1, 2, 3, 3), w=(2, 3, 2, 3), attrs=dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    dict(x=(1, 2, 2, 3, 2), w=(2, 2, 2, 2, 2), attrs=dict(strides=[1, 2, 2], pads=[0, 1, 0, 1, 0, 0])),
    dict(x=(2, 4, 3, 3), w=(4, 3, 1, 1), attrs=dict(strides=[2, 2])),
]


@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES, ids=lambda c: "%s-%s" % (c["x"], c["attrs"]))
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose(case, bias):
    inputs = [_rand(*case["x"]), _rand(*case["w"], seed=1)]
    if bias:
        inputs.append(_rand(case["w"][1] * case["attrs"].get("group", 1), seed=2))
    check("ConvTranspose", inputs, case["attrs"], linear=True)


@pytest.mark.parametrize("training_mode", [0, 1])
@pytest.mark.parametrize("shape", [(3, 2, 4), (2, 3, 2, 3)])
def test_batch_normalization(training_mode, shape):
    c = shape[1]
    inputs = [_rand(*shape), _rand(c, seed=1), _rand(c, seed=2), _rand(c, seed=3),
              np.random.default_rng(4).random(c) + 0.5]
    n_outputs = 3 if training_mode else 1
    wrt = [0, 1, 2] if training_mode else None
    check("BatchNormalization", inputs, dict(training_mode=training_mode, epsilon=1e-3), wrt=wrt,
          n_outputs=n_outputs, seeds=[0])


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 2, 3, 3)])
def test_instance_normalization(shape):
    check("InstanceNormalization", [_rand(*shape), _rand(shape[1], seed=1), _rand(shape[1], seed=2)], {})


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p):
    x = np.random.default_rng(3).permutation(98).reshape(1, 2, 7, 7) * 0.05 - 2.425
    check("LpPool", [x], dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], p=p))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size):
    """numpy truth: onnx's reference LRN (1.23) sums a different channel window than the spec and ORT."""
    def forward(x):
        squares = np.zeros_like(x)
        for c in range(x.shape[1]):
            squares[:, c] = (x[:, max(0, c - (size - 1) // 2):c + size // 2 + 1] ** 2).sum(axis=1)
        return [x / (1.5 + 0.3 / size * squares) ** 0.6]
    check("LRN", [_rand(2, 5, 2, 3)], dict(size=size, alpha=0.3, beta=0.6, bias=1.5), forward=forward)


@pytest.mark.parametrize("op_type, inputs, attrs, wrt", [
    ("Conv", [_rand(1, 2, 5, 5), _rand(3, 2, 3, 3, seed=1), _rand(3, seed=2)], dict(pads=[1, 1, 1, 1]), [1]),
    ("Conv", [_rand(1, 2, 5, 5), _rand(3, 2, 3, 3, seed=1), _rand(3, seed=2)], dict(strides=[2, 2]), [0]),
    ("LayerNormalization", [_rand(2, 3, 4), _rand(4, seed=1), _rand(4, seed=2)], dict(axis=-1), [0]),
    ("InstanceNormalization", [_rand(2, 3, 4), _rand(3, seed=1), _rand(3, seed=2)], {}, [1, 2]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_only_some_inputs_differentiated(op_type, inputs, attrs, wrt):
    """The gradients of the other inputs are not built (a first layer's data gradient, frozen parameters)."""
    check(op_type, inputs, attrs, wrt=wrt)


@pytest.mark.parametrize("shape, kernel", [((2, 3, 6, 4), [2, 2]), ((1, 2, 7, 5), [2, 2]), ((2, 2, 9), [3]),
                                           ((1, 2, 4, 6, 5), [2, 3, 2]), ((1, 2, 5, 6), [1, 3])])
def test_max_pool_tiling_windows(shape, kernel):
    x = np.random.default_rng(5).permutation(np.prod(shape)).reshape(shape) * 0.05
    check("MaxPool", [x], dict(kernel_shape=kernel, strides=kernel))


@pytest.mark.parametrize("kernel, strides", [([2, 2], [2, 2]), ([3, 3], [2, 2])])
def test_max_pool_ties_in_tiling_windows(kernel, strides):
    """Windows of equal values (a ReLU's zeros) give the gradient to their first element only."""
    from onnxsym.autograd.reverse import gradient_model as build
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 4, 4] = -1
    model, inferred = _model("MaxPool", [x], [None], dict(kernel_shape=kernel, strides=strides))
    out = inferred.graph.output[0].type.tensor_type.shape
    y_shape = tuple(d.dim_value for d in out.dim)
    inferred.graph.input.append(helper.make_tensor_value_info("head", F32, y_shape))
    full, _, _ = build(inferred, [("out0", "head")], ["in0"])
    session = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    grad, = session.run(["in0_grad"], {"in0": x, "head": np.ones(y_shape, np.float32)})
    expected = np.zeros((5, 5), np.float32)
    for i in range(y_shape[2]):
        for j in range(y_shape[3]):
            expected[i * strides[0], j * strides[1]] += 1
    np.testing.assert_array_equal(grad[0, 0], expected)


@pytest.mark.parametrize("shape, num_filter, kernel, pad, folded, columns_bytes", [
    ((3, 8, 3, 3), 32, (2, 2), (0, 0), True, None),     # small images, many channels: batch folded into one MatMul
    ((2, 16, 4, 4), 16, (3, 3), (1, 1), False, None),   # per-sample products summed over the batch
    ((5, 4, 6, 6), 8, (3, 3), (1, 1), False, 11000),    # columns made 2 samples at a time (2 + 2 + 1)
])
def test_conv_weight_gradient_both_formulations(shape, num_filter, kernel, pad, folded, columns_bytes,
                                                monkeypatch):
    """Conv's dW picks its formulation by size (nn.py), and makes large im2col columns a few samples at a time;
    each against float32 central differences."""
    from onnxsym.autograd.vjp import nn as vjp_nn
    from onnxsym.test_utils import check_numeric_gradient
    sym = mx.sym.Convolution(mx.sym.Variable("data"), num_filter=num_filter, kernel=kernel, pad=pad, name="c")
    arg_shapes, out_shapes, _ = sym.infer_shape(data=shape)
    n, c = shape[:2]
    taps, out = kernel[0] * kernel[1], out_shapes[0][2] * out_shapes[0][3]
    assert (n * num_filter * c * taps > 2 * n * out * (c * taps + num_filter)) == folded
    if columns_bytes is not None:
        monkeypatch.setattr(vjp_nn, "_COLUMNS_BYTES", columns_bytes)
        assert columns_bytes // (c * taps * out * 4) == 2
    rng = np.random.RandomState(0)
    location = {name: rng.uniform(-1, 1, s).astype(np.float32) for name, s in zip(sym.list_arguments(), arg_shapes)}
    check_numeric_gradient(sym, location, numeric_eps=1e-2, rtol=2e-2, atol=1e-3)
