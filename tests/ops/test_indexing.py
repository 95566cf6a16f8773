"""Products, gathers, searches, sorting and sequence ops against numpy (MXNet 1.x semantics)."""
import numpy as np
import pytest

import onnxsym as mx

from .opcase import OpCase, run_case


# ---------------------------------------------------------------- numpy references
def _trunc(indices):
    """MXNet casts float indices with static_cast: truncation toward zero."""
    return np.trunc(indices).astype(np.int64)


def _dot(ta=False, tb=False):
    def ref(lhs, rhs):
        if lhs.ndim == 1 and rhs.ndim == 1:
            return np.array([np.dot(lhs, rhs)])
        return np.tensordot(lhs, rhs, axes=([0 if ta else -1], [-1 if tb else 0]))
    return ref


def _matmul(ta=False, tb=False, alpha=1.0):
    def ref(lhs=None, rhs=None, A=None, B=None):
        a, b = (lhs, rhs) if A is None else (A, B)
        a = np.swapaxes(a, -1, -2) if ta else a
        b = np.swapaxes(b, -1, -2) if tb else b
        return alpha * np.matmul(a, b)
    return ref


def _gemm2_axis1(A, B):
    """gemm2(A, B, transpose_b=True, axis=1) == swapaxes(gemm2(swapaxes(A, 1, 2), swapaxes(B, 1, 2)), 1, 2)."""
    a, b = np.swapaxes(A, 1, 2), np.swapaxes(B, 1, 2)
    return np.swapaxes(np.matmul(a, np.swapaxes(b, -1, -2)), 1, 2)


def _embedding(input_dim):
    return lambda data, weight: weight[np.clip(_trunc(data), 0, input_dim - 1)]


def _take(axis=0, mode="clip"):
    return lambda a, indices: np.take(a, _trunc(indices), axis=axis, mode=mode)


def _pick(axis=-1, keepdims=False, mode="clip"):
    def ref(data, index):
        size = data.shape[axis]
        idx = _trunc(index)
        idx = np.clip(idx, 0, size - 1) if mode == "clip" else np.mod(idx, size)
        idx = idx.reshape(data.shape[:axis % data.ndim] + (1,) + data.shape[axis % data.ndim + 1:])
        out = np.take_along_axis(data, idx, axis=axis)
        return out if keepdims else np.squeeze(out, axis=axis)
    return ref


def _gather_nd(data, indices):
    return data[tuple(_trunc(indices))]


def _one_hot(depth, on=1.0, off=0.0, dtype="float32"):
    return lambda indices: np.where(_trunc(indices)[..., None] == np.arange(depth), on, off).astype(dtype)


def _where(condition, x, y):
    cond = condition.reshape(condition.shape + (1,) * (x.ndim - condition.ndim)) != 0
    return np.where(np.broadcast_to(cond, x.shape), x, y)


def _search(fn, axis=None, keepdims=False):
    def ref(data):
        if axis is None:
            out = np.array([fn(data)])
            return out.reshape((1,) * data.ndim) if keepdims else out
        out = fn(data, axis=axis)
        return np.expand_dims(out, axis) if keepdims else out
    return lambda data: ref(data).astype(data.dtype)


def _topk(axis=-1, k=1, ret_typ="indices", is_ascend=False):
    def ref(data):
        flat = data.reshape(-1) if axis is None else data
        ax = 0 if axis is None else axis
        order = np.argsort(flat if is_ascend else -flat, axis=ax, kind="stable")
        kk = k if k > 0 else flat.shape[ax]
        index = np.take(order, np.arange(kk), axis=ax)
        values = np.take_along_axis(flat, index, axis=ax)
        if ret_typ == "mask":
            mask = np.zeros_like(flat)
            np.put_along_axis(mask, index, 1, axis=ax)
            return mask.reshape(data.shape)
        return {"value": values, "indices": index.astype(np.float32), "both": [values, index]}[ret_typ]
    return ref


def _sort(axis=-1, is_ascend=True, indices=False):
    def ref(data):
        flat, ax = (data.reshape(-1), 0) if axis is None else (data, axis)
        order = np.argsort(flat if is_ascend else -flat, axis=ax, kind="stable")
        return order if indices else np.take_along_axis(flat, order, axis=ax)
    return ref


def _sequence_mask(axis=0, value=0.0):
    def ref(data, sequence_length):
        steps = np.arange(data.shape[axis])
        keep = steps[:, None] < sequence_length[None, :] if axis == 0 else steps[None, :] < sequence_length[:, None]
        keep = keep.reshape(keep.shape + (1,) * (data.ndim - 2))
        return np.where(keep, data, np.asarray(value, data.dtype))
    return ref


def _sequence_last(axis=0):
    def ref(data, sequence_length=None):
        if sequence_length is None:
            return np.take(data, data.shape[axis] - 1, axis=axis)
        rows = [np.take(np.take(data, b, axis=1 - axis), int(n) - 1, axis=0) for b, n in enumerate(sequence_length)]
        return np.stack(rows)
    return ref


def _sequence_reverse(data, sequence_length=None):
    if sequence_length is None:
        return data[::-1].copy()
    out = data.copy()
    for b, n in enumerate(sequence_length.astype(int)):
        out[:n, b] = data[:n, b][::-1]
    return out


# ---------------------------------------------------------------- documented MXNet examples
X_PICK = np.array([[1., 2.], [3., 4.], [5., 6.]], dtype=np.float32)
X_TOPK = np.array([[0.3, 0.2, 0.4], [0.1, 0.3, 0.2]], dtype=np.float32)
X_SEARCH = np.array([[0., 1., 2.], [3., 4., 5.]], dtype=np.float32)
X_SEQ = np.arange(1, 19, dtype=np.float32).reshape(3, 2, 3)


