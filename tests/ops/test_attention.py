"""The interleaved multi-head attention ops, _contrib_arange_like and _rnn_param_concat against numpy, MXNet 1.9.1's
recorded forward, backward and shape inference (tests/fixtures/nlp, made by make_nlp_fixtures.py) and finite
differences in float64."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from .opcase import OpCase, run_case, run_gradient_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "nlp")


def _parts(projection, heads, parts):
    """numpy: (seq, batch, heads * parts * head_dim) -> `parts` arrays (batch * heads, seq, head_dim)."""
    seq, batch, width = projection.shape
    split = projection.reshape(seq, batch, heads, parts, width // (heads * parts))
    return [split[:, :, :, k].transpose(1, 2, 0, 3).reshape(batch * heads, seq, -1) for k in range(parts)]


def _merge(context, heads):
    """numpy: (batch * heads, seq, head_dim) -> (seq, batch, heads * head_dim)."""
    bh, seq, head_dim = context.shape
    return context.reshape(bh // heads, heads, seq, head_dim).transpose(2, 0, 1, 3).reshape(seq, bh // heads, -1)


def selfatt_qk(qkv, heads):
    q, k, _ = _parts(qkv, heads, 3)
    return q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])


def selfatt_valatt(qkv, attention, heads):
    return _merge(attention @ _parts(qkv, heads, 3)[2], heads)


def encdec_qk(queries, keys_values, heads):
    q = _parts(queries, heads, 1)[0]
    k = _parts(keys_values, heads, 2)[0]
    return q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])


def encdec_valatt(keys_values, attention, heads):
    return _merge(attention @ _parts(keys_values, heads, 2)[1], heads)


def _arange_like(shape, dtype, start=0.0, step=1.0, repeat=1, axis=None):
    shape = shape if axis is None else (shape[axis],)
    index = (np.arange(int(np.prod(shape))) // repeat).astype(dtype)
    return (np.asarray(start).astype(dtype) + index * np.asarray(step).astype(dtype)).astype(dtype).reshape(shape)


SELF = "_contrib_interleaved_matmul_selfatt_"
ENCDEC = "_contrib_interleaved_matmul_encdec_"
CASES = [
    OpCase(SELF + "qk", dict(heads=3), {"queries_keys_values": (4, 2, 45)},
           lambda queries_keys_values: selfatt_qk(queries_keys_values, 3), rtol=1e-5, atol=1e-6),
    OpCase(SELF + "qk", dict(heads=2), {"queries_keys_values": (3, 1, 12)},
           lambda queries_keys_values: selfatt_qk(queries_keys_values, 2), dtype="float64"),
    OpCase(SELF + "qk", dict(heads=1), {"queries_keys_values": (5, 3, 12)},
           lambda queries_keys_values: selfatt_qk(queries_keys_values.astype(np.float32), 1), dtype="float16",
           rtol=1e-2, atol=1e-2),
    OpCase(SELF + "valatt", dict(heads=3), {"queries_keys_values": (4, 2, 18), "attention": (6, 4, 4)},
           lambda queries_keys_values, attention: selfatt_valatt(queries_keys_values, attention, 3),
           rtol=1e-5, atol=1e-6),
    OpCase(SELF + "valatt", dict(heads=2), {"queries_keys_values": (3, 2, 12), "attention": (4, 3, 3)},
           lambda queries_keys_values, attention: selfatt_valatt(queries_keys_values, attention, 2), dtype="float64"),
    OpCase(SELF + "valatt", dict(heads=2), {"queries_keys_values": (3, 2, 12), "attention": (4, 3, 3)},
           lambda queries_keys_values, attention: selfatt_valatt(queries_keys_values.astype(np.float32),
                                                                 attention.astype(np.float32), 2),
           dtype="float16", rtol=1e-2, atol=1e-2),
    OpCase(ENCDEC + "qk", dict(heads=3), {"queries": (4, 2, 15), "keys_values": (6, 2, 30)},
           lambda queries, keys_values: encdec_qk(queries, keys_values, 3), rtol=1e-5, atol=1e-6),
    OpCase(ENCDEC + "qk", dict(heads=2), {"queries": (2, 3, 4), "keys_values": (5, 3, 8)},
           lambda queries, keys_values: encdec_qk(queries, keys_values, 2), dtype="float64"),
    OpCase(ENCDEC + "qk", dict(heads=2), {"queries": (2, 3, 4), "keys_values": (5, 3, 8)},
           lambda queries, keys_values: encdec_qk(queries.astype(np.float32), keys_values.astype(np.float32), 2),
           dtype="float16", rtol=1e-2, atol=1e-2),
    OpCase(ENCDEC + "valatt", dict(heads=3), {"keys_values": (6, 2, 30), "attention": (6, 4, 6)},
           lambda keys_values, attention: encdec_valatt(keys_values, attention, 3), rtol=1e-5, atol=1e-6),
    OpCase(ENCDEC + "valatt", dict(heads=2), {"keys_values": (5, 3, 8), "attention": (6, 2, 5)},
           lambda keys_values, attention: encdec_valatt(keys_values, attention, 2), dtype="float64"),
    OpCase(ENCDEC + "valatt", dict(heads=2), {"keys_values": (5, 3, 8), "attention": (6, 2, 5)},
           lambda keys_values, attention: encdec_valatt(keys_values.astype(np.float32),
                                                        attention.astype(np.float32), 2),
           dtype="float16", rtol=1e-2, atol=1e-2),
    OpCase("_contrib_arange_like", {}, {"data": (2, 3)}, lambda data: _arange_like((2, 3), np.float32)),
    OpCase("_contrib_arange_like", dict(start=1.5, step=-0.5, repeat=2, axis=-1), {"data": (2, 5)},
           lambda data: _arange_like((2, 5), np.float64, 1.5, -0.5, 2, -1), dtype="float64"),
    OpCase("_contrib_arange_like", dict(start=2.0, axis=0), {"data": (3, 4)},
           lambda data: _arange_like((3, 4), np.float16, 2.0, axis=0), dtype="float16"),
    OpCase("_rnn_param_concat", dict(dim=0), {"arg0": (6,), "arg1": (4,), "arg2": (3,)},
           lambda arg0, arg1, arg2: np.concatenate([arg0, arg1, arg2]), nargs=3),
    OpCase("_rnn_param_concat", dict(dim=1), {"arg0": (2, 3), "arg1": (2, 1)},
           lambda arg0, arg1: np.concatenate([arg0, arg1], axis=1), nargs=2, dtype="float64"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


@pytest.mark.parametrize("case", [c for c in CASES if c.dtype == "float64" and "arange" not in c.op], ids=str)
def test_gradient_float64(case):
    run_gradient_case(case, rtol=1e-5, atol=1e-7, numeric_eps=1e-6)


def test_arange_like_has_zero_gradient():
    x = mx.nd.array(np.ones((2, 3)))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.contrib.arange_like(x, start=1.0) * x
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), _arange_like((2, 3), np.float32, 1.0))


# ---------------------------------------------------------------- MXNet 1.9.1's numbers
OPS = {
    "selfatt_qk": (mx.nd.contrib.interleaved_matmul_selfatt_qk, ["qkv"]),
    "selfatt_valatt": (mx.nd.contrib.interleaved_matmul_selfatt_valatt, ["qkv", "att"]),
    "encdec_qk": (mx.nd.contrib.interleaved_matmul_encdec_qk, ["q", "kv"]),
    "encdec_valatt": (mx.nd.contrib.interleaved_matmul_encdec_valatt, ["kv", "att_ed"]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_interleaved_ops_as_mxnets(name):
    recorded = np.load(os.path.join(FIXTURES, "ops.npz"))
    fn, used = OPS[name]
    inputs = [mx.nd.array(recorded["in_" + k]) for k in used]
    for x in inputs:
        x.attach_grad()
    with mx.autograd.record():
        out = fn(*inputs, heads=3)
    out.backward(mx.nd.array(recorded[name + "_head"]))
    np.testing.assert_allclose(out.asnumpy(), recorded[name + "_out"], rtol=1e-5, atol=1e-6)
    for k, x in zip(used, inputs):
        np.testing.assert_allclose(x.grad.asnumpy(), recorded["%s_grad_%s" % (name, k)], rtol=1e-5, atol=1e-6,
                                   err_msg="gradient of " + k)


def _shapes_fixture():
    with open(os.path.join(FIXTURES, "ops_shapes.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name", sorted(_shapes_fixture()["arange_like"]))
def test_arange_like_as_mxnets(name):
    kwargs = _shapes_fixture()["arange_like"][name]
    recorded = np.load(os.path.join(FIXTURES, "ops.npz"))["arange_like_" + name]
    out = mx.nd.contrib.arange_like(mx.nd.zeros((2, 3, 4)), **kwargs).asnumpy()
    assert out.shape == recorded.shape and out.dtype == recorded.dtype
    np.testing.assert_array_equal(out, recorded)
    sym = mx.sym.contrib.arange_like(mx.sym.Variable("x"), **kwargs)
    assert sym.infer_shape(x=(2, 3, 4))[1] == [recorded.shape]


@pytest.mark.parametrize("dtype", ["float16", "float64", "int32", "int64", "uint8"])
def test_arange_like_dtypes_as_mxnets(dtype):
    # start=3.7, step=1.6: integer outputs truncate start and step first (MXNet's kernel)
    recorded = np.load(os.path.join(FIXTURES, "ops.npz"))["arange_like_dtype_" + dtype]
    out = mx.nd.contrib.arange_like(mx.nd.zeros((2, 3, 4), dtype=dtype), start=3.7, step=1.6).asnumpy()
    assert out.dtype == recorded.dtype
    np.testing.assert_array_equal(out, recorded)


@pytest.mark.parametrize("index", range(3))
def test_rnn_param_concat_shape_rule_as_mxnets(index):
    # the output's size flows back through an elementwise add; one or two inputs of unknown size share the rest
    record = _shapes_fixture()["rnn_param_concat"][index]
    a, b, c, d = (mx.sym.Variable(n) for n in "abcd")
    sym = mx.sym._internal._rnn_param_concat(a, b, c, dim=len(record["known"]["d"]) - 1) + d
    args, outs, _ = sym.infer_shape_partial(**{k: tuple(v) for k, v in record["known"].items()})
    assert dict(zip(sym.list_arguments(), [list(s) for s in args])) == record["args"]
    assert list(outs[0]) == record["out"]


def test_rnn_param_concat_in_a_gluon_lstm_graph():
    # Gluon's rnn.LSTM: flattened weights joined for RNN, the first i2h weight's input size unknown until the
    # fused parameter vector's size (from data and state_size) comes back
    data = mx.sym.Variable("data")
    weights = [mx.sym.Variable(n) for n in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")]
    params = mx.sym._internal._rnn_param_concat(*[w.reshape(-1) for w in weights], dim=0)
    rnn = mx.sym.RNN(data, params, mx.sym.Variable("h"), mx.sym.Variable("c"), state_size=4, num_layers=1,
                     mode="lstm", state_outputs=True)
    args, _, _ = rnn.infer_shape_partial(data=(5, 2, 3), i2h_weight=(16, 0), h2h_weight=(16, 4), i2h_bias=(16,),
                                         h2h_bias=(16,))
    shapes = dict(zip(rnn.list_arguments(), args))
    assert shapes["i2h_weight"] == (16, 3)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda: mx.nd.contrib.interleaved_matmul_selfatt_qk(mx.nd.zeros((4, 2, 45)), heads=2),
     "must be heads \\* 3 \\* head_dim"),
    (lambda: mx.nd.contrib.interleaved_matmul_selfatt_qk(mx.nd.zeros((4, 45)), heads=3), "must be 3-D"),
    (lambda: mx.nd.contrib.interleaved_matmul_selfatt_qk(mx.nd.zeros((4, 2, 45)), heads=0), "heads must be"),
    (lambda: mx.nd.contrib.interleaved_matmul_selfatt_valatt(mx.nd.zeros((4, 2, 45)), mx.nd.zeros((4, 4, 4)),
                                                             heads=3), "input 'attention' has shape"),
    (lambda: mx.nd.contrib.interleaved_matmul_encdec_qk(mx.nd.zeros((4, 2, 15)), mx.nd.zeros((6, 2, 15)),
                                                        heads=3), "input 'keys_values' has shape"),
    (lambda: mx.nd.contrib.interleaved_matmul_encdec_valatt(mx.nd.zeros((6, 2, 30)), mx.nd.zeros((6, 4, 5)),
                                                            heads=3), "input 'attention' has shape"),
    (lambda: mx.nd.contrib.arange_like(mx.nd.zeros((2, 3)), axis=2), "cannot handle axis 2"),
    (lambda: mx.nd.contrib.arange_like(mx.nd.zeros((2, 3)), repeat=0), "repeat must be positive"),
    (lambda: mx.sym.contrib.interleaved_matmul_selfatt_qk(mx.sym.Variable("x")), "Required parameter heads"),
])
def test_bad_input(call, message):
    with pytest.raises(MXNetError, match=message):
        call()


def test_integer_input_refused():
    with pytest.raises(MXNetError):
        mx.nd.contrib.interleaved_matmul_selfatt_qk(mx.nd.zeros((4, 2, 12), dtype="int32"), heads=2)


def test_rnn_param_concat_too_many_unknown_inputs():
    a, b, c, d = (mx.sym.Variable(n) for n in "abcd")
    sym = mx.sym._internal._rnn_param_concat(a, b, c, dim=0) + d
    with pytest.raises(MXNetError, match="1 or 2 inputs"):
        sym.infer_shape(a=(0,), b=(0,), c=(0,), d=(10,))
    with pytest.raises(MXNetError, match="exceed"):
        sym.infer_shape(a=(0,), b=(8,), c=(4,), d=(10,))
