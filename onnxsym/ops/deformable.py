"""Deformable and position-sensitive sampling ops of MXNet 1.9.1's contrib: DeformableConvolution,
ModulatedDeformableConvolution, PSROIPooling, DeformablePSROIPooling and RROIAlign (src/operator/contrib/
deformable_convolution-inl.h + nn/deformable_im2col.h, modulated_deformable_convolution-inl.h +
nn/modulated_deformable_im2col.h, psroi_pooling.cc, deformable_psroi_pooling.cc, rroi_align.cc).

Every lowering gathers the image at the sampling points and combines the values with products, sums and MatMuls,
so backward is the VJP of those nodes, which is MXNet's backward:
- a bilinear sample gathers its four neighbours (as rows of the (N*H*W, C) image, or single elements of the flat
  image); a neighbour MXNet does not read is read at pixel 0 and weighted 0, so the data gradient reaches the
  neighbours MXNet's backward scatters to, and the coordinate gradient is the derivative of the weights with the
  floor (and MXNet's clamps) held constant: MXNet's get_coordinate_weight;
- each op keeps MXNet's own sampling rules, which differ: DeformableConvolution samples inside [0, H) x [0, W) and
  reads the last row (column) alone from H-1 on; ModulatedDeformableConvolution reads each neighbour inside the
  image (0 outside); DeformablePSROIPooling skips points outside [-0.5, H-0.5], clamps the rest to the image and
  interpolates between floor and ceil; RROIAlign skips points outside [-1, H], clamps at 0 and at H-1;
- the convolutions MatMul the (channel, tap)-major sampled columns with the weights, per group;
- PSROIPooling averages the bins of ROIs rounded as MXNet rounds them (C round(), floor/ceil bin edges clipped to
  the image; an empty bin gives 0), each window sum four reads of the float64 integral image (two CumSums);
- rois never get a gradient (MXNet writes none); RROIAlign, which MXNet registers without a gradient, gets the
  derivative of its forward with respect to data.
float16 runs in float32 inside the graph and is rounded once at the end (MXNet's CPU kernels round every step;
its CPU deformable convolutions have no float16 gemm and raise). The ROI ops round their sampling geometry to
float16 after every step as MXNet's half kernels do, since it decides which bins and points are inside (mshadow's
half_t * double is a half_t: RROIAlign's angle is rounded twice).
"""
import dataclasses
import itertools
import math
from typing import Optional

import numpy as np

from .._shapes import fmt
from ..base import MXNetError
from .elemwise import _cos64
from .contrib import _via_float32
from .conv import _Kernel
from .params import Shape, param
from .registry import OpDef, register
from .spatial import _uniform_type


def _rank(op, shape, ndim, name, what):
    if shape is not None and len(shape) != ndim:
        raise MXNetError("%s: input '%s' should be %d-D (%s), got shape %s"
                         % (op.op_name, name, ndim, what, fmt(shape)))


def _float_types(op, in_types):
    out = _uniform_type(op, in_types)
    if out is not None and np.dtype(out[0][0]).kind != "f":
        raise MXNetError("%s: only floating point data is supported, got %s" % (op.op_name, np.dtype(out[0][0])))
    return out


def _corners(g, base, rows_y, rows_x, width, valid, dtype):
    """[(index int64, weight)] of the four neighbours: base + row * width + col, where rows_y / rows_x are the two
    neighbours [(row as float, weight, inside or None)] along each axis and `valid` (or None) the sample's
    validity. A neighbour not read (outside, or the sample invalid) is read at `base` with weight 0."""
    out = []
    zero = g.scalar(0, dtype)
    for (row, row_w, row_in), (col, col_w, col_in) in itertools.product(rows_y, rows_x):
        inside = [m for m in (valid, row_in, col_in) if m is not None]
        mask = inside[0] if inside else None
        for more in inside[1:]:
            mask = g.And(mask, more)
        weight = g.Mul(row_w, col_w)
        if mask is not None:
            # Where, not a product with the mask: a NaN or infinite position not read gives 0, as in MXNet
            row, col, weight = g.Where(mask, row, zero), g.Where(mask, col, zero), g.Where(mask, weight, zero)
        index = g.Add(base, g.Add(g.Mul(g.cast(row, np.int64), g.const(np.asarray(width, np.int64))),
                                  g.cast(col, np.int64)))
        out.append((index, weight))
    return out


def _interpolate(g, fetch, base, rows_y, rows_x, width, valid, dtype):
    """sum over the four neighbours (_corners) of fetch(index, weight)."""
    total = None
    for index, weight in _corners(g, base, rows_y, rows_x, width, valid, dtype):
        term = fetch(index, weight)
        total = term if total is None else g.Add(total, term)
    return total


def _rows_fetch(g, rows):
    """fetch(index, weight) for an (M, C) table: its rows at index (...) times weight, as (..., C)."""
    last = g.int64s([-1])
    return lambda index, weight: g.Mul(g.Gather(rows, index, axis=0), g.Unsqueeze(weight, last))


def _elements_fetch(g, flat, shape):
    """fetch(index, weight) for a flat array: its elements at index (of `shape`) times weight. GatherElements on
    the flat index: twice as fast as Gather's per-index blocks in onnxruntime 1.23 (CPU)."""
    def fetch(index, weight):
        picked = g.GatherElements(flat, g.Reshape(index, g.int64s([-1])), axis=0)
        return g.Mul(g.Reshape(picked, g.int64s(shape)), weight)
    return fetch


