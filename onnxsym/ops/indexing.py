"""Products, gathers, searches and sequence ops: dot, batch_dot, Embedding, take, pick, gather_nd,
one_hot, where, argmax/argmin/argmax_channel, topk, sort, argsort, SequenceMask/SequenceLast/SequenceReverse.

MXNet 1.x passes indices as floats. Lowerings cast them to int64 (truncating toward zero, like the C++
`static_cast`) and clip or wrap them explicitly, because ONNX Gather reads negative indices from the end and fails
on out-of-range ones. Gradients flow only through ops ORT differentiates correctly: Gemm, MatMul, Mul, ReduceSum,
Gather*, TopK, Where (unbroadcast), Reshape, Transpose, Expand.
"""
import math
from typing import Optional

import numpy as np

from .._shapes import fmt, is_complete, merge, merge_all, partial_rule
from ..base import MXNetError
from ..lower.builder import onnx_dtype
from .params import Dtype, param
from .registry import OpDef, register

_INDEX_DTYPES = ("uint8", "int32", "int64", "float16", "float32", "float64")


# ---------------------------------------------------------------- helpers shared by the lowering bodies
def _prod(dims):
    return int(math.prod(dims))


def _axis(op, axis, ndim):
    """`axis` normalized into [0, ndim); MXNetError naming the op when out of range."""
    if not -ndim <= axis < max(ndim, 1):
        raise MXNetError("%s: axis %d is out of range for an input with %d dimensions" % (op.op_name, axis, ndim))
    return axis % max(ndim, 1)


def _reshape(g, value, old, new):
    return value if tuple(old) == tuple(new) else g.Reshape(value, g.int64s(new))


def _index(g, value):
    """Float or integer indices as int64, truncated toward zero (MXNet's static_cast<index_t>)."""
    return g.cast(value, np.int64)


def _clip_index(g, index, size):
    return g.Clip(index, g.scalar(0, np.int64), g.scalar(size - 1, np.int64))


def _wrap_index(g, index, size):
    # Integer Mod with fmod=0 takes the divisor's sign: the result lies in [0, size) like Python's %.
    return g.Mod(index, g.scalar(size, np.int64))


def _fix_index(g, index, size, mode):
    """Indices clipped or wrapped into [0, size); mode 'raise' leaves the bounds check to ONNX Gather, with
    negative indices moved below -size: MXNet's valid range there is [0, size), where Gather would wrap them."""
    if mode == "clip":
        return _clip_index(g, index, size)
    if mode == "wrap":
        return _wrap_index(g, index, size)
    return g.Where(g.Less(index, g.scalar(0, np.int64)), g.Sub(index, g.scalar(size, np.int64)), index)


def _full(g, value, dtype, shape):
    """A constant broadcast to `shape` with Expand (Where branches must not broadcast: ORT gradient bug)."""
    return g.Expand(g.scalar(value, dtype), g.int64s(shape))


def _swap_last(g, value, ndim):
    perm = list(range(ndim))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return g.Transpose(value, perm=perm)


def _reduce_axis_shape(shape, axis, keepdims):
    """MXNet's ReduceAxisShapeImpl: a global reduction (or a 1-D input) gives (1,) or all ones."""
    if axis is None or len(shape) == 1:
        return (1,) * len(shape) if keepdims else (1,)
    axis %= len(shape)
    if keepdims:
        return shape[:axis] + (1,) + shape[axis + 1:]
    return shape[:axis] + shape[axis + 1:]


# ---------------------------------------------------------------- matrix products
def _dot_view(shape, contract_first):
    """(kept dims, contracted size) of one dot operand: MXNet views N-D operands as matrices."""
    if len(shape) == 1:
        return (), shape[0]
    return (tuple(shape[1:]), shape[0]) if contract_first else (tuple(shape[:-1]), shape[-1])


