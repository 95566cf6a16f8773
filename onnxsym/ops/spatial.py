"""Spatial sampling ops: GridGenerator, BilinearSampler, SpatialTransformer, Correlation, im2col and col2im, with
MXNet 1.9.1's semantics (src/operator/grid_generator-inl.h, bilinear_sampler.cc, spatial_transformer.cc,
correlation.cc, nn/im2col-inl.h).

Every lowering is built from Gathers, Slices, Pads, products, sums and MatMuls, so backward is the VJP of those
nodes, which is MXNet's backward:
- bilinear sampling (BilinearSampler, SpatialTransformer) gathers the four neighbours of each sampling point as rows
  of the (N*H*W, C) image; a neighbour outside the image is read at a pixel inside and weighted 0 (MXNet reads 0),
  so the data gradient is scattered to the neighbours inside only, and the grid gradient is the derivative of the
  weights with the outside values 0 (MXNet's top_left_*_gw), the floor held constant;
- the affine grid is theta @ grid_dst (grid_dst is MXNet's constant (3, H*W) target grid), so d theta = d grid @
  grid_dst.T; the warp grid is (flow + pixel grid) / ((size - 1) / 2) - 1;
- Correlation gathers the padded images as (pixel, channel) rows over the region its windows cover, once for data1
  and once per displacement for data2 (in chunks bounding the memory), reduces over channels (a MatMul for the
  product, a sum of |a - b| with sign +1 where data1 >= data2: MXNet's choice at ties), then sums each k x k window;
- im2col is one strided Slice of the padded image per kernel tap, concatenated; col2im splits the columns per tap,
  spreads each over the padded image (zeros between strided blocks, a Pad to the tap's offset), sums and crops:
  each is the other's gradient.
float16 runs in float32 inside the graph and is rounded once at the end (MXNet's CPU kernels round every step).
"""
import dataclasses
import itertools
from math import prod
from typing import Optional

import numpy as np

from .._shapes import fmt
from ..base import MXNetError
from .contrib import _via_float32
from .params import Shape, param
from .registry import OpDef, register

_CHUNK = 1 << 24       # Correlation: gathered values per chunk of displacements (inference memory)


def _uniform_type(op, in_types):
    """Every input and output share one float dtype (MXNet: "Non-uniform data type in <op>")."""
    known = [np.dtype(t) for t in in_types if t is not None]
    if not known:
        return None
    if any(t != known[0] for t in known):
        raise MXNetError("Non-uniform data type in %s: inputs %s have dtypes %s"
                         % (op.op_name, ", ".join(op.input_names()),
                            ", ".join("?" if t is None else np.dtype(t).name for t in in_types)))
    return [known[0]] * len(in_types), [known[0]] * op.count_outputs()


def _rank(op, shape, ndim, name, what):
    if shape is not None and len(shape) != ndim:
        raise MXNetError("%s: input '%s' should be %d-D (%s), got shape %s"
                         % (op.op_name, name, ndim, what, fmt(shape)))


def _target(op, target_shape):
    """MXNet's target_shape checks of the affine transforms: two sizes, each > 0."""
    if len(target_shape) != 2:
        raise MXNetError("%s: target_shape must be (height, width), got %s" % (op.op_name, tuple(target_shape)))
    for size in target_shape:
        if size <= 0:
            raise MXNetError("%s: incorrect target_shape: %d (target_shape=%s; it is required for affine transforms)"
                             % (op.op_name, size, tuple(target_shape)))
    return tuple(target_shape)


