"""stack, diag, batch_take, scatter_nd, _ravel_multi_index, _unravel_index, _onehot_encode: numpy references
(tests/test_functional_ops.py compares them with MXNet 1.9.1)."""
import numpy as np
import pytest

import onnxsym as mx

from .opcase import OpCase, run_case


def _diag_vector(data, k):
    return np.diag(data, k)


def _scatter(data, indices, shape):
    out = np.zeros(shape, data.dtype)
    out[tuple(indices.astype(np.int64))] = data
    return out


def _onehot(lhs, rhs):
    out = np.zeros_like(rhs)
    out[np.arange(len(lhs)), lhs.astype(np.int64)] = 1
    return out


CASES = [
    OpCase("stack", dict(axis=0), {"arg0": (2, 3), "arg1": (2, 3)}, lambda arg0, arg1: np.stack([arg0, arg1]),
           nargs=2),
    OpCase("stack", dict(axis=-1), {"arg0": (2, 3), "arg1": (2, 3), "arg2": (2, 3)},
           lambda arg0, arg1, arg2: np.stack([arg0, arg1, arg2], -1), nargs=3),
    OpCase("diag", dict(k=1), {"data": (3, 4)}, lambda data: np.diagonal(data, 1)),
    OpCase("diag", dict(k=-1), {"data": (3,)}, lambda data: _diag_vector(data, -1)),
    OpCase("diag", dict(k=-1, axis1=2, axis2=0), {"data": (3, 2, 4)},
           lambda data: np.diagonal(data, -1, axis1=2, axis2=0)),
    OpCase("diag", dict(k=2), {"data": (4,)}, lambda data: _diag_vector(data, 2), dtype="float64"),
    OpCase("batch_take", {}, {"a": (3, 4), "indices": (3,)},
           lambda a, indices: a[np.arange(3), np.clip(indices.astype(int), 0, 3)], int_inputs={"indices": (-1, 5)}),
    OpCase("scatter_nd", dict(shape=(3, 4)), {"data": (3,), "indices": (2, 3)},
           lambda data, indices: _scatter(data, indices, (3, 4)),
           values={"indices": np.array([[1, 0, 2], [0, 3, 1]], np.float32)}, int_inputs={"indices": (0, 3)}),
    OpCase("_ravel_multi_index", dict(shape=(3, 4)), {"data": (2, 5)},
           lambda data: data[0] * 4 + data[1], int_inputs={"data": (0, 3)}),
    OpCase("_unravel_index", dict(shape=(3, 4)), {"data": (5,)},
           lambda data: np.stack(np.unravel_index(data.astype(int), (3, 4))), int_inputs={"data": (0, 12)}),
    OpCase("_onehot_encode", {}, {"lhs": (3,), "rhs": (3, 4)}, _onehot, int_inputs={"lhs": (0, 4)}),
]
GRADIENT_CASES = [c for c in CASES if c.op in ("stack", "diag", "scatter_nd", "_ravel_multi_index",
                                               "_unravel_index", "_onehot_encode")] + [
    OpCase("batch_take", {}, {"a": (3, 4), "indices": (3,)},
           lambda a, indices: a[np.arange(3), indices.astype(int)], int_inputs={"indices": (0, 4)}),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_ravel_and_unravel_with_a_leading_minus_one():
    """MXNet's test_ravel: shape (-1,) + shape[1:] leaves the first dimension free; unravel_index gave 0 for the
    first coordinate (x % -1), against numpy's unravel_index."""
    rng = np.random.RandomState(4)
    for dim in (1, 2, 4):
        data = rng.randint(50, size=(dim, 300))
        shape = tuple(np.amax(data, axis=1) + 1)
        flat = np.ravel_multi_index(data, shape)
        for dtype in ("float32", "float64", "int32", "int64"):
            free = (-1,) + shape[1:]
            np.testing.assert_array_equal(
                mx.nd.ravel_multi_index(mx.nd.array(data, dtype=dtype), shape=free).asnumpy(), flat)
            np.testing.assert_array_equal(
                mx.nd.unravel_index(mx.nd.array(flat, dtype=dtype), shape=free).asnumpy(), data)

