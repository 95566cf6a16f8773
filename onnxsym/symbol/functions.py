"""`mx.sym` functions written in Python in MXNet (python/mxnet/symbol/symbol.py), not generated from an op:
`pow`/`power`, `maximum`, `minimum`, `hypot` (Symbol or number on either side, no broadcasting), and the creation
functions `zeros`, `ones`, `full`, `arange`, `linspace`, `eye`, and `histogram`. Each creates the same op nodes,
with the same attributes and automatic names, as MXNet's."""
from numbers import Number

import numpy as np

from ..ops.shape import split_v2_params
from .symbol import Symbol, create_symbol

__all__ = ["pow", "power", "maximum", "minimum", "hypot", "zeros", "ones", "full", "arange", "linspace", "eye",
           "histogram", "split_v2"]


def _binary(left, right, tensor_op, scalar_op, rscalar_op, numbers_fn):
    if isinstance(left, Symbol) and isinstance(right, Symbol):
        return create_symbol(tensor_op, left, right)
    if isinstance(left, Symbol) and isinstance(right, Number):
        return create_symbol(scalar_op, left, scalar=right)
    if isinstance(left, Number) and isinstance(right, Symbol):
        return create_symbol(rscalar_op, right, scalar=left)
    if isinstance(left, Number) and isinstance(right, Number):
        return numbers_fn(left, right)
    raise TypeError("types (%s, %s) not supported" % (str(type(left)), str(type(right))))


def split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False):
    """ary split along `axis` into `indices_or_sections` (int: that many nearly equal parts; tuple: at those
    indices) (MXNet mx.sym.split_v2)."""
    return create_symbol("_split_v2", ary, **split_v2_params(indices_or_sections, axis, squeeze_axis))


def pow(base, exp):  # noqa: A001  (MXNet's name)
    """base ** exp elementwise; Symbols or numbers, no broadcasting (MXNet mx.sym.pow: _Power, _PowerScalar,
    _RPowerScalar)."""
    return _binary(base, exp, "_Power", "_PowerScalar", "_RPowerScalar", lambda a, b: a ** b)


def power(base, exp):
    """The same as pow (MXNet mx.sym.power)."""
    return pow(base, exp)


def maximum(left, right):
    """Elementwise maximum; Symbols or numbers, no broadcasting (MXNet mx.sym.maximum)."""
    return _binary(left, right, "_Maximum", "_MaximumScalar", "_MaximumScalar",
                   lambda a, b: a if a > b else b)


def minimum(left, right):
    """Elementwise minimum; Symbols or numbers, no broadcasting (MXNet mx.sym.minimum)."""
    return _binary(left, right, "_Minimum", "_MinimumScalar", "_MinimumScalar",
                   lambda a, b: a if a < b else b)


def hypot(left, right):
    """sqrt(left**2 + right**2) elementwise; Symbols or numbers, no broadcasting (MXNet mx.sym.hypot)."""
    return _binary(left, right, "_Hypot", "_HypotScalar", "_HypotScalar", lambda a, b: np.hypot(a, b))


def _dtype(dtype):
    return np.float32 if dtype is None else dtype


def zeros(shape, dtype=None, **kwargs):
    """A Symbol of zeros of `shape` (MXNet mx.sym.zeros; op _zeros, float32 unless `dtype`)."""
    return create_symbol("_zeros", shape=shape, dtype=_dtype(dtype), **kwargs)


def ones(shape, dtype=None, **kwargs):
    """A Symbol of ones of `shape` (MXNet mx.sym.ones; op _ones)."""
    return create_symbol("_ones", shape=shape, dtype=_dtype(dtype), **kwargs)


def full(shape, val, dtype=None, **kwargs):
    """A Symbol of `shape` filled with `val` (MXNet mx.sym.full; op _full)."""
    return create_symbol("_full", shape=shape, dtype=_dtype(dtype), value=float(val), **kwargs)


def arange(start, stop=None, step=1.0, repeat=1, infer_range=False, name=None, dtype=None):
    """Values start, start+step, ... below stop, each `repeat` times (MXNet mx.sym.arange; op _arange)."""
    return create_symbol("_arange", start=start, stop=stop, step=step, repeat=repeat, infer_range=infer_range,
                         name=name, dtype=_dtype(dtype))


def linspace(start, stop, num, endpoint=True, name=None, dtype=None):
    """`num` evenly spaced values over [start, stop] (MXNet mx.sym.linspace; op _linspace)."""
    return create_symbol("_linspace", start=start, stop=stop, num=num, endpoint=endpoint, name=name,
                         dtype=_dtype(dtype))


def eye(N, M=0, k=0, dtype=None, **kwargs):
    """A 2-D Symbol with ones on diagonal k (MXNet mx.sym.eye; op _eye)."""
    return create_symbol("_eye", N, M, k, dtype=_dtype(dtype), **kwargs)


def histogram(a, bins=10, range=None, **kwargs):  # noqa: A002  (MXNet's argument name)
    """(counts, bin_edges) of `a` flattened (MXNet mx.sym.histogram; op _histogram). An int `bins` needs
    `range`; a Symbol gives the bin edges."""
    if isinstance(bins, Symbol):
        return create_symbol("_histogram", data=a, bins=bins, **kwargs)
    if isinstance(bins, int):
        if range is None:
            raise ValueError("null range is not supported in symbol mode")
        return create_symbol("_histogram", data=a, bin_cnt=bins, range=range, **kwargs)
    raise ValueError("bins argument should be either an integer or an NDArray")