@register
class dot(OpDef):
    """out = sum_k lhs[..., k] * rhs[k, ...] (transposes contract the other end). Mirrors MXNet dot-inl.h DotShape."""
    float_only = True       # MXNet 1.9.1 on int32: "dot only supports float32/float64/float16 outputs"
    transpose_a: bool = param(False, doc="If true then transpose the first input before dot.")
    transpose_b: bool = param(False, doc="If true then transpose the second input before dot.")
    forward_stype: Optional[str] = param(None, choices=("default", "row_sparse", "csr"),
                                         doc="The desired storage type of the forward output (ignored: dense).")
    inputs = ("lhs", "rhs")
    fluent = ("dot",)

    @partial_rule
    def infer_shape(self, lhs, rhs, out_shapes=None):
        # MXNet's DotShape: both ranks must be known; unknown kept dimensions stay unknown in the output
        if lhs is None or rhs is None:
            return None
        if not lhs or not rhs:
            raise MXNetError("dot: scalar tensor is not supported by this operator (lhs %s, rhs %s)"
                             % (fmt(lhs), fmt(rhs)))
        if len(lhs) == 1 and len(rhs) == 1 and (self.transpose_a or self.transpose_b):
            raise MXNetError("dot: cannot transpose vectors (lhs %s, rhs %s)" % (fmt(lhs), fmt(rhs)))
        lkeep, lk = _dot_view(lhs, self.transpose_a)
        rkeep, rk = _dot_view(rhs, not self.transpose_b)
        if lk is not None and rk is not None and lk != rk:
            raise MXNetError("dot shape error: lhs %s X rhs %s (transpose_a=%s, transpose_b=%s)"
                             % (fmt(lhs), fmt(rhs), self.transpose_a, self.transpose_b))
        return [lhs, rhs], [(lkeep + rkeep) or (1,)]

    def lower(self, g, lhs, rhs):
        lshape, rshape = g.shape(lhs), g.shape(rhs)
        lkeep, k = _dot_view(lshape, self.transpose_a)
        rkeep, _ = _dot_view(rshape, not self.transpose_b)
        m, n = _prod(lkeep), _prod(rkeep)
        trans_a = self.transpose_a and len(lshape) > 1
        trans_b = self.transpose_b and len(rshape) > 1
        a = _reshape(g, lhs, lshape, (k, m) if trans_a else (m, k))
        b = _reshape(g, rhs, rshape, (n, k) if trans_b else (k, n))
        out = g.Gemm(a, b, transA=int(trans_a), transB=int(trans_b))
        return _reshape(g, out, (m, n), (lkeep + rkeep) or (1,))


def _batch_matmul_shape(op, lhs, rhs, min_ndim):
    """Output shape of a batched (..., M, K) x (..., K, N) product with op.transpose_a/b."""
    if len(lhs) < min_ndim or len(lhs) != len(rhs):
        raise MXNetError("%s: lhs %s and rhs %s must have the same number (>= %d) of dimensions"
                         % (op.op_name, fmt(lhs), fmt(rhs), min_ndim))
    if lhs[:-2] != rhs[:-2]:
        raise MXNetError("%s shape error (the leading batch dimensions must be equal): lhs %s X rhs %s"
                         % (op.op_name, fmt(lhs), fmt(rhs)))
    m, lk = (lhs[-1], lhs[-2]) if op.transpose_a else (lhs[-2], lhs[-1])
    rk, n = (rhs[-1], rhs[-2]) if op.transpose_b else (rhs[-2], rhs[-1])
    if lk != rk:
        raise MXNetError("%s shape error (shape mismatch): lhs %s X rhs %s transpose_a=%s transpose_b=%s"
                         % (op.op_name, fmt(lhs), fmt(rhs), op.transpose_a, op.transpose_b))
    return tuple(lhs[:-2]) + (m, n)


# Axes to unsqueeze in A and B, and the axis to sum, for a batched non-float32 product (see batch_matmul).
_CONTRACTIONS = {(False, False): (-1, -3, -2),     # (.., M, K, 1) * (.., 1, K, N)
                 (True, False): (-1, -2, -3),      # (.., K, M, 1) * (.., K, 1, N)
                 (False, True): (-2, -3, -1)}      # (.., M, 1, K) * (.., 1, N, K)


