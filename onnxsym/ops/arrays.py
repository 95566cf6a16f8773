"""Array assembly and index arithmetic: stack, diag, batch_take, scatter_nd, _ravel_multi_index,
_unravel_index, _onehot_encode (MXNet src/operator/tensor/{matrix_op,diag_op,indexing_op,ravel}.cc,
elemwise_binary_op_basic.cc).

Shapes are static when an op is lowered, so index tables (diag's positions, strides) are built here as constants.
"""
import typing

import numpy as np

from .._shapes import fmt
from ..base import MXNetError
from .params import Shape, param
from .registry import OpDef, register

__all__ = []


def _axis(op, axis, ndim, name="axis"):
    if not -ndim <= axis < ndim:
        raise MXNetError("%s: %s=%d is out of range for %d dimensions" % (op.op_name, name, axis, ndim))
    return axis % ndim


def _int64(g, x):
    return x if np.dtype(g.dtype(x)) == np.int64 else g.cast(x, np.int64)


@register
class stack(OpDef):
    """out = the inputs (all of one shape) joined along a new axis `axis`. Mirrors MXNet stack."""
    variadic = True
    num_args: int = param(min=1, doc="Number of inputs to be stacked.")
    axis: int = param(0, doc="The axis in the result array along which the input arrays are stacked.")

    def infer_shape(self, *shapes):
        first = shapes[0]
        for name, shape in zip(self.input_names(), shapes):
            if tuple(shape) != tuple(first):
                raise MXNetError("stack: input '%s' has shape %s but the inputs must all have shape %s"
                                 % (name, fmt(shape), fmt(first)))
        axis = _axis(self, self.axis, len(first) + 1)
        return list(shapes), [tuple(first[:axis]) + (self.num_args,) + tuple(first[axis:])]

    def lower(self, g, *inputs):
        axis = _axis(self, self.axis, len(g.shape(inputs[0])) + 1)
        return g.Concat(*[g.Unsqueeze(x, g.int64s([axis])) for x in inputs], axis=axis)


def _diag_positions(rows, cols, k):
    """(row, column) of the elements of diagonal k of a rows x cols matrix."""
    length = max(0, min(rows + min(k, 0), cols - max(k, 0)))
    index = np.arange(length)
    return index + max(-k, 0), index + max(k, 0)


@register
class diag(OpDef):
    """1-D data: a square matrix with data on diagonal k. N-D data: diagonal k of the (axis1, axis2) planes, as the
    last axis (numpy.diagonal). Mirrors MXNet diag."""
    k: int = param(0, doc="Diagonal in question. The default is 0. Use k>0 for diagonals above the main diagonal, "
                          "and k<0 for diagonals below the main diagonal.")
    axis1: int = param(0, doc="The first axis of the sub-arrays of interest. Ignored when the input is a 1-D array.")
    axis2: int = param(1, doc="The second axis of the sub-arrays of interest. Ignored when the input is a 1-D "
                              "array.")

    def _axes(self, ndim):
        a1, a2 = _axis(self, self.axis1, ndim, "axis1"), _axis(self, self.axis2, ndim, "axis2")
        if a1 == a2:
            raise MXNetError("diag: axis1 and axis2 cannot refer to the same axis %d" % a1)
        return a1, a2

    def infer_shape(self, data):
        if len(data) == 0:
            raise MXNetError("diag: input must be at least 1-D")
        if len(data) == 1:
            n = data[0] + abs(self.k)
            return [data], [(n, n)]
        a1, a2 = self._axes(len(data))
        rows, _ = _diag_positions(data[a1], data[a2], self.k)
        if len(rows) == 0:
            raise MXNetError("diag: diagonal k=%d is empty for input shape %s" % (self.k, fmt(data)))
        rest = tuple(d for i, d in enumerate(data) if i not in (a1, a2))
        return [data], [rest + (len(rows),)]

    def lower(self, g, data):
        shape = tuple(g.shape(data))
        if len(shape) == 1:
            n = shape[0] + abs(self.k)
            rows, cols = _diag_positions(n, n, self.k)
            index = np.zeros((n, n), np.int64)
            mask = np.zeros((n, n), np.dtype(g.dtype(data)))
            index[rows, cols] = np.arange(len(rows))
            mask[rows, cols] = 1
            return g.Mul(g.Gather(data, g.const(index), axis=0), g.const(mask))
        a1, a2 = self._axes(len(shape))
        rest = [i for i in range(len(shape)) if i not in (a1, a2)]
        moved = g.Transpose(data, perm=rest + [a1, a2])
        flat = g.Reshape(moved, g.int64s([shape[i] for i in rest] + [shape[a1] * shape[a2]]))
        rows, cols = _diag_positions(shape[a1], shape[a2], self.k)
        return g.Gather(flat, g.const((rows * shape[a2] + cols).astype(np.int64)), axis=len(rest))


@register
class batch_take(OpDef):
    """out[i] = a[i, indices[i]] with a viewed as (indices.size, a.shape[-1]); indices clipped to the row.
    Mirrors MXNet batch_take."""
    inputs = ("a", "indices")

    def infer_shape(self, a, indices):
        return [a, indices], [tuple(indices)]

    def infer_type(self, a, indices):
        return [a, indices], [a]

    def lower(self, g, a, indices):
        shape, index_shape = tuple(g.shape(a)), tuple(g.shape(indices))
        width = shape[-1]
        rows = int(np.prod(index_shape))
        index = g.Clip(_int64(g, indices), g.scalar(0, np.int64), g.scalar(width - 1, np.int64))
        table = g.Reshape(a, g.int64s([rows, width]))
        picked = g.GatherElements(table, g.Reshape(index, g.int64s([rows, 1])), axis=1)
        return g.Reshape(picked, g.int64s(list(index_shape)))


