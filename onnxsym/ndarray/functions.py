"""`mx.nd` functions written in Python in MXNet (python/mxnet/ndarray/ndarray.py), not generated from an op:
numpy-style binary functions (`add`, `maximum`, `equal`, ...), `moveaxis`, `onehot_encode`, `eye`, `linspace`,
`histogram`, `split_v2`. Each calls registered ops exactly as MXNet does, so results, dtypes and errors are the ops'."""
import operator

import numpy as np

from ..base import numeric_types
from ..ops.shape import split_v2_params
from ..runtime.imperative import invoke
from ..runtime.ndarray import NDArray, as_ndarray

__all__ = ["add", "subtract", "multiply", "divide", "true_divide", "modulo", "power", "maximum", "minimum",
           "equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal", "logical_and",
           "logical_or", "logical_xor", "moveaxis", "onehot_encode", "eye", "linspace", "histogram", "split_v2"]


def _ufunc_helper(lhs, rhs, fn_array, fn_scalar, lfn_scalar, rfn_scalar=None):
    """MXNet's dispatch: two numbers -> fn_scalar (a Python number); a number and an array -> the `*_scalar` op
    with the number as float (rfn_scalar when the number is on the left, lfn_scalar when the function commutes);
    two arrays -> the broadcast_* op."""
    if isinstance(lhs, numeric_types):
        if isinstance(rhs, numeric_types):
            return fn_scalar(lhs, rhs)
        return invoke(rfn_scalar or lfn_scalar, (rhs, float(lhs)), {})
    if isinstance(rhs, numeric_types):
        return invoke(lfn_scalar, (lhs, float(rhs)), {})
    if isinstance(rhs, NDArray):
        return invoke(fn_array, (lhs, rhs), {})
    raise TypeError("type %s not supported" % str(type(rhs)))


def _ufunc(name, fn_array, fn_scalar, lfn_scalar, rfn_scalar=None, doc=""):
    def function(lhs, rhs):
        return _ufunc_helper(lhs, rhs, fn_array, fn_scalar, lfn_scalar, rfn_scalar)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = ("%s of lhs and rhs, elementwise with broadcasting (MXNet mx.nd.%s).\n\nEach may be an "
                        "NDArray or a number: two numbers give a number, a number and an array the `%s` op, two "
                        "arrays `%s`." % (doc, name, lfn_scalar, fn_array))
    return function


add = _ufunc("add", "broadcast_add", operator.add, "_plus_scalar", doc="Sum")
subtract = _ufunc("subtract", "broadcast_sub", operator.sub, "_minus_scalar", "_rminus_scalar", doc="Difference")
multiply = _ufunc("multiply", "broadcast_mul", operator.mul, "_mul_scalar", doc="Product")
divide = _ufunc("divide", "broadcast_div", operator.truediv, "_div_scalar", "_rdiv_scalar", doc="Quotient")
modulo = _ufunc("modulo", "broadcast_mod", operator.mod, "_mod_scalar", "_rmod_scalar", doc="Remainder")
power = _ufunc("power", "broadcast_power", operator.pow, "_power_scalar", "_rpower_scalar", doc="Power")
maximum = _ufunc("maximum", "broadcast_maximum", lambda x, y: x if x > y else y, "_maximum_scalar", doc="Maximum")
minimum = _ufunc("minimum", "broadcast_minimum", lambda x, y: x if x < y else y, "_minimum_scalar", doc="Minimum")
equal = _ufunc("equal", "broadcast_equal", lambda x, y: 1 if x == y else 0, "_equal_scalar", doc="lhs == rhs")
not_equal = _ufunc("not_equal", "broadcast_not_equal", lambda x, y: 1 if x != y else 0, "_not_equal_scalar",
                   doc="lhs != rhs")
greater = _ufunc("greater", "broadcast_greater", lambda x, y: 1 if x > y else 0, "_greater_scalar",
                 "_lesser_scalar", doc="lhs > rhs")
greater_equal = _ufunc("greater_equal", "broadcast_greater_equal", lambda x, y: 1 if x >= y else 0,
                       "_greater_equal_scalar", "_lesser_equal_scalar", doc="lhs >= rhs")
