"""quadratic, gradientmultiplier, div_sqrt_dim, index_array, index_copy, all_finite, multi_all_finite, allclose and
mx.nd.contrib.isinf/isfinite/isnan against numpy and MXNet 1.9.1's observed shapes and dtypes."""
import numpy as np
import pytest

import onnxsym as mx
from .opcase import OpCase, run_case

CASES = [
    OpCase("_contrib_quadratic", dict(a=0.5, b=-2.0, c=1.5), {"data": (3, 4)},
           lambda data: 0.5 * data ** 2 - 2 * data + 1.5),
    OpCase("_contrib_quadratic", dict(a=2.0), {"data": (5,)}, lambda data: 2 * data ** 2, dtype="float64"),
    OpCase("_contrib_gradientmultiplier", dict(scalar=-0.5), {"data": (2, 3)}, lambda data: data),
    OpCase("_contrib_div_sqrt_dim", {}, {"data": (2, 3, 16)}, lambda data: data / 4.0),
    OpCase("_contrib_div_sqrt_dim", {}, {"data": (3, 5)}, lambda data: data / np.sqrt(5), dtype="float64"),
    OpCase("_contrib_index_array", {}, {"data": (2, 3)},
           lambda data: np.stack(np.mgrid[0:2, 0:3], axis=-1).astype(np.int64)),
    OpCase("_contrib_index_array", dict(axes=(-1, 0)), {"data": (2, 3, 2)},
           lambda data: np.stack(np.mgrid[0:2, 0:3, 0:2], axis=-1)[..., [2, 0]].astype(np.int64)),
    OpCase("_contrib_index_copy", {}, {"old_tensor": (5, 3), "index_vector": (3,)},
           lambda old_tensor, index_vector, new_tensor: _index_copy(old_tensor, index_vector, new_tensor),
           values={"index_vector": np.array([4, 0, 2], np.int64)}, int_inputs={"index_vector": (0, 5)}),
    OpCase("all_finite", {}, {"data": (2, 3)}, lambda data: np.array([1.0], np.float32)),
    OpCase("all_finite", {}, {"data": (3,)}, lambda data: np.array([0.0], np.float32),
           values={"data": np.array([1.0, np.inf, 2.0], np.float32)}),
    OpCase("multi_all_finite", dict(num_arrays=2), {"arg0": (2,), "arg1": (3,)}, lambda arg0, arg1: np.array(
        [0.0], np.float32), values={"arg0": np.ones(2, np.float32), "arg1": np.array([0, np.nan, 1], np.float32)}),
    OpCase("_contrib_allclose", {}, {"a": (3, 2), "b": (3, 2)}, lambda a, b: np.array(0, np.uint8)),
    OpCase("_identity_with_attr_like_rhs", {}, {"lhs": (2, 3), "rhs": (2, 3)}, lambda lhs, rhs: lhs),
]


# the gradient is scaled, not the derivative of the identity forward: test_gradientmultiplier_scales_the_gradient
GRADIENT_SKIPS = {"_contrib_gradientmultiplier": "its gradient is scalar * head by definition (tested below)"}


