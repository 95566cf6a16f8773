"""VJP rules of neural-network ONNX ops: Conv, ConvTranspose, pooling, normalization.

Windows are read from the node's attributes with auto_pad resolved to explicit pads. The data gradient of a
window op is the transposed window op: ConvTranspose for Conv (or, stride 1, a Conv with the flipped kernel, which
ORT runs faster), Conv for ConvTranspose, a ones-kernel ConvTranspose for AveragePool, and a scatter of MaxPool's
argmax indices (the first maximum of a window gets the gradient, as in MXNet and ORT)."""
from math import prod

import numpy as np

from .registry import custom_rule, rule
from .shape import static_shape


def _needs(g, node, index):
    """Whether input `index` of `node` takes a gradient (present, and depends on a differentiated input): the
    other gradients are never built (a first layer's data gradient, constant kernels)."""
    name = node.input[index] if index < len(node.input) else ""
    return bool(name) and name in getattr(g, "active", (name,))


def _window(g, node, kernel=None):
    """(kernel, strides, dilations, pads (begin + end), ceil_mode) of a Conv/Pool node, auto_pad resolved."""
    attrs = g.attrs(node)
    x_shape = static_shape(g, node.input[0])
    spatial = x_shape[2:]
    rank = len(spatial)
    kernel = list(attrs.get("kernel_shape") or kernel)
    strides = list(attrs.get("strides") or [1] * rank)
    dilations = list(attrs.get("dilations") or [1] * rank)
    pads = list(attrs.get("pads") or [0] * (2 * rank))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * rank)
        for i, (x, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
            out = -(-x // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - x)
            small, large = total // 2, total - total // 2
            pads[i], pads[i + rank] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    return kernel, strides, dilations, pads, attrs.get("ceil_mode", 0)


def _transpose_geometry(spatial, out, kernel, strides, dilations, pads):
    """(pads, output_padding) making a ConvTranspose of an `out`-sized input with this window return exactly
    `spatial` (the positions no window reads get zeros; windows past the padded end are cropped)."""
    rank = len(spatial)
    begin, end, extra = list(pads[:rank]), [0] * rank, [0] * rank
    for i, (x, o, k, s, d) in enumerate(zip(spatial, out, kernel, strides, dilations)):
        covered = (o - 1) * s + (k - 1) * d + 1          # from the padded start
        rest = x + begin[i] - covered
        if rest >= 0:
            extra[i] = rest
        else:
            end[i] = -rest
    return begin + end, extra


@rule("Conv")
def _conv(g, node, out_grads):
    x, w = node.input[:2]
    dy = out_grads[0]
    x_shape, w_shape = static_shape(g, x), static_shape(g, w)
    kernel, strides, dilations, pads, _ = _window(g, node, kernel=w_shape[2:])
    group = g.attrs(node).get("group", 1)
    y_shape = static_shape(g, node.output[0])
    grads = [_conv_data_grad(g, dy, w, x_shape, y_shape, kernel, strides, dilations, pads, group)
             if _needs(g, node, 0) else None,
             _conv_weight_grad(g, x, dy, w_shape, y_shape, kernel, strides, dilations, pads, group)
             if _needs(g, node, 1) else None]
    if _needs(g, node, 2):
        axes = [0] + list(range(2, len(y_shape)))
        grads.append(g.like(g.ReduceSum(dy, g.int64s(axes), keepdims=0), node.input[2]))
    return grads


def _flipped_transposed(g, w, w_shape, group):
    """The (C, M/group, k...) kernel of Conv weight (M, C/group, k...) with its spatial axes reversed."""
    m, cg = w_shape[:2]
    spatial = list(w_shape[2:])
    rank = len(spatial)
    if group == 1:
        t = g.Transpose(w, perm=[1, 0] + list(range(2, 2 + rank)))
    else:
        grouped = g.Reshape(w, g.int64s([group, m // group, cg] + spatial))
        t = g.Reshape(g.Transpose(grouped, perm=[0, 2, 1] + list(range(3, 3 + rank))),
                      g.int64s([cg * group, m // group] + spatial))
    if all(k == 1 for k in spatial):
        return t
    big = np.iinfo(np.int64).max
    axes = list(range(2, 2 + rank))
    return g.Slice(t, g.int64s([-1] * rank), g.int64s([-big] * rank), g.int64s(axes), g.int64s([-1] * rank))


def _conv_data_grad(g, dy, w, x_shape, y_shape, kernel, strides, dilations, pads, group):
    rank = len(kernel)
    spatial, out = x_shape[2:], y_shape[2:]
    t_pads, extra = _transpose_geometry(spatial, out, kernel, strides, dilations, pads)
    # stride 1, kernels up to 3 wide, images of 14x14 or more: a Conv of dy with the flipped, transposed kernel
    # (1.1-1.25x faster than ConvTranspose in ORT at ResNet sizes; 5x5 kernels (padding 4) and smaller images are
    # 1.2-12x slower that way: LeNet's conv dX went 10.0 -> 3.4 ms as ConvTranspose, bench/bench_vjp_nn.py)
    flip_pads = [(k - 1) * d - p for k, d, p in zip(kernel * 2, dilations * 2, t_pads)]
    flip_pads = [p + e for p, e in zip(flip_pads, [0] * rank + extra)]
    # (the flip is a negative-step Slice of the weights, slow on big kernels: worth it while the weights are no
    # larger than dy; ResNet-18's last stage at 32x32 input went from 7.6 ms of Slice to a ConvTranspose)
    small_weights = prod(static_shape(g, w)) <= prod(y_shape)
    flip_pays = max(kernel) <= 3 and prod(spatial) >= 14 ** rank
    if all(s == 1 for s in strides) and all(p >= 0 for p in flip_pads) and small_weights and flip_pays:
        dx = g.Conv(dy, _flipped_transposed(g, w, static_shape(g, w), group), group=group,
                    kernel_shape=list(kernel), dilations=list(dilations), pads=flip_pads)
    else:
        dx = g.ConvTranspose(dy, w, group=group, kernel_shape=list(kernel), strides=list(strides),
                             dilations=list(dilations), pads=t_pads, output_padding=extra)
    g.set_info(dx, x_shape, g.dtype(dy))
    return dx


_COLUMNS_BYTES = 32 << 20


def _conv_weight_grad(g, x, dy, w_shape, y_shape, kernel, strides, dilations, pads, group):
    """im2col, then one batched MatMul: the columns are a Conv of x with one-hot kernels (C*K, 1, k...) in C groups
    and the forward's strides, dilations and pads, (N, C*K, out); dW of group j = sum_n dy[n, j] @ cols[n, j]^T.
    1.2-2x ORT's ConvGrad at ResNet sizes, the fastest standard form measured (bench/bench_vjp_nn.py); a 1x1
    unpadded kernel uses (strided) x itself as its columns."""
    rank = len(kernel)
    x_shape = static_shape(g, x)
    n, c = x_shape[:2]
    m = w_shape[0]
    taps = prod(kernel)
    out = prod(y_shape[2:])
    dtype = g.dtype(x)
    # Small images, many channels: the per-sample products (N, M, C*K) would outweigh moving the activations, so
    # the batch is folded into the contraction instead: dW = dy (M, N*out) @ cols (N*out, C*K), one MatMul.
    fold = group == 1 and n * m * c * taps > 2 * n * out * (c * taps + m)
    # Otherwise columns of more than _COLUMNS_BYTES (ResNet-18's first stage at batch 16: 115 MB, 9x the
    # activation) are made and reduced a few samples at a time: the step's peak memory drops (1216 -> 1114 MiB
    # training ResNet-18 at batch 16) for ~1 % of its time.
    per = n
    onehots = None
    if taps == 1 and not any(pads):
        cols = x
        if any(s != 1 for s in strides):
            cols = g.Slice(x, g.int64s([0] * rank), g.int64s([(o - 1) * s + 1 for o, s in zip(y_shape[2:], strides)]),
                           g.int64s(list(range(2, 2 + rank))), g.int64s(list(strides)))
    else:
        onehot = np.eye(taps, dtype=dtype).reshape((taps, 1) + tuple(kernel))
        onehots = g.const(np.tile(onehot, (c,) + (1,) * (rank + 1)))
        if not fold:
            per = max(1, min(n, _COLUMNS_BYTES // (c * taps * out * np.dtype(dtype).itemsize)))
        cols = g.Conv(x, onehots, group=c, kernel_shape=list(kernel), strides=list(strides),
                      dilations=list(dilations), pads=list(pads)) if per == n else None
    if fold:
        flat_dy = g.Reshape(g.Transpose(g.Reshape(dy, g.int64s([n, m, out])), perm=[1, 0, 2]),
                            g.int64s([m, n * out]))
        flat_cols = g.Reshape(g.Transpose(g.Reshape(cols, g.int64s([n, c * taps, out])), perm=[0, 2, 1]),
                              g.int64s([n * out, c * taps]))
        product = g.MatMul(flat_dy, flat_cols)
        g.set_info(product, (m, c * taps), dtype)
        return g.reshape_to(product, w_shape)
    summed = None
    for start in range(0, n, per):
        stop = min(n, start + per)
        part, part_dy = cols, dy
        if per < n:
            part = g.Conv(_samples(g, x, start, stop), onehots, group=c, kernel_shape=list(kernel),
                          strides=list(strides), dilations=list(dilations), pads=list(pads))
            part_dy = _samples(g, dy, start, stop)
        part = g.Reshape(part, g.int64s([stop - start, group, c // group * taps, out]))
        grouped_dy = g.Reshape(part_dy, g.int64s([stop - start, group, m // group, out]))
        per_sample = g.MatMul(grouped_dy, g.Transpose(part, perm=[0, 1, 3, 2]))     # (N, G, M/G, C/G*K)
        reduced = g.ReduceSum(per_sample, g.int64s([0]), keepdims=0)
        summed = reduced if summed is None else g.Add(summed, reduced)
    g.set_info(summed, (group, m // group, c // group * taps), dtype)
    return g.reshape_to(summed, w_shape)


def _samples(g, value, start, stop):
    """value[start:stop] along the batch axis."""
    part = g.Slice(value, g.int64s([start]), g.int64s([stop]), g.int64s([0]))
    g.set_info(part, (stop - start,) + tuple(static_shape(g, value)[1:]), g.dtype(value))
    return part


def _conv_transpose_pads(g, node, x_shape, y_shape, kernel, strides, dilations):
    """ConvTranspose's pads (begin + end) as ORT applies them: from output_shape or auto_pad SAME (the odd pad
    at the end for SAME_UPPER, at the start otherwise), else the attribute."""
    attrs = g.attrs(node)
    rank = len(kernel)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    extra = list(attrs.get("output_padding") or [0] * rank)
    if "output_shape" not in attrs and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return [0] * (2 * rank) if auto_pad == "VALID" else list(attrs.get("pads") or [0] * (2 * rank))
    pads = [0] * (2 * rank)
    for i, (h, o, k, s, d, e) in enumerate(zip(x_shape[2:], y_shape[2:], kernel, strides, dilations, extra)):
        total = max(0, s * (h - 1) + e + (k - 1) * d + 1 - o)
        head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        pads[i], pads[i + rank] = head, total - head
    return pads


@rule("ConvTranspose")
def _conv_transpose(g, node, out_grads):
    """The adjoint of Conv(., W): dX = Conv(dY, W) with the same window, dW = Conv's weight gradient with dY as
    its input and X as its output gradient."""
    x, w = node.input[:2]
    dy = out_grads[0]
    x_shape, w_shape, y_shape = static_shape(g, x), static_shape(g, w), static_shape(g, node.output[0])
    attrs = g.attrs(node)
    rank = len(x_shape) - 2
    kernel = list(attrs.get("kernel_shape") or w_shape[2:])
    strides = list(attrs.get("strides") or [1] * rank)
    dilations = list(attrs.get("dilations") or [1] * rank)
    group = attrs.get("group", 1)
    pads = _conv_transpose_pads(g, node, x_shape, y_shape, kernel, strides, dilations)
    grads = [None, None]
    if _needs(g, node, 0):
        grads[0] = g.Conv(dy, w, group=group, kernel_shape=kernel, strides=strides, dilations=dilations, pads=pads)
        g.set_info(grads[0], x_shape, g.dtype(x))
    if _needs(g, node, 1):
        grads[1] = _conv_weight_grad(g, dy, x, w_shape, x_shape, kernel, strides, dilations, pads, group)
    if _needs(g, node, 2):
        grads.append(g.like(g.ReduceSum(dy, g.int64s([0] + list(range(2, 2 + rank))), keepdims=0), node.input[2]))
    return grads

def _window_counts(spatial, out, kernel, strides, dilations, pads):
    """Per output position (1, 1, *out): how many taps of its window fall inside the input."""
    total = np.ones((), np.float64)
    for x, o, k, s, d, p in zip(spatial, out, kernel, strides, dilations, pads):
        taps = np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d
        total = np.multiply.outer(total, ((taps >= 0) & (taps < x)).sum(axis=1))
    return total.reshape((1, 1) + tuple(out))


def _scatter_windows(g, values, x_shape, y_shape, kernel, strides, dilations, pads):
    """Each window's value added to every position it covers: a ones-kernel depthwise ConvTranspose (faster in
    ORT than one channel over (N*C, 1, ...): bench/bench_vjp_nn.py)."""
    t_pads, extra = _transpose_geometry(x_shape[2:], y_shape[2:], kernel, strides, dilations, pads)
    channels = x_shape[1]
    ones = g.const(np.ones((channels, 1) + tuple(kernel), g.dtype(values)))
    spread = g.ConvTranspose(values, ones, group=channels, kernel_shape=list(kernel), strides=list(strides),
                             dilations=list(dilations), pads=t_pads, output_padding=extra)
    g.set_info(spread, x_shape, g.dtype(values))
    return spread


@rule("AveragePool")
def _average_pool(g, node, out_grads):
    """dx = sum over the windows covering x of dy / divisor. The divisor is read off the op itself: AveragePool of
    a ones tensor (a constant ORT folds once) is (taps inside the input) / divisor for every padding mode."""
    x, dy = node.input[0], out_grads[0]
    x_shape, y_shape = static_shape(g, x), static_shape(g, node.output[0])
    kernel, strides, dilations, pads, _ = _window(g, node)
    dtype = g.dtype(x)
    counts = _window_counts(x_shape[2:], y_shape[2:], kernel, strides, dilations, pads)
    attrs = {k: v for k, v in g.attrs(node).items() if k != "auto_pad"}
    attrs["pads"] = list(pads)
    ones = g.const(np.ones((1, 1) + tuple(x_shape[2:]), dtype))
    with np.errstate(divide="ignore"):
        inverse = np.where(counts > 0, 1.0 / counts, 0.0).astype(dtype)
    scale = g.Mul(g.AveragePool(ones, **attrs), g.const(inverse))
    return [_scatter_windows(g, g.like(g.Mul(dy, scale), dy), x_shape, y_shape, kernel, strides, dilations, pads)]


@rule("MaxPool")
def _max_pool(g, node, out_grads):
    """dy added at each window's argmax (its first maximum, ORT's Indices, as MXNet): ScatterElements(add) of the
    flat indices (MaxUnpool where windows do not overlap); the Indices output is recomputed when the node does not
    have it in row-major order."""
    x, dy = node.input[0], out_grads[0]
    if dy is None:
        return [None]
    x_shape = static_shape(g, x)
    attrs = g.attrs(node)
    indices = node.output[1] if len(node.output) > 1 and node.output[1] else None
    if indices is None or attrs.get("storage_order", 0):
        attrs = {k: v for k, v in attrs.items() if k != "storage_order"}
        indices = g.MaxPool(x, _outputs=2, **attrs)[1]
    kernel = list(attrs.get("kernel_shape") or ())
    strides = attrs.get("strides") or [1] * len(kernel)
    if g.dtype(x) == np.float32 and all(s >= k for s, k in zip(strides, kernel)) and \
            all(d == 1 for d in attrs.get("dilations") or ()):
        # windows that do not overlap: each x position is in one window at most, so each index comes once and
        # MaxUnpool (its float32 kernel) places dy there, 3-4x faster than zeros + ScatterElements (LeNet's first
        # pooling at batch 64: 0.36 vs 1.4 ms)
        return [g.like(g.MaxUnpool(dy, indices, g.int64s(x_shape), kernel_shape=kernel, strides=list(strides),
                                   pads=list(attrs.get("pads") or [0] * 2 * len(kernel))), x)]
    dy_flat = g.Reshape(dy, g.int64s([-1]))
    # The zeros to scatter into, made from dy (|v| < 0 is false even for NaN): a constant Expand would be folded by
    # ONNX Runtime into an initializer the size of x, held for the session's life (ResNet-18's first pooling at
    # batch 16: 50 MB), and made at run time from forward values alone, ORT would make it during the forward
    zero = g.cast(g.Less(g.Abs(g.Slice(dy_flat, g.int64s([0]), g.int64s([1]))), g.scalar_like(0, dy)), g.dtype(x))
    zeros = g.Expand(zero, g.int64s([prod(x_shape)]))
    flat = g.ScatterElements(zeros, g.Reshape(indices, g.int64s([-1])), dy_flat, axis=0, reduction="add")
    return [g.reshape_to(flat, x_shape)]


@rule("GlobalAveragePool")
def _global_average_pool(g, node, out_grads):
    x = node.input[0]
    shape = static_shape(g, x)
    spread = g.Expand(g.Mul(out_grads[0], g.scalar(1.0 / prod(shape[2:]), g.dtype(x))), g.int64s(shape))
    return [g.like(spread, x)]


@rule("GlobalMaxPool")
def _global_max_pool(g, node, out_grads):
    """dy at the first maximum of each (n, c) plane."""
    x = node.input[0]
    shape = static_shape(g, x)
    flat = g.Reshape(x, g.int64s(list(shape[:2]) + [-1]))
    first = g.ArgMax(flat, axis=2, keepdims=1)
    positions = g.const(np.arange(prod(shape[2:]), dtype=np.int64).reshape(1, 1, -1))
    mask = g.cast(g.Equal(positions, first), g.dtype(x))
    dy = g.Reshape(out_grads[0], g.int64s(list(shape[:2]) + [1]))
    return [g.reshape_to(g.Mul(mask, dy), shape)]


def _sum_leading(g, value, lead, like):
    """`value` summed over its first `lead` axes, then back to the shape of the parameter `like`."""
    shape = static_shape(g, value)
    if lead:
        value = g.ReduceSum(value, g.int64s(list(range(lead))), keepdims=0)
        g.set_info(value, shape[lead:], g.dtype(like))
    return g.unbroadcast(value, like)


@rule("LayerNormalization")
def _layer_norm(g, node, out_grads):
    """With xhat = (x - mean) * r over the axes from `axis` on (D elements) and dxhat = dY * scale:
    dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) + dMean / D - dInvStdDev r^2 xhat / D,
    dscale = sum(dY xhat), dB = sum(dY) over the leading axes."""
    x, scale = node.input[:2]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    shape, dtype = static_shape(g, x), g.dtype(x)
    rank = len(shape)
    attrs = g.attrs(node)
    axis = attrs.get("axis", -1) % rank
    axes = list(range(axis, rank))
    size = prod(shape[axis:])
    outputs = list(node.output) + [""] * (3 - len(node.output))
    dy, d_mean, d_inv_std = (list(out_grads) + [None] * 3)[:3]

    def as_x(value):
        return value if g.dtype(value) == dtype else g.cast(value, dtype)

    if outputs[1] and outputs[2]:
        mean, inv_std = as_x(outputs[1]), as_x(outputs[2])
        xhat = g.Mul(g.Sub(x, mean), inv_std)
    elif dtype == np.float32:
        # one fused pass: LayerNormalization with unit scale and no bias is xhat, with the statistics
        ones = g.const(np.ones(shape[axis:], dtype))
        xhat, mean, inv_std = g.LayerNormalization(x, ones, axis=axis, epsilon=attrs.get("epsilon", 1e-5),
                                                   _outputs=3)
    else:
        mean = g.ReduceMean(x, axes=axes, keepdims=1)
        centered = g.Sub(x, mean)
        variance = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1)
        inv_std = g.Reciprocal(g.Sqrt(g.Add(variance, g.scalar(attrs.get("epsilon", 1e-5), dtype))))
        xhat = g.Mul(centered, inv_std)
    g.like(xhat, x)
    dx = None
    grads = [None, None, None]
    if dy is not None:
        if _needs(g, node, 0):
            dx = _normalized_backward(g, g.Mul(dy, scale), xhat, inv_std, axes)
        if _needs(g, node, 1):
            grads[1] = _sum_leading(g, g.like(g.Mul(dy, xhat), x), axis, scale)
        if _needs(g, node, 2):
            grads[2] = _sum_leading(g, dy, axis, bias)
    if not _needs(g, node, 0):
        return grads
    if d_mean is not None:
        part = g.Mul(as_x(d_mean), g.scalar(1.0 / size, dtype))
        dx = g.Expand(part, g.int64s(shape)) if dx is None else g.Add(dx, part)
    if d_inv_std is not None:
        factor = g.Mul(g.Mul(as_x(d_inv_std), g.Mul(inv_std, inv_std)), g.scalar(-1.0 / size, dtype))
        part = g.Mul(factor, xhat)
        dx = part if dx is None else g.Add(dx, part)
    grads[0] = None if dx is None else g.like(dx, x)
    return grads


def _channel(g, value, rank, dtype):
    """A per-channel (C,) value shaped (1, C, 1, ...) to broadcast against (N, C, ...), in `dtype`."""
    value = value if g.dtype(value) == dtype else g.cast(value, dtype)
    return g.Reshape(value, g.int64s([1, -1] + [1] * (rank - 2)))


def _sum_but_channel(g, value, like, rank, dtype):
    """`value` (N, C, ...) of `dtype` summed to the per-channel parameter `like` (C,), in its dtype."""
    summed = g.ReduceSum(value, g.int64s([0] + list(range(2, rank))), keepdims=0)
    return g.like(summed if dtype == g.dtype(like) else g.cast(summed, g.dtype(like)), like)


def _normalized_backward(g, dxhat, xhat, inv_std, axes):
    """The gradient through xhat = (x - mean(x)) * r(x) over `axes`: r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
    with the per-row factors multiplied by r first (4 full-size passes after the two reductions)."""
    shift = g.Mul(inv_std, g.ReduceMean(dxhat, axes=axes, keepdims=1))
    slope = g.Mul(inv_std, g.ReduceMean(g.Mul(dxhat, xhat), axes=axes, keepdims=1))
    return g.Sub(g.Mul(dxhat, inv_std), g.Add(g.Mul(xhat, slope), shift))


def _moments(g, x, axes, epsilon):
    """(x - mean, 1 / sqrt(var + epsilon)) over `axes`, kept as size-1 axes."""
    centered = g.Sub(x, g.ReduceMean(x, axes=axes, keepdims=1))
    variance = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1)
    return centered, g.Reciprocal(g.Sqrt(g.Add(variance, g.scalar(epsilon, g.dtype(x)))))


@rule("BatchNormalization")
def _batch_norm(g, node, out_grads):
    """training_mode=0: the affine map with the given statistics (every input differentiable); training_mode=1:
    batch statistics for Y, and the running statistics input * momentum + batch statistic * (1 - momentum)
    (population variance) when something reads them (MXNet's aux updates are outputs no seed reaches)."""
    x, scale, bias, mean, var = node.input[:5]
    dy = out_grads[0]
    attrs = g.attrs(node)
    if attrs.get("training_mode", 0):
        return _batch_norm_training(g, node, out_grads)
    if dy is None:
        return []
    shape, dtype = static_shape(g, x), g.dtype(x)
    rank = len(shape)
    epsilon = attrs.get("epsilon", 1e-5)
    gamma = _channel(g, scale, rank, dtype)
    grads = [None] * 5
    inv_std = g.Reciprocal(g.Sqrt(g.Add(_channel(g, var, rank, dtype), g.scalar(epsilon, dtype))))
    centered = g.Sub(x, _channel(g, mean, rank, dtype))
    scaled = g.Mul(gamma, inv_std)                                   # (1, C, 1, ...)
    if _needs(g, node, 0):
        grads[0] = g.like(g.Mul(dy, scaled), x)
    if _needs(g, node, 1):
        grads[1] = _sum_but_channel(g, g.Mul(dy, g.Mul(centered, inv_std)), scale, rank, dtype)
    if _needs(g, node, 2):
        grads[2] = _sum_but_channel(g, dy, bias, rank, dtype)
    if _needs(g, node, 3):
        grads[3] = _sum_but_channel(g, g.Neg(g.Mul(dy, scaled)), mean, rank, dtype)
    if _needs(g, node, 4):
        cube_half = g.Mul(g.Mul(scaled, g.Mul(inv_std, inv_std)), g.scalar(-0.5, dtype))
        grads[4] = _sum_but_channel(g, g.Mul(g.Mul(dy, centered), cube_half), var, rank, dtype)
    return grads


def _batch_norm_training(g, node, out_grads):
    x = node.input[0]
    dy, d_running_mean, d_running_var = (list(out_grads) + [None] * 3)[:3]
    shape, dtype = static_shape(g, x), g.dtype(x)
    rank = len(shape)
    attrs = g.attrs(node)
    momentum = attrs.get("momentum", 0.9)
    axes = [0] + list(range(2, rank))
    grads = [None] * 5
    if dy is not None:
        gamma = _channel(g, node.input[1], rank, dtype)
        grads[:3] = _normalization_grads(g, node, dy, x, axes, attrs.get("epsilon", 1e-5), gamma, dtype)
    count = prod(shape) // shape[1]
    parts = [grads[0]] if grads[0] is not None else []
    for index, d_running in ((3, d_running_mean), (4, d_running_var)):
        if d_running is None:
            continue
        if _needs(g, node, index):
            grads[index] = g.like(g.Mul(d_running, g.scalar_like(momentum, d_running)), node.input[index])
        if _needs(g, node, 0):
            share = g.Mul(_channel(g, d_running, rank, dtype), g.scalar((1 - momentum) / count, dtype))
            if index == 3:          # d batch mean / dx = 1 / count
                parts.append(g.Expand(share, g.int64s(shape)))
            else:                   # d population variance / dx = 2 (x - mean) / count
                centered = g.Sub(x, g.ReduceMean(x, axes=axes, keepdims=1))
                parts.append(g.Mul(centered, g.Mul(share, g.scalar(2, dtype))))
    if _needs(g, node, 0) and parts:
        total = parts[0]
        for part in parts[1:]:
            total = g.Add(total, part)
        grads[0] = g.like(total, x)
    return grads


@custom_rule("batch_norm_train")
def _mxnet_batch_norm_train(g, node, out_grads, axes):
    """MXNet's BatchNorm in training mode (ops/reduce.py marks y = ((x - mean) * invstd) * gamma + beta with
    inputs y, x, x - mean, invstd, beta, [gamma], all but y broadcast to x's rank), differentiated as MXNet's
    BatchNormBackwardImpl computes it: k = dot(x - mean, dy) * invstd^2 / m, dx = (dy - sum(dy) / m -
    (x - mean) * k) * invstd * gamma, dgamma = dot(x - mean, dy) * invstd, dbeta = sum(dy). It reads x - mean,
    which the forward keeps anyway, so the normalized data need not live until the backward pass."""
    dy = out_grads[0]
    if dy is None:
        return []
    x, centered, inv_std, beta = node.input[1:5]
    gamma = node.input[5] if len(node.input) > 5 else None
    shape, dtype = static_shape(g, x), g.dtype(x)
    count = g.scalar(prod(shape[a] for a in axes), dtype)
    reduce_axes = g.int64s(list(axes))
    sum_dy = g.ReduceSum(dy, reduce_axes, keepdims=1)
    dot = g.ReduceSum(g.Mul(centered, dy), reduce_axes, keepdims=1)
    grads = [None] * len(node.input)
    if _needs(g, node, 1):
        k = g.Div(g.Mul(g.Mul(dot, inv_std), inv_std), count)
        iw = inv_std if gamma is None else g.Mul(inv_std, gamma)
        grads[1] = g.like(g.Mul(g.Sub(g.Sub(dy, g.Div(sum_dy, count)), g.Mul(centered, k)), iw), x)
    if _needs(g, node, 4):
        grads[4] = g.like(sum_dy, beta)
    if gamma is not None and _needs(g, node, 5):
        grads[5] = g.like(g.Mul(dot, inv_std), gamma)
    return grads


def _normalization_grads(g, node, dy, x, axes, epsilon, gamma, dtype):
    """[dx, dscale, dbias] of y = xhat * gamma + bias with xhat normalized over `axes` by its own statistics."""
    rank = len(static_shape(g, x))
    scale, bias = node.input[1:3]
    centered, inv_std = _moments(g, x, axes, epsilon)
    xhat = g.like(g.Mul(centered, inv_std), x)
    grads = [None] * 3
    if _needs(g, node, 0):
        grads[0] = g.like(_normalized_backward(g, g.Mul(dy, gamma), xhat, inv_std, axes), x)
    if _needs(g, node, 1):
        grads[1] = _sum_but_channel(g, g.Mul(dy, xhat), scale, rank, dtype)
    if _needs(g, node, 2):
        grads[2] = _sum_but_channel(g, dy, bias, rank, dtype)
    return grads


@rule("InstanceNormalization")
def _instance_norm(g, node, out_grads):
    x, scale = node.input[:2]
    dy = out_grads[0]
    shape, dtype = static_shape(g, x), g.dtype(x)
    rank = len(shape)
    axes = list(range(2, rank))
    return _normalization_grads(g, node, dy, x, axes, g.attrs(node).get("epsilon", 1e-5),
                                _channel(g, scale, rank, dtype), dtype)


@rule("LpPool")
def _lp_pool(g, node, out_grads):
    """y = (sum_window |x|^p)^(1/p): dx = sign(x) |x|^(p-1) * sum over windows of dy y^(1-p) (0 where y = 0)."""
    x, y, dy = node.input[0], node.output[0], out_grads[0]
    x_shape, y_shape = static_shape(g, x), static_shape(g, y)
    kernel, strides, dilations, pads, _ = _window(g, node)
    dtype = g.dtype(x)
    p = g.attrs(node).get("p", 2)
    positive = g.Greater(y, g.scalar(0, dtype))
    safe_y = g.Where(positive, y, g.scalar(1, dtype))
    per_window = g.like(g.Where(positive, g.Mul(dy, g.Pow(safe_y, g.scalar(1 - p, dtype))), g.scalar(0, dtype)),
                        y)
    spread = _scatter_windows(g, per_window, x_shape, y_shape, kernel, strides, dilations, pads)
    local = g.Sign(x) if p == 1 else g.Mul(g.Sign(x), g.Pow(g.Abs(x), g.scalar(p - 1, dtype)))
    return [g.like(g.Mul(local, spread), x)]


@rule("LRN")
def _lrn(g, node, out_grads):
    """y = x s^-beta, s = bias + alpha/size * (window sum over channels of x^2):
    dx = dy s^-beta - 2 alpha beta / size * x * (transposed window sum of dy x s^(-beta-1))."""
    x, dy = node.input[0], out_grads[0]
    shape, dtype = static_shape(g, x), g.dtype(x)
    attrs = g.attrs(node)
    alpha, beta, bias, size = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0), \
        attrs["size"]
    low, high = (size - 1) // 2, size - 1 - (size - 1) // 2      # channels c - low .. c + high
    planes = [shape[0], 1, shape[1], prod(shape[2:])]
    ones = g.const(np.ones((1, 1, size, 1), dtype))

    def window_sum(value, before, after):
        summed = g.Conv(g.Reshape(value, g.int64s(planes)), ones, kernel_shape=[size, 1], pads=[before, 0, after, 0])
        return g.Reshape(summed, g.int64s(shape))

    s = g.Add(g.Mul(window_sum(g.Mul(x, x), low, high), g.scalar(alpha / size, dtype)), g.scalar(bias, dtype))
    s_beta = g.Pow(s, g.scalar(-beta, dtype))
    inner = g.Mul(g.Mul(dy, x), g.Div(s_beta, s))
    back = g.Mul(g.Mul(x, window_sum(inner, high, low)), g.scalar(-2.0 * alpha * beta / size, dtype))
    return [g.like(g.Add(g.Mul(dy, s_beta), back), x)]
