"""`mx.nd.sparse`: MXNet's sparse arrays, CSRNDArray ('csr') and RowSparseNDArray ('row_sparse'), their
constructors and arithmetic; every operator of mx.nd is here too (mx.nd.sparse.dot, .square, ...).

The arrays keep their values densely (runtime/sparse.py): a definition's entries (data, indices[, indptr]) are
checked when the array is made (MXNetError naming what is wrong) and listed again by `.indices`/`.data`.
"""
import numbers
import operator

import numpy as np

from ..base import MXNetError, normalize_dtype
from ..runtime.imperative import invoke
from ..runtime.ndarray import NDArray
from ..runtime.sparse import (BaseSparseNDArray, CSRNDArray, NotSupportedForSparseNDArray, RowSparseNDArray,
                              check_stype, sparse_array)
from .functions import _ufunc_helper

__all__ = ["BaseSparseNDArray", "CSRNDArray", "RowSparseNDArray", "NotSupportedForSparseNDArray", "csr_matrix",
           "row_sparse_array", "zeros", "empty", "array", "add", "subtract", "multiply", "divide", "retain"]


def creation_dtype(source, dtype):
    """MXNet's default dtype of a sparse array made from `source`: its own for arrays, float32 otherwise."""
    if dtype is not None:
        return normalize_dtype(dtype)
    if isinstance(source, (NDArray, np.ndarray)) or _is_scipy_csr(source):
        return np.dtype(source.dtype)
    return np.dtype(np.float32)


def _numpy(values, dtype=None):
    if isinstance(values, NDArray):
        values = values.asnumpy()
    try:
        return np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError("values must be array like object") from None


def _indices(values, what):
    ids = _numpy(values)
    if ids.ndim != 1:
        raise ValueError("invalid shape: %s must be 1-D, got shape %s" % (what, ids.shape))
    if ids.size and not np.all(np.equal(np.mod(ids, 1), 0)):
        raise MXNetError("%s must be integers, got %s" % (what, ids))
    return ids.astype(np.int64)


def _check_shape(given, expected):
    if given and expected and tuple(given) != tuple(expected):
        raise ValueError("Shape mismatch detected. " + str(tuple(given)) + " v.s. " + str(tuple(expected)))


def _ctx_of(source, ctx):
    return ctx if ctx is not None else (source.context if isinstance(source, NDArray) else None)


def _dense_to(stype, source, shape, ctx, dtype):
    """A `stype` array of a dense source (NDArray, numpy array or nested lists) in its dtype unless given."""
    dense = _numpy(source, creation_dtype(source, dtype))
    _check_shape(dense.shape, shape)
    return sparse_array(stype, np.array(dense, order="C", copy=True), _ctx_of(source, ctx))


# ----- row_sparse -----
def row_sparse_array(arg1, shape=None, ctx=None, dtype=None):
    """A RowSparseNDArray from (data, indices), a shape (all zero), a dense array or another RowSparseNDArray
    (MXNet's mx.nd.sparse.row_sparse_array)."""
    if isinstance(arg1, tuple):
        if len(arg1) < 2:
            raise ValueError("Unexpected length of input tuple: " + str(len(arg1)))
        if len(arg1) > 2 or all(isinstance(d, numbers.Integral) for d in arg1):
            _check_shape(arg1, shape)
            return zeros("row_sparse", arg1, ctx=ctx, dtype=dtype)
        return _row_sparse_from_definition(arg1[0], arg1[1], shape, ctx, dtype)
    if isinstance(arg1, RowSparseNDArray):
        _check_shape(arg1.shape, shape)
        return array(arg1, ctx=ctx, dtype=dtype)
    if isinstance(arg1, CSRNDArray):
        raise ValueError("Unexpected input type: CSRNDArray")
    return _dense_to("row_sparse", arg1, shape, ctx, dtype)