def _affine_grid(height, width, dtype, in_double):
    """MXNet's grid_dst (3, H*W): rows x, y (normalized to [-1, 1], NaN along a size-1 axis) and 1. GridGenerator
    computes it in the data's dtype, SpatialTransformer in double, then rounds to the dtype."""
    calc = np.float64 if in_double else np.dtype(dtype).type
    index = np.arange(height * width, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if in_double:       # -1.0 + (i % W) * 2.0 / (W - 1), in double
            x = -1.0 + (index % width) * 2.0 / np.float64(width - 1)
            y = -1.0 + (index // width) * 2.0 / np.float64(height - 1)
        else:               # -1 + x * DType(2.0 / (W - 1)), in the dtype
            x = calc(-1) + (index % width).astype(calc) * calc(np.float64(2.0) / np.float64(width - 1))
            y = calc(-1) + (index // width).astype(calc) * calc(np.float64(2.0) / np.float64(height - 1))
    return np.stack([x, y, np.ones_like(x)]).astype(dtype)


def _bilinear_sample(g, data, grid_x, grid_y, out_hw):
    """MXNet's BilinearSamplerForward: data (N, C, H, W) at the normalized points (grid_x, grid_y) (N, L) of
    [-1, 1] (align corners: -1 and 1 are the centres of the border pixels); neighbours outside the image are 0.
    Returns (N, C, *out_hw)."""
    n, channels, height, width = g.shape(data)
    dtype = g.dtype(data)
    c = lambda v: g.scalar(v, dtype)
    rows = g.Reshape(g.Transpose(data, perm=[0, 2, 3, 1]), g.int64s([n * height * width, channels]))
    first_row = g.const(np.arange(n, dtype=np.int64).reshape(n, 1) * (height * width))

    def neighbours(coordinate, size):
        """[(index along the axis as int64, inside the image, weight)] of the low and the high neighbour."""
        real = g.Div(g.Mul(g.Add(coordinate, c(1)), c(size - 1)), c(2))
        low = g.Floor(real)
        weight = g.Sub(c(1), g.Sub(real, low))         # MXNet's top_left_*_w
        out = []
        for position, w in ((low, weight), (g.Add(low, c(1)), g.Sub(c(1), weight))):
            inside = g.And(g.GreaterOrEqual(position, c(0)), g.LessOrEqual(position, c(size - 1)))
            out.append((g.cast(g.Where(inside, position, c(0)), np.int64), inside, w))   # NaN, inf: outside
        return out

    total = None
    for (row, row_in, row_w), (col, col_in, col_w) in itertools.product(neighbours(grid_y, height),
                                                                        neighbours(grid_x, width)):
        index = g.Add(first_row, g.Add(g.Mul(row, g.const(np.asarray(width, np.int64))), col))
        weight = g.Mul(g.Mul(row_w, col_w), g.cast(g.And(row_in, col_in), dtype))
        term = g.Mul(g.Gather(rows, index, axis=0), g.Unsqueeze(weight, g.int64s([2])))      # (N, L, C)
        total = term if total is None else g.Add(total, term)
    return g.Reshape(g.Transpose(total, perm=[0, 2, 1]), g.int64s([n, channels, *out_hw]))


def _grid_parts(g, grid, n, count):
    """The x and y channels of a (N, 2, ...) grid, each as (N, count)."""
    part = lambda k: g.Reshape(g.Slice(grid, g.int64s([k]), g.int64s([k + 1]), g.int64s([1])), g.int64s([n, count]))
    return part(0), part(1)


# ---------------------------------------------------------------- grids and samplers
@register
class GridGenerator(OpDef):
    """affine: out[n] = reshape(data[n], (2, 3)) @ [x; y; 1] over the target grid normalized to [-1, 1];
    warp: out = (data + pixel grid) / ((size - 1) / 2) - 1. Mirrors MXNet src/operator/grid_generator-inl.h."""
    outputs = ("output", "grid_dst")
    float_only = True
    transform_type: str = param(choices=("affine", "warp"),
                                doc="The type of transformation: 'affine' (data is (batch, 6) affine matrices) or "
                                    "'warp' (data is an optical flow (batch, 2, h, w)).")
    target_shape: Shape = param((0, 0), doc="The output shape (H, W); required for 'affine', ignored for 'warp'.")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data):
        if self.transform_type == "affine":
            height, width = _target(self, self.target_shape)
            _rank(self, data, 2, "data", "batch, 6: affine matrices")
            if data is not None and data[1] != 6:
                raise MXNetError("GridGenerator: incorrect data shape[1], should be 6 (affine matrices), got shape %s"
                                 % fmt(data))
            if data is None:
                return None
            return [data], [(data[0], 2, height, width), (3, height * width)]
        _rank(self, data, 4, "data", "batch, 2, height, width: optical flow")
        if data is not None and data[1] != 2:
            raise MXNetError("GridGenerator: incorrect data shape[1], should be 2 (optical flow), got shape %s"
                             % fmt(data))
        if data is None:
            return None
        return [data], [tuple(data), (2, data[2], data[3])]

    def infer_type(self, *in_types):
        return _uniform_type(self, in_types)

    def lower(self, g, data):
        dtype = g.dtype(data)
        if dtype == np.float16:
            return _via_float32(g, self, (data,))
        if self.transform_type == "affine":
            n = g.shape(data)[0]
            height, width = _target(self, self.target_shape)
            theta = g.Reshape(data, g.int64s([n, 2, 3]))
            grid = g.MatMul(theta, g.const(_affine_grid(height, width, dtype, False)))
            return g.Reshape(grid, g.int64s([n, 2, height, width])), None
        _, _, height, width = g.shape(data)
        pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height))).astype(dtype)[None]   # (1, 2, H, W)
        half = np.array([(np.float64(width) - 1.0) / 2.0, (np.float64(height) - 1.0) / 2.0], dtype).reshape(1, 2, 1, 1)
        moved = g.Div(g.Add(data, g.const(pixels)), g.const(half))
        return g.Sub(moved, g.scalar(1, dtype)), None


