"""Statistics of an array: moments (mean and biased variance) and _histogram (MXNet
src/operator/nn/moments.cc, src/operator/tensor/histogram.cc)."""
import typing

import numpy as np

from .._shapes import fmt
from ..base import MXNetError
from ..util import is_np_shape
from .params import FloatTuple, OptShape, param
from .registry import OpDef, register

__all__ = []


@register
class moments(OpDef):
    """mean = E[data], var = E[(data - mean)^2] over `axes` (all when None). Mirrors MXNet moments."""
    outputs = ("output0", "output1")
    axes: typing.Optional[OptShape] = param(None, doc="Array of ints. Axes along which to compute mean and variance.")
    keepdims: bool = param(False, doc="produce moments with the same dimensionality as the input.")

    def _axes(self, ndim):
        if not self.axes:
            raise MXNetError("Empty axes is not supported, if you would like to do global moments, please pass all "
                             "axes to axes argument")
        axes = self.axes
        out = []
        for axis in axes:
            if not -ndim <= axis < ndim:
                raise MXNetError("moments: axis %d is out of range for %d dimensions" % (axis, ndim))
            out.append(axis % ndim)
        return sorted(set(out))

    def infer_shape(self, data):
        axes = self._axes(len(data))
        if self.keepdims:
            out = tuple(1 if i in axes else d for i, d in enumerate(data))
        else:
            # every axis reduced: (1,) outside NumPy shape semantics (MXNet's ReduceAxesShape), () inside them
            out = tuple(d for i, d in enumerate(data) if i not in axes) or (() if is_np_shape() else (1,))
        return [data], [out, out]

    def infer_type(self, data):
        return [data], [data, data]

    def lower(self, g, data):
        axes = self._axes(len(g.shape(data)))     # ReduceMean takes axes as an attribute at opset 17
        mean = g.ReduceMean(data, axes=axes, keepdims=1)
        centered = g.Sub(data, mean)
        var = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=int(self.keepdims))
        if not self.keepdims:
            mean = g.ReduceMean(data, axes=axes, keepdims=0)
            if len(axes) == len(g.shape(data)) and not is_np_shape():
                mean, var = (g.Reshape(v, g.int64s([1])) for v in (mean, var))
        return mean, var


@register
class _histogram(OpDef):
    """(counts, bin_edges) of data flattened: `bin_cnt` equal bins over `range`, or the edges given as input
    `bins`; values outside are not counted, the last bin includes its right edge. Mirrors MXNet _histogram."""
    outputs = ("output0", "output1")
    differentiable = False
    bin_cnt: typing.Optional[int] = param(None, doc="Number of bins for uniform case")
    range: typing.Optional[FloatTuple] = param(None, doc="The lower and upper range of the bins.")

    def input_names(self):
        return ("data",) if self.bin_cnt is not None else ("data", "bins")

    def infer_shape(self, data, bins=None):
        if self.bin_cnt is not None:
            if self.range is None:
                raise MXNetError("_histogram: range is required with bin_cnt")
            return [data], [(self.bin_cnt,), (self.bin_cnt + 1,)]
        if bins is None or len(bins) != 1 or bins[0] < 2:
            raise MXNetError("_histogram: bins must be a 1-D array of at least 2 edges, got %s" % fmt(bins))
        return [data, bins], [(bins[0] - 1,), tuple(bins)]

    def infer_type(self, data, bins=None):
        return ([data] if bins is None and self.bin_cnt is not None else [data, bins or data]), \
            [np.dtype(np.int64), data]

    def lower(self, g, data, bins=None):
        dtype = np.dtype(g.dtype(data))
        work = np.float64
        flat = g.cast(g.Reshape(data, g.int64s([-1])), work)
        if self.bin_cnt is not None:
            low, high = self.range
            count = self.bin_cnt
            edges = g.const(np.linspace(low, high, count + 1).astype(dtype))
            scaled = g.Div(g.Sub(flat, g.scalar(low, work)), g.scalar(high - low, work))
            index = g.cast(g.Floor(g.Mul(scaled, g.scalar(count, work))), np.int64)
            inside = g.And(g.GreaterOrEqual(flat, g.scalar(low, work)), g.LessOrEqual(flat, g.scalar(high, work)))
        else:
            count = g.shape(bins)[0] - 1
            edges = g.Identity(bins)
            wide = g.cast(bins, work)
            inner = g.Slice(wide, g.int64s([1]), g.int64s([count]), g.int64s([0]))
            above = g.GreaterOrEqual(g.Unsqueeze(flat, g.int64s([1])), g.Unsqueeze(inner, g.int64s([0])))
            index = g.ReduceSum(g.cast(above, np.int64), g.int64s([1]), keepdims=0)
            first = g.Gather(wide, g.int64s([0]), axis=0)
            last = g.Gather(wide, g.int64s([count]), axis=0)
            inside = g.And(g.GreaterOrEqual(flat, first), g.LessOrEqual(flat, last))
        index = g.Min(index, g.scalar(count - 1, np.int64))      # x == high falls in the last bin
        hits = g.Equal(g.Unsqueeze(index, g.int64s([1])), g.const(np.arange(count, dtype=np.int64)[None, :]))
        hits = g.And(hits, g.Unsqueeze(inside, g.int64s([1])))
        counts = g.ReduceSum(g.cast(hits, np.int64), g.int64s([0]), keepdims=0)
        return counts, edges