def batch_matmul(g, lhs, rhs, ta, tb, ndim, dtype):
    """op(lhs) @ op(rhs) over the last two axes (op transposes when ta / tb)."""
    if ndim == 2:
        return g.Gemm(lhs, rhs, transA=int(ta), transB=int(tb))
    if np.dtype(dtype) == np.float32:
        return g.MatMul(_swap_last(g, lhs, ndim) if ta else lhs, _swap_last(g, rhs, ndim) if tb else rhs)
    # ORT 1.19 has only float32 kernels for com.microsoft FusedMatMul, which both its Transpose -> MatMul fusion
    # and its batched MatMul gradient emit: contract with a broadcast Mul and ReduceSum instead.
    if ta and tb:                                   # A^T B^T = (B A)^T
        return _swap_last(g, batch_matmul(g, rhs, lhs, False, False, ndim, dtype), ndim)
    a_axis, b_axis, sum_axis = _CONTRACTIONS[ta, tb]
    prod = g.Mul(g.Unsqueeze(lhs, g.int64s([a_axis])), g.Unsqueeze(rhs, g.int64s([b_axis])))
    return g.ReduceSum(prod, g.int64s([sum_axis]), keepdims=0)


@register
class batch_dot(OpDef):
    """out[b] = op(lhs[b]) @ op(rhs[b]) over leading batch dims (N >= 3). Mirrors MXNet dot-inl.h BatchDotShape."""
    float_only = True       # MXNet 1.9.1 on int32: "dot only supports float32/float64 for CPU"
    transpose_a: bool = param(False, doc="If true then transpose the first input before dot.")
    transpose_b: bool = param(False, doc="If true then transpose the second input before dot.")
    forward_stype: Optional[str] = param(None, choices=("default", "row_sparse", "csr"),
                                         doc="The desired storage type of the forward output (ignored: dense).")
    inputs = ("lhs", "rhs")

    @partial_rule
    def infer_shape(self, lhs, rhs, out_shapes=None):
        # MXNet's BatchDotShape: nothing until both contracted dimensions are known; batch dimensions that are
        # unknown on one side are taken from the other (MXNet 1.9.1 calls that a mismatch)
        if lhs is None or rhs is None:
            return None
        if len(lhs) >= 3 and len(lhs) == len(rhs):
            lk = lhs[-2] if self.transpose_a else lhs[-1]
            rk = rhs[-1] if self.transpose_b else rhs[-2]
            if lk is None or rk is None:
                return None
            try:
                batch = merge(tuple(lhs[:-2]), tuple(rhs[:-2]))
            except MXNetError:
                batch = None
            if batch is not None:
                lhs, rhs = batch + tuple(lhs[-2:]), batch + tuple(rhs[-2:])
        return [lhs, rhs], [_batch_matmul_shape(self, lhs, rhs, 3)]

    def lower(self, g, lhs, rhs):
        return batch_matmul(g, lhs, rhs, self.transpose_a, self.transpose_b, len(g.shape(lhs)), g.dtype(lhs))


# ---------------------------------------------------------------- gathers
@register
class Embedding(OpDef):
    """out[..., :] = weight[clip(int(data[...]), 0, input_dim - 1), :]. Mirrors MXNet indexing_op.h Embedding."""
    input_dim: int = param(min=1, doc="Vocabulary size of the input indices.")
    output_dim: int = param(min=1, doc="Dimension of the embedding vectors.")
    dtype: Dtype = param("float32", doc="Data type of weight.")
    sparse_grad: bool = param(False, doc="Compute a row_sparse weight gradient (an Executor binds it so; values "
                                         "unchanged).")
    inputs = ("data", "weight")

    @partial_rule
    def infer_shape(self, data, weight=None, out_shapes=None):
        # forwards only, as MXNet's EmbeddingOpShape (weight is decided once data's rank is known)
        if data is None:
            return None
        return [data, (self.input_dim, self.output_dim)], [tuple(data) + (self.output_dim,)]

    def infer_type(self, data, weight=None):
        dtype = weight if weight is not None else np.dtype(self.dtype)
        return [data, dtype], [dtype]

    def lower(self, g, data, weight):
        return g.Gather(weight, _clip_index(g, _index(g, data), self.input_dim), axis=0)