lesser = _ufunc("lesser", "broadcast_lesser", lambda x, y: 1 if x < y else 0, "_lesser_scalar",
                "_greater_scalar", doc="lhs < rhs")
lesser_equal = _ufunc("lesser_equal", "broadcast_lesser_equal", lambda x, y: 1 if x <= y else 0,
                      "_lesser_equal_scalar", "_greater_equal_scalar", doc="lhs <= rhs")
logical_and = _ufunc("logical_and", "broadcast_logical_and", lambda x, y: 1 if x and y else 0,
                     "_logical_and_scalar", doc="lhs and rhs")
logical_or = _ufunc("logical_or", "broadcast_logical_or", lambda x, y: 1 if x or y else 0, "_logical_or_scalar",
                    doc="lhs or rhs")
logical_xor = _ufunc("logical_xor", "broadcast_logical_xor", lambda x, y: 1 if bool(x) ^ bool(y) else 0,
                     "_logical_xor_scalar", doc="lhs xor rhs")


def true_divide(lhs, rhs):
    """The same as divide (MXNet mx.nd.true_divide)."""
    return divide(lhs, rhs)


def _normalize_axes(axes, ndim, what):
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    out = []
    for axis in axes:
        if not -ndim <= axis < ndim:
            raise ValueError("%s should verify 0 <= %s < tensor.ndim (%d). Got %d" % (what.capitalize(), what,
                                                                                         ndim, axis))
        out.append(int(axis) % ndim)
    if len(set(out)) != len(out):
        raise ValueError("repeated axis in `%s` argument" % what)
    return out


def moveaxis(tensor, source, destination):
    """Move axes `source` to positions `destination`, the others keeping their order (MXNet mx.nd.moveaxis: one
    transpose)."""
    source = _normalize_axes(source, tensor.ndim, "source")
    destination = _normalize_axes(destination, tensor.ndim, "destination")
    if len(source) != len(destination):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    order = [n for n in range(tensor.ndim) if n not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return invoke("transpose", (tensor,), {"axes": tuple(order)})


def onehot_encode(indices, out):
    """One-hot rows of `out` (N, depth) from `indices` (N,), written into `out` and returned (MXNet's deprecated
    mx.nd.onehot_encode; op _onehot_encode)."""
    return invoke("_onehot_encode", (indices, out), {}, out)


def eye(N, M=0, k=0, ctx=None, dtype=None, **kwargs):
    """A 2-D array with ones on diagonal k (MXNet mx.nd.eye; op _eye)."""
    return invoke("_eye", (), dict(kwargs, N=N, M=M, k=k, dtype=np.float32 if dtype is None else dtype), None,
                  ctx=ctx)


def linspace(start, stop, num, endpoint=True, ctx=None, dtype=np.float32):
    """`num` evenly spaced values over [start, stop] (stop excluded unless endpoint; MXNet mx.nd.linspace)."""
    return invoke("_linspace", (), dict(start=start, stop=stop, num=num, endpoint=endpoint, dtype=dtype), None,
                  ctx=ctx)


def split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False):
    """ary split along `axis` into `indices_or_sections` (int: that many nearly equal parts; tuple: at those
    indices), as numpy.split / array_split (MXNet mx.nd.split_v2)."""
    return invoke("_split_v2", (ary,), split_v2_params(indices_or_sections, axis, squeeze_axis))


def histogram(a, bins=10, range=None):  # noqa: A002  (MXNet's argument name)
    """(counts, bin_edges) of `a` flattened (MXNet mx.nd.histogram; op _histogram). `bins` an int needs `range`,
    or numpy computes it as MXNet does; an NDArray of edges gives non-uniform bins."""
    if isinstance(bins, NDArray):
        return invoke("_histogram", (a, bins), {})
    if isinstance(bins, (int, np.integer)):
        if range is None:
            import warnings
            warnings.warn("range is not specified, using numpy's result to ensure consistency with numpy")
            counts, edges = np.histogram(a.asnumpy(), bins=bins)
            return as_ndarray(counts), as_ndarray(edges)
        return invoke("_histogram", (a,), {"bin_cnt": bins, "range": range})
    raise ValueError("bins argument should be either an integer or an NDArray")