@register
class scatter_nd(OpDef):
    """out = zeros(shape); out[indices[:, i]] = data[i]: indices (M, ...) address the first M axes of out.
    Mirrors MXNet scatter_nd (duplicate indices: one of the values wins)."""
    inputs = ("data", "indices")
    shape: Shape = param(doc="Shape of output.")

    def infer_shape(self, data, indices):
        m = indices[0]
        expected = tuple(indices[1:]) + tuple(self.shape[m:])
        if tuple(data) != expected:
            raise MXNetError("scatter_nd: data has shape %s, expected %s from indices %s and shape %s"
                             % (fmt(data), fmt(expected), fmt(indices), fmt(self.shape)))
        return [data, indices], [tuple(self.shape)]

    def infer_type(self, data, indices):
        return [data, indices], [data]

    def lower(self, g, data, indices):
        ndim = len(g.shape(indices))
        index = g.Transpose(_int64(g, indices), perm=list(range(1, ndim)) + [0])
        zeros = g.ConstantOfShape(g.int64s(list(self.shape)), value=np.zeros(1, np.dtype(g.dtype(data))))
        return g.ScatterND(zeros, index, data)


def _strides(shape):
    strides = np.ones(len(shape), np.int64)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides


@register
class _ravel_multi_index(OpDef):
    """out[...] = sum_j data[j, ...] * stride_j for the C-order strides of `shape`. Mirrors MXNet
    _ravel_multi_index (mx.nd.ravel_multi_index)."""
    aliases = ("ravel_multi_index",)
    differentiable = False
    shape: typing.Optional[Shape] = param(None, doc="Shape of the array into which the multi-indices apply.")

    def infer_shape(self, data):
        if not self.shape:
            raise MXNetError("Empty shape parameter for ravel operator.")
        if len(data) != 2 or data[0] != len(self.shape):
            raise MXNetError("_ravel_multi_index: data has shape %s; it must be (len(shape), N) = (%d, N)"
                             % (fmt(data), len(self.shape)))
        return [data], [(data[1],)]

    def lower(self, g, data):
        ndim = len(g.shape(data))
        strides = _strides(self.shape).astype(np.dtype(g.dtype(data))).reshape((-1,) + (1,) * (ndim - 1))
        return g.ReduceSum(g.Mul(data, g.const(strides)), g.int64s([0]), keepdims=0)


@register
class _unravel_index(OpDef):
    """out[j, ...] = (data // stride_j) % shape[j]: the multi-index of each flat index in `shape`. Mirrors MXNet
    _unravel_index (mx.nd.unravel_index)."""
    aliases = ("unravel_index",)
    differentiable = False
    shape: typing.Optional[Shape] = param(None, doc="Shape of the array into which the multi-indices apply.")

    def infer_shape(self, data):
        if not self.shape:
            raise MXNetError("Empty shape parameter for unravel operator.")
        if len(data) != 1:      # MXNet reads N-D data in a layout of its own; onnxsym takes the documented 1-D form
            raise MXNetError("_unravel_index: data must be 1-D (flat indices), got shape %s" % fmt(data))
        return [data], [(len(self.shape), data[0])]

    def lower(self, g, data):
        dtype = np.dtype(g.dtype(data))
        ndim = len(g.shape(data))
        column = (-1,) + (1,) * ndim
        strides = g.const(_strides(self.shape).astype(dtype).reshape(column))
        sizes = np.array(self.shape).astype(dtype)
        if self.shape[0] == -1:     # a leading -1 (MXNet: any size): the first coordinate is the whole quotient
            sizes[0] = np.inf if dtype.kind == "f" else np.iinfo(dtype).max
        sizes = g.const(sizes.reshape(column))
        expanded = g.Unsqueeze(data, g.int64s([0]))
        quotient = g.Div(expanded, strides)
        if dtype.kind == "f":
            quotient = g.Floor(quotient)
        return g.Mod(quotient, sizes, fmod=1 if dtype.kind == "f" else 0)


@register
class _onehot_encode(OpDef):
    """out[i, j] = 1 if j == lhs[i] else 0, of rhs's shape and dtype (rhs's values unused). Mirrors MXNet
    _onehot_encode (mx.nd.onehot_encode)."""
    inputs = ("lhs", "rhs")
    differentiable = False

    def infer_shape(self, lhs, rhs):
        if len(rhs) != 2 or tuple(lhs) != (rhs[0],):
            raise MXNetError("_onehot_encode: lhs %s must be (N,) and rhs (N, depth), got rhs %s"
                             % (fmt(lhs), fmt(rhs)))
        return [lhs, rhs], [tuple(rhs)]

    def infer_type(self, lhs, rhs):
        for value in (lhs, rhs):
            if value is not None and np.dtype(value) != np.float32:
                raise MXNetError("one_hot_encode only support float32 as input/output")
        return [lhs, rhs], [rhs]

    def lower(self, g, lhs, rhs):
        n, depth = g.shape(rhs)
        index = g.Unsqueeze(_int64(g, lhs), g.int64s([1]))
        hit = g.Equal(index, g.const(np.arange(depth, dtype=np.int64).reshape(1, depth)))
        return g.cast(hit, g.dtype(rhs))