@register
class take(OpDef):
    """out = a[:, ..., indices, ...] along `axis`, indices clipped or wrapped. Mirrors MXNet indexing_op.h take."""
    axis: int = param(0, doc="The axis of input array to be taken.")
    mode: str = param("clip", choices=("raise", "wrap", "clip"),
                      doc="How out-of-bound indices behave: clip to the range, wrap around, or raise (ONNX "
                          "Gather's own bounds check, which also accepts negative indices down to -size).")
    inputs = ("a", "indices")
    fluent = ("take",)

    def infer_shape(self, a, indices):
        if a is None or indices is None:
            return None
        axis = _axis(self, self.axis, len(a))
        return [a, indices], [tuple(a[:axis]) + tuple(indices) + tuple(a[axis + 1:])]

    def infer_type(self, a, indices):
        return [a, indices], [a]

    def lower(self, g, a, indices):
        shape = g.shape(a)
        axis = _axis(self, self.axis, len(shape))
        return g.Gather(a, _fix_index(g, _index(g, indices), shape[axis], self.mode), axis=axis)


@register
class pick(OpDef):
    """out[i, j] = data[i, index[i, j], j] along `axis`. Mirrors MXNet broadcast_reduce_op.h pick."""
    axis: Optional[int] = param(-1, doc="The axis to pick the elements from (None is not supported by MXNet).")
    keepdims: bool = param(False, doc="If true, the picked axis is left in the result with size one.")
    mode: str = param("clip", choices=("wrap", "clip"), doc="How out-of-bound indices behave: clip or wrap.")
    aliases = ("choose_element_0index",)
    inputs = ("data", "index")
    fluent = ("pick",)

    @partial_rule
    def infer_shape(self, data, index, out_shapes=None):
        # forwards only, as MXNet's PickOpShape; unknown dimensions pass through
        if data is None:
            return None
        if self.axis is None:
            raise MXNetError("pick: axis=None is not supported by pick yet. Must specify an axis.")
        _axis(self, self.axis, len(data))
        out = _reduce_axis_shape(tuple(data), self.axis, self.keepdims)
        if index is not None:
            index = _reduce_axis_shape(tuple(data), self.axis, len(index) == len(data))
        return [data, index], [out]

    def infer_type(self, data, index):
        return [data, index], [data]

    def lower(self, g, data, index):
        shape = g.shape(data)
        axis = _axis(self, self.axis, len(shape))
        full = _reduce_axis_shape(shape, axis, True)
        idx = _reshape(g, _fix_index(g, _index(g, index), shape[axis], self.mode), g.shape(index), full)
        return _reshape(g, g.GatherElements(data, idx, axis=axis), full,
                        _reduce_axis_shape(shape, axis, self.keepdims))


@register
class gather_nd(OpDef):
    """out[y...] = data[indices[0, y...], ..., indices[M-1, y...]]. Mirrors MXNet indexing_op.h gather_nd."""
    inputs = ("data", "indices")

    def infer_shape(self, data, indices):
        if data is None or indices is None:
            return None
        if len(indices) < 2 or indices[0] > len(data):
            raise MXNetError("gather_nd: indices %s must have at least 2 dimensions and at most %d (the rank of "
                             "data %s) rows" % (tuple(indices), len(data), tuple(data)))
        return [data, indices], [tuple(indices[1:]) + tuple(data[indices[0]:])]

    def infer_type(self, data, indices):
        return [data, indices], [data]

    def lower(self, g, data, indices):
        # MXNet puts the coordinate axis first, ONNX GatherND last.
        ndim = len(g.shape(indices))
        return g.GatherND(data, g.Transpose(_index(g, indices), perm=list(range(1, ndim)) + [0]))