@register
class BilinearSampler(OpDef):
    """out[n, c, h, w] = bilinear interpolation of data[n, c] at (x, y) = ((grid[n, 0, h, w] + 1) * (W - 1) / 2,
    (grid[n, 1, h, w] + 1) * (H - 1) / 2), neighbours outside the image 0. Mirrors MXNet
    src/operator/bilinear_sampler.cc."""
    inputs = ("data", "grid")
    outputs = ("output", "tmp")
    float_only = True
    cudnn_off: Optional[bool] = param(None, doc="whether to turn cudnn off (no effect: onnxsym never uses cuDNN's "
                                                "sampler)")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data, grid):
        _rank(self, data, 4, "data", "batch, channel, height, width")
        _rank(self, grid, 4, "grid", "batch, 2, height, width")
        if grid is not None and grid[1] != 2:
            raise MXNetError("BilinearSampler: incorrect grid shape[1], should be 2 (x, y), got shape %s" % fmt(grid))
        if data is None or grid is None:
            return None
        if data[0] != grid[0]:
            raise MXNetError("BilinearSampler: data (shape %s) and grid (shape %s) must have the same batch size"
                             % (fmt(data), fmt(grid)))
        return [data, grid], [(data[0], data[1], grid[2], grid[3]), (grid[0], grid[2], grid[3], 2)]

    def infer_type(self, *in_types):
        return _uniform_type(self, in_types)

    def lower(self, g, data, grid):
        if g.dtype(data) == np.float16:
            return _via_float32(g, self, (data, grid))
        n, _, height, width = g.shape(grid)
        grid_x, grid_y = _grid_parts(g, grid, n, height * width)
        return _bilinear_sample(g, data, grid_x, grid_y, (height, width)), None


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class SpatialTransformer(OpDef):
    """out[n] = BilinearSampler(data[n], reshape(loc[n], (2, 3)) @ [x; y; 1]) over the target_shape grid
    normalized to [-1, 1]. Mirrors MXNet src/operator/spatial_transformer.cc."""
    inputs = ("data", "loc")
    outputs = ("output", "grid_dst", "grid_src")
    float_only = True
    target_shape: Shape = param((0, 0), doc="output shape(h, w) of spatial transformer: (y, x)")
    transform_type: str = param(choices=("affine",), doc="transformation type")
    sampler_type: str = param(choices=("bilinear",), doc="sampling type")
    cudnn_off: Optional[bool] = param(None, doc="whether to turn cudnn off (no effect: onnxsym never uses cuDNN)")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data, loc):
        _rank(self, data, 4, "data", "batch, channel, height, width")
        _rank(self, loc, 2, "loc", "batch, 6: the localisation net's affine matrices")
        if loc is not None and loc[1] != 6:
            raise MXNetError("SpatialTransformer: incorrect locolisation network shape[1], should be 6, got shape %s"
                             % fmt(loc))
        if data is None or loc is None:
            return None
        if data[0] != loc[0]:
            raise MXNetError("SpatialTransformer: data (shape %s) and loc (shape %s) must have the same batch size"
                             % (fmt(data), fmt(loc)))
        height, width = _target(self, self.target_shape)
        return [data, loc], [(data[0], data[1], height, width), (3, height * width), (data[0], 2, height * width)]

    def infer_type(self, *in_types):
        return _uniform_type(self, in_types)

    def lower(self, g, data, loc):
        dtype = g.dtype(data)
        if dtype == np.float16:
            return _via_float32(g, self, (data, loc))
        n = g.shape(data)[0]
        height, width = _target(self, self.target_shape)
        theta = g.Reshape(loc, g.int64s([n, 2, 3]))
        source = g.MatMul(theta, g.const(_affine_grid(height, width, dtype, True)))       # (N, 2, H*W)
        grid_x, grid_y = _grid_parts(g, source, n, height * width)
        return _bilinear_sample(g, data, grid_x, grid_y, (height, width)), None, None


