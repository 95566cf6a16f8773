"""Training lowerings of imported sampling ops (onnx_training.py says why these exist): DeformConv, GridSample,
Resize, RoiAlign and MaxRoiPool as bilinear/cubic/nearest gathers whose gradients onnxsym's VJP rules have, with the
original node's values."""
import itertools

import numpy as np

from ..base import MXNetError
from .contrib import ROIAlign, ROIPooling
from .indexing import batch_matmul
from ._training_rules import _rule


def _deform_positions(g, node, offset, kernel, out_spatial, offset_group, dtype):
    """Sampling rows and columns (N, offset_group, kH*kW*oH*oW): output position * stride - pad + tap * dilation
    + the offset, whose channels are (offset group, tap, (y, x))."""
    n = g.shape(offset)[0]
    taps, count = int(np.prod(kernel)), int(np.prod(out_spatial))
    stride = node.attrs.get("strides") or [1, 1]
    dilate = node.attrs.get("dilations") or [1, 1]
    pads = node.attrs.get("pads") or [0, 0, 0, 0]
    grid = np.meshgrid(*[np.arange(k) for k in kernel], *[np.arange(o) for o in out_spatial], indexing="ij")
    offsets = g.Reshape(offset, g.int64s([n, offset_group, taps, 2, count]))
    positions = []
    for d in range(2):
        base = grid[2 + d] * stride[d] - pads[d] + grid[d] * dilate[d]          # (kH, kW, oH, oW)
        part = g.Slice(offsets, g.int64s([d]), g.int64s([d + 1]), g.int64s([3]))
        part = g.Reshape(part, g.int64s([n, offset_group, taps * count]))
        positions.append(g.Add(part, g.const(base.reshape(1, 1, -1).astype(dtype))))
    return positions


@_rule("DeformConv", own_ad=True)
def _deform_conv(g, node, inputs):
    """Bilinear samples of X at the offset kernel taps (0 outside the image, as ORT and torchvision), times the
    mask, contracted with W per group by a batched MatMul, plus B: Gathers and products whose gradients reach X,
    W, offset, mask and B (ORT has no DeformConv gradient)."""
    x, w, offset = inputs[:3]
    bias = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    if len(g.shape(x)) != 4:
        raise MXNetError("DeformConv: onnxsym differentiates 2-D DeformConv only (X of rank 4), not X of shape %s"
                         % (tuple(g.shape(x)),))
    dtype = g.dtype(x)
    c = lambda v: g.scalar(v, dtype)
    n, channels, height, width = g.shape(x)
    out_channels = g.shape(w)[0]
    kernel = list(node.attrs.get("kernel_shape") or g.shape(w)[2:])
    group, offset_group = node.attrs.get("group", 1), node.attrs.get("offset_group", 1)
    out_spatial = list(g.shape(offset)[2:])
    taps, count = int(np.prod(kernel)), int(np.prod(out_spatial))
    rows, columns = _deform_positions(g, node, offset, kernel, out_spatial, offset_group, dtype)
    per_group = channels // offset_group
    images = g.Reshape(x, g.int64s([n, offset_group, per_group, height * width]))

    def corners(position, size):
        """[(index along the axis, no gradient; 0/1 inside the image; bilinear weight)] of the two neighbours."""
        low = g.Floor(g.stop_gradient(position, dtype))
        t = g.Sub(position, low)
        out = []
        for index, weight in ((low, g.Sub(c(1), t)), (g.Add(low, c(1)), t)):
            inside = g.And(g.GreaterOrEqual(index, c(0)), g.LessOrEqual(index, c(size - 1)))
            out.append((g.Clip(index, c(0), c(size - 1)), g.cast(inside, dtype), weight))
        return out

    scale = None if mask is None else g.Reshape(mask, g.int64s([n, offset_group, 1, taps * count]))
    sampled = None
    for (row, row_in, row_weight), (column, column_in, column_weight) in itertools.product(
            corners(rows, height), corners(columns, width)):
        index = g.cast(g.Add(g.Mul(row, c(width)), column), np.int64)
        index = g.Expand(g.Unsqueeze(index, g.int64s([2])), g.int64s([n, offset_group, per_group, taps * count]))
        weight = g.Unsqueeze(g.Mul(g.Mul(row_weight, column_weight), g.Mul(row_in, column_in)), g.int64s([2]))
        if scale is not None:
            weight = g.Mul(weight, scale)
        term = g.Mul(g.GatherElements(images, index, axis=3), weight)     # (N, offset groups, C/og, K*L)
        sampled = term if sampled is None else g.Add(sampled, term)
    in_group, out_group = channels // group, out_channels // group
    unfolded = g.Reshape(sampled, g.int64s([n, group, in_group * taps, count]))        # im2col, per group
    kernels = g.Expand(g.Reshape(w, g.int64s([1, group, out_group, in_group * taps])),
                       g.int64s([n, group, out_group, in_group * taps]))
    out = g.Reshape(batch_matmul(g, kernels, unfolded, False, False, 4, dtype),
                    g.int64s([n, out_channels, *out_spatial]))
    return out if bias is None else g.Add(out, g.Reshape(bias, g.int64s([out_channels, 1, 1])))