@register
class one_hot(OpDef):
    """out[..., j] = on_value if int(indices[...]) == j else off_value. Mirrors MXNet indexing_op.h one_hot."""
    depth: int = param(min=0, doc="Depth of the one hot dimension.")
    on_value: float = param(1.0, doc="The value assigned to the locations represented by indices.")
    off_value: float = param(0.0, doc="The value assigned to the locations not represented by indices.")
    dtype: Dtype = param("float32", doc="DType of the output.")
    inputs = ("indices",)
    fluent = ("one_hot",)
    differentiable = False

    def infer_shape(self, indices):
        # complete shapes only, as MXNet's OneHotOpShape
        return None if indices is None else ([indices], [tuple(indices) + (self.depth,)])

    def infer_type(self, indices):
        return [indices], [np.dtype(self.dtype)]

    def lower(self, g, indices):
        # Compare with range(depth) instead of ONNX OneHot, which would wrap negative indices.
        shape = tuple(g.shape(indices)) + (self.depth,)
        hit = g.Equal(g.Unsqueeze(_index(g, indices), g.int64s([-1])), g.const(np.arange(self.depth, dtype=np.int64)))
        values = [np.asarray(v).astype(self.dtype) for v in (self.on_value, self.off_value)]
        return g.Where(hit, *[_full(g, v, self.dtype, shape) for v in values])


@register
class where(OpDef):
    """out = x where condition != 0 else y; a 1-D condition selects rows. Mirrors MXNet control_flow_op.h."""
    inputs = ("condition", "x", "y")

    @partial_rule
    def infer_shape(self, condition, x, y, out_shapes=None):
        # MXNet's WhereOpShape: nothing until condition is complete; then x, y and the output share one shape
        # (merged both ways), which a same-rank condition joins
        if not is_complete(condition):
            return None
        out = out_shapes[0] if out_shapes else None
        try:
            shape = merge_all([x, y, out])
        except MXNetError:
            raise MXNetError("where: x %s must have the same shape as y %s" % (fmt(x), fmt(y))) from None
        if shape is None:
            return None
        if len(condition) == len(shape):
            try:
                shape = merge(shape, tuple(condition))
            except MXNetError:
                shape = None
        elif not (len(condition) == 1 and len(shape) > 1 and shape[0] in (None, condition[0])):
            shape = None
        if shape is None:
            known = merge_all([x, y, out])
            raise MXNetError("where: condition %s must have the shape of x %s or be a vector of length %s"
                             % (tuple(condition), fmt(known), (known[0] or 0) if known else 1))
        if len(condition) != len(shape):
            shape = (condition[0],) + tuple(shape[1:])
            return [condition, shape, shape], [shape]
        return [shape, shape, shape], [shape]

    def infer_type(self, condition, x, y):
        dtype = x if x is not None else y
        return [condition, dtype, dtype], [dtype]

    def lower(self, g, condition, x, y):
        cshape, shape = g.shape(condition), g.shape(x)
        cond = g.Not(g.Equal(condition, g.scalar(0, g.dtype(condition))))
        if tuple(cshape) != tuple(shape):
            # x and y already have the output shape; only the row condition needs broadcasting.
            cond = g.Expand(_reshape(g, cond, cshape, (shape[0],) + (1,) * (len(shape) - 1)), g.int64s(shape))
        return g.Where(cond, x, y)