def _const(value):
    return lambda **_: np.asarray(value, dtype=np.float32)


CASES = [
    # dot: 2-D, N-D, transposes (transpose_a contracts the FIRST axis of lhs, keeping the rest in order), vectors
    OpCase("dot", {}, {"lhs": (2, 3), "rhs": (3, 4)}, _dot()),
    OpCase("dot", dict(transpose_a=True), {"lhs": (3, 2), "rhs": (3, 4)}, _dot(True)),
    OpCase("dot", dict(transpose_b=True), {"lhs": (2, 3), "rhs": (4, 3)}, _dot(False, True)),
    OpCase("dot", dict(transpose_a=True, transpose_b=True), {"lhs": (3, 2), "rhs": (4, 3)}, _dot(True, True)),
    OpCase("dot", {}, {"lhs": (2, 3, 4), "rhs": (4, 5, 2)}, _dot()),
    OpCase("dot", dict(transpose_a=True), {"lhs": (4, 2, 3), "rhs": (4, 5)}, _dot(True)),
    OpCase("dot", dict(transpose_b=True), {"lhs": (2, 4), "rhs": (3, 5, 4)}, _dot(False, True)),
    OpCase("dot", {}, {"lhs": (4,), "rhs": (4,)}, _dot()),
    OpCase("dot", {}, {"lhs": (4,), "rhs": (4, 3)}, _dot()),
    OpCase("dot", {}, {"lhs": (2, 4), "rhs": (4,)}, _dot(), dtype="float64"),
    OpCase("dot", dict(transpose_a=True, transpose_b=True), {"lhs": (4, 2, 3), "rhs": (5, 4)}, _dot(True, True),
           dtype="float64"),
    OpCase("dot", {}, {"lhs": (2, 2, 2), "rhs": (2, 2, 2)}, _dot(), name="dot-docstring",
           values={"lhs": np.arange(8, dtype=np.float32).reshape(2, 2, 2),
                   "rhs": np.arange(7, -1, -1, dtype=np.float32).reshape(2, 2, 2)}),
    # batch_dot
    OpCase("batch_dot", {}, {"lhs": (2, 3, 4), "rhs": (2, 4, 5)}, _matmul()),
    OpCase("batch_dot", dict(transpose_a=True), {"lhs": (2, 4, 3), "rhs": (2, 4, 5)}, _matmul(True)),
    OpCase("batch_dot", dict(transpose_b=True), {"lhs": (2, 3, 4), "rhs": (2, 5, 4)}, _matmul(False, True)),
    OpCase("batch_dot", dict(transpose_a=True, transpose_b=True), {"lhs": (2, 4, 3), "rhs": (2, 5, 4)},
           _matmul(True, True)),
    OpCase("batch_dot", {}, {"lhs": (2, 3, 2, 4), "rhs": (2, 3, 4, 5)}, _matmul()),
    # non-float32 batched products avoid ORT's float32-only FusedMatMul (Transpose -> MatMul fusion, MatMul grad)
    OpCase("batch_dot", {}, {"lhs": (2, 3, 4), "rhs": (2, 4, 5)}, _matmul(), dtype="float64"),
    OpCase("batch_dot", dict(transpose_a=True), {"lhs": (2, 4, 3), "rhs": (2, 4, 5)}, _matmul(True), dtype="float64"),
    OpCase("batch_dot", dict(transpose_b=True), {"lhs": (2, 3, 4), "rhs": (2, 5, 4)}, _matmul(False, True),
           dtype="float64"),
    OpCase("batch_dot", dict(transpose_a=True, transpose_b=True), {"lhs": (3, 2, 4, 3), "rhs": (3, 2, 5, 4)},
           _matmul(True, True), dtype="float64"),
    # linalg_gemm2 (and its registered name _linalg_gemm2)
    OpCase("linalg_gemm2", {}, {"A": (3, 4), "B": (4, 5)}, _matmul()),
    OpCase("linalg_gemm2", dict(transpose_a=True, alpha=0.5), {"A": (2, 4, 3), "B": (2, 4, 5)},
           _matmul(True, alpha=0.5)),
    OpCase("_linalg_gemm2", dict(transpose_b=True, axis=1), {"A": (2, 3, 4, 5), "B": (2, 6, 4, 5)}, _gemm2_axis1),
    OpCase("linalg_gemm2", dict(transpose_b=True, axis=1), {"A": (2, 3, 4, 5), "B": (2, 6, 4, 5)}, _gemm2_axis1,
           dtype="float64"),
    OpCase("linalg_gemm2", dict(transpose_a=True, transpose_b=True), {"A": (4, 3), "B": (5, 4)},
           _matmul(True, True), dtype="float64"),
    OpCase("linalg_gemm2", dict(transpose_b=True, alpha=2.0), {"A": (2, 2), "B": (3, 2)},
           _const([[4., 4., 4.], [4., 4., 4.]]), values={"A": np.ones((2, 2)), "B": np.ones((3, 2))},
           name="gemm2-docstring"),
    OpCase("linalg_gemm2", dict(transpose_b=True, alpha=2.0), {"A": (2, 1, 2), "B": (2, 1, 2)},
           _const([[[4.0]], [[0.04]]]), values={"A": [[[1., 1.]], [[.1, .1]]], "B": [[[1., 1.]], [[.1, .1]]]},
           name="gemm2-batch-docstring"),
    # Embedding: docstring, then out-of-range and fractional float indices (truncated, then clipped)
    OpCase("Embedding", dict(input_dim=4, output_dim=5), {"data": (2, 2)},
           _const([[[5., 6., 7., 8., 9.], [15., 16., 17., 18., 19.]],
                   [[0., 1., 2., 3., 4.], [10., 11., 12., 13., 14.]]]),
           values={"data": [[1., 3.], [0., 2.]], "weight": np.arange(20.).reshape(4, 5)}, name="Embedding-docstring"),
    OpCase("Embedding", dict(input_dim=4, output_dim=3), {"data": (2, 4)}, _embedding(4),
           values={"data": [[-3., -0.7, 0.9, 1.5], [3.99, 4., 7.2, 100.]]}),
    OpCase("Embedding", dict(input_dim=10, output_dim=6), {"data": (3, 2, 2)}, _embedding(10),
           int_inputs={"data": (0, 10)}),
    # take: clip vs wrap with negative indices, other axes
    OpCase("take", {}, {"a": (3, 2), "indices": (2, 2)},
           _const([[[1., 2.], [3., 4.]], [[3., 4.], [5., 6.]]]),
           values={"a": X_PICK, "indices": [[0., 1.], [1., 2.]]}, name="take-docstring"),
    OpCase("take", dict(axis=1), {"a": (3, 4, 5), "indices": (2, 3)}, _take(1),
           values={"indices": [[-1., 5., 2.], [-7., 3., 0.]]}, name="take-clip-negative"),
    OpCase("take", dict(axis=1, mode="wrap"), {"a": (3, 4, 5), "indices": (2, 3)}, _take(1, "wrap"),
           values={"indices": [[-1., 5., 2.], [-7., 3., 0.]]}, name="take-wrap-negative"),
    OpCase("take", dict(axis=-1, mode="raise"), {"a": (3, 4), "indices": (5,)}, _take(-1, "raise"),
           int_inputs={"indices": (0, 4)}),
    # pick: the docstring examples, plus 3-D and wrap
    OpCase("pick", dict(axis=0), {"data": (3, 2), "index": (2,)}, _const([1., 4.]),
           values={"data": X_PICK, "index": [0., 1.]}, name="pick-docstring-axis0"),
    OpCase("pick", dict(axis=1), {"data": (3, 2), "index": (3,)}, _const([1., 4., 5.]),
           values={"data": X_PICK, "index": [0., 1., 0.]}, name="pick-docstring-axis1"),
    OpCase("pick", dict(axis=1, mode="wrap"), {"data": (3, 2), "index": (3,)}, _const([1., 4., 5.]),
           values={"data": X_PICK, "index": [2., -1., -2.]}, name="pick-docstring-wrap"),
    OpCase("pick", dict(axis=1, keepdims=True), {"data": (3, 2), "index": (3, 1)}, _const([[2.], [3.], [6.]]),
           values={"data": X_PICK, "index": [[1.], [0.], [2.]]}, name="pick-docstring-keepdims"),
    OpCase("choose_element_0index", dict(axis=1), {"data": (2, 5, 3), "index": (2, 3)}, _pick(1),
           int_inputs={"index": (-2, 7)}),
    OpCase("pick", dict(mode="wrap"), {"data": (2, 3, 4), "index": (2, 3)}, _pick(-1, mode="wrap"),
           int_inputs={"index": (-6, 9)}),
    # gather_nd: MXNet puts the coordinate axis first
    OpCase("gather_nd", {}, {"data": (2, 2), "indices": (2, 3)}, _const([2., 3., 0.]),
           values={"data": [[0., 1.], [2., 3.]], "indices": [[1., 1., 0.], [0., 1., 0.]]}, name="gather_nd-docstring"),
    OpCase("gather_nd", {}, {"data": (3, 4, 5), "indices": (2, 2, 3)}, _gather_nd,
           values={"indices": [[[0., 2., 1.], [1., 1., 0.]], [[3., 0., 2.], [1., -1., 0.]]]}),
    # one_hot
    OpCase("one_hot", dict(depth=3), {"indices": (4,)}, _const([[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]),
           values={"indices": [1., 0., 2., 0.]}, name="one_hot-docstring"),
    OpCase("one_hot", dict(depth=3, on_value=8, off_value=1, dtype="int32"), {"indices": (4,)},
           _const([[1, 8, 1], [8, 1, 1], [1, 1, 8], [8, 1, 1]]), values={"indices": [1., 0., 2., 0.]},
           name="one_hot-docstring-int32"),
    OpCase("one_hot", dict(depth=4, on_value=2.5, off_value=-1.0), {"indices": (2, 3)}, _one_hot(4, 2.5, -1.0),
           values={"indices": [[-1., 3., 1.7], [4., 0., 2.]]}, name="one_hot-out-of-range"),
    # where: same-shape condition and a 1-D (row) condition
    OpCase("where", {}, {"condition": (2, 2), "x": (2, 2), "y": (2, 2)}, _const([[5., 2.], [3., 8.]]),
           values={"condition": [[0., 1.], [-1., 0.]], "x": [[1., 2.], [3., 4.]], "y": [[5., 6.], [7., 8.]]},
           int_inputs={"condition": (-1, 2)}, name="where-docstring"),
    OpCase("where", {}, {"condition": (3, 4), "x": (3, 4), "y": (3, 4)}, _where, int_inputs={"condition": (0, 2)}),
    OpCase("where", {}, {"condition": (3,), "x": (3, 4, 2), "y": (3, 4, 2)}, _where,
           values={"condition": [1., 0., 2.]}, name="where-rows"),
    # argmax / argmin / argmax_channel (indices in the input dtype)
    OpCase("argmax", dict(axis=0), {"data": (2, 3)}, _const([1., 1., 1.]), values={"data": X_SEARCH},
           name="argmax-docstring-axis0"),
    OpCase("argmax", dict(axis=1, keepdims=True), {"data": (2, 3)}, _const([[2.], [2.]]), values={"data": X_SEARCH},
           name="argmax-docstring-keepdims"),
    OpCase("argmax", {}, {"data": (3, 4)}, _search(np.argmax)),
    OpCase("argmax", dict(keepdims=True), {"data": (3, 4)}, _search(np.argmax, keepdims=True)),
    OpCase("argmax", dict(axis=-1), {"data": (2, 3, 4)}, _search(np.argmax, -1), dtype="float64"),
    OpCase("argmin", dict(axis=1), {"data": (2, 3)}, _const([0., 0.]), values={"data": X_SEARCH},
           name="argmin-docstring"),
    OpCase("argmin", {}, {"data": (3, 4)}, _search(np.argmin)),
    OpCase("argmin", dict(axis=0, keepdims=True), {"data": (3, 4)}, _search(np.argmin, 0, True)),
    OpCase("argmax_channel", {}, {"data": (2, 3)}, _const([2., 2.]), values={"data": X_SEARCH},
           name="argmax_channel-docstring"),
    OpCase("argmax_channel", {}, {"data": (4, 5)}, _search(np.argmax, 1)),
    # topk: the docstring examples, every ret_typ, axis=None and k<1
    OpCase("topk", {}, {"data": (2, 3)}, _const([[2.], [1.]]), values={"data": X_TOPK}, name="topk-docstring"),
    OpCase("topk", dict(ret_typ="value", k=2), {"data": (2, 3)}, _const([[0.4, 0.3], [0.3, 0.2]]),
           values={"data": X_TOPK}, name="topk-docstring-value"),
    OpCase("topk", dict(ret_typ="value", k=2, is_ascend=True), {"data": (2, 3)}, _const([[0.2, 0.3], [0.1, 0.2]]),
           values={"data": X_TOPK}, name="topk-docstring-ascend"),
    OpCase("topk", dict(axis=0, ret_typ="value", k=2), {"data": (2, 3)}, _const([[0.3, 0.3, 0.4], [0.1, 0.2, 0.2]]),
           values={"data": X_TOPK}, name="topk-docstring-axis0"),
    OpCase("topk", dict(ret_typ="both", k=2), {"data": (2, 3)},
           lambda data: [np.array([[0.4, 0.3], [0.3, 0.2]]), np.array([[2., 0.], [1., 2.]])],
           values={"data": X_TOPK}, name="topk-docstring-both"),
    OpCase("topk", dict(k=3), {"data": (2, 5, 4)}, _topk(-1, 3)),
    OpCase("topk", dict(axis=1, k=2, ret_typ="value"), {"data": (2, 5, 4)}, _topk(1, 2, "value")),
    OpCase("topk", dict(axis=1, k=2, ret_typ="both", is_ascend=True), {"data": (2, 5, 4)},
           _topk(1, 2, "both", True)),
    OpCase("topk", dict(axis=1, k=2, ret_typ="mask"), {"data": (2, 5, 4)}, _topk(1, 2, "mask")),
    OpCase("topk", dict(axis=None, k=3, ret_typ="mask"), {"data": (3, 4)}, _topk(None, 3, "mask")),
    OpCase("topk", dict(axis=None, k=4, ret_typ="both"), {"data": (3, 4)}, _topk(None, 4, "both")),
    OpCase("topk", dict(k=0, ret_typ="value"), {"data": (3, 4)}, _topk(-1, 0, "value")),
    OpCase("topk", dict(k=2, dtype="int64"), {"data": (3, 4)}, _topk(-1, 2)),
    # sort / argsort
    OpCase("sort", {}, {"data": (2, 2)}, _const([[1., 4.], [1., 3.]]), values={"data": [[1., 4.], [3., 1.]]},
           name="sort-docstring"),
    OpCase("sort", dict(axis=None), {"data": (2, 2)}, _const([1., 1., 3., 4.]), values={"data": [[1., 4.], [3., 1.]]},
           name="sort-docstring-flat"),
    OpCase("sort", dict(axis=0), {"data": (2, 2)}, _const([[1., 1.], [3., 4.]]), values={"data": [[1., 4.], [3., 1.]]},
           name="sort-docstring-axis0"),
    OpCase("sort", dict(is_ascend=False), {"data": (2, 2)}, _const([[4., 1.], [3., 1.]]),
           values={"data": [[1., 4.], [3., 1.]]}, name="sort-docstring-descend"),
    OpCase("sort", dict(axis=1, is_ascend=False), {"data": (3, 5, 2)}, _sort(1, False)),
    OpCase("argsort", {}, {"data": (2, 3)}, _const([[1., 0., 2.], [0., 2., 1.]]), values={"data": X_TOPK},
           name="argsort-docstring"),
    OpCase("argsort", dict(axis=0), {"data": (2, 3)}, _const([[1., 0., 1.], [0., 1., 0.]]), values={"data": X_TOPK},
           name="argsort-docstring-axis0"),
    OpCase("argsort", dict(axis=None), {"data": (2, 3)}, _const([3., 1., 5., 0., 4., 2.]), values={"data": X_TOPK},
           name="argsort-docstring-flat"),
    OpCase("argsort", dict(axis=1, is_ascend=False, dtype="int32"), {"data": (3, 5, 2)},
           _sort(1, False, indices=True)),
    # SequenceMask / SequenceLast / SequenceReverse
    OpCase("SequenceMask", {}, {"data": (3, 2, 3)}, lambda data: data, values={"data": X_SEQ},
           name="SequenceMask-docstring-identity"),
    OpCase("SequenceMask", dict(use_sequence_length=True), {"data": (3, 2, 3), "sequence_length": (2,)},
           _const([[[1., 2., 3.], [4., 5., 6.]], [[0., 0., 0.], [0., 0., 0.]], [[0., 0., 0.], [0., 0., 0.]]]),
           values={"data": X_SEQ, "sequence_length": [1., 1.]}, name="SequenceMask-docstring-1-1"),
    OpCase("SequenceMask", dict(use_sequence_length=True, value=1), {"data": (3, 2, 3), "sequence_length": (2,)},
           _const([[[1., 2., 3.], [4., 5., 6.]], [[7., 8., 9.], [10., 11., 12.]], [[1., 1., 1.], [16., 17., 18.]]]),
           values={"data": X_SEQ, "sequence_length": [2., 3.]}, name="SequenceMask-docstring-2-3"),
    OpCase("SequenceMask", dict(use_sequence_length=True, axis=1, value=-2.0),
           {"data": (3, 5, 2, 2), "sequence_length": (3,)}, _sequence_mask(1, -2.0),
           int_inputs={"sequence_length": (0, 6)}),
    OpCase("SequenceLast", {}, {"data": (4, 3, 2)}, _sequence_last()),
    OpCase("SequenceLast", dict(use_sequence_length=True), {"data": (4, 3, 2), "sequence_length": (3,)},
           _sequence_last(), values={"sequence_length": [1., 4., 2.]}),
    OpCase("SequenceLast", dict(use_sequence_length=True, axis=1), {"data": (3, 5, 2, 2), "sequence_length": (3,)},
           _sequence_last(1), int_inputs={"sequence_length": (1, 6)}),
    OpCase("SequenceReverse", {}, {"data": (4, 3, 2)}, _sequence_reverse),
    OpCase("SequenceReverse", dict(use_sequence_length=True), {"data": (4, 3, 2), "sequence_length": (3,)},
           _sequence_reverse, values={"sequence_length": [1., 4., 2.]}),
    OpCase("SequenceReverse", dict(use_sequence_length=True), {"data": (5, 2), "sequence_length": (2,)},
           _sequence_reverse, values={"sequence_length": [0., 3.]}),
]


# ---------------------------------------------------------------- gradient cases (tests/ops/test_gradients.py)
def _distinct(*shape, dtype="float32", seed=0):
    """Values 0.1 apart in random order: no ties within finite differences' step (sort, topk)."""
    n = int(np.prod(shape))
    return (np.random.RandomState(seed).permutation(n).reshape(shape) * 0.1 - 0.05 * n).astype(dtype)


def _indexed(op, attrs, shapes, ref, index, dtype="float32"):
    """A case whose index inputs (`index`: name -> integer values, with repeats and out-of-range entries) are
    excluded from finite differences: MXNet gives them no gradient."""
    fixed = {name: np.asarray(v, dtype) for name, v in index.items()}
    return OpCase(op, attrs, shapes, ref, dtype=dtype, values=fixed,
                  int_inputs={name: (int(v.min()), int(v.max()) + 1) for name, v in fixed.items()})


GRADIENT_CASES = [
    # products, float64 included (the batched non-float32 lowering avoids ORT's float32-only FusedMatMul)
    OpCase("dot", dict(transpose_b=True), {"lhs": (2, 3), "rhs": (4, 3)}, _dot(False, True)),
    OpCase("dot", dict(transpose_a=True), {"lhs": (4, 2, 3), "rhs": (4, 5)}, _dot(True), dtype="float64"),
    OpCase("dot", {}, {"lhs": (4,), "rhs": (4, 3)}, _dot(), dtype="float64"),
    OpCase("batch_dot", dict(transpose_a=True), {"lhs": (2, 4, 3), "rhs": (2, 4, 5)}, _matmul(True)),
    OpCase("batch_dot", dict(transpose_b=True), {"lhs": (2, 3, 4), "rhs": (2, 5, 4)}, _matmul(False, True),
           dtype="float64"),
    OpCase("batch_dot", dict(transpose_a=True, transpose_b=True), {"lhs": (2, 3, 4, 3), "rhs": (2, 3, 5, 4)},
           _matmul(True, True), dtype="float64"),
    OpCase("linalg_gemm2", dict(transpose_a=True, alpha=0.5), {"A": (2, 4, 3), "B": (2, 4, 5)},
           _matmul(True, alpha=0.5)),
    OpCase("linalg_gemm2", dict(transpose_b=True, axis=1), {"A": (2, 3, 4, 5), "B": (2, 6, 4, 5)}, _gemm2_axis1,
           dtype="float64"),
    OpCase("linalg_gemm2", dict(transpose_a=True, transpose_b=True, alpha=2.0), {"A": (4, 3), "B": (5, 4)},
           _matmul(True, True, 2.0), dtype="float64"),
    # gathers: repeated indices accumulate, clipped / wrapped indices send the gradient to the row they read
    _indexed("Embedding", dict(input_dim=4, output_dim=3), {"data": (2, 3)}, _embedding(4),
             {"data": [[1, 3, 1], [7, -2, 1]]}),
    _indexed("Embedding", dict(input_dim=5, output_dim=2, dtype="float64"), {"data": (4,)}, _embedding(5),
             {"data": [4, 0, 4, 2]}, dtype="float64"),
    _indexed("take", {}, {"a": (4, 3), "indices": (2, 3)}, _take(), {"indices": [[0, 2, 2], [-3, 9, 1]]}),
    _indexed("take", dict(axis=1, mode="wrap"), {"a": (2, 4, 3), "indices": (2, 3)}, _take(1, "wrap"),
             {"indices": [[-1, 5, 3], [7, 1, -4]]}),
    _indexed("take", dict(axis=-1, mode="raise"), {"a": (3, 4), "indices": (4,)}, _take(-1, "raise"),
             {"indices": [3, 0, 3, 1]}, dtype="float64"),
    _indexed("pick", dict(axis=1), {"data": (3, 4), "index": (3,)}, _pick(1), {"index": [5, -1, 2]}),
    _indexed("pick", dict(axis=0, keepdims=True, mode="wrap"), {"data": (3, 4), "index": (1, 4)},
             _pick(0, True, "wrap"), {"index": [[4, -1, 2, -3]]}),
    _indexed("pick", {}, {"data": (2, 3, 4), "index": (2, 3)}, _pick(), {"index": [[0, 3, 3], [1, 2, 0]]},
             dtype="float64"),
    _indexed("gather_nd", {}, {"data": (3, 4), "indices": (2, 5)}, _gather_nd,
             {"indices": [[0, 2, 0, 1, 2], [1, 3, 1, 0, 3]]}),
    _indexed("gather_nd", {}, {"data": (2, 3, 4), "indices": (1, 3)}, _gather_nd, {"indices": [[1, 0, 1]]},
             dtype="float64"),
    # where: the condition gets no gradient, x and y get out_grad where they are selected
    OpCase("where", {}, {"condition": (3, 4), "x": (3, 4), "y": (3, 4)}, _where, int_inputs={"condition": (0, 2)}),
    _indexed("where", {}, {"condition": (3,), "x": (3, 4, 2), "y": (3, 4, 2)}, _where, {"condition": [1, 0, -2]},
             dtype="float64"),
    # sorting: distinct values, so that no finite-difference step reorders them
    OpCase("sort", {}, {"data": (3, 5)}, _sort(), values={"data": _distinct(3, 5)}),
    OpCase("sort", dict(axis=None, is_ascend=False), {"data": (3, 4)}, _sort(None, False),
           values={"data": _distinct(3, 4, seed=1)}),
    OpCase("sort", dict(axis=0), {"data": (4, 3)}, _sort(0), values={"data": _distinct(4, 3, dtype="float64")},
           dtype="float64"),
    OpCase("topk", dict(axis=1, k=2, ret_typ="value"), {"data": (2, 5, 3)}, _topk(1, 2, "value"),
           values={"data": _distinct(2, 5, 3)}),
    OpCase("topk", dict(axis=None, k=3, ret_typ="both", is_ascend=True, dtype="float64"), {"data": (3, 4)},
           _topk(None, 3, "both", True), values={"data": _distinct(3, 4, seed=2, dtype="float64")}, dtype="float64"),
    OpCase("topk", dict(k=2, ret_typ="mask"), {"data": (3, 5)}, _topk(-1, 2, "mask"),
           values={"data": _distinct(3, 5, seed=3)}),
    # sequences: masked / unused steps get no gradient
    _indexed("SequenceMask", dict(use_sequence_length=True, value=1.5), {"data": (4, 3, 2), "sequence_length": (3,)},
             _sequence_mask(0, 1.5), {"sequence_length": [2, 4, 0]}),
    _indexed("SequenceMask", dict(use_sequence_length=True, axis=1, value=-1.0),
             {"data": (2, 5, 3), "sequence_length": (2,)}, _sequence_mask(1, -1.0), {"sequence_length": [3, 1]},
             dtype="float64"),
    OpCase("SequenceLast", {}, {"data": (4, 3, 2)}, _sequence_last()),
    _indexed("SequenceLast", dict(use_sequence_length=True), {"data": (4, 3, 2), "sequence_length": (3,)},
             _sequence_last(), {"sequence_length": [1, 4, 2]}),
    _indexed("SequenceLast", dict(use_sequence_length=True, axis=1), {"data": (3, 5, 2), "sequence_length": (3,)},
             _sequence_last(1), {"sequence_length": [5, 2, 3]}, dtype="float64"),
    OpCase("SequenceReverse", {}, {"data": (4, 3, 2)}, _sequence_reverse),
    _indexed("SequenceReverse", dict(use_sequence_length=True), {"data": (4, 3, 2), "sequence_length": (3,)},
             _sequence_reverse, {"sequence_length": [1, 4, 0]}),
    _indexed("SequenceReverse", dict(use_sequence_length=True), {"data": (5, 2), "sequence_length": (2,)},
             _sequence_reverse, {"sequence_length": [3, 5]}, dtype="float64"),
]


@pytest.mark.parametrize("case", CASES + GRADIENT_CASES, ids=str)
def test_forward(case):
    run_case(case)


def _backward(sym, arrays, out_grad=None):
    """Gradients of every argument after one training forward and a backward with out_grad (default ones)."""
    args = {n: mx.nd.array(a, dtype=a.dtype) for n, a in arrays.items()}
    grads = {n: mx.nd.array(np.full(a.shape, 7.0), dtype=a.dtype) for n, a in arrays.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads)
    exe.forward(is_train=True)
    exe.backward([mx.nd.ones(exe.outputs[0].shape, dtype=exe.outputs[0].dtype) if out_grad is None else out_grad])
    return {n: g.asnumpy() for n, g in grads.items()}


@pytest.mark.parametrize("case", [c for c in GRADIENT_CASES if c.int_inputs], ids=str)
def test_index_inputs_get_zero_gradient(case):
    """MXNet gives indices, sequence lengths and where's condition a zero gradient."""
    sym = case.symbol()
    grads = _backward(sym[0], case.inputs(sym))
    for name in case.int_inputs:
        np.testing.assert_array_equal(grads[name], 0, err_msg=name)


def test_embedding_gradient_accumulates_repeated_and_clipped_rows():
    data, = _var("data")
    emb = mx.sym.Embedding(data, input_dim=4, output_dim=3, name="e")
    indices = np.array([[1., 3., 1.], [7., -2., 1.]], np.float32)      # 7 -> row 3, -2 -> row 0
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    grads = _backward(emb, {"data": indices, "e_weight": weight})
    expected = np.array([[1.] * 3, [3.] * 3, [0.] * 3, [2.] * 3], np.float32)
    np.testing.assert_array_equal(grads["e_weight"], expected)


def test_take_wrap_gradient_lands_on_wrapped_columns():
    a, i = _var("a", "i")
    out_grad = mx.nd.array(np.array([[1., 10., 100.]], np.float32))
    grads = _backward(mx.sym.take(a, i, axis=1, mode="wrap"),
                      {"a": np.zeros((1, 3), np.float32), "i": np.array([-1., 5., 3.], np.float32)}, out_grad)
    np.testing.assert_array_equal(grads["a"], [[100., 0., 11.]])      # -1 -> 2, 5 -> 2, 3 -> 0


# ---------------------------------------------------------------- shapes, dtypes, names and defaults
def _var(*names):
    return [mx.sym.Variable(n) for n in names]


def test_dot_docstring_element():
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    y = np.arange(7, -1, -1, dtype=np.float32).reshape(2, 2, 2)
    out = mx.nd.dot(mx.nd.array(x), mx.nd.array(y)).asnumpy()
    assert out.shape == (2, 2, 2, 2)
    assert out[0, 0, 1, 1] == np.sum(x[0, 0, :] * y[:, 1, 1]) == 0


def test_dot_shape_mismatch_names_both_shapes():
    lhs, rhs = _var("lhs", "rhs")
    with pytest.raises(mx.MXNetError) as err:
        mx.sym.dot(lhs, rhs, name="d").infer_shape(lhs=(2, 3), rhs=(4, 5))
    assert "(2, 3)" in str(err.value) and "(4, 5)" in str(err.value) and "d" in str(err.value)
    with pytest.raises(mx.MXNetError, match="transpose"):
        mx.sym.dot(lhs, rhs, transpose_a=True).infer_shape(lhs=(3,), rhs=(3,))


def test_dot_transpose_keeps_axis_order():
    lhs, rhs = _var("lhs", "rhs")
    _, out, _ = mx.sym.dot(lhs, rhs, transpose_a=True).infer_shape(lhs=(4, 2, 3), rhs=(4, 5))
    assert out == [(2, 3, 5)]
    _, out, _ = lhs.dot(rhs, transpose_b=True).infer_shape(lhs=(2, 4), rhs=(3, 5, 4))
    assert out == [(2, 3, 5)]


def test_batch_dot_errors():
    lhs, rhs = _var("lhs", "rhs")
    with pytest.raises(mx.MXNetError, match=r"\(2, 3, 4\).*\(2, 5, 6\)"):
        mx.sym.batch_dot(lhs, rhs).infer_shape(lhs=(2, 3, 4), rhs=(2, 5, 6))
    with pytest.raises(mx.MXNetError, match="batch"):
        mx.sym.batch_dot(lhs, rhs).infer_shape(lhs=(2, 3, 4), rhs=(3, 4, 5))
    with pytest.raises(mx.MXNetError):
        mx.sym.batch_dot(lhs, rhs).infer_shape(lhs=(3, 4), rhs=(4, 5))


def test_embedding_fills_weight_and_rejects_wrong_shape():
    data, = _var("data")
    emb = mx.sym.Embedding(data, input_dim=10, output_dim=4, name="embed")
    assert emb.list_arguments() == ["data", "embed_weight"]
    assert emb.infer_shape(data=(2, 3)) == ([(2, 3), (10, 4)], [(2, 3, 4)], [])
    with pytest.raises(mx.MXNetError) as err:
        emb.infer_shape(data=(2, 3), embed_weight=(4, 10))
    message = str(err.value)
    assert "weight" in message and "(10, 4)" in message and "(4, 10)" in message


def test_embedding_types():
    data, = _var("data")
    emb = mx.sym.Embedding(data, input_dim=10, output_dim=4, name="embed")
    assert emb.infer_type(data="int32") == ([np.int32, np.float32], [np.float32], [])
    emb64 = mx.sym.Embedding(data, input_dim=10, output_dim=4, dtype="float64", name="e64")
    assert emb64.infer_type(data="float32") == ([np.float32, np.float64], [np.float64], [])
    with pytest.raises(mx.MXNetError, match="input_dim"):
        mx.sym.Embedding(data, output_dim=4)


def test_index_output_dtypes():
    x, = _var("x")
    assert x.argmax(axis=1).infer_type(x="float64")[1] == [np.float64]
    assert x.topk().infer_type(x="float64")[1] == [np.float32]
    assert x.topk(ret_typ="both", dtype="int32").infer_type(x="float64")[1] == [np.float64, np.int32]
    assert x.topk(ret_typ="mask").infer_type(x="float64")[1] == [np.float64]
    assert x.argsort().infer_type(x="float64")[1] == [np.float32]
    assert x.one_hot(3, dtype="int32").infer_type(x="float32")[1] == [np.int32]
    out = mx.nd.topk(mx.nd.array(X_TOPK), ret_typ="both", k=2)
    assert out[0].dtype == np.float32 and out[1].dtype == np.float32
    assert mx.nd.one_hot(mx.nd.array([1., 0.]), depth=2, dtype="int32").asnumpy().dtype == np.int32


def test_output_names_and_visibility():
    x, = _var("x")
    assert mx.sym.topk(x, name="t").list_outputs() == ["t_output"]
    assert mx.sym.topk(x, ret_typ="value", name="t").list_outputs() == ["t_output0"]
    assert mx.sym.topk(x, ret_typ="both", name="t").list_outputs() == ["t_output0", "t_output1"]
    assert mx.sym.sort(x, name="s").list_outputs() == ["s_output0"]
    _, out, _ = mx.sym.topk(x, ret_typ="both", k=2, axis=None).infer_shape(x=(3, 4))
    assert out == [(2,), (2,)]


def test_defaults():
    x, i = _var("x", "i")
    assert mx.sym.argmax(x).infer_shape(x=(3, 4))[1] == [(1,)]            # axis=None: flattened
    assert mx.sym.argmax(x, keepdims=True).infer_shape(x=(3, 4))[1] == [(1, 1)]
    assert mx.sym.argmax(x, axis=0).infer_shape(x=(5,))[1] == [(1,)]
    assert mx.sym.pick(x, i).infer_shape(x=(3, 4), i=(3,))[1] == [(3,)]      # axis=-1
    assert mx.sym.take(x, i).infer_shape(x=(3, 4), i=(2, 5))[1] == [(2, 5, 4)]  # axis=0
    assert mx.sym.sort(x).infer_shape(x=(3, 4))[1] == [(3, 4)]
    assert mx.sym.argsort(x, axis=None).infer_shape(x=(3, 4))[1] == [(12,)]
    from onnxsym.ops.registry import get_op
    topk = get_op("topk").from_attrs({})
    assert (topk.axis, topk.k, topk.ret_typ, topk.is_ascend, topk.dtype) == (-1, 1, "indices", False, "float32")
    assert get_op("sort").from_attrs({}).is_ascend is True
    assert get_op("take").from_attrs({}).mode == "clip"
    assert get_op("pick").from_attrs({}).mode == "clip"


def test_sequence_inputs_depend_on_use_sequence_length():
    data, = _var("data")
    assert mx.sym.SequenceMask(data, name="m").list_arguments() == ["data"]
    masked = mx.sym.SequenceMask(data, use_sequence_length=True, name="m")
    assert masked.list_arguments() == ["data", "m_sequence_length"]
    assert masked.infer_shape(data=(5, 3, 2))[0] == [(5, 3, 2), (3,)]
    last = mx.sym.SequenceLast(data, use_sequence_length=True, axis=1, name="l")
    assert last.infer_shape(data=(3, 5, 2)) == ([(3, 5, 2), (3,)], [(3, 2)], [])
    with pytest.raises(mx.MXNetError, match="axis"):
        mx.sym.SequenceReverse(data, axis=1).infer_shape(data=(3, 5, 2))
    with pytest.raises(mx.MXNetError, match="rank 2"):
        mx.sym.SequenceMask(data).infer_shape(data=(3,))


def test_fluent_methods_and_aliases():
    x, i = _var("x", "i")
    for sym in (x.dot(i), x.take(i), x.pick(i), x.one_hot(3), x.argmax(), x.argmin(), x.argmax_channel(),
                x.topk(), x.sort(), x.argsort()):
        assert sym.list_arguments()[0] == "x"
    assert mx.sym.choose_element_0index(x, i).infer_shape(x=(3, 4), i=(3,))[1] == [(3,)]
    assert mx.sym._linalg_gemm2(x, i).infer_shape(x=(3, 4), i=(4, 2))[1] == [(3, 2)]


def test_indexing_errors():
    x, i, c = _var("x", "i", "c")
    with pytest.raises(mx.MXNetError, match="axis"):
        mx.sym.take(x, i, axis=2).infer_shape(x=(3, 4), i=(2,))
    with pytest.raises(mx.MXNetError, match="mode"):
        mx.sym.take(x, i, mode="bogus")
    with pytest.raises(mx.MXNetError, match="axis=None"):
        mx.sym.pick(x, i, axis=None).infer_shape(x=(3, 4), i=(3,))
    with pytest.raises(mx.MXNetError, match="index"):
        mx.sym.pick(x, i, axis=1).infer_shape(x=(3, 4), i=(4,))
    with pytest.raises(mx.MXNetError, match="k must be"):
        mx.sym.topk(x, k=5).infer_shape(x=(3, 4))
    with pytest.raises(mx.MXNetError, match="ret_typ"):
        mx.sym.topk(x, ret_typ="values")
    with pytest.raises(mx.MXNetError, match=r"condition \(4,\)"):
        mx.sym.where(c, x, i).infer_shape(c=(4,), x=(3, 4), i=(3, 4))
    with pytest.raises(mx.MXNetError, match="same shape"):
        mx.sym.where(c, x, i).infer_shape(c=(3, 4), x=(3, 4), i=(3, 5))
    with pytest.raises(mx.MXNetError, match="gather_nd"):
        mx.sym.gather_nd(x, i).infer_shape(x=(3, 4), i=(3, 2))