def _row_sparse_from_definition(data, indices, shape, ctx, dtype):
    data = _numpy(data, creation_dtype(data, dtype))
    rows = _indices(indices, "row_sparse indices")
    if shape is None:
        if rows.size == 0:
            raise ValueError("invalid shape")
        shape = (int(rows[-1]) + 1,) + data.shape[1:]
    shape = tuple(int(d) for d in shape)
    if data.ndim != len(shape) or int(np.prod(shape[1:])) == 0:
        raise ValueError("invalid shape")
    if data.shape[0] != rows.size or data.shape[1:] != shape[1:]:
        raise MXNetError("row_sparse definition: data of shape %s does not hold %d rows of shape %s"
                         % (data.shape, rows.size, shape[1:]))
    if rows.size and (rows[0] < 0 or rows[-1] >= shape[0] or np.any(np.diff(rows) <= 0)):
        raise MXNetError("row_sparse definition: indices must be unique, sorted ascending and within [0, %d); got "
                         "%s" % (shape[0], rows))
    dense = np.zeros(shape, data.dtype)
    dense[rows] = data
    return RowSparseNDArray._make(dense, _ctx_of(data, ctx), (rows,))


# ----- csr -----
def csr_matrix(arg1, shape=None, ctx=None, dtype=None):
    """A CSRNDArray from (data, indices, indptr), (data, (row, col)) coordinates, a shape (all zero), a dense
    array, a scipy.sparse.csr_matrix or another CSRNDArray (MXNet's mx.nd.sparse.csr_matrix)."""
    if isinstance(arg1, tuple):
        if len(arg1) == 2:
            if isinstance(arg1[1], tuple) and len(arg1[1]) == 2:
                return _csr_from_coordinates(arg1[0], arg1[1][0], arg1[1][1], shape, ctx, dtype)
            _check_shape(arg1, shape)
            return zeros("csr", arg1, ctx=ctx, dtype=dtype)
        if len(arg1) == 3:
            return _csr_from_definition(arg1[0], arg1[1], arg1[2], shape, ctx, dtype)
        raise ValueError("Unexpected length of input tuple: " + str(len(arg1)))
    if isinstance(arg1, CSRNDArray) or _is_scipy_csr(arg1):
        _check_shape(arg1.shape, shape)
        return array(arg1, ctx=ctx, dtype=dtype)
    if isinstance(arg1, RowSparseNDArray):
        raise ValueError("Unexpected input type: RowSparseNDArray")
    return _dense_to("csr", arg1, shape, ctx, dtype)


def _csr_from_definition(data, indices, indptr, shape, ctx, dtype):
    data = _numpy(data, creation_dtype(data, dtype))
    cols = _indices(indices, "csr indices")
    indptr = _indices(indptr, "csr indptr")
    if shape is None:
        if cols.size == 0:
            raise ValueError("invalid shape")
        shape = (indptr.size - 1, int(cols.max()) + 1)
    shape = tuple(int(d) for d in shape)
    if data.ndim != 1 or indptr.size == 0 or len(shape) != 2:
        raise ValueError("invalid shape")
    if indptr.size != shape[0] + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or \
            indptr[-1] != cols.size or data.size != cols.size:
        raise MXNetError("csr definition: indptr must have %d entries, start at 0, never decrease and end at the "
                         "number of indices (%d) and data (%d); got %s" % (shape[0] + 1, cols.size, data.size,
                                                                          indptr))
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    if cols.size and (cols.min() < 0 or cols.max() >= shape[1] or
                      np.any((np.diff(cols) <= 0) & (np.diff(rows) == 0))):
        raise MXNetError("csr definition: the column indices of each row must be unique, sorted ascending and "
                         "within [0, %d); got %s" % (shape[1], cols))
    dense = np.zeros(shape, data.dtype)
    dense[rows, cols] = data
    return CSRNDArray._make(dense, _ctx_of(data, ctx), (indptr, cols))