# ---------------------------------------------------------------- searches and sorting
class _SearchAxis(OpDef):
    """Index of the extreme value along `axis` (of the flattened input when None), in the input dtype."""
    onnx_op = ""
    differentiable = False

    def infer_shape(self, data):
        if data is None:
            return None
        if self.axis is not None:
            _axis(self, self.axis, len(data))
        return [data], [_reduce_axis_shape(tuple(data), self.axis, self.keepdims)]

    def lower(self, g, data):
        shape = g.shape(data)
        if self.axis is None:
            flat, axis = g.Reshape(data, g.int64s([-1])), 0
        else:
            flat, axis = data, _axis(self, self.axis, len(shape))
        index = getattr(g, self.onnx_op)(flat, axis=axis, keepdims=1)
        if np.issubdtype(g.dtype(data), np.floating):
            # ORT's ArgMax/ArgMin skip NaN; MXNet's (as numpy's) give the first NaN's position
            nan = g.Cast(g.IsNaN(flat), to=onnx_dtype(np.int32))
            first_nan = g.ArgMax(nan, axis=axis, keepdims=1)
            index = g.Where(g.Greater(g.ReduceMax(nan, axes=[axis], keepdims=1), g.scalar(0, np.int32)), first_nan,
                            index)
        out = g.Reshape(index, g.int64s(_reduce_axis_shape(shape, self.axis, self.keepdims)))
        return g.cast(out, g.dtype(data))


@register
class argmax(_SearchAxis):
    """out = argmax(data, axis) as data's dtype (first occurrence). Mirrors MXNet broadcast_reduce_op_index.cc."""
    axis: Optional[int] = param(None, doc="The axis along which to search; None searches the flattened input.")
    keepdims: bool = param(False, doc="If true, the reduced axis is left in the result with size one.")
    onnx_op = "ArgMax"
    fluent = ("argmax",)


@register
class argmin(_SearchAxis):
    """out = argmin(data, axis) as data's dtype (first occurrence). Mirrors MXNet broadcast_reduce_op_index.cc."""
    axis: Optional[int] = param(None, doc="The axis along which to search; None searches the flattened input.")
    keepdims: bool = param(False, doc="If true, the reduced axis is left in the result with size one.")
    onnx_op = "ArgMin"
    fluent = ("argmin",)


@register
class argmax_channel(_SearchAxis):
    """out = argmax(data, axis=1) as data's dtype. Mirrors MXNet broadcast_reduce_op_index.cc (legacy)."""
    axis = 1
    keepdims = False
    onnx_op = "ArgMax"
    fluent = ("argmax_channel",)


def _top(op, g, data, k, largest):
    """TopK along op.axis (of the flattened input when None): (values, int64 indices, axis, searched shape)."""
    shape = tuple(g.shape(data))
    if op.axis is None:
        data, shape, axis = g.Reshape(data, g.int64s([-1])), (_prod(shape),), 0
    else:
        axis = _axis(op, op.axis, len(shape))
    k = k if k > 0 else shape[axis]
    values, indices = g.TopK(data, g.int64s([k]), axis=axis, largest=int(largest), sorted=1, _outputs=2)
    return values, indices, axis, shape


def _sorted_shape(op, data, k):
    """Output shape of topk/sort (values or indices), checking k like MXNet's ParseTopKParam."""
    if op.axis is None:
        size, shape, axis = _prod(data), (_prod(data),), 0
    else:
        axis = _axis(op, op.axis, len(data))
        size, shape = data[axis], tuple(data)
    k = k if k > 0 else size
    if not 1 <= k <= size:
        raise MXNetError("%s: k must be smaller than %d, got k = %d (input %s)" % (op.op_name, size, k, tuple(data)))
    return shape[:axis] + (k,) + shape[axis + 1:]


_HIDDEN_INDEX = np.dtype(np.int32)     # dtype of the hidden index output of sort / topk(ret_typ='value')


