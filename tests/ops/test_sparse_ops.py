"""The operators of MXNet's sparse storage types (cast_storage, _sparse_retain, _square_sum, SparseEmbedding)
against numpy and finite differences; their values do not depend on storage types."""
import numpy as np
import pytest

from .opcase import OpCase, run_case, run_gradient_case


def _retain(rows):
    def ref(data, indices):
        out = np.zeros_like(data)
        out[rows] = data[rows]
        return out
    return ref


def _embedding(input_dim):
    return lambda data, weight: weight[np.clip(np.trunc(data).astype(np.int64), 0, input_dim - 1)]


def _square_sum(axis, keepdims):
    return lambda data: np.sum(data * data, axis=axis, keepdims=keepdims).reshape(
        np.sum(data * data, axis=axis, keepdims=keepdims).shape or (1,))


CASES = [
    OpCase("cast_storage", dict(stype="row_sparse"), {"data": (3, 4)}, lambda data: data),
    OpCase("cast_storage", dict(stype="csr"), {"data": (3, 4)}, lambda data: data, dtype="float64"),
    OpCase("cast_storage", dict(stype="default"), {"data": (2, 3, 2)}, lambda data: data, dtype="float16"),
    OpCase("_sparse_retain", {}, {"data": (5, 3), "indices": (3,)}, _retain([0, 3, 4]),
           values={"indices": np.array([4, 0, 3], np.float32)}),
    OpCase("_sparse_retain", {}, {"data": (4, 2, 3), "indices": (2,)}, _retain([1]),
           values={"indices": np.array([1, 1], np.float32)}, dtype="float64"),
    OpCase("_square_sum", dict(axis=1, keepdims=True), {"data": (4, 3)}, _square_sum(1, True)),
    OpCase("_square_sum", dict(axis=0), {"data": (4, 3)}, _square_sum(0, False), dtype="float64"),
    OpCase("_square_sum", {}, {"data": (2, 3)}, _square_sum(None, False)),
    OpCase("_contrib_SparseEmbedding", dict(input_dim=5, output_dim=3), {"data": (2, 3)}, _embedding(5),
           int_inputs={"data": (0, 5)}),
    OpCase("_contrib_SparseEmbedding", dict(input_dim=7, output_dim=2), {"data": (4,)}, _embedding(7),
           int_inputs={"data": (0, 7)}, dtype="float64"),
    OpCase("_contrib_SparseEmbedding", dict(input_dim=5, output_dim=3), {"data": (2, 3)}, _embedding(5),
           values={"data": np.array([[0, 4, 2], [7, 1.5, -1]], np.float32)}, name="SparseEmbedding-clipped"),
]
GRADIENT_CASES = [
    OpCase("_sparse_retain", {}, {"data": (5, 3), "indices": (2,)}, _retain([1, 3]),
           values={"indices": np.array([3, 1], np.float64)}, dtype="float64", int_inputs={"indices": (0, 5)}),
    OpCase("_square_sum", dict(axis=1, keepdims=True), {"data": (4, 3)}, _square_sum(1, True), dtype="float64"),
    OpCase("_square_sum", dict(axis=(0, 1)), {"data": (2, 3, 2)}, _square_sum((0, 1), False), dtype="float64"),
]


@pytest.mark.parametrize("case", CASES + GRADIENT_CASES, ids=str)
def test_forward(case):
    run_case(case)


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=str)
def test_gradient(case):
    run_gradient_case(case)