# ---------------------------------------------------------------- sampling
def _reflect(g, value, low, high, dtype):
    """(value reflected by the near border until inside [low, high], d reflected / d value: +-1), no gradient
    (ONNX GridSample's reflection, applied to coordinates and to the pixels a kernel reaches)."""
    c = lambda v: g.scalar(v, dtype)
    span = high - low
    frozen = g.stop_gradient(value, dtype)
    if span <= 0:           # a single pixel with align_corners: every coordinate reflects onto it
        return g.Add(g.Mul(frozen, c(0)), c(low)), c(0)
    below, above = g.Less(frozen, c(low)), g.Greater(frozen, c(high))
    distance = g.Where(below, g.Sub(c(low), frozen), g.Where(above, g.Sub(frozen, c(high)), c(0)))
    turns = g.Floor(g.Div(distance, c(span)))
    rest = g.Sub(distance, g.Mul(turns, c(span)))
    even = g.Equal(g.Mod(turns, c(2), fmod=1), c(0))
    near, far = g.Where(below, c(low), c(high)), g.Where(below, c(high), c(low))
    toward = g.Where(below, c(1), c(-1))          # from the near border into the image
    reflected = g.Where(even, g.Add(near, g.Mul(toward, rest)), g.Sub(far, g.Mul(toward, rest)))
    reflected = g.Where(g.Or(below, above), reflected, frozen)
    sign = g.Where(g.And(g.Or(below, above), even), c(-1), c(1))
    return g.stop_gradient(reflected, dtype), g.stop_gradient(sign, dtype)


def _sample_axis(g, coordinate, size, align_corners, padding, dtype):
    """Pixel coordinate of a normalized one, padded (border: clamped; reflection: reflected, derivative +-1)."""
    c = lambda v: g.scalar(v, dtype)
    if align_corners:
        x = g.Mul(g.Add(coordinate, c(1)), c((size - 1) / 2.0))
    else:
        x = g.Div(g.Sub(g.Mul(g.Add(coordinate, c(1)), c(size)), c(1)), c(2))
    return x if padding is None else _pad_coordinate(g, x, size, align_corners, padding, dtype)


def _pad_coordinate(g, x, size, align_corners, padding, dtype):
    c = lambda v: g.scalar(v, dtype)
    low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if padding == "border":
        return g.Clip(x, c(0), c(size - 1))
    if padding == "reflection":
        reflected, sign = _reflect(g, x, low, high, dtype)
        return g.Add(reflected, g.Mul(g.Sub(x, g.stop_gradient(x, dtype)), sign))
    return x