@register
class topk(OpDef):
    """The k largest (smallest with is_ascend) entries along `axis`: values, indices, both or a 0/1 mask.
    Mirrors MXNet ordering_op-inl.h. Only the values output carries a gradient (indices and mask have none)."""
    axis: Optional[int] = param(-1, doc="Axis along which to choose the top k indices; None flattens the input.")
    k: int = param(1, doc="Number of top elements to select; k < 1 selects all (a full sort).")
    ret_typ: str = param("indices", choices=("value", "indices", "mask", "both"),
                         doc="Return the values, the indices, both (values, indices) or a 0/1 mask.")
    is_ascend: bool = param(False, doc="Whether to choose the k smallest (True) or largest (False) elements.")
    dtype: Dtype = param("float32", choices=_INDEX_DTYPES, doc="DType of the output indices.")
    fluent = ("topk",)

    def output_names(self):
        return ("output",) if self.ret_typ in ("indices", "mask") else ("output0", "output1")

    def num_visible_outputs(self):
        return 2 if self.ret_typ == "both" else 1

    def infer_shape(self, data):
        if data is None:
            return None
        out = _sorted_shape(self, data, self.k)
        return [data], [tuple(data) if self.ret_typ == "mask" else out] * self.count_outputs()

    def infer_type(self, data):
        index = np.dtype(self.dtype)
        return [data], {"indices": [index], "mask": [data], "value": [data, _HIDDEN_INDEX],
                        "both": [data, index]}[self.ret_typ]

    def lower(self, g, data):
        values, indices, axis, shape = _top(self, g, data, self.k, not self.is_ascend)
        if self.ret_typ == "mask":
            dtype, kshape = g.dtype(data), _sorted_shape(self, g.shape(data), self.k)
            mask = g.ScatterElements(_full(g, 0, dtype, shape), indices, _full(g, 1, dtype, kshape), axis=axis)
            return _reshape(g, mask, shape, g.shape(data))
        index = g.cast(indices, self.dtype)
        if self.ret_typ == "indices":
            return index
        if self.ret_typ == "value":
            return values, g.cast(indices, _HIDDEN_INDEX)
        return values, index


@register
class sort(OpDef):
    """out = data sorted along `axis` (flattened when None). Mirrors MXNet ordering_op.cc sort."""
    axis: Optional[int] = param(-1, doc="Axis along which to sort; None sorts the flattened input.")
    is_ascend: bool = param(True, doc="Whether to sort in ascending or descending order.")
    outputs = ("output0", "output1")      # MXNet's hidden second output holds the indices
    fluent = ("sort",)

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data):
        return None if data is None else ([data], [_sorted_shape(self, data, 0)] * 2)

    def infer_type(self, data):
        return [data], [data, _HIDDEN_INDEX]

    def lower(self, g, data):
        values, indices, _, _ = _top(self, g, data, 0, not self.is_ascend)
        return values, g.cast(indices, _HIDDEN_INDEX)


@register
class argsort(OpDef):
    """out = indices that sort data along `axis` (flattened when None), as `dtype`. Mirrors MXNet ordering_op.cc."""
    axis: Optional[int] = param(-1, doc="Axis along which to sort; None sorts the flattened input.")
    is_ascend: bool = param(True, doc="Whether to sort in ascending or descending order.")
    dtype: Dtype = param("float32", choices=_INDEX_DTYPES, doc="DType of the output indices.")
    fluent = ("argsort",)
    differentiable = False

    def infer_shape(self, data):
        return None if data is None else ([data], [_sorted_shape(self, data, 0) if data else (1,)])

    def infer_type(self, data):
        return [data], [np.dtype(self.dtype)]

    def lower(self, g, data):
        _, indices, _, _ = _top(self, g, data, 0, not self.is_ascend)
        return g.cast(indices, self.dtype)


# ---------------------------------------------------------------- sequences ([time, batch, ...] or [batch, time, ...])
class _SequenceOp(OpDef):
    """Shared rules: input `sequence_length` (one length per batch entry) only with use_sequence_length."""
    axes = (0, 1)

    def input_names(self):
        return ("data", "sequence_length") if self.use_sequence_length else ("data",)

    def _batch(self, data):
        if len(data) < 2:
            raise MXNetError("%s: the data array %s must be of rank 2 or greater" % (self.op_name, tuple(data)))
        if self.axis not in self.axes:
            raise MXNetError("%s: axis=%d is not supported (expected one of %s)" % (self.op_name, self.axis, self.axes))
        return data[1 - self.axis]

    def _out_shape(self, data):
        return tuple(data)

    def infer_shape(self, data, sequence_length=None):
        if data is None:
            return None
        ins = [data, (self._batch(data),)]
        return ins[: len(self.input_names())], [self._out_shape(data)]

    def infer_type(self, data, sequence_length=None):
        ins = [data, sequence_length if sequence_length is not None else data]
        return ins[: len(self.input_names())], [data]

    def _steps(self, g, sequence_length, shape):
        """(time index, lengths) as int64 tensors broadcasting to (time, batch) or (batch, time)."""
        time, batch = shape[self.axis], shape[1 - self.axis]
        steps = np.arange(time, dtype=np.int64).reshape((time, 1) if self.axis == 0 else (1, time))
        steps = np.asarray(np.broadcast_to(steps, (time, batch) if self.axis == 0 else (batch, time)), order="C")
        lengths = g.Reshape(_index(g, sequence_length), g.int64s((1, batch) if self.axis == 0 else (batch, 1)))
        return g.const(steps), lengths


