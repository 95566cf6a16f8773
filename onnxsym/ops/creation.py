"""Ops with no inputs that create an array from their attributes: `_zeros`, `_ones`, `_full`, `_arange`, `_eye`,
`_linspace` (MXNet src/operator/tensor/init_op.{h,cc}). `mx.sym.zeros(...)` and friends call them.

Their shape and values depend on attributes only, so the lowering is a ConstantOfShape (fills) or a constant
computed the way MXNet's kernel computes it (ranges, eye). None is differentiable: there is nothing to
differentiate with respect to.
"""
import dataclasses
import math
import typing

import numpy as np

from .._shapes import from_mxnet, merge, partial_rule
from ..base import MXNetError
from .params import Dtype, Shape, param
from .registry import OpDef, register

__all__ = ["arange_values", "linspace_values", "CTX_DOC"]

CTX_DOC = "Context of output, in format [cpu|gpu|cpu_pinned](n). Only used for imperative calls."


class _Creation(OpDef):
    inputs = ()
    differentiable = False

    def out_shape(self):
        raise NotImplementedError

    def infer_shape(self):
        return [], [self.out_shape()]

    def infer_type(self):
        return [], [np.dtype(self.dtype)]


class _Fill(_Creation):
    """A constant array of `shape`; unknown dimensions in it (-1, or 0 outside NumPy shape semantics) are decided
    by the graph around it (mx.sym.ones(shape=(-1, -1)) + an array of known shape), as MXNet's InitShape."""
    _value = 0

    def out_shape(self):
        return tuple(self.shape)

    def fill_value(self):
        return self._value

    @partial_rule
    def infer_shape(self, out_shapes=None):
        shape = from_mxnet(tuple(self.shape)) if (-1 in self.shape or 0 in self.shape) else tuple(self.shape)
        return [], [merge(shape, out_shapes[0] if out_shapes else None)]

    def lower(self, g):
        dtype = np.dtype(self.dtype)
        value = np.array([self.fill_value()]).astype(dtype)
        shape = g.out_shapes[0] if g.out_shapes and g.out_shapes[0] is not None else tuple(self.shape)
        return g.ConstantOfShape(g.int64s(tuple(shape)), value=value)


@dataclasses.dataclass(frozen=True)
class _ConstantFill(_Fill):
    """A fill whose value is the op's own (`_value`): MXNet's parameters shape, ctx, dtype."""
    shape: Shape = param((), doc="The shape of the output")
    ctx: str = param("", doc=CTX_DOC)
    dtype: Dtype = param(Dtype("float32"), doc="Target data type.")


@register
class _zeros(_ConstantFill):
    """out = 0 of `shape` and `dtype`. Mirrors MXNet _zeros (mx.sym.zeros)."""
    _value = 0


@register
class _ones(_ConstantFill):
    """out = 1 of `shape` and `dtype`. Mirrors MXNet _ones (mx.sym.ones)."""
    _value = 1


@register
class _full(_Fill):
    """out = value of `shape` and `dtype`. Mirrors MXNet _full (mx.sym.full)."""
    aliases = ("_npi_full",)
    # value is declared first only because a dataclass puts required fields before defaulted ones
    value: float = param(doc="Value with which to fill newly created tensor")
    shape: Shape = param((), doc="The shape of the output")
    ctx: str = param("", doc=CTX_DOC)
    dtype: Dtype = param(Dtype("float32"), doc="Target data type.")

    def fill_value(self):
        return self.value


def arange_values(start, stop, step, repeat, dtype):
    """MXNet's range kernel: out[i] = start + (i // repeat) * step, start and step cast to the output dtype first
    (integers: C truncation), the length ceil((stop - start) / step) * repeat."""
    dtype = np.dtype(dtype)
    size = int(math.ceil((stop - start) / step) * repeat)
    index = np.arange(size, dtype=np.int64) // repeat
    if dtype.kind in "iub":
        return (int(start) + index * int(step)).astype(dtype)
    return (np.asarray(start).astype(dtype) + index.astype(dtype) * np.asarray(step).astype(dtype)).astype(dtype)