def _cubic_weights(g, t, c, a=-0.75):
    """Keys' cubic convolution weights of the taps at -1, 0, 1, 2 from the left neighbour, t in [0, 1)."""
    far = lambda d: g.Sub(g.Mul(g.Add(g.Mul(g.Sub(g.Mul(c(a), d), c(5 * a)), d), c(8 * a)), d), c(4 * a))
    near = lambda d: g.Add(g.Mul(g.Mul(g.Sub(g.Mul(c(a + 2), d), c(a + 3)), d), d), c(1))
    one_minus = g.Sub(c(1), t)
    return [far(g.Add(t, c(1))), near(t), near(one_minus), far(g.Add(one_minus, c(1)))]


@_rule("GridSample", float64=True, own_ad=True)
def _grid_sample(g, node, inputs):
    """Nearest / (bi, tri)linear / bicubic sampling of 2-D or 3-D images as GatherElements of the taps times
    interpolation weights that are differentiable in the grid (ORT has no GridSample gradient, nor a float64
    kernel). As ORT: nearest rounds half to even before padding; the coordinate is padded (border, reflection;
    bicubic: reflection only) before the kernel; the taps outside the image are 0 (zeros), the edge (border) or
    reflected (reflection)."""
    x, grid = inputs
    mode = node.attrs.get("mode", "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = node.attrs.get("padding_mode", "zeros")
    if mode not in ("linear", "nearest", "cubic") or padding not in ("zeros", "border", "reflection"):
        raise MXNetError("GridSample: mode %s / padding_mode %s is not one ONNX defines" % (mode, padding))
    align = bool(node.attrs.get("align_corners", 0))
    n, channels, *sizes = g.shape(x)
    out_spatial = g.shape(grid)[1:-1]
    rank, count = len(sizes), int(np.prod(out_spatial))
    dtype = g.dtype(x)
    c = lambda v: g.scalar(v, dtype)
    # grid[..., 0] is the last spatial axis (width), grid[..., 1] the one before, ...
    part = lambda k: g.Reshape(g.Slice(grid, g.int64s([k]), g.int64s([k + 1]), g.int64s([rank + 1])),
                               g.int64s([n, 1, count]))
    flat = g.Reshape(x, g.int64s([n, channels, int(np.prod(sizes))]))
    strides = [int(np.prod(sizes[d + 1:])) for d in range(rank)]

    def taps(d):
        """[(pixel index along spatial axis d (float-valued, no gradient), weight or None)]."""
        size = sizes[d]
        if mode == "nearest":
            pixel = g.Round(g.stop_gradient(_sample_axis(g, part(rank - 1 - d), size, align, None, dtype), dtype))
            return [(g.stop_gradient(_pad_coordinate(g, pixel, size, align, padding, dtype), dtype), None)]
        # ORT's bicubic leaves the coordinate as it is with border padding: only the taps are clamped
        coordinate = _sample_axis(g, part(rank - 1 - d), size, align,
                                  None if mode == "cubic" and padding == "border" else padding, dtype)
        low = g.Floor(g.stop_gradient(coordinate, dtype))
        t = g.Sub(coordinate, low)
        if mode == "linear":
            return [(low, g.Sub(c(1), t)), (g.Add(low, c(1)), t)]
        return [(g.Add(low, c(k)), w) for k, w in zip((-1, 0, 1, 2), _cubic_weights(g, t, c))]

    def pixel(d, index):
        """(index inside axis d, 0/1 mask or None) under the padding mode."""
        size = sizes[d]
        if padding == "reflection":
            low, high = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
            index = _reflect(g, index, low, high, dtype)[0]
        inside = None
        if padding == "zeros":
            inside = g.And(g.GreaterOrEqual(index, c(0)), g.LessOrEqual(index, c(size - 1)))
        return g.Clip(index, c(0), c(size - 1)), inside

    per_axis = [[(pixel(d, index), weight) for index, weight in taps(d)] for d in range(rank)]
    out = None
    for combination in itertools.product(*per_axis):
        index, inside, weight = None, None, None
        for d, ((position, mask), w) in enumerate(combination):
            term = g.Mul(position, c(strides[d])) if strides[d] != 1 else position
            index = term if index is None else g.Add(index, term)
            if mask is not None:
                inside = mask if inside is None else g.And(inside, mask)
            if w is not None:
                weight = w if weight is None else g.Mul(weight, w)
        index = g.cast(index, np.int64)
        value = g.GatherElements(flat, g.Expand(index, g.int64s([n, channels, count])), axis=2)
        if inside is not None:
            weight = g.cast(inside, dtype) if weight is None else g.Mul(weight, g.cast(inside, dtype))
        term = value if weight is None else g.Mul(value, weight)
        out = term if out is None else g.Add(out, term)
    return g.Reshape(out, g.int64s([n, channels, *out_spatial]))


def _resize_setting(g, value, position, dtype):
    """Element `position` of a Resize setting input (roi, scales) as a scalar of `dtype`, without gradient."""
    return g.stop_gradient(g.cast(g.Gather(value, g.int64s(position), axis=0), dtype), dtype)


def _resize_scale(g, node, settings, k, n_in, n_out, dtype):
    """(the runtime scale of the k-th resized axis, a static lower bound of it). With `sizes` the scale is
    n_out / n_in, or, with keep_aspect_ratio_policy, the one scale of every axis (min or max of sizes / input)."""
    roi, scales, sizes, axes, in_shape = settings
    if scales is not None:
        # ONNX: n_out = floor(n_in * scale); the margin covers float32 rounding of the product
        return _resize_setting(g, scales, k, dtype), n_out / n_in * (1 - 1e-6)
    policy = node.attrs.get("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return g.scalar(n_out / n_in, dtype), n_out / n_in
    if policy not in ("not_larger", "not_smaller"):
        raise MXNetError("Resize: keep_aspect_ratio_policy %s is not one of stretch, not_larger, not_smaller" % policy)
    ratios = g.Div(g.cast(sizes, dtype), g.const(np.array([in_shape[a] for a in axes], dtype=dtype)))
    scale = (g.ReduceMin if policy == "not_larger" else g.ReduceMax)(ratios, keepdims=0)
    return g.stop_gradient(scale, dtype), max(n_out - 0.5, 0.5) / n_in      # n_out = round(n_in * scale)


def _resize_coordinates(g, node, settings, k, n_in, n_out, scale, dtype):
    """The input coordinate of each output position along the k-th resized axis (n_out,), as ONNX's
    coordinate_transformation_mode defines it (values, no gradient: roi and scales are settings)."""
    c = lambda v: g.scalar(v, dtype)
    mode = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    position = g.const(np.arange(n_out, dtype=dtype))
    half_pixel = lambda: g.Sub(g.Div(g.Add(position, c(0.5)), scale), c(0.5))
    if mode == "align_corners":
        return g.Mul(position, c((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0))
    if mode == "asymmetric":
        return g.Div(position, scale)
    if mode == "half_pixel":
        return half_pixel()
    if mode == "pytorch_half_pixel":
        return half_pixel() if n_out > 1 else g.Mul(position, c(0.0))
    if mode == "half_pixel_symmetric":
        adjustment = g.Div(c(n_out), g.Mul(scale, c(n_in)))       # the integer output size over the exact one
        offset = g.Mul(c(n_in / 2.0), g.Sub(c(1), adjustment))
        return g.Add(offset, half_pixel())
    if mode == "tf_crop_and_resize":
        roi, rank = settings[0], len(settings[3])
        if roi is None:
            raise MXNetError("Resize: coordinate_transformation_mode tf_crop_and_resize needs the roi input")
        start, end = _resize_setting(g, roi, k, dtype), _resize_setting(g, roi, k + rank, dtype)
        if n_out == 1:
            return g.Add(g.Mul(position, c(0.0)), g.Mul(g.Add(start, end), c(0.5 * (n_in - 1))))
        step = g.Mul(g.Sub(end, start), c((n_in - 1) / (n_out - 1)))
        return g.Add(g.Mul(start, c(n_in - 1)), g.Mul(position, step))
    raise MXNetError("Resize: coordinate_transformation_mode %s is not one ONNX defines" % mode)


def _resize_kernel(g, node, distance, c):
    """The interpolation kernel at `distance` (|t|): linear's triangle or the Keys cubic with cubic_coeff_a."""
    if node.attrs.get("mode") == "linear":
        return g.Max(g.Sub(c(1), distance), c(0))
    a = node.attrs.get("cubic_coeff_a", -0.75)
    t = distance
    near = g.Add(g.Mul(g.Mul(g.Sub(g.Mul(c(a + 2), t), c(a + 3)), t), t), c(1))
    far = g.Sub(g.Mul(g.Add(g.Mul(g.Sub(g.Mul(c(a), t), c(5 * a)), t), c(8 * a)), t), c(4 * a))
    return g.Where(g.LessOrEqual(t, c(1)), near, g.Where(g.Less(t, c(2)), far, c(0)))


def _resize_taps(g, node, coordinate, n_in, scale, scale_low, dtype):
    """[(input index (n_out,) int64, weight (n_out,) or None)] of the interpolation along one axis, as onnx's
    reference defines it: the taps left of the coordinate (ratio in (0, 1]) and right of it, edge-padded; with
    antialias and a scale below 1 the kernel is stretched by 1 / scale (more taps) and normalized to sum 1;
    exclude_outside drops the taps outside the input and renormalizes."""
    c = lambda v: g.scalar(v, dtype)
    index = lambda v: g.cast(g.Clip(v, c(0), c(n_in - 1)), np.int64)
    mode = node.attrs.get("mode", "nearest")
    if mode == "nearest":       # (antialias and exclude_outside apply to linear and cubic only)
        rounding = node.attrs.get("nearest_mode", "round_prefer_floor")
        rounders = {"round_prefer_floor": lambda v: g.Ceil(g.Sub(v, c(0.5))),
                    "round_prefer_ceil": lambda v: g.Floor(g.Add(v, c(0.5))), "floor": g.Floor, "ceil": g.Ceil}
        if rounding not in rounders:
            raise MXNetError("Resize: nearest_mode %s is not one ONNX defines" % rounding)
        return [(index(rounders[rounding](coordinate)), None)]
    radius = 1 if mode == "linear" else 2
    antialias = bool(node.attrs.get("antialias", 0))
    stretch = 1.0 / min(scale_low, 1.0) if antialias else 1.0
    first = int(np.floor(-radius * stretch)) + 1          # taps first .. 1 - first around the left neighbour
    base = g.Sub(g.Ceil(coordinate), c(1))                # left neighbour: ratio = coordinate - base in (0, 1]
    ratio = g.Sub(coordinate, base)
    factor = g.Min(scale, c(1.0)) if antialias else None
    taps, weights = [], []
    for k in range(first, 2 - first):
        offset = g.Sub(c(k), ratio)
        distance = g.Abs(offset if factor is None else g.Mul(offset, factor))
        taps.append(g.Add(base, c(k)))
        weights.append(_resize_kernel(g, node, distance, c))
    if node.attrs.get("exclude_outside", 0):
        weights = [g.Mul(w, g.cast(g.And(g.GreaterOrEqual(t, c(0)), g.LessOrEqual(t, c(n_in - 1))), dtype))
                   for w, t in zip(weights, taps)]
    if antialias or node.attrs.get("exclude_outside", 0):
        total = weights[0]
        for w in weights[1:]:
            total = g.Add(total, w)
        weights = [g.Div(w, total) for w in weights]
    return [(index(t), w) for t, w in zip(taps, weights)]


@_rule("Resize", float64=True, own_ad=True)
def _resize(g, node, inputs):
    """One axis at a time: Gather of the interpolation taps times their weights (ORT has no CPU ResizeGrad
    kernel); every attribute as ONNX's spec and reference define it. roi, scales and sizes are settings (no
    gradient). An axis is skipped only where it is the identity for any setting (size 1, or sizes keeping it)."""
    if node._op.opset < 11:
        raise MXNetError("Resize: the opset-10 form (scales as the second input) is not supported in training "
                         "graphs; convert the model to opset 11 or later")
    x, roi, scales, sizes = (list(inputs) + [None] * 4)[:4]
    present = lambda v: v is not None and g.shape(v)[0] > 0
    roi = roi if present(roi) else None
    scales, sizes = (scales if present(scales) else None), (sizes if present(sizes) else None)
    mode = node.attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise MXNetError("Resize: mode %s is not one ONNX defines (nearest, linear, cubic)" % mode)
    transform = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    shape, out_shape, dtype = list(g.shape(x)), node.out_shapes[0], g.dtype(x)
    axes = [a % len(shape) for a in node.attrs.get("axes", range(len(shape)))]
    if node.attrs.get("antialias", 0) and mode != "nearest" and transform == "tf_crop_and_resize":
        raise MXNetError("Resize: antialias with tf_crop_and_resize is not supported in training graphs (the "
                         "filter width depends on the run-time roi)")
    if list(out_shape) == shape:        # ORT copies the input whatever the scales and roi say (the reference not)
        return g.Identity(x)
    settings = (roi, scales, sizes, axes, shape)
    fixed = scales is None and node.attrs.get("keep_aspect_ratio_policy", "stretch") == "stretch"
    out, outside = x, None
    for k, axis in enumerate(axes):
        n_in, n_out = shape[axis], out_shape[axis]
        if n_in == n_out and (n_in == 1 or (fixed and transform != "tf_crop_and_resize")):
            continue
        scale, scale_low = _resize_scale(g, node, settings, k, n_in, n_out, dtype)
        coordinate = _resize_coordinates(g, node, settings, k, n_in, n_out, scale, dtype)
        result = None
        for index, weight in _resize_taps(g, node, coordinate, n_in, scale, scale_low, dtype):
            value = g.Gather(out, index, axis=axis)
            if weight is not None:
                value = g.Mul(value, g.Reshape(weight, g.int64s([n_out] + [1] * (len(shape) - axis - 1))))
            result = value if result is None else g.Add(result, value)
        out = result
        if transform == "tf_crop_and_resize":       # outside the input: extrapolation_value
            c = lambda v: g.scalar(v, dtype)
            away = g.Or(g.Less(coordinate, c(0)), g.Greater(coordinate, c(n_in - 1)))
            away = g.Reshape(away, g.int64s([n_out] + [1] * (len(shape) - axis - 1)))
            outside = away if outside is None else g.Or(outside, away)
    if outside is not None:
        out = g.Where(outside, g.scalar(node.attrs.get("extrapolation_value", 0.0), dtype), out)
    return out if out is not x else g.Identity(x)


def _reduce(g, op_type, value, axis):
    """ReduceMax / ReduceMin over one axis, dropped (axes are an input from opset 18, an attribute before)."""
    if g.domains[""] >= 18:
        return g.emit(op_type, [value, g.int64s([axis])], {"keepdims": 0})
    return g.emit(op_type, [value], {"axes": [axis], "keepdims": 0})


def _roi_max_axis(g, lo, hi, pooled, size, ratio, half_pixel, scale, dtype):
    """ORT's RoiAlign samples along one axis, summarized per pixel: (max weight, min weight) over the samples of
    each bin whose bilinear taps reach the pixel, (R, pooled, size) (-1 / 2 where none does), and (R, pooled)
    whether some sample of the bin lies outside [-1, size] (it contributes 0)."""
    c = lambda v: g.scalar(v, dtype)
    start = g.Sub(g.Mul(lo, scale), c(0.5 if half_pixel else 0.0))
    length = g.Sub(g.Sub(g.Mul(hi, scale), c(0.5 if half_pixel else 0.0)), start)
    if not half_pixel:
        length = g.Max(length, c(1))
    bin_size = g.Div(length, c(pooled))                                                  # (R, 1)
    base = g.Add(start, g.Mul(g.const(np.arange(pooled, dtype=dtype).reshape(1, -1)), bin_size))   # (R, P)
    if ratio > 0:
        count, first = c(ratio), None
        index = g.const(np.arange(ratio, dtype=dtype).reshape(1, 1, -1))
        window = ratio
    else:
        # ceil(bin) samples, >= 0.5 apart when there are several: 2*size + 4 of them from the first at or above -1
        # (minus one) reach past `size`; the rest lie outside [-1, size]
        count = g.Ceil(bin_size)
        step = g.Div(bin_size, g.Max(count, c(1)))
        first = g.Max(g.Sub(g.Ceil(g.Sub(g.Div(g.Sub(c(-1), base), step), c(0.5))), c(1)), c(0))   # (R, P)
        window = 2 * size + 4
        index = g.Add(g.Unsqueeze(first, g.int64s([2])),
                      g.const(np.arange(window, dtype=dtype).reshape(1, 1, -1)))
    grid = count if ratio > 0 else g.Unsqueeze(g.Max(count, c(1)), g.int64s([2]))
    y = g.Add(g.Unsqueeze(base, g.int64s([2])),
              g.Div(g.Mul(g.Add(index, c(0.5)), g.Unsqueeze(bin_size, g.int64s([2]))), grid))   # (R, P, G)
    in_grid = None if ratio > 0 else g.Less(index, g.Unsqueeze(count, g.int64s([2])))
    inside = g.And(g.GreaterOrEqual(y, c(-1)), g.LessOrEqual(y, c(size)))
    outside = g.Not(inside) if in_grid is None else g.And(in_grid, g.Not(inside))
    some_outside = g.cast(_reduce(g, "ReduceMax", g.cast(outside, dtype), 2), np.bool_)
    if ratio <= 0:
        beyond = g.Greater(count, g.Add(first, c(window)))
        some_outside = g.Or(some_outside, g.Or(g.Greater(first, c(0)), beyond))
    used = inside if in_grid is None else g.And(inside, in_grid)
    y = g.Max(y, c(0))
    low = g.Floor(y)
    at_end = g.GreaterOrEqual(low, c(size - 1))
    low = g.Where(at_end, g.Expand(c(size - 1), g.Shape(low)), low)
    high = g.Where(at_end, low, g.Add(low, c(1)))
    frac = g.Sub(g.Where(at_end, low, y), low)
    pixel = g.const(np.arange(size, dtype=dtype).reshape(1, 1, 1, -1))
    expand = lambda v: g.Unsqueeze(v, g.int64s([3]))
    used4 = expand(used)
    at_low = g.And(used4, g.Equal(pixel, expand(low)))
    at_high = g.And(used4, g.Equal(pixel, expand(high)))
    weight_low, weight_high = expand(g.Sub(c(1), frac)), expand(frac)
    largest = g.Max(g.Where(at_low, weight_low, c(-1)), g.Where(at_high, weight_high, c(-1)))
    smallest = g.Min(g.Where(at_low, weight_low, c(2)), g.Where(at_high, weight_high, c(2)))
    return _reduce(g, "ReduceMax", largest, 2), _reduce(g, "ReduceMin", smallest, 2), some_outside


def _roi_align_max(g, node, x, rois, batch):
    """mode max as ORT computes it: per bin, the largest of w_k * x[tap_k] over the four bilinear taps of every
    sample (0 for a sample outside [-1, size]). For a pixel the weights reaching it form a product set, so the
    largest candidate of the pixel is x * (max wy * max wx) for x >= 0 and x * (min wy * min wx) for x < 0: two
    masked maxima, first along the width, then along the height."""
    dtype = g.dtype(x)
    _, _, height, width = g.shape(x)
    c = lambda v: g.scalar(v, dtype)
    ph, pw = node.attrs.get("output_height", 1), node.attrs.get("output_width", 1)
    ratio = node.attrs.get("sampling_ratio", 0)
    half_pixel = node.attrs.get("coordinate_transformation_mode", "half_pixel") == "half_pixel"
    scale = c(np.float32(node.attrs.get("spatial_scale", 1.0)))
    boxes = g.stop_gradient(g.cast(rois, dtype), dtype)
    x1, y1, x2, y2 = [g.Slice(boxes, g.int64s([i]), g.int64s([i + 1]), g.int64s([1])) for i in range(4)]
    wy_max, wy_min, out_y = _roi_max_axis(g, y1, y2, ph, height, ratio, half_pixel, scale, dtype)
    wx_max, wx_min, out_x = _roi_max_axis(g, x1, x2, pw, width, ratio, half_pixel, scale, dtype)
    lowest = c(np.finfo(dtype).min / 4)
    images = g.Unsqueeze(g.Gather(x, g.cast(batch, np.int64), axis=0), g.int64s([3]))       # (R, C, H, 1, W)
    wx = lambda v: g.Unsqueeze(v, g.int64s([1, 2]))                                         # (R, 1, 1, PW, W)
    reach_x = wx(g.GreaterOrEqual(wx_max, c(0)))
    positive = g.GreaterOrEqual(images, c(0))
    best = lambda mask, weight: _reduce(g, "ReduceMax", g.Where(g.And(reach_x, mask), g.Mul(images, wx(weight)),
                                                                lowest), 4)                # (R, C, H, PW)
    pos, neg = best(positive, wx_max), best(g.Not(positive), wx_min)
    wy = lambda v: g.Unsqueeze(v, g.int64s([1, 4]))                                         # (R, 1, PH, H, 1)
    pos, neg = g.Unsqueeze(pos, g.int64s([2])), g.Unsqueeze(neg, g.int64s([2]))             # (R, C, 1, H, PW)
    candidate = g.Max(g.Where(g.Greater(pos, lowest), g.Mul(pos, wy(wy_max)), lowest),
                      g.Where(g.Greater(neg, lowest), g.Mul(neg, wy(wy_min)), lowest))
    candidate = g.Where(wy(g.GreaterOrEqual(wy_max, c(0))), candidate, lowest)
    out = _reduce(g, "ReduceMax", candidate, 3)                                             # (R, C, PH, PW)
    some_outside = g.Or(g.Unsqueeze(out_y, g.int64s([1, 3])), g.Unsqueeze(out_x, g.int64s([1, 2])))
    out = g.Where(some_outside, g.Max(out, c(0)), out)
    return g.Where(g.Greater(out, lowest), out, c(0))       # a bin without samples: 0


@_rule("RoiAlign", own_ad=True)
def _roi_align(g, node, inputs):
    """mode avg: MXNet's ROIAlign gather form (ORT has no RoiAlign gradient; its CPU kernel equals MXNet's,
    half_pixel being MXNet's aligned=True); mode max: _roi_align_max. The boxes get no gradient, as in MXNet."""
    x, rois, batch = inputs
    mode = node.attrs.get("mode", "avg")
    if mode == "max":
        return _roi_align_max(g, node, x, rois, batch)
    if mode != "avg":
        raise MXNetError("RoiAlign: mode %s is not one ONNX defines (avg, max)" % mode)
    op = ROIAlign(pooled_size=(node.attrs.get("output_height", 1), node.attrs.get("output_width", 1)),
                  spatial_scale=node.attrs.get("spatial_scale", 1.0),
                  sample_ratio=node.attrs.get("sampling_ratio", 0) or -1,
                  aligned=node.attrs.get("coordinate_transformation_mode", "half_pixel") == "half_pixel")
    dtype = g.dtype(rois)
    rois = g.Concat(g.cast(g.Unsqueeze(batch, g.int64s([1])), dtype), rois, axis=1)
    g.set_info(rois, None, dtype)
    return op.lower(g, x, rois)


@_rule("MaxRoiPool", own_ad=True)
def _max_roi_pool(g, node, inputs):
    """MXNet's ROIPooling gather form (ORT has no MaxRoiPool gradient; its CPU kernel equals MXNet's). The boxes
    get no gradient, as in MXNet."""
    x, rois = inputs
    op = ROIPooling(pooled_size=tuple(node.attrs["pooled_shape"]), spatial_scale=node.attrs.get("spatial_scale", 1.0))
    return op.lower(g, x, rois)[0]