def _csr_from_coordinates(data, row, col, shape, ctx, dtype):
    """(data, (row, col)) as scipy's coo_matrix(...).tocsr(): duplicate coordinates are summed."""
    data = _numpy(data, creation_dtype(data, dtype))
    row, col = _indices(row, "row coordinates"), _indices(col, "column coordinates")
    if not data.shape == row.shape == col.shape:
        raise ValueError("row, column, and data array must all be the same length")
    if shape is None:
        if not row.size:
            raise ValueError("cannot infer dimensions from zero sized index arrays")
        shape = (int(row.max()) + 1, int(col.max()) + 1)
    shape = tuple(int(d) for d in shape)
    if row.size and (row.min() < 0 or col.min() < 0 or row.max() >= shape[0] or col.max() >= shape[1]):
        raise ValueError("coordinates out of the matrix of shape %s" % (shape,))
    dense = np.zeros(shape, data.dtype)
    np.add.at(dense, (row, col), data)
    mask = np.zeros(shape, bool)
    mask[row, col] = True
    rows, cols = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))]).astype(np.int64)
    return CSRNDArray._make(dense, ctx, (indptr, cols.astype(np.int64)))


def _is_scipy_csr(value):
    return type(value).__module__.startswith("scipy.sparse") and getattr(value, "format", None) == "csr"


# ----- creation -----
def zeros(stype, shape, ctx=None, dtype=None, **kwargs):
    """An all-zero array of storage type `stype` (nothing stored)."""
    check_stype(stype)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    return sparse_array(stype, np.zeros(shape, normalize_dtype(dtype)), ctx)


def empty(stype, shape, ctx=None, dtype=None):
    """An empty (all-zero) array of storage type `stype`."""
    return zeros(stype, shape, ctx, dtype)


def array(source_array, ctx=None, dtype=None):
    """A sparse copy of a CSRNDArray, RowSparseNDArray or scipy.sparse.csr_matrix (MXNet's sparse.array)."""
    if isinstance(source_array, BaseSparseNDArray):
        dtype = source_array.dtype if dtype is None else dtype
        copied = source_array.astype(dtype, copy=True)
        return copied if ctx is None else copied.copyto(ctx)
    if _is_scipy_csr(source_array):
        matrix = source_array.copy()
        matrix.sort_indices()
        return _csr_from_definition(matrix.data, matrix.indices, matrix.indptr, matrix.shape, ctx,
                                    matrix.dtype if dtype is None else dtype)
    raise ValueError("Unexpected source_array type: %s (a CSRNDArray, RowSparseNDArray or "
                     "scipy.sparse.csr_matrix)" % type(source_array).__name__)


def retain(data=None, indices=None, out=None, name=None, **kwargs):
    """The rows of the row_sparse `data` listed in `indices`, each stored (MXNet's sparse.retain, the
    _sparse_retain operator)."""
    return invoke("_sparse_retain", (), dict(kwargs, data=data, indices=indices), out)


# ----- arithmetic (MXNet's sparse.add/subtract/multiply/divide: elemwise_* when the shapes agree) -----
def _arith(lhs, rhs, same, broadcast, fn_scalar, scalar, rscalar=None):
    same_shape = isinstance(lhs, NDArray) and isinstance(rhs, NDArray) and lhs.shape == rhs.shape
    return _ufunc_helper(lhs, rhs, same if same_shape else broadcast, fn_scalar, scalar, rscalar)


def add(lhs, rhs):
    return _arith(lhs, rhs, "elemwise_add", "broadcast_add", operator.add, "_plus_scalar")


def subtract(lhs, rhs):
    return _arith(lhs, rhs, "elemwise_sub", "broadcast_sub", operator.sub, "_minus_scalar", "_rminus_scalar")


def multiply(lhs, rhs):
    return _arith(lhs, rhs, "elemwise_mul", "broadcast_mul", operator.mul, "_mul_scalar")


def divide(lhs, rhs):
    return _arith(lhs, rhs, "elemwise_div", "broadcast_div", operator.truediv, "_div_scalar", "_rdiv_scalar")


def __getattr__(name):
    """Every mx.nd operator function is in mx.nd.sparse too (MXNet generates both namespaces)."""
    from .. import ndarray  # lazy: mx.nd imports this module
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(ndarray, name)
    except AttributeError:
        raise AttributeError("module 'mx.nd.sparse' has no attribute '%s'" % name) from None
