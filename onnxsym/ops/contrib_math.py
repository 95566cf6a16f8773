"""Small contrib and utility ops of MXNet 1.9.1: _contrib_quadratic, _contrib_gradientmultiplier,
_contrib_div_sqrt_dim, _contrib_index_array, _contrib_index_copy, _contrib_allclose, all_finite,
multi_all_finite and _identity_with_attr_like_rhs (semantics of src/operator/contrib/{quadratic_op,gradient_multiplier_op,transformer,index_array,
index_copy,allclose_op}* and all_finite*)."""
import typing

import numpy as np

from .._shapes import elementwise, partial_rule, same_shape_rule
from ..base import MXNetError
from .params import Shape, param
from .registry import OpDef, register


@register(name="_contrib_quadratic")
class quadratic(OpDef):
    """a * x^2 + b * x + c elementwise."""
    a: float = param(0.0, doc="Coefficient of the quadratic term.")
    b: float = param(0.0, doc="Coefficient of the linear term.")
    c: float = param(0.0, doc="Constant term.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        dtype = g.dtype(data)
        a, b, c = (g.scalar(np.float32(v), dtype) for v in (self.a, self.b, self.c))     # (C++ floats)
        return g.Add(g.Mul(data, g.Add(g.Mul(a, data), b)), c)


@register(name="_contrib_gradientmultiplier")
class gradientmultiplier(OpDef):
    """Identity forward; the gradient is multiplied by `scalar` (a gradient reversal layer with scalar < 0)."""
    aliases = ("_contrib_backward_gradientmultiplier",)
    scalar: float = param(1.0, doc="The gradient is multiplied by this factor.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        out = g.Identity(data)
        g.set_info(out, g.shape(data), g.dtype(data))
        return g.with_gradient(out, lambda: [(data, g.scalar(self.scalar, g.dtype(data)))])


@register(name="_contrib_div_sqrt_dim")
class div_sqrt_dim(OpDef):
    """data / sqrt(data.shape[-1]) (the scaling of dot-product attention)."""
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.Div(data, g.scalar(np.sqrt(g.shape(data)[-1]), g.dtype(data)))


@register(name="_contrib_index_array")
class index_array(OpDef):
    """The index of every element: shape data.shape + (len(axes),), int64; `axes` picks (and orders) the
    coordinates given (default: all axes in order)."""
    axes: typing.Optional[Shape] = param(None, doc="The axes whose coordinates are given (default: all).")
    differentiable = False

    def _axes(self, ndim):
        axes = range(ndim) if self.axes is None else self.axes
        out = []
        for axis in axes:
            if not -ndim <= axis < ndim:
                raise MXNetError("index_array: axis %d out of range for an input of %d dimensions" % (axis, ndim))
            out.append(axis % ndim)
        return out

    def infer_shape(self, data):
        if data is None:
            return None
        return [data], [tuple(data) + (len(self._axes(len(data))),)]

    def infer_type(self, data):
        return [data], [np.dtype(np.int64)]

    def lower(self, g, data):
        shape = tuple(g.shape(data))
        axes = self._axes(len(shape))
        if not shape:       # a 0-d input (NumPy shape semantics): no coordinates
            return g.Identity(g.const(np.zeros((0,), np.int64)))
        grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.int64) for n in shape], indexing="ij"), axis=-1)
        return g.Identity(g.const(np.ascontiguousarray(grid[..., axes])))


@register(name="_contrib_index_copy")
class index_copy(OpDef):
    """old_tensor with the rows index_vector[i] replaced by new_tensor[i]. Gradients: old_tensor's is the head
    with the copied rows zeroed, new_tensor's the head's rows at index_vector."""
    inputs = ("old_tensor", "index_vector", "new_tensor")

    def infer_shape(self, old, index, new):
        if old is None:
            return None
        if index is not None and len(index) != 1:
            raise MXNetError("index_copy: index_vector must be 1-D, got shape %s" % (index,))
        rows = index[0] if index is not None else (new[0] if new is not None else 0)
        if new is not None and tuple(new[1:]) != tuple(old[1:]):
            raise MXNetError("index_copy: new_tensor's shape %s must be (%s, %s)"
                             % (new, rows, ", ".join(map(str, old[1:]))))
        return [old, (rows,), (rows,) + tuple(old[1:])], [old]

    def infer_type(self, old, index, new):
        if old is None:
            return None
        return [old, index or np.dtype(np.int64), old], [old]

    def lower(self, g, old, index, new):
        rows = g.Unsqueeze(g.stop_gradient(g.cast(index, np.int64), np.int64), g.int64s([1]))
        return g.ScatterND(old, rows, new)