def _index_copy(old, index, new):
    out = old.copy()
    out[index.astype(int)] = new
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_gradientmultiplier_scales_the_gradient():
    x = mx.nd.array([[1.0, -2.0, 3.0]])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.contrib.gradientmultiplier(mx.nd.contrib.quadratic(x, a=1.0, b=1.0), scalar=-0.25)
    y.backward(mx.nd.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(y.asnumpy(), [[2.0, 2.0, 12.0]])
    np.testing.assert_allclose(x.grad.asnumpy(), -0.25 * np.array([[3.0, -6.0, 21.0]]))


def test_index_copy_gradients_as_mxnets():
    # MXNet's test_index_copy: the old tensor's gradient is zero on the copied rows, the new tensor's all ones
    x, t = mx.nd.zeros((5, 3)), mx.nd.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    x.attach_grad()
    t.attach_grad()
    with mx.autograd.record():
        out = mx.nd.contrib.index_copy(x, mx.nd.array([0, 4, 2], dtype="int64"), t)
    out.backward()
    assert out.asnumpy().tolist() == [[1, 2, 3], [0, 0, 0], [7, 8, 9], [0, 0, 0], [4, 5, 6]]
    assert x.grad.asnumpy().tolist() == [[0] * 3, [1] * 3, [0] * 3, [1] * 3, [0] * 3]
    assert t.grad.asnumpy().tolist() == [[1] * 3] * 3


def test_allclose_as_mxnets():
    # MXNet 1.9.1: shape (), uint8; NaNs equal unless equal_nan=False; |a - b| <= atol + rtol * |b|
    a = mx.nd.array([1.0, 2.0, np.nan])
    b = mx.nd.array([1.0, 2.000001, np.nan])
    out = mx.nd.contrib.allclose(a, b)
    assert out.shape == () and out.dtype == np.uint8 and out.asnumpy() == 1
    assert mx.nd.contrib.allclose(a, b, equal_nan=False).asnumpy() == 0
    assert mx.nd.contrib.allclose(mx.nd.array([1.0]), mx.nd.array([1.1]), rtol=0.05).asnumpy() == 0
    assert mx.nd.contrib.allclose(mx.nd.array([1.0]), mx.nd.array([1.1]), rtol=0.1).asnumpy() == 1
    assert mx.nd.contrib.allclose(mx.nd.array([1.0, np.nan]), mx.nd.array([1.0, 0.0])).asnumpy() == 0
    for dtype in ("float16", "float64"):
        assert mx.nd.contrib.allclose(mx.nd.ones((2,), dtype=dtype), mx.nd.ones((2,), dtype=dtype)).asnumpy() == 1


def test_isinf_isfinite_isnan():
    x = mx.nd.array([np.inf, -np.inf, np.nan, 1.0])
    assert mx.nd.contrib.isinf(x).asnumpy().tolist() == [1, 1, 0, 0]
    assert mx.nd.contrib.isfinite(x).asnumpy().tolist() == [0, 0, 0, 1]
    assert mx.nd.contrib.isnan(x).asnumpy().tolist() == [0, 0, 1, 0]
    assert mx.nd.contrib.isnan(mx.nd.array([1, 2], dtype="int32")).dtype == np.int32
    assert mx.contrib.nd.isnan is mx.nd.contrib.isnan and mx.contrib.sym.quadratic is mx.sym.contrib.quadratic


def test_errors_name_the_problem():
    with pytest.raises(mx.MXNetError, match="axis 2 out of range"):
        mx.nd.contrib.index_array(mx.nd.ones((2, 2)), axes=(2,))
    with pytest.raises(mx.MXNetError, match="new_tensor's shape"):
        mx.nd.contrib.index_copy(mx.nd.zeros((3, 2)), mx.nd.array([0], dtype="int64"), mx.nd.ones((1, 3)))
    with pytest.raises(mx.MXNetError, match="one shape"):
        mx.nd.contrib.allclose(mx.nd.ones((2,)), mx.nd.ones((3,)))


def test_identity_with_attr_like_rhs_lets_shapes_flow_backwards():
    # MXNet's test_backward_infer: broadcast_add cannot give w its shape back; the identity's constraint does
    w, data = mx.sym.Variable("weight"), mx.sym.Variable("data")
    shifted = mx.sym.broadcast_add(w, mx.sym.Variable("wshift", shape=(1,)))
    net = mx.sym.FullyConnected(data=data, weight=mx.sym._internal._identity_with_attr_like_rhs(shifted, w),
                                num_hidden=11, no_bias=True)
    shapes = dict(zip(net.list_arguments(), net.infer_shape(data=(7, 100))[0]))
    assert shapes["weight"] == (11, 100)