# ---------------------------------------------------------------- Correlation
@register
class Correlation(OpDef):
    """out[n, q, i, j] = mean over channels c and taps (h, w) of f(data1p[n, c, y1 + h, x1 + w],
    data2p[n, c, y1 + h + dy_q, x1 + w + dx_q]), (y1, x1) = (i, j) * stride1 + max_displacement, f = product or
    absolute difference, data*p zero-padded by pad_size. Mirrors MXNet src/operator/correlation.cc."""
    inputs = ("data1", "data2")
    outputs = ("output", "tmp1", "tmp2")
    float_only = True
    kernel_size: int = param(1, min=1, doc="kernel size for Correlation must be an odd number")
    max_displacement: int = param(1, min=0, doc="Max displacement of Correlation ")
    stride1: int = param(1, min=1, doc="stride1 quantize data1 globally")
    stride2: int = param(1, min=1, doc="stride2 quantize data2 within the neighborhood centered around data1")
    pad_size: int = param(0, min=0, doc="pad for Correlation")
    is_multiply: bool = param(True, doc="operation type is either multiplication or subduction")

    def num_visible_outputs(self):
        return 1

    def _geometry(self, shape):
        """(padded height, padded width, top height, top width, neighbourhood radius, neighbourhood width)."""
        padded = (shape[2] + 2 * self.pad_size, shape[3] + 2 * self.pad_size)
        border = self.max_displacement + (self.kernel_size - 1) // 2
        inner = [size - 2 * border for size in padded]
        if min(inner) < 1:
            raise MXNetError("Correlation cannot be done with current settings. Neighborhood and kernel don't fit in "
                             "blob: data of shape %s padded to %s is not larger than 2 * (max_displacement + "
                             "(kernel_size - 1) / 2) = %d" % (fmt(shape), padded, 2 * border))
        top = [-(-size // self.stride1) for size in inner]          # ceil
        radius = self.max_displacement // self.stride2
        return padded + tuple(top) + (radius, 2 * radius + 1)

    def infer_shape(self, data1, data2):
        _rank(self, data1, 4, "data1", "batch, channel, height, width")
        _rank(self, data2, 4, "data2", "batch, channel, height, width")
        if data1 is not None and data2 is not None and tuple(data1) != tuple(data2):
            raise MXNetError("Correlation: data1 (shape %s) and data2 (shape %s) must have the same shape"
                             % (fmt(data1), fmt(data2)))
        shape = data1 if data1 is not None else data2
        if shape is None:
            return None
        padded_h, padded_w, top_h, top_w, _, grid = self._geometry(shape)
        tmp = (shape[0], padded_h, padded_w, shape[1])
        return [shape, shape], [(shape[0], grid * grid, top_h, top_w), tmp, tmp]

    def infer_type(self, *in_types):
        return _uniform_type(self, in_types)

    def lower(self, g, data1, data2):
        if self.kernel_size % 2 == 0:
            raise MXNetError("Correlation: kernel size should be odd number, got kernel_size=%d" % self.kernel_size)
        dtype = g.dtype(data1)
        if dtype == np.float16:
            return _via_float32(g, self, (data1, data2))
        shape = g.shape(data1)
        n, channels = shape[:2]
        padded_h, padded_w, top_h, top_w, radius, grid = self._geometry(shape)
        k, pad, count = self.kernel_size, self.pad_size, top_h * top_w
        pixels = padded_h * padded_w

        def rows(x):
            """The zero-padded image as (N * padded pixels, C) rows (Gathers of whole rows are fast)."""
            x = g.Pad(x, g.int64s([0, 0, pad, pad, 0, 0, pad, pad]), g.scalar(0, dtype)) if pad else x
            return g.Reshape(g.Transpose(x, perm=[0, 2, 3, 1]), g.int64s([n * pixels, channels]))

        # f(data1, data2) is summed over channels once per pixel of the region the windows cover (and displacement),
        # then over each k x k window: MXNet's sum, with each pixel's product or difference computed once
        if k == 1:      # the windows are the pixels at the output positions
            ys, xs = np.arange(top_h) * self.stride1, np.arange(top_w) * self.stride1
        else:
            ys, xs = np.arange((top_h - 1) * self.stride1 + k), np.arange((top_w - 1) * self.stride1 + k)
        region = ((ys.reshape(-1, 1) + self.max_displacement) * padded_w + xs + self.max_displacement).reshape(1, -1, 1)
        region = region + (np.arange(n) * pixels).reshape(n, 1, 1)                   # (N, R, 1) rows
        size = region.shape[1]
        q = np.arange(grid * grid)
        shifts = ((q // grid - radius) * self.stride2) * padded_w + (q % grid - radius) * self.stride2
        taps = g.const(region.astype(np.int64))
        a = g.Gather(rows(data1), taps, axis=0)                                     # (N, R, 1, C)
        second = rows(data2)
        if self.is_multiply:
            a = g.Reshape(a, g.int64s([n, size, channels, 1]))
        # displacements in chunks of at most _CHUNK gathered values (a FlowNet layer has 441 displacements)
        per_chunk = max(1, _CHUNK // region.size // channels)
        chunks = []
        for start in range(0, grid * grid, per_chunk):
            shift = shifts[start:start + per_chunk]
            b = g.Gather(second, g.Add(taps, g.const(shift.reshape(1, 1, -1))), axis=0)       # (N, R, S, C)
            if self.is_multiply:       # a dot product per pixel and displacement
                chunks.append(g.Reshape(g.MatMul(b, a), g.int64s([n, size, len(shift)])))
                continue
            difference = g.Sub(a, b)    # |a - b| with derivative sign +1 where a >= b, as MXNet's backward
            sign = g.Where(g.GreaterOrEqual(difference, g.scalar(0, dtype)), g.scalar(1, dtype), g.scalar(-1, dtype))
            chunks.append(g.ReduceSum(g.Mul(difference, sign), g.int64s([3]), keepdims=0))      # (N, R, S)
        total = chunks[0] if len(chunks) == 1 else g.Concat(*chunks, axis=2)                  # (N, R, D*D)
        if k > 1:       # window sums: gather the k*k region pixels of each output position
            out_y, out_x, tap_y, tap_x = np.meshgrid(np.arange(top_h), np.arange(top_w), np.arange(k), np.arange(k),
                                                     indexing="ij")
            window = ((out_y * self.stride1 + tap_y) * len(xs) + out_x * self.stride1 + tap_x).reshape(1, count, -1)
            window = window + (np.arange(n) * size).reshape(n, 1, 1)
            total = g.Gather(g.Reshape(total, g.int64s([n * size, grid * grid])), g.const(window.astype(np.int64)),
                             axis=0)                                                # (N, T, k*k, D*D)
            total = g.ReduceSum(total, g.int64s([2]), keepdims=0)
        out = g.Div(g.Transpose(total, perm=[0, 2, 1]), g.scalar(k * k * channels, dtype))
        return g.Reshape(out, g.int64s([n, grid * grid, top_h, top_w])), None, None


# ---------------------------------------------------------------- im2col / col2im
class _Sliding(OpDef):
    """kernel / stride / dilate / pad of im2col and col2im: () means 1 (0 for pad) per dimension, as MXNet's
    SlidingParser fills them."""
    float_only = True

    def __post_init__(self):
        ndim = len(self.kernel)
        if not 1 <= ndim <= 3:
            raise MXNetError("%s: %dD convolution not supported: kernel=%s must have 1, 2 or 3 entries"
                             % (self.op_name, ndim, tuple(self.kernel)))
        for name in ("stride", "dilate", "pad"):
            value = tuple(getattr(self, name))
            if value and len(value) != ndim:
                raise MXNetError("%s: %s must have the same number of dimensions as kernel, but kernel is %s while "
                                 "%s is %s" % (self.op_name, name, tuple(self.kernel), name, value))
        for name in ("kernel", "stride", "dilate"):
            if any(v < 1 for v in self._dims(name)):
                raise MXNetError("%s: incorrect %s size: %s" % (self.op_name, name, tuple(getattr(self, name))))

    def _dims(self, name):
        value = tuple(getattr(self, name))
        return value or ((0 if name == "pad" else 1),) * len(self.kernel)

    def _blocks(self, image, op_shape):
        """(sizes of the padded image, number of blocks per dimension) for spatial sizes `image`."""
        padded, blocks = [], []
        for size, k, s, d, p in zip(image, self.kernel, self._dims("stride"), self._dims("dilate"), self._dims("pad")):
            span = d * (k - 1) + 1
            if span > size + 2 * p:
                raise MXNetError("%s: kernel size exceed %s: the dilated kernel %s spans %d, the padded size is %d "
                                 "(shape %s)" % (self.op_name, "output size" if self.op_name == "col2im" else "input",
                                                 tuple(self.kernel), span, size + 2 * p, fmt(op_shape)))
            padded.append(size + 2 * p)
            blocks.append((size + 2 * p - span) // s + 1)
        return tuple(padded), tuple(blocks)

    def _taps(self, blocks):
        """Per kernel tap, in MXNet's column order: (first, end) positions in the padded image of the strided
        window the tap reads over all blocks."""
        out = []
        for tap in np.ndindex(*self.kernel):
            first = [t * d for t, d in zip(tap, self._dims("dilate"))]
            out.append((first, [f + s * (b - 1) + 1 for f, s, b in zip(first, self._dims("stride"), blocks)]))
        return out


_SLIDING_DOCS = dict(
    kernel="Sliding kernel size: (w,), (h, w) or (d, h, w).",
    stride="The stride between adjacent sliding blocks in spatial dimension: (w,), (h, w) or (d, h, w). Defaults "
           "to 1 for each dimension.",
    dilate="The spacing between adjacent kernel points: (w,), (h, w) or (d, h, w). Defaults to 1 for each "
           "dimension.",
    pad="The zero-value padding size on both sides of spatial dimension: (w,), (h, w) or (d, h, w). Defaults to no "
        "padding.",
)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class im2col(_Sliding):
    """out[n, c*K + k, l] = padded data[n, c] at block l's tap k (K = prod(kernel) taps, L blocks in
    row-major order). Mirrors MXNet src/operator/nn/im2col.cc."""
    kernel: Shape = param(doc=_SLIDING_DOCS["kernel"])
    stride: Shape = param((), doc=_SLIDING_DOCS["stride"])
    dilate: Shape = param((), doc=_SLIDING_DOCS["dilate"])
    pad: Shape = param((), min=0, doc=_SLIDING_DOCS["pad"])

    def infer_shape(self, data):
        if data is None:
            return None
        _rank(self, data, len(self.kernel) + 2, "data", "batch, channel and %d spatial dimensions" % len(self.kernel))
        _, blocks = self._blocks(data[2:], data)
        return [data], [(data[0], data[1] * prod(self.kernel), prod(blocks))]

    def lower(self, g, data):
        if g.dtype(data) == np.float16:
            return _via_float32(g, self, (data,))
        shape = g.shape(data)
        n, channels = shape[:2]
        padded, blocks = self._blocks(shape[2:], shape)
        pad, ndim = self._dims("pad"), len(self.kernel)
        if any(pad):
            data = g.Pad(data, g.int64s([0, 0, *pad, 0, 0, *pad]), g.scalar(0, g.dtype(data)))
        axes, steps = g.int64s(list(range(2, 2 + ndim))), g.int64s(self._dims("stride"))
        taps = [g.Reshape(g.Slice(data, g.int64s(first), g.int64s(end), axes, steps),
                          g.int64s([n, channels, 1, prod(blocks)])) for first, end in self._taps(blocks)]
        columns = g.Concat(*taps, axis=2) if len(taps) > 1 else taps[0]                 # (N, C, K, L)
        return g.Reshape(columns, g.int64s([n, channels * prod(self.kernel), prod(blocks)]))


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class col2im(_Sliding):
    """out[n, c] = sum of the columns data[n, c*K + k, l] at the position of block l's tap k in the padded image,
    cropped to output_size (the adjoint of im2col). Mirrors MXNet src/operator/nn/im2col.cc."""
    output_size: Shape = param(doc="The spatial dimension of image array: (w,), (h, w) or (d, h, w).")
    kernel: Shape = param(doc=_SLIDING_DOCS["kernel"])
    stride: Shape = param((), doc=_SLIDING_DOCS["stride"])
    dilate: Shape = param((), doc=_SLIDING_DOCS["dilate"])
    pad: Shape = param((), min=0, doc=_SLIDING_DOCS["pad"])

    def __post_init__(self):
        super().__post_init__()
        if len(self.output_size) != len(self.kernel):
            raise MXNetError("col2im: output_size must have the same number of dimensions as kernel, but kernel is "
                             "%s while output_size is %s" % (tuple(self.kernel), tuple(self.output_size)))
        if any(v < 1 for v in self.output_size):
            raise MXNetError("col2im: incorrect output size: %s" % (tuple(self.output_size),))

    def infer_shape(self, data):
        if data is None:
            return None
        _rank(self, data, 3, "data", "batch, channel * prod(kernel), number of blocks")
        _, blocks = self._blocks(self.output_size, data)
        if data[2] != prod(blocks):
            raise MXNetError("col2im: output size does not match convolution parameters: data of shape %s has %d "
                             "blocks, output_size=%s with these parameters gives %d"
                             % (fmt(data), data[2], tuple(self.output_size), prod(blocks)))
        taps = prod(self.kernel)
        if data[1] % taps:
            raise MXNetError("col2im: the second dim of input shape should be multiples of kernel size: data of "
                             "shape %s, kernel %s (%d taps)" % (fmt(data), tuple(self.kernel), taps))
        return [data], [(data[0], data[1] // taps, *self.output_size)]

    def lower(self, g, data):
        dtype = g.dtype(data)
        if dtype == np.float16:
            return _via_float32(g, self, (data,))
        n, rows, _ = g.shape(data)
        taps = prod(self.kernel)
        channels = rows // taps
        padded, blocks = self._blocks(self.output_size, g.shape(data))
        stride, ndim = self._dims("stride"), len(self.kernel)
        columns = g.Reshape(data, g.int64s([n, channels, taps, *blocks]))
        parts = g.Split(columns, g.int64s([1] * taps), axis=2, _outputs=taps) if taps > 1 else (columns,)
        image = None
        for part, (first, end) in zip(parts, self._taps(blocks)):
            part = g.Reshape(part, g.int64s([n, channels, *blocks]))
            if any(s > 1 for s in stride):      # s - 1 zeros after every block: (..., b, s, ...) -> b * s
                part = g.Reshape(part, g.int64s([n, channels, *[v for b in blocks for v in (b, 1)]]))
                after = [v for s in stride for v in (0, s - 1)]
                part = g.Pad(part, g.int64s([0] * (2 + 2 * ndim) + [0, 0] + after), g.scalar(0, dtype))
                part = g.Reshape(part, g.int64s([n, channels, *[b * s for b, s in zip(blocks, stride)]]))
                part = g.Slice(part, g.int64s([0] * ndim), g.int64s([e - f for f, e in zip(first, end)]),
                               g.int64s(list(range(2, 2 + ndim))))
            part = g.Pad(part, g.int64s([0, 0, *first, 0, 0, *[size - e for size, e in zip(padded, end)]]),
                         g.scalar(0, dtype))
            image = part if image is None else g.Add(image, part)
        pad = self._dims("pad")
        if not any(pad):
            return image
        return g.Slice(image, g.int64s(pad), g.int64s([p + s for p, s in zip(pad, self.output_size)]),
                       g.int64s(list(range(2, 2 + ndim))))
