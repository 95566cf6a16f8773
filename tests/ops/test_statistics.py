"""moments and _histogram: numpy references (tests/test_functional_ops.py compares them with MXNet 1.9.1)."""
import numpy as np
import pytest

import onnxsym as mx
from .opcase import OpCase, run_case


def _histogram(data, bins=None, bin_cnt=None, lo=None, hi=None):
    counts, edges = np.histogram(data, bins=bin_cnt if bins is None else bins, range=None if bins is not None
                                 else (lo, hi))
    return counts.astype(np.int64), edges.astype(data.dtype)


CASES = [
    OpCase("moments", dict(axes=(1,)), {"data": (3, 4)},
           lambda data: [data.mean(1), data.var(1)]),
    OpCase("moments", dict(axes=(0, 2), keepdims=True), {"data": (2, 3, 4)},
           lambda data: [data.mean((0, 2), keepdims=True), data.var((0, 2), keepdims=True)], dtype="float64"),
    OpCase("_histogram", dict(bin_cnt=5, range=(-1, 1)), {"data": (4, 6)},
           lambda data: _histogram(data, bin_cnt=5, lo=-1, hi=1)),
    OpCase("_histogram", {}, {"data": (20,), "bins": (4,)},
           lambda data, bins: _histogram(data, bins=bins),
           values={"bins": np.array([-1, -0.2, 0.1, 1], np.float32)}),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_histogram_range_takes_floats_in_every_spelling():
    data = mx.nd.array(np.linspace(-3, 3, 25), dtype="float64")
    want = np.histogram(data.asnumpy(), 4, range=(-2.5, 2.5))
    for spelling in [(-2.5, 2.5), "(-2.5, 2.5)", [-2.5, 2.5], (np.float32(-2.5), 2.5)]:
        counts, edges = mx.nd.histogram(data, bins=4, range=spelling)
        np.testing.assert_array_equal(counts.asnumpy(), want[0])
        np.testing.assert_allclose(edges.asnumpy(), want[1])
    sym = mx.sym.histogram(a=mx.sym.Variable("data"), bins=4, range=(-2.5, 2.5))
    assert sym.attr_dict()[sym.name]["range"] == "(-2.5, 2.5)"
    with pytest.raises(mx.MXNetError, match="range"):
        mx.nd.histogram(data, bins=4, range="(a, b)")


def test_moments_over_every_axis_is_one_element_as_mxnets():
    # MXNet 1.9.1: mx.nd.moments(ones((2, 3)), axes=(0, 1))[0].shape == (1,) (legacy), () under np_shape
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    mean, var = mx.nd.moments(mx.nd.array(data), axes=(0, 1))
    assert mean.shape == var.shape == (1,)
    np.testing.assert_allclose([mean.asscalar(), var.asscalar()], [data.mean(), data.var()], rtol=1e-6)
    assert mx.sym.moments(mx.sym.var("d"), axes=(0, 1)).infer_shape(d=(2, 3))[1] == [(1,), (1,)]
    with mx.np_shape():
        assert mx.nd.moments(mx.nd.array(data), axes=(0, 1))[0].shape == ()