def _spread(g, value, shape):
    """A (d0, d1) tensor broadcast over the trailing feature dims of `shape`."""
    return g.Expand(_reshape(g, value, shape[:2], tuple(shape[:2]) + (1,) * (len(shape) - 2)), g.int64s(shape))


@register
class SequenceMask(_SequenceOp):
    """out[t, b] = data[t, b] if t < sequence_length[b] else value. Mirrors MXNet sequence_mask-inl.h."""
    use_sequence_length: bool = param(False, doc="If true, take the extra input `sequence_length`.")
    value: float = param(0.0, doc="The value to be used as a mask.")
    axis: int = param(0, doc="The sequence axis (0 or 1).")

    def lower(self, g, data, sequence_length=None):
        if sequence_length is None:
            return data
        shape = g.shape(data)
        steps, lengths = self._steps(g, sequence_length, shape)
        keep = _spread(g, g.Less(steps, lengths), shape)
        return g.Where(keep, data, _full(g, np.float32(self.value), g.dtype(data), shape))     # (a float param)


@register
class SequenceLast(_SequenceOp):
    """out[b] = data[sequence_length[b] - 1, b] (the last step when not given). Mirrors MXNet sequence_last-inl.h."""
    use_sequence_length: bool = param(False, doc="If true, take the extra input `sequence_length`.")
    axis: int = param(0, doc="The sequence axis (0 or 1).")

    def _out_shape(self, data):
        return tuple(data[: self.axis]) + tuple(data[self.axis + 1:])

    def lower(self, g, data, sequence_length=None):
        shape = tuple(g.shape(data))
        if sequence_length is None:
            last = g.Gather(data, g.int64s([shape[self.axis] - 1]), axis=self.axis)
            return g.Reshape(last, g.int64s(self._out_shape(shape)))
        last = g.Sub(_index(g, sequence_length), g.scalar(1, np.int64))
        picked = shape[: self.axis] + (1,) + shape[self.axis + 1:]
        index = g.Expand(g.Reshape(last, g.int64s(picked[:2] + (1,) * (len(shape) - 2))), g.int64s(picked))
        return g.Reshape(g.GatherElements(data, index, axis=self.axis), g.int64s(self._out_shape(shape)))


@register
class SequenceReverse(_SequenceOp):
    """out[t, b] = data[L_b - 1 - t, b] for t < L_b, data[t, b] after. Mirrors MXNet sequence_reverse-inl.h."""
    use_sequence_length: bool = param(False, doc="If true, take the extra input `sequence_length`.")
    axis: int = param(0, doc="The sequence axis (only 0 is supported).")
    axes = (0,)

    def lower(self, g, data, sequence_length=None):
        shape = g.shape(data)
        if sequence_length is None:     # Gather, not a negative-step Slice (ORT has no gradient for those)
            return g.Gather(data, g.const(np.arange(shape[0] - 1, -1, -1, dtype=np.int64)), axis=0)
        steps, lengths = self._steps(g, sequence_length, shape)
        source = g.Where(g.Less(steps, lengths), g.Sub(g.Sub(lengths, g.scalar(1, np.int64)), steps), steps)
        return g.GatherElements(data, _spread(g, source, shape), axis=0)