@register
class _arange(_Creation):
    """out[i] = start + (i // repeat) * step for i < ceil((stop - start) / step) * repeat. Mirrors MXNet _arange;
    `stop` None means the interval [0, start)."""
    start: float = param(doc="Start of interval. The interval includes this value. The default start value is 0.")
    stop: typing.Optional[float] = param(None, doc="End of interval. The interval does not include this value, "
                                                   "except in some cases where step is not an integer and floating "
                                                   "point round-off affects the length of out.")
    step: float = param(1.0, doc="Spacing between values.")
    repeat: int = param(1, doc="The repeating time of all elements.")
    infer_range: bool = param(False, doc="When set to True, infer the stop position from the start, step, repeat, "
                                         "and output tensor size.")
    ctx: str = param("", doc=CTX_DOC)
    dtype: Dtype = param(Dtype("float32"), doc="Target data type.")

    def bounds(self):
        if self.stop is None:       # MXNet's RangeParamParser: arange(5) is arange(0, 5)
            return 0.0, self.start
        return self.start, self.stop

    def out_shape(self):
        start, stop = self.bounds()
        if self.step == 0:
            raise MXNetError("Range does not support step=0, received %s" % self.step)
        if self.repeat <= 0:
            raise MXNetError("Range only supports repeat > 0, received %s" % self.repeat)
        if (self.step > 0 and not start < stop) or (self.step < 0 and not start > stop):
            raise MXNetError("Invalid range (start, stop, step) = (%s,%s,%s)" % (start, stop, self.step))
        return (int(math.ceil((stop - start) / self.step) * self.repeat),)

    def lower(self, g):
        start, stop = self.bounds()
        return g.Identity(g.const(arange_values(start, stop, self.step, self.repeat, self.dtype)))


@register
class _eye(_Creation):
    """A 2-D array with ones on diagonal k (N rows, M columns, M = 0 means N). Mirrors MXNet _eye."""
    N: int = param(doc="Number of rows in the output.")
    M: int = param(0, doc="Number of columns in the output. If 0, defaults to N")
    k: int = param(0, doc="Index of the diagonal. 0 (the default) refers to the main diagonal.A positive value "
                          "refers to an upper diagonal.A negative value to a lower diagonal.")
    ctx: str = param("", doc=CTX_DOC)
    dtype: Dtype = param(Dtype("float32"), doc="Target data type.")

    def out_shape(self):
        return (self.N, self.M if self.M > 0 else self.N)

    def lower(self, g):
        rows, cols = self.out_shape()
        return g.Identity(g.const(np.eye(rows, cols, self.k, dtype=np.dtype(self.dtype))))


def linspace_values(start, stop, num, endpoint, dtype):
    """MXNet's linspace kernel: start + step * i in double, then cast; step = (stop - start) / (num - endpoint)."""
    steps = num - 1 if endpoint else num
    step = (stop - start) / steps if steps > 0 else 0.0
    return (start + step * np.arange(num, dtype=np.float64)).astype(np.dtype(dtype))


@register
class _linspace(_Creation):
    """num evenly spaced values from start to stop (stop included when endpoint). Mirrors MXNet _linspace."""
    aliases = ("_npi_linspace",)
    start: float = param(doc="The starting value of the sequence.")
    stop: float = param(doc="The ending value of the sequence")
    num: int = param(doc="Number of samples to generate. Must be non-negative.")
    endpoint: bool = param(True, doc="If True, stop is the last sample. Otherwise, it is not included.")
    ctx: str = param("", doc=CTX_DOC)
    dtype: Dtype = param(Dtype("float32"), doc="Target data type.")

    def out_shape(self):
        if self.num < 0:
            raise MXNetError("Number of sequence should be non-negative, received %d" % self.num)
        return (self.num,)

    def lower(self, g):
        return g.Identity(g.const(linspace_values(self.start, self.stop, self.num, self.endpoint, self.dtype)))