def _all_finite_flag(g, values, init_output):
    flag = None
    for value in values:
        dtype = g.dtype(value)
        finite = g.Not(g.Or(g.IsNaN(value), g.IsInf(value))) if dtype != np.float16 else \
            g.Not(g.Or(g.IsNaN(g.cast(value, np.float32)), g.IsInf(g.cast(value, np.float32))))
        ok = g.ReduceMin(g.cast(g.Reshape(finite, g.int64s([-1])), np.int32), keepdims=1)
        flag = ok if flag is None else g.Min(flag, ok)
    return g.cast(flag, np.float32)


@register
class all_finite(OpDef):
    """[1.] when every element of data is finite, else [0.] (float32, shape (1,); the AMP overflow check).
    MXNet leaves the output as it was when init_output is false; a fresh output is 1 here (MXNet: whatever the
    buffer held)."""
    init_output: bool = param(True, doc="Initialize the output to 1.")
    differentiable = False

    def infer_shape(self, data):
        return None if data is None else ([data], [(1,)])

    def infer_type(self, data):
        return [data], [np.dtype(np.float32)]

    def lower(self, g, data):
        return _all_finite_flag(g, [data], self.init_output)


@register
class multi_all_finite(OpDef):
    """all_finite over several arrays: [1.] when every element of every input is finite."""
    num_arrays: int = param(1, min=1, doc="Number of arrays.")
    init_output: bool = param(True, doc="Initialize the output to 1.")
    differentiable = False

    def input_names(self):
        return tuple("arg%d" % i for i in range(self.num_arrays))

    def infer_shape(self, *shapes):
        return list(shapes), [(1,)]

    def infer_type(self, *dtypes):
        return list(dtypes), [np.dtype(np.float32)]

    def lower(self, g, *arrays):
        return _all_finite_flag(g, arrays, self.init_output)


@register(name="_contrib_allclose")
class allclose(OpDef):
    """1 (uint8, shape ()) when |a - b| <= atol + rtol * |b| everywhere (NaNs equal when equal_nan), else 0."""
    inputs = ("a", "b")
    rtol: float = param(1e-05, doc="Relative tolerance.")
    atol: float = param(1e-08, doc="Absolute tolerance.")
    equal_nan: bool = param(True, doc="Whether NaNs in a equal NaNs in b.")
    differentiable = False

    def infer_shape(self, a, b):
        if a is None and b is None:
            return None
        if a is not None and b is not None and tuple(a) != tuple(b):
            raise MXNetError("allclose: a and b must have one shape, got %s and %s" % (a, b))
        return [a or b, a or b], [()]

    def infer_type(self, a, b):
        return [a or b, a or b], [np.dtype(np.uint8)]

    def lower(self, g, a, b):
        dtype = g.dtype(a)
        if dtype == np.float16 or dtype.kind != "f":
            a, b = g.cast(a, np.float32), g.cast(b, np.float32)
            dtype = np.dtype(np.float32)
        # tolerances are float32 attributes in MXNet
        atol, rtol = g.scalar(np.float32(self.atol), dtype), g.scalar(np.float32(self.rtol), dtype)
        close = g.Or(g.Equal(a, b), g.LessOrEqual(g.Abs(g.Sub(a, b)), g.Add(atol, g.Mul(rtol, g.Abs(b)))))
        nan_a, nan_b = g.IsNaN(a), g.IsNaN(b)
        either = g.Or(nan_a, nan_b)
        # where either is NaN: both NaN (equal_nan), else false; elsewhere: close (boolean logic: ORT's Where
        # has no bool kernel)
        nan_case = g.And(nan_a, nan_b) if self.equal_nan else g.And(nan_a, g.Not(nan_a))
        ok = g.Or(g.And(either, nan_case), g.And(g.Not(either), close))
        return g.cast(g.ReduceMin(g.cast(g.Reshape(ok, g.int64s([-1])), np.int32), keepdims=0), np.uint8)



@register
class _identity_with_attr_like_rhs(OpDef):
    """lhs unchanged, with the shape (and dtype) of rhs: a constraint that lets shape inference run backwards
    (lhs, rhs and the output share one shape). rhs takes no gradient."""
    inputs = ("lhs", "rhs")

    @partial_rule
    def infer_shape(self, lhs, rhs, out_shapes=None):
        return elementwise(self, [lhs, rhs], out_shapes)

    def lower(self, g, lhs, rhs):
        return g.Identity(lhs)