def _c_round(g, value, dtype):
    """C's round(): halves away from zero (ONNX Round rounds them to even)."""
    return g.Mul(g.Sign(value), g.Floor(g.Add(g.Abs(value), g.scalar(0.5, dtype))))


def _column(g, rois, k):
    """Column k of the (R, K) rois as (R, 1)."""
    return g.Slice(rois, g.int64s([k]), g.int64s([k + 1]), g.int64s([1]))


# ---------------------------------------------------------------- deformable convolutions
class _Deformable(_Kernel):
    """The sampling grid and the grouped MatMul shared by both deformable convolutions."""
    _max_dims = 2
    modulated = False

    def __post_init__(self):
        super().__post_init__()
        if len(self.kernel) != 2:
            raise MXNetError("%s: only 2-D kernels are implemented (as in MXNet), got kernel=%s"
                             % (self.op_name, tuple(self.kernel)))
        if self.num_deformable_group < 1:
            raise MXNetError("%s: num_deformable_group must be >= 1, got %d"
                             % (self.op_name, self.num_deformable_group))

    def input_names(self):
        head = ("data", "offset", "mask") if self.modulated else ("data", "offset")
        return head + (("weight",) if self.no_bias else ("weight", "bias"))

    def infer_shape(self, data, offset, *rest):
        _rank(self, data, 4, "data", "batch, channel, height, width")
        _rank(self, offset, 4, "offset", "batch, deformable groups * 2 * kernel taps, out height, out width")
        masks = rest[:1] if self.modulated else ()
        for mask in masks:
            _rank(self, mask, 4, "mask", "batch, deformable groups * kernel taps, out height, out width")
        if data is None or None in data:
            return None
        self._check_groups(data)
        channels = data[1]
        if channels % self.num_deformable_group:
            raise MXNetError("%s: input 'data' has %d channels (shape %s), not divisible by num_deformable_group=%d"
                             % (self.op_name, channels, fmt(data), self.num_deformable_group))
        kernel, stride, dilate, pad = self.geometry()
        out = [data[0], self.num_filter]
        for i, (x, k, s, d, p) in enumerate(zip(data[2:], kernel, stride, dilate, pad)):
            span = d * (k - 1) + 1
            if span > x + 2 * p:
                raise MXNetError("%s: kernel size exceeds input: dilated kernel %d > padded input %d on spatial "
                                 "axis %d of 'data' %s" % (self.op_name, span, x + 2 * p, i, fmt(data)))
            out.append((x + 2 * p - span) // s + 1)
        taps = kernel[0] * kernel[1]
        if self.modulated and self.num_filter % self.num_deformable_group:
            raise MXNetError("%s: num_filter=%d must be divisible by num_deformable_group=%d"
                             % (self.op_name, self.num_filter, self.num_deformable_group))
        for name, shape, per_tap in (("offset", offset, 2), ("mask", masks[0] if masks else None, 1)):
            expected = (data[0], self.num_deformable_group * per_tap * taps, out[2], out[3])
            if shape is not None and None not in shape and tuple(shape) != expected:
                raise MXNetError("%s: input '%s' should have shape %s (batch, num_deformable_group=%d * %d * %d "
                                 "kernel taps, output height, output width), got %s"
                                 % (self.op_name, name, fmt(expected), self.num_deformable_group, per_tap, taps,
                                    fmt(shape)))
        maps = [(data[0], self.num_deformable_group * 2 * taps, out[2], out[3])]
        if self.modulated:
            maps.append((data[0], self.num_deformable_group * taps, out[2], out[3]))
        params = [(self.num_filter, channels // self.num_group) + kernel, (self.num_filter,)]
        inputs = [data] + maps + params
        return inputs[: len(self.input_names())], [tuple(out)]

    def infer_type(self, *in_types):
        return _float_types(self, in_types)

    def lower(self, g, *inputs):
        if g.dtype(inputs[0]) == np.float16:
            return _via_float32(g, self, inputs)
        data, offset = inputs[:2]
        mask = inputs[2] if self.modulated else None
        weight, *bias = inputs[3:] if self.modulated else inputs[2:]
        dtype = g.dtype(data)
        n, channels, height, width = g.shape(data)
        (kh, kw), stride, dilate, pad = self.geometry()
        oh = (height + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (width + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
        groups, taps, points = self.num_deformable_group, kh * kw, oh * ow
        per_group = channels // groups
        # the undeformed sampling grid (taps, points): row i*dilate - pad + y*stride of tap (i, j), output (y, x)
        tap_i, tap_j = np.divmod(np.arange(taps), kw)
        out_y, out_x = np.divmod(np.arange(points), ow)
        grid_y = (tap_i * dilate[0] - pad[0])[:, None] + (out_y * stride[0])[None, :]
        grid_x = (tap_j * dilate[1] - pad[1])[:, None] + (out_x * stride[1])[None, :]
        shifts = g.Reshape(offset, g.int64s([n * groups, taps, 2, points]))
        part = lambda k: g.Reshape(g.Slice(shifts, g.int64s([k]), g.int64s([k + 1]), g.int64s([2])),
                                   g.int64s([n * groups, taps, points]))
        y = g.Add(part(0), g.const(grid_y.astype(dtype)))
        x = g.Add(part(1), g.const(grid_x.astype(dtype)))
        images = g.Reshape(data, g.int64s([n * groups, per_group, height * width]))
        rows = g.Reshape(g.Transpose(images, perm=[0, 2, 1]), g.int64s([n * groups * height * width, per_group]))
        base = g.const((np.arange(n * groups, dtype=np.int64) * (height * width)).reshape(-1, 1, 1))
        if self.modulated:
            rows_y, rows_x = _neighbours_inside(g, y, height, dtype), _neighbours_inside(g, x, width, dtype)
            valid = None
        else:
            (rows_y, valid_y), (rows_x, valid_x) = _neighbours_clamped(g, y, height, dtype), \
                _neighbours_clamped(g, x, width, dtype)
            valid = g.And(valid_y, valid_x)
        sampled = _interpolate(g, _rows_fetch(g, rows), base, rows_y, rows_x, width, valid, dtype)  # (nG, T, P, c)
        if mask is not None:
            sampled = g.Mul(sampled, g.Reshape(mask, g.int64s([n * groups, taps, points, 1])))
        columns = g.Transpose(g.Reshape(sampled, g.int64s([n, groups, taps, points, per_group])),
                              perm=[0, 1, 4, 2, 3])                                     # (n, G, c, T, P)
        ng = self.num_group
        k = channels // ng * taps
        columns = g.Reshape(columns, g.int64s([n, ng, k, points]))
        weights = g.Reshape(weight, g.int64s([1, ng, self.num_filter // ng, k]))
        out = g.Reshape(g.MatMul(weights, columns), g.int64s([n, self.num_filter, oh, ow]))
        if bias:
            out = g.Add(out, g.Reshape(bias[0], g.int64s([1, self.num_filter, 1, 1])))
        return out


def _neighbours_clamped(g, coordinate, size, dtype):
    """deformable_im2col's im2col_bilinear: a sample is read when 0 <= v < size; from size-1 on it reads row
    size-1 alone (weight 1, no coordinate gradient). Returns ([(low, weight, None), (high, weight, None)], valid)."""
    c = lambda v: g.scalar(v, dtype)
    valid = g.And(g.GreaterOrEqual(coordinate, c(0)), g.Less(coordinate, c(size)))
    low = g.Floor(coordinate)
    at_end = g.GreaterOrEqual(low, c(size - 1))
    frac = g.Where(at_end, c(0), g.Sub(coordinate, low))
    high = g.Where(at_end, low, g.Add(low, c(1)))
    return [(low, g.Sub(c(1), frac), None), (high, frac, None)], valid


def _neighbours_inside(g, coordinate, size, dtype):
    """modulated_deformable_im2col's dmcn_im2col_bilinear: each neighbour read when inside the image, else 0."""
    c = lambda v: g.scalar(v, dtype)
    low = g.Floor(coordinate)
    frac = g.Sub(coordinate, low)
    high = g.Add(low, c(1))
    inside = lambda v: g.And(g.GreaterOrEqual(v, c(0)), g.LessOrEqual(v, c(size - 1)))
    return [(low, g.Sub(c(1), frac), inside(low)), (high, frac, inside(high))]


_DEFORM_DOCS = dict(
    kernel="Convolution kernel size: (h, w) or (d, h, w)",
    num_deformable_group="Number of deformable group partitions.",
)


@register(name="_contrib_DeformableConvolution")
@dataclasses.dataclass(frozen=True, kw_only=True)
class DeformableConvolution(_Deformable):
    """out[n, f] = sum_{c, k} bilinear(data[n, c], grid_k + offset[n, group(c), k]) * weight[f, c, k] (+ bias[f]);
    samples outside [0, H) x [0, W) are 0. Mirrors MXNet src/operator/contrib/deformable_convolution-inl.h."""
    kernel: Shape = param(doc=_DEFORM_DOCS["kernel"])
    stride: Shape = param((), doc="Convolution stride: (h, w) or (d, h, w). Defaults to 1 for each dimension.")
    dilate: Shape = param((), doc="Convolution dilate: (h, w) or (d, h, w). Defaults to 1 for each dimension.")
    pad: Shape = param((), min=0, doc="Zero pad for convolution: (h, w) or (d, h, w). Defaults to no padding.")
    num_filter: int = param(min=1, doc="Convolution filter(channel) number")
    num_group: int = param(1, min=1, doc="Number of group partitions.")
    num_deformable_group: int = param(1, min=1, doc=_DEFORM_DOCS["num_deformable_group"])
    workspace: int = param(1024, min=0, doc="Maximum temperal workspace allowed for convolution (MB); ignored.")
    no_bias: bool = param(False, doc="Whether to disable bias parameter.")
    layout: Optional[str] = param(None, choices=("NCW", "NCHW", "NCDHW"),
                        doc="Set layout for input, output and weight. Empty for default layout: NCHW for 2d.")


@register(name="_contrib_ModulatedDeformableConvolution")
@dataclasses.dataclass(frozen=True, kw_only=True)
class ModulatedDeformableConvolution(_Deformable):
    """DeformableConvolution (DCNv2) with every sample times mask[n, group(c), k], and each bilinear neighbour
    outside the image read as 0. Mirrors MXNet src/operator/contrib/modulated_deformable_convolution-inl.h."""
    modulated = True
    kernel: Shape = param(doc=_DEFORM_DOCS["kernel"])
    stride: Shape = param((), doc="Convolution stride: (h, w) or (d, h, w). Defaults to 1 for each dimension.")
    dilate: Shape = param((), doc="Convolution dilate: (h, w) or (d, h, w). Defaults to 1 for each dimension.")
    pad: Shape = param((), min=0, doc="Zero pad for convolution: (h, w) or (d, h, w). Defaults to no padding.")
    num_filter: int = param(min=1, doc="Convolution filter(channel) number")
    num_group: int = param(1, min=1, doc="Number of group partitions.")
    num_deformable_group: int = param(1, min=1, doc=_DEFORM_DOCS["num_deformable_group"])
    workspace: int = param(1024, min=0, doc="Maximum temperal workspace allowed for convolution (MB); ignored.")
    no_bias: bool = param(False, doc="Whether to disable bias parameter.")
    im2col_step: int = param(64, min=1, doc="Maximum number of images per im2col computation; the batch size must "
                                            "be at most this or a multiple of it.")
    layout: Optional[str] = param(None, choices=("NCW", "NCHW", "NCDHW"),
                        doc="Set layout for input, output and weight. Empty for default layout: NCHW for 2d.")

    def infer_shape(self, data, *rest):
        if data is not None and data[0] is not None and data[0] > self.im2col_step and data[0] % self.im2col_step:
            raise MXNetError("%s: input batchsize must be smaller than or divide im2col_step: batch %d, "
                             "im2col_step %d" % (self.op_name, data[0], self.im2col_step))
        return super().infer_shape(data, *rest)


# ---------------------------------------------------------------- position-sensitive ROI pooling
class _PSRoi(OpDef):
    def _group(self):
        return self.group_size or self.pooled_size

    def _check_data(self, data, rois):
        _rank(self, data, 4, "data", "batch, channel, height, width")
        if rois is not None and (len(rois) != 2 or rois[1] != 5):
            raise MXNetError("%s: input 'rois' should be a 2D tensor of shape (num_rois, 5) [batch_index, x1, y1, "
                             "x2, y2], got shape %s" % (self.op_name, fmt(rois)))
        need = self.output_dim * self._group() ** 2
        if data is not None and data[1] is not None and data[1] < need:
            raise MXNetError("%s: input 'data' has %d channels (shape %s); output_dim * group_size^2 = %d * %d^2 = "
                             "%d are read" % (self.op_name, data[1], fmt(data), self.output_dim, self._group(), need))

    def _validate(self):
        for name in ("output_dim", "pooled_size"):
            if getattr(self, name) < 1:
                raise MXNetError("%s: %s must be >= 1, got %d" % (self.op_name, name, getattr(self, name)))
        if self.group_size < 0:
            raise MXNetError("%s: group_size must be >= 0, got %d" % (self.op_name, self.group_size))

    def _group_index(self):
        """(P,) MXNet's floor(p * group_size / pooled_size), clipped to the groups."""
        p, groups = self.pooled_size, self._group()
        return np.clip(np.floor(np.arange(p, dtype=np.float64) * groups / p).astype(np.int64), 0, groups - 1)

    def _roi_box(self, g, rois, dtype, shift, rounded=lambda v: v):
        """(batch index int64, x1, y1, x2, y2) of MXNet's rounded ROI in feature coordinates, each (R, 1)."""
        scale = rounded(g.scalar(np.float32(self.spatial_scale), dtype))     # a DType argument of the kernel
        batch = g.cast(_column(g, rois, 0), np.int64)
        start = [rounded(g.Mul(_c_round(g, _column(g, rois, k), dtype), scale)) for k in (1, 2)]
        end = [rounded(g.Mul(rounded(g.Add(_c_round(g, _column(g, rois, k), dtype), g.scalar(1, dtype))), scale))
               for k in (3, 4)]
        if shift:
            start = [rounded(g.Sub(v, g.scalar(0.5, dtype))) for v in start]
            end = [rounded(g.Sub(v, g.scalar(0.5, dtype))) for v in end]
        return batch, start, end


class _Half:
    """An op's float32 lowering with its geometry rounded to float16 after every step (the float16 op runs in
    float32; MXNet's half kernels round every step, and the rounded sample positions decide what is inside)."""

    def __init__(self, op):
        self.op = op

    def lower(self, g, *inputs):
        return self.op._lower(g, *inputs, half=True)


def _rounding(g, half):
    """(rounded, add, sub, mul, div): identity and the plain ops, or each rounded to float16 and back."""
    rounded = (lambda v: g.cast(g.cast(v, np.float16), np.float32)) if half else (lambda v: v)
    return (rounded, lambda a, b: rounded(g.Add(a, b)), lambda a, b: rounded(g.Sub(a, b)),
            lambda a, b: rounded(g.Mul(a, b)), lambda a, b: rounded(g.Div(a, b)))


@register(name="_contrib_PSROIPooling")
class PSROIPooling(_PSRoi):
    """out[r, o, i, j] = mean of data[b_r, (o*G + gi)*G + gj] over bin (i, j) of the ROI rounded to
    round(coord) * spatial_scale (floor/ceil bin edges clipped to the image; 0 for an empty bin), gi = floor(i*G/P).
    Mirrors MXNet src/operator/contrib/psroi_pooling.cc."""
    inputs = ("data", "rois")
    spatial_scale: float = param(min=0, max=1, doc="Ratio of input feature map height (or w) to raw image height "
                                                   "(or w). Equals the reciprocal of total stride in convolutional "
                                                   "layers")
    output_dim: int = param(doc="fix output dim")
    pooled_size: int = param(doc="fix pooled size")
    group_size: int = param(0, doc="fix group size")

    def __post_init__(self):
        self._validate()

    def infer_shape(self, data, rois):
        self._check_data(data, rois)
        if data is None or rois is None:
            return None
        return [data, rois], [(rois[0], self.output_dim, self.pooled_size, self.pooled_size)]

    def infer_type(self, *in_types):
        return _float_types(self, in_types)

    def lower(self, g, data, rois):
        if g.dtype(data) == np.float16:
            return _via_float32(g, _Half(self), (data, rois))
        return self._lower(g, data, rois)

    def _lower(self, g, data, rois, half=False):
        dtype = g.dtype(data)
        n, _, height, width = g.shape(data)
        p, groups, dim = self.pooled_size, self._group(), self.output_dim
        rois = g.stop_gradient(rois, dtype)
        ops = _rounding(g, half)
        batch, (x1, y1), (x2, y2) = self._roi_box(g, rois, dtype, False, ops[0])
        top, bottom = self._bins(g, y1, y2, height, dtype, ops)                                 # (R, P) each
        left, right = self._bins(g, x1, x2, width, dtype, ops)
        # window sums from the integral image of the channels read (in float64: differences of large partial sums),
        # I[h, w] = sum of the pixels above and left of (h, w); bin (i, j) of output channel o reads channel
        # (o*G + gi)*G + gj of its ROI's image
        used = dim * groups * groups
        if g.shape(data)[1] > used:
            data = g.Slice(data, g.int64s([0]), g.int64s([used]), g.int64s([1]))
        padded = g.Pad(data, g.int64s([0, 0, 1, 1, 0, 0, 0, 0]))                              # a zero row and column
        wide = padded if dtype == np.float64 else g.cast(padded, np.float64)
        integral = g.Reshape(g.CumSum(g.CumSum(wide, g.const(np.int64(2))), g.const(np.int64(3))), g.int64s([-1]))
        gi = self._group_index()
        channel = (np.arange(dim)[:, None, None] * groups + gi[None, :, None]) * groups + gi[None, None, :]
        plane = (height + 1) * (width + 1)
        base = g.Add(g.Mul(g.Reshape(batch, g.int64s([-1, 1, 1, 1])), g.const(np.int64(used * plane))),
                     g.const((channel * plane).reshape(1, dim, p, p).astype(np.int64)))       # (R, od, P, P)
        row = lambda v: g.Mul(g.Reshape(g.cast(v, np.int64), g.int64s([-1, 1, p, 1])), g.const(np.int64(width + 1)))
        col = lambda v: g.Reshape(g.cast(v, np.int64), g.int64s([-1, 1, 1, p]))
        # GatherElements on the flat index: twice as fast as Gather's per-index blocks in onnxruntime 1.23 (CPU)
        at = lambda h, w: g.Reshape(g.GatherElements(integral, g.Reshape(g.Add(base, g.Add(row(h), col(w))),
                                                                         g.int64s([-1])), axis=0),
                                    g.int64s([-1, dim, p, p]))
        # (column sums to the right) - (to the left): exactly 0 for an empty bin
        sums = g.Sub(g.Sub(at(bottom, right), at(top, right)), g.Sub(at(bottom, left), at(top, left)))
        if dtype != np.float64:
            sums = g.cast(sums, dtype)
        area = g.Mul(g.Unsqueeze(g.Sub(bottom, top), g.int64s([2])), g.Unsqueeze(g.Sub(right, left), g.int64s([1])))
        return g.Div(sums, g.Unsqueeze(g.Max(area, g.scalar(1, dtype)), g.int64s([1])))

    def _bins(self, g, lo, hi, size, dtype, ops):
        """(R, P) MXNet's first and end (exclusive) rows (columns) of each bin: floor / ceil, clipped to the image."""
        c = lambda v: g.scalar(v, dtype)
        rounded, add, sub, mul, div = ops
        p = self.pooled_size
        bin_size = div(g.Max(sub(hi, lo), rounded(c(0.1))), c(p))
        index = g.const(np.arange(p, dtype=dtype).reshape(1, -1))
        clip = lambda v: g.Min(g.Max(v, c(0)), c(size))
        return (clip(g.Floor(add(mul(index, bin_size), lo))),
                clip(g.Ceil(add(mul(g.Add(index, c(1)), bin_size), lo))))


@register(name="_contrib_DeformablePSROIPooling")
class DeformablePSROIPooling(_PSRoi):
    """out[r, o, i, j] = mean over the bin's sample_per_part^2 points inside [-0.5, H-0.5] x [-0.5, W-0.5] of the
    bilinear interpolation (clamped to the image) of data[b_r, (o*G + gi)*G + gj], the bin shifted by
    trans[r, class(o), :, part(i), part(j)] * trans_std * ROI size; top_count holds the point counts.
    Mirrors MXNet src/operator/contrib/deformable_psroi_pooling.cc."""
    outputs = ("output", "top_count")
    spatial_scale: float = param(min=0, max=1, doc="Ratio of input feature map height (or w) to raw image height "
                                                   "(or w). Equals the reciprocal of total stride in convolutional "
                                                   "layers")
    output_dim: int = param(doc="fix output dim")
    group_size: int = param(doc="fix group size")
    pooled_size: int = param(doc="fix pooled size")
    part_size: int = param(0, doc="fix part size")
    sample_per_part: int = param(1, doc="fix samples per part")
    trans_std: float = param(0.0, min=0, max=1, doc="fix transition std")
    no_trans: bool = param(False, doc="Whether to disable trans parameter.")

    def __post_init__(self):
        self._validate()
        if self.group_size < 1 or self.sample_per_part < 1 or self.part_size < 0:
            raise MXNetError("%s: group_size and sample_per_part must be >= 1 and part_size >= 0, got %d, %d, %d"
                             % (self.op_name, self.group_size, self.sample_per_part, self.part_size))

    def input_names(self):
        return ("data", "rois") if self.no_trans else ("data", "rois", "trans")

    def num_visible_outputs(self):
        return 1

    def _part(self):
        return self.part_size or self.pooled_size

    def infer_shape(self, data, rois, trans=None):
        self._check_data(data, rois)
        _rank(self, trans, 4, "trans", "num_rois, 2 * num_classes, part_size, part_size")
        if trans is not None and None not in trans and not self.no_trans:
            part = self._part()
            if trans[1] % 2 or trans[1] == 0 or self.output_dim % (trans[1] // 2) or tuple(trans[2:]) != (part, part):
                raise MXNetError("%s: input 'trans' should have shape (num_rois, 2 * num_classes, part_size=%d, "
                                 "part_size=%d) with num_classes dividing output_dim=%d, got %s"
                                 % (self.op_name, part, part, self.output_dim, fmt(trans)))
            if rois is not None and rois[0] is not None and trans[0] < rois[0]:
                raise MXNetError("%s: input 'trans' has %d rows for %d rois" % (self.op_name, trans[0], rois[0]))
        if data is None or rois is None or (not self.no_trans and trans is None):
            return None
        out = (rois[0], self.output_dim, self.pooled_size, self.pooled_size)
        return [data, rois] + ([] if self.no_trans else [trans]), [out, out]

    def infer_type(self, *in_types):
        return _float_types(self, in_types)

    def lower(self, g, data, rois, trans=None):
        if g.dtype(data) == np.float16:
            return _via_float32(g, _Half(self), (data, rois, trans))
        return self._lower(g, data, rois, trans)

    def _lower(self, g, data, rois, trans, half=False):
        dtype = g.dtype(data)
        c = lambda v: g.scalar(v, dtype)
        rounded, add, sub, mul, div = _rounding(g, half)
        n, channels, height, width = g.shape(data)
        p, groups, dim, s = self.pooled_size, self.group_size, self.output_dim, self.sample_per_part
        part = self._part()
        count = g.shape(rois)[0]
        rois = g.stop_gradient(rois, dtype)
        batch, (x1, y1), (x2, y2) = self._roi_box(g, rois, dtype, True, rounded)
        roi_w, roi_h = g.Max(sub(x2, x1), rounded(c(0.1))), g.Max(sub(y2, y1), rounded(c(0.1)))     # (R, 1)
        bin_w, bin_h = div(roi_w, c(p)), div(roi_h, c(p))
        sub_w, sub_h = div(bin_w, c(s)), div(bin_h, c(s))
        # axes of the samples: (R, class K, channel of the class Q, P_i, P_j, S_i, S_j); the positions depend on
        # the class only (one for no_trans), so they are computed once for the Q channels of a class
        classes = 1 if self.no_trans else g.shape(trans)[1] // 2
        per_class = dim // classes
        at = lambda values, axis: g.const(np.asarray(values, dtype=dtype).reshape([-1 if a == axis else 1
                                                                                  for a in range(7)]))
        unsqueeze = lambda v: g.Reshape(v, g.int64s([-1, 1, 1, 1, 1, 1, 1]))
        x = add(mul(at(np.arange(p), 4), unsqueeze(bin_w)), unsqueeze(x1))
        y = add(mul(at(np.arange(p), 3), unsqueeze(bin_h)), unsqueeze(y1))
        if not self.no_trans:
            exact = np.float16 if half else np.dtype(dtype).type
            part_i = np.floor(np.arange(p, dtype=exact) / exact(p) * exact(part)).astype(np.int64)
            cls = np.arange(classes)
            pick = lambda k: (((cls[:, None, None] * 2 + k) * part + part_i[None, :, None]) * part
                              + part_i[None, None, :])                                        # (K, P_i, P_j)
            if g.shape(trans)[0] != count:      # MXNet reads the first num_rois rows
                trans = g.Slice(trans, g.int64s([0]), g.int64s([count]), g.int64s([0]))
            table = g.Reshape(trans, g.int64s([count, -1]))                                  # (R, 2*K*part^2)
            std = rounded(c(np.float32(self.trans_std)))
            shift = lambda k: g.Unsqueeze(mul(g.Gather(table, g.const(pick(k)), axis=1), std), g.int64s([2, 5, 6]))
            x = add(x, mul(shift(0), unsqueeze(roi_w)))
            y = add(y, mul(shift(1), unsqueeze(roi_h)))
        x = add(x, mul(at(np.arange(s), 6), unsqueeze(sub_w)))
        y = add(y, mul(at(np.arange(s), 5), unsqueeze(sub_h)))
        rows_y, valid_y = _neighbours_psroi(g, y, height, dtype)
        rows_x, valid_x = _neighbours_psroi(g, x, width, dtype)
        valid = g.And(valid_y, valid_x)                                                  # (R, K, 1, P, P, S, S)
        gi = self._group_index()
        channel = ((np.arange(dim)[:, None, None] * groups + gi[None, :, None]) * groups + gi[None, None, :])
        base = g.Add(g.Mul(unsqueeze(batch), g.const(np.int64(channels))),
                     g.const(channel.reshape(1, classes, per_class, p, p, 1, 1).astype(np.int64)))
        base = g.Mul(base, g.const(np.int64(height * width)))
        flat = g.Reshape(data, g.int64s([-1]))
        fetch = _elements_fetch(g, flat, [count, classes, per_class, p, p, s, s])
        values = _interpolate(g, fetch, base, rows_y, rows_x, width, valid, dtype)
        sums = g.Reshape(g.ReduceSum(values, g.int64s([5, 6]), keepdims=0), g.int64s([count, dim, p, p]))
        points = g.ReduceSum(g.cast(valid, dtype), g.int64s([5, 6]), keepdims=0)                # (R, K, 1, P, P)
        points = g.Reshape(g.Expand(points, g.int64s([count, classes, per_class, p, p])), g.int64s([count, dim, p, p]))
        return g.Div(sums, g.Max(points, c(1))), points


def _neighbours_psroi(g, coordinate, size, dtype):
    """deformable_psroi_pooling's sampling: a point outside [-0.5, size-0.5] is skipped, others are clamped to
    [0, size-1] and interpolated between floor and ceil."""
    c = lambda v: g.scalar(v, dtype)
    valid = g.And(g.GreaterOrEqual(coordinate, c(-0.5)), g.LessOrEqual(coordinate, c(size - 0.5)))
    inside = g.Min(g.Max(coordinate, c(0)), c(size - 1))
    low, high = g.Floor(inside), g.Ceil(inside)
    frac = g.Sub(inside, low)
    return [(low, g.Sub(c(1), frac), None), (high, frac, None)], valid


# ---------------------------------------------------------------- rotated ROI align
@register(name="_contrib_RROIAlign")
class RROIAlign(OpDef):
    """out[r, c, i, j] = mean over the bin's grid of the bilinear interpolation of data[b_r, c] at the points of
    the ROI (center x, y, width, height, angle in degrees) rotated about its centre; points outside [-1, H] x
    [-1, W] count as 0. Mirrors MXNet src/operator/contrib/rroi_align.cc (sampling_ratio <= 0:
    ceil(roi size / pooled size) points a side, per ROI)."""
    inputs = ("data", "rois")
    pooled_size: Shape = param(doc="RROI align output shape (h,w) ")
    spatial_scale: float = param(min=0, max=1, doc="Ratio of input feature map height (or width) to raw image "
                                                   "height (or width). Equals the reciprocal of total stride in "
                                                   "convolutional layers")
    sampling_ratio: int = param(-1, doc="Optional sampling ratio of RROI align, using adaptive size by default.")

    def __post_init__(self):
        if len(self.pooled_size) != 2 or min(self.pooled_size) < 1:
            raise MXNetError("%s: pooled_size must be two positive ints (h, w), got %s"
                             % (self.op_name, tuple(self.pooled_size)))

    def infer_shape(self, data, rois):
        _rank(self, data, 4, "data", "batch, channel, height, width")
        if rois is not None and (len(rois) != 2 or rois[1] != 6):
            raise MXNetError("%s: input 'rois' should be a 2D tensor of shape (num_rois, 6) [batch_index, x, y, w, "
                             "h, theta], got shape %s" % (self.op_name, fmt(rois)))
        if data is None or rois is None:
            return None
        return [data, rois], [(rois[0], data[1]) + tuple(self.pooled_size)]

    def infer_type(self, *in_types):
        return _float_types(self, in_types)

    def lower(self, g, data, rois):
        if g.dtype(data) == np.float16:
            return _via_float32(g, _Half(self), (data, rois))
        return self._lower(g, data, rois)

    def _lower(self, g, data, rois, half=False):
        """`half`: float16 data computed in float32 with the geometry rounded to float16 after every step, as
        MXNet's half kernel computes it (the rounded sample positions decide which points are inside)."""
        dtype = g.dtype(data)
        rounded, add, sub, mul, div = _rounding(g, half)
        c = lambda v: g.scalar(v, dtype)
        n, channels, height, width = g.shape(data)
        ph, pw = self.pooled_size
        num_rois = g.shape(rois)[0]
        rois = g.stop_gradient(rois, dtype)
        scale = c(np.float32(self.spatial_scale))
        column = lambda k: g.Reshape(_column(g, rois, k), g.int64s([-1, 1, 1, 1, 1]))    # (R, 1, 1, 1, 1)
        batch = g.cast(column(0), np.int64)
        # every step rounded to the data's precision (float16), as MXNet's kernel computes in DType
        center_x, center_y = mul(column(1), scale), mul(column(2), scale)
        roi_w, roi_h = g.Max(mul(column(3), scale), c(1)), g.Max(mul(column(4), scale), c(1))
        if half:    # mshadow's half_t * double is a half_t: rois[5] * M_PI rounds before / 180.0
            theta = div(mul(column(5), c(math.pi)), c(180.0))
        else:       # rois[5] * M_PI / 180.0 in double, then stored as DType
            theta = g.cast(g.Div(g.Mul(g.cast(column(5), np.float64), g.scalar(math.pi, np.float64)),
                                 g.scalar(180.0, np.float64)), dtype)
        # (float64: cos through sin, which ORT before 1.32 has a float64 kernel for)
        cos = _cos64(g, theta) if np.dtype(dtype) == np.float64 else g.Cos(theta)
        cos, sin = rounded(cos), rounded(g.Sin(theta))
        bin_h, bin_w = div(roi_h, c(ph)), div(roi_w, c(pw))
        # axes (R, PH, PW, GH, GW); the grid is sampling_ratio a side, or ceil(roi / pooled) per ROI padded to the
        # largest with points that count for nothing
        at = lambda values, axis: g.Reshape(values, g.int64s([-1 if a == axis else 1 for a in range(5)]))
        if self.sampling_ratio > 0:
            grid_h = grid_w = c(self.sampling_ratio)
            steps_h = steps_w = g.const(np.arange(self.sampling_ratio, dtype=dtype))
            in_grid = None
        else:
            grid_h, grid_w = g.Ceil(div(roi_h, c(ph))), g.Ceil(div(roi_w, c(pw)))
            longest = lambda v: g.cast(g.ReduceMax(v, keepdims=0), np.int64)
            steps_h = g.cast(g.Range(g.const(np.int64(0)), longest(grid_h), g.const(np.int64(1))), dtype)
            steps_w = g.cast(g.Range(g.const(np.int64(0)), longest(grid_w), g.const(np.int64(1))), dtype)
            in_grid = g.And(g.Less(at(steps_h, 3), grid_h), g.Less(at(steps_w, 4), grid_w))
        # roi_start + p * bin + (i + .5) * bin / grid, the start being -size / 2 about the centre
        yy = add(add(div(roi_h, c(-2.0)), mul(at(g.const(np.arange(ph, dtype=dtype)), 1), bin_h)),
                 div(mul(g.Add(at(steps_h, 3), c(0.5)), bin_h), grid_h))
        xx = add(add(div(roi_w, c(-2.0)), mul(at(g.const(np.arange(pw, dtype=dtype)), 2), bin_w)),
                 div(mul(g.Add(at(steps_w, 4), c(0.5)), bin_w), grid_w))
        x = add(add(mul(xx, cos), mul(yy, sin)), center_x)
        y = add(sub(mul(yy, cos), mul(xx, sin)), center_y)
        rows_y, valid_y = _neighbours_rroi(g, y, height, dtype)
        rows_x, valid_x = _neighbours_rroi(g, x, width, dtype)
        valid = g.And(valid_y, valid_x)
        if in_grid is not None:
            valid = g.And(valid, in_grid)
        count = g.Reshape(g.Mul(grid_h, grid_w), g.int64s([-1, 1, 1, 1]))
        if g.is_train and in_grid is not None:
            sums = self._by_weight_maps(g, data, batch, num_rois, rows_y, rows_x, valid, dtype)
        else:   # one Gather of every bin's 4 * GH * GW neighbour rows, summed with their weights by one MatMul
            rows = g.Reshape(g.Transpose(data, perm=[0, 2, 3, 1]), g.int64s([n * height * width, channels]))
            base = g.Mul(batch, g.const(np.int64(height * width)))
            corners = _corners(g, base, rows_y, rows_x, width, valid, dtype)
            stack = lambda values: g.Concat(*(g.Unsqueeze(v, g.int64s([-1])) for v in values), axis=-1)
            bins = num_rois * ph * pw
            index = g.Reshape(stack([i for i, _ in corners]), g.int64s([bins, -1]))                 # (bins, K)
            weight = g.Reshape(stack([w for _, w in corners]), g.int64s([bins, 1, -1]))
            sums = g.Reshape(g.MatMul(weight, g.Gather(rows, index, axis=0)), g.int64s([num_rois, ph, pw, channels]))
        return g.Transpose(g.Div(sums, count), perm=[0, 3, 1, 2])

    def _by_weight_maps(self, g, data, batch, num_rois, rows_y, rows_x, valid, dtype):
        """(R, PH, PW, C) sums of the samples as (R, PH*PW, H*W) interpolation maps @ data[b_r]: the adaptive
        grid's size is only known at run time, and the gradient of a Gather needs static indices, so training
        graphs contract the samples' row and column weights (sum_s wy_s(h) * wx_s(w), a MatMul over the samples)
        into per-bin maps and differentiate a MatMul with the gathered images instead."""
        _, channels, height, width = g.shape(data)
        ph, pw = self.pooled_size
        mask = g.cast(valid, dtype)

        def weights(neighbours, size):
            positions = g.const(np.arange(size, dtype=dtype))
            total = None
            for index, weight, _ in neighbours:
                term = g.Mul(g.cast(g.Equal(g.Unsqueeze(index, g.int64s([-1])), positions), dtype),
                             g.Unsqueeze(g.Mul(weight, mask), g.int64s([-1])))
                total = term if total is None else g.Add(total, term)
            return g.Reshape(total, g.int64s([num_rois, ph * pw, -1, size]))               # (R, PH*PW, S, size)

        maps = g.MatMul(g.Transpose(weights(rows_y, height), perm=[0, 1, 3, 2]), weights(rows_x, width))
        maps = g.Reshape(maps, g.int64s([num_rois, ph * pw, height * width]))
        images = g.Reshape(g.Gather(data, g.Reshape(batch, g.int64s([-1])), axis=0),
                           g.int64s([num_rois, channels, height * width]))
        sums = g.MatMul(maps, g.Transpose(images, perm=[0, 2, 1]))                          # (R, PH*PW, C)
        return g.Reshape(sums, g.int64s([num_rois, ph, pw, channels]))


def _neighbours_rroi(g, coordinate, size, dtype):
    """rroi_align's pre_calc_for_bilinear_interpolate: a point outside [-1, size] counts as 0; others are clamped
    at 0, and from size-1 on read row size-1 alone."""
    c = lambda v: g.scalar(v, dtype)
    valid = g.And(g.GreaterOrEqual(coordinate, c(-1)), g.LessOrEqual(coordinate, c(size)))
    positive = g.Max(coordinate, c(0))
    low = g.Floor(positive)
    at_end = g.GreaterOrEqual(low, c(size - 1))
    low = g.Where(at_end, c(size - 1), low)
    frac = g.Where(at_end, c(0), g.Sub(positive, low))
    high = g.Where(at_end, low, g.Add(low, c(1)))
    return [(low, g.Sub(c(1), frac), None), (high, frac, None)], valid
