"""Convolution, transposed convolution, pooling and spatial resizing: Convolution, Deconvolution, Pooling,
UpSampling, Pad, Crop.

Every lowering uses explicit pads (ORT's gradients of auto_pad SAME are wrong). Pooling pads the input itself and
never relies on ceil_mode, because ONNX drops a last window that starts in the right padding while MXNet keeps it.
Where it is easy, lowerings stay on ops that have ORT gradient builders: nearest upsampling is Reshape+Expand,
edge/reflect padding is one Gather per axis. Training graphs for the optional onnxruntime-training backend
(`g.gradients == 'ort-training'`) work around onnxruntime-training 1.19.2's CPU gradients:
ConvTranspose (Deconvolution, bilinear UpSampling; no gradient kernel) becomes zero insertion + Conv, 3-D avg/sum/lp
windows (wrong AveragePoolGrad) a ones-kernel Conv, and a grouped 3-D Conv (wrong ConvGrad after Pad/Tile) one Conv
per group.
"""
import dataclasses
import math
from typing import Optional

import numpy as np

from .._shapes import fmt, partial_rule
from ..base import MXNetError
from .params import Shape, param
from .registry import OpDef, register

_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_CONV_LAYOUTS = ("NCW", "NCHW", "NCDHW", "NHWC", "NDHWC")
_POOL_LAYOUTS = ("NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC")
_CUDNN_TUNE = ("off", "limited_workspace", "fastest")
_DIM_NAMES = {1: "x", 2: "y, x", 3: "d, y, x"}


def _for_ort_training(g):
    """Whether `g` is a training graph for onnxruntime-training's gradient builders, which need the workarounds
    below; onnxsym's own AD differentiates the standard nodes."""
    return g.is_train and g.gradients == "ort-training"


def _per_dim(op, name, ndim, fill, longer_ok=False):
    """A per-spatial-dimension attribute; () means `fill` for every dimension, as MXNet's param parsers do.
    `longer_ok`: extra entries are ignored (MXNet's Pooling reads only the first ones; Convolution checks)."""
    value = tuple(getattr(op, name))
    if not value:
        return (fill,) * ndim
    if longer_ok and len(value) > ndim:
        return value[:ndim]
    if len(value) != ndim:
        raise MXNetError("%s: %s=%s must have %d entries (one per dimension of kernel=%s)"
                         % (op.op_name, name, value, ndim, tuple(op.kernel)))
    return value


def _check_layout(op, ndim):
    if op.layout is not None and op.layout != _LAYOUTS.get(ndim):
        raise MXNetError("%s: layout %s is not supported for a %d-D kernel: only %s (MXNet runs channel-last "
                         "layouts on GPU only)" % (op.op_name, op.layout, ndim, _LAYOUTS.get(ndim)))


def _check_rank(op, data, ndim, name="data"):
    if len(data) != ndim + 2:
        raise MXNetError("%s: input '%s' should be %d-D (batch, channel, %s) for a %d-D kernel, got shape %s"
                         % (op.op_name, name, ndim + 2, _DIM_NAMES[ndim], ndim, fmt(data)))


def _conv(g, data, weight, bias, group, channels, filters, **attrs):
    """Conv; a grouped 3-D one, in graphs onnxruntime-training differentiates, as one Conv per group (its ConvGrad
    gives later groups a wrong data gradient when the Conv input comes from Pad or Tile)."""
    if not (_for_ort_training(g) and group > 1 and len(attrs["kernel_shape"]) == 3):
        return g.Conv(data, weight, bias, group=group, **attrs)
    cin, fout = channels // group, filters // group
    axis = g.int64s([1])
    outs = []
    for i in range(group):
        x = g.Slice(data, g.int64s([i * cin]), g.int64s([(i + 1) * cin]), axis)
        w = g.Slice(weight, g.int64s([i * fout]), g.int64s([(i + 1) * fout]), g.int64s([0]))
        b = None if bias is None else g.Slice(bias, g.int64s([i * fout]), g.int64s([(i + 1) * fout]), g.int64s([0]))
        outs.append(g.Conv(x, w, b, **attrs))
    return g.Concat(*outs, axis=1)


class _Kernel(OpDef):
    """Kernel-shaped attributes shared by Convolution and Deconvolution."""
    _max_dims = 3
    float_only = True       # MXNet 1.9.1: "This operation only support floating point types, not int32"

    def __post_init__(self):
        ndim = len(self.kernel)
        if not 1 <= ndim <= self._max_dims:
            raise MXNetError("%s: %dD kernel %s not supported" % (self.op_name, ndim, tuple(self.kernel)))
        for name in ("kernel", "stride", "dilate"):
            if any(v < 1 for v in _per_dim(self, name, ndim, 1)):
                raise MXNetError("%s: incorrect %s size: %s" % (self.op_name, name, tuple(getattr(self, name))))
        _per_dim(self, "pad", ndim, 0)
        if self.num_filter % self.num_group:
            raise MXNetError("%s: num_filter=%d must be divisible by num_group=%d"
                             % (self.op_name, self.num_filter, self.num_group))
        _check_layout(self, ndim)

    def geometry(self):
        """(kernel, stride, dilate, pad), each one entry per spatial dimension."""
        ndim = len(self.kernel)
        return (tuple(self.kernel), _per_dim(self, "stride", ndim, 1), _per_dim(self, "dilate", ndim, 1),
                _per_dim(self, "pad", ndim, 0))

    def input_names(self):
        return ("data", "weight") if self.no_bias else ("data", "weight", "bias")

    def _check_groups(self, data):
        _check_rank(self, data, len(self.kernel))
        if data[1] is not None and data[1] % self.num_group:
            raise MXNetError("%s: input 'data' has %d channels (shape %s), not divisible by num_group=%d"
                             % (self.op_name, data[1], fmt(data), self.num_group))


_KERNEL_DOCS = dict(
    kernel="Convolution kernel size: (w,), (h, w) or (d, h, w).",
    stride="Convolution stride: (w,), (h, w) or (d, h, w). Defaults to 1 for each dimension.",
    dilate="Convolution dilate: (w,), (h, w) or (d, h, w). Defaults to 1 for each dimension.",
    pad="Zero pad for convolution: (w,), (h, w) or (d, h, w). Defaults to no padding.",
)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Convolution(_Kernel):
    """out = sum_{c, k} data[c, s*o + d*k - p] * weight[f, c, k] (+ bias[f]), grouped.
    Mirrors MXNet src/operator/nn/convolution.cc."""
    aliases = ("_npx_convolution",)
    kernel: Shape = param(doc=_KERNEL_DOCS["kernel"])
    stride: Shape = param((), doc=_KERNEL_DOCS["stride"])
    dilate: Shape = param((), doc=_KERNEL_DOCS["dilate"])
    pad: Shape = param((), min=0, doc=_KERNEL_DOCS["pad"])
    num_filter: int = param(min=1, doc="Convolution filter (channel) number.")
    num_group: int = param(1, min=1, doc="Number of group partitions.")
    workspace: int = param(1024, min=0, doc="Maximum temporary workspace allowed (MB); ignored.")
    no_bias: bool = param(False, doc="Whether to disable the bias parameter.")
    cudnn_tune: Optional[str] = param(None, choices=_CUDNN_TUNE, doc="cuDNN algorithm selection; ignored.")
    cudnn_off: bool = param(False, doc="Turn off cudnn for this layer; ignored.")
    layout: Optional[str] = param(None, choices=_CONV_LAYOUTS, doc="Data layout; only NCW/NCHW/NCDHW.")

    @partial_rule
    def infer_shape(self, data, *params, out_shapes=None):
        # MXNet's ConvolutionShape: data's rank must be known; unknown dimensions stay unknown in weight and
        # output; a known output gives data its batch size, and its spatial sizes where the stride is 1.
        if data is None:
            return None
        self._check_groups(data)
        kernel, stride, dilate, pad = self.geometry()
        out = [data[0], self.num_filter]
        for i, (x, k, s, d, p) in enumerate(zip(data[2:], kernel, stride, dilate, pad)):
            span = d * (k - 1) + 1
            if x is None:
                out.append(None)
                continue
            if span > x + 2 * p:
                raise MXNetError("%s: kernel size exceeds input: dilated kernel %d > padded input %d on spatial "
                                 "axis %d of 'data' %s" % (self.op_name, span, x + 2 * p, i, fmt(data)))
            out.append((x + 2 * p - span) // s + 1)
        known_out = out_shapes[0] if out_shapes else None
        if known_out is not None and len(known_out) == len(data):
            data = list(data)
            data[0] = data[0] if known_out[0] is None else known_out[0]
            for i, (o, k, s, d, p) in enumerate(zip(known_out[2:], kernel, stride, dilate, pad)):
                if o is not None and s == 1:
                    data[2 + i] = o + d * (k - 1) - 2 * p
            data = tuple(data)
        channels = None if data[1] is None else data[1] // self.num_group
        inputs = [data, (self.num_filter, channels) + kernel, (self.num_filter,)]
        return inputs[: len(self.input_names())], [tuple(out)]

    def lower(self, g, data, weight, bias=None):
        kernel, stride, dilate, pad = self.geometry()
        return _conv(g, data, weight, bias, self.num_group, g.shape(data)[1], self.num_filter,
                     kernel_shape=list(kernel), strides=list(stride), dilations=list(dilate), pads=list(pad) * 2)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Convolution_v1(Convolution):
    """The legacy 2-D convolution, same math as Convolution. Mirrors MXNet src/operator/nn/convolution_v1.cc."""
    aliases = ()
    _max_dims = 2


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Deconvolution(_Kernel):
    """Transposed convolution: out = (x-1)*s - 2p + d*(k-1) + 1 + adj per spatial dim, grouped.
    Mirrors MXNet src/operator/nn/deconvolution.cc (InferPad in deconvolution-inl.h)."""
    aliases = ("_npx_deconvolution",)
    kernel: Shape = param(doc="Deconvolution kernel size: (w,), (h, w) or (d, h, w).")
    stride: Shape = param((), doc=_KERNEL_DOCS["stride"])
    dilate: Shape = param((), doc=_KERNEL_DOCS["dilate"])
    pad: Shape = param((), min=0, doc="Padding of the corresponding convolution; ignored when target_shape is set.")
    adj: Shape = param((), min=0, doc="Adjustment for output shape; ignored when target_shape is set.")
    target_shape: Shape = param((), min=0, doc="Shape of the output spatial dims: (w,), (h, w) or (d, h, w).")
    num_filter: int = param(min=1, doc="Number of output filters.")
    num_group: int = param(1, min=1, doc="Number of group partitions.")
    workspace: int = param(512, min=0, doc="Maximum temporary workspace allowed (MB); ignored.")
    no_bias: bool = param(True, doc="Whether to disable the bias parameter.")
    cudnn_tune: Optional[str] = param(None, choices=_CUDNN_TUNE, doc="cuDNN algorithm selection; ignored.")
    cudnn_off: bool = param(False, doc="Turn off cudnn for this layer; ignored.")
    layout: Optional[str] = param(None, choices=_CONV_LAYOUTS, doc="Data layout; only NCW/NCHW/NCDHW.")

    def __post_init__(self):
        super().__post_init__()
        _per_dim(self, "adj", len(self.kernel), 0)
        if any(self.target_shape) and len(self.target_shape) != len(self.kernel):
            raise MXNetError("%s: target_shape=%s must have %d entries (one per dimension of kernel=%s)"
                             % (self.op_name, tuple(self.target_shape), len(self.kernel), tuple(self.kernel)))

    def pads(self, data):
        """(pad, adj) per spatial dim: the attributes, or derived from target_shape as MXNet's InferPad does."""
        kernel, stride, dilate, pad = self.geometry()
        if not any(self.target_shape):
            return pad, _per_dim(self, "adj", len(kernel), 0)
        pads, adjs = [], []
        for x, k, s, d, t in zip(data[2:], kernel, stride, dilate, self.target_shape):
            if x is None:       # unknown input size (partial inference): its output size stays unknown anyway
                pads.append(0)
                adjs.append(0)
                continue
            total = s * (x - 1) + d * (k - 1) + 1 - t
            if total < 0:
                raise MXNetError("%s: too big target shape %s for input 'data' %s"
                                 % (self.op_name, tuple(self.target_shape), tuple(data)))
            pads.append((total + 1) // 2)
            adjs.append(total % 2)
        return tuple(pads), tuple(adjs)

    @partial_rule
    def infer_shape(self, data, *params, out_shapes=None):
        # forwards only, as MXNet's DeconvolutionShape; unknown dimensions stay unknown
        if data is None:
            return None
        self._check_groups(data)
        kernel, stride, dilate, _ = self.geometry()
        pad, adj = self.pads(data)
        out = [data[0], self.num_filter]
        for x, k, s, d, p, a in zip(data[2:], kernel, stride, dilate, pad, adj):
            if a >= s:
                raise MXNetError("%s: adj %s must be smaller than stride %s" % (self.op_name, tuple(adj), stride))
            out.append(None if x is None else s * (x - 1) + d * (k - 1) + 1 - 2 * p + a)
        if min([o for o in out[2:] if o is not None], default=1) < 1:
            raise MXNetError("%s: output shape %s of input 'data' %s is empty" % (self.op_name, fmt(out), fmt(data)))
        inputs = [data, (data[1], self.num_filter // self.num_group) + kernel, (self.num_filter,)]
        return inputs[: len(self.input_names())], [tuple(out)]

    def lower(self, g, data, weight, bias=None):
        kernel, stride, dilate, _ = self.geometry()
        pad, adj = self.pads(g.shape(data))
        return conv_transpose(g, data, weight, bias, kernel, stride, dilate, pad, adj, self.num_group)


def conv_transpose(g, data, weight, bias, kernel, stride, dilate, pad, adj, group, pad_end=None):
    """ConvTranspose (`pad` at the start of each axis, `pad_end` at its end, default `pad`); in graphs
    onnxruntime-training differentiates, the same values as zero insertion + padding by d*(k-1)-p (+adj at the end)
    + a stride-1 Conv with the spatially flipped kernel, in/out channels swapped per group (it has no CPU
    ConvTransposeGrad kernel)."""
    pad_end = list(pad) if pad_end is None else list(pad_end)
    if not _for_ort_training(g):
        return g.ConvTranspose(data, weight, bias, kernel_shape=list(kernel), strides=list(stride),
                               dilations=list(dilate), pads=list(pad) + pad_end, output_padding=list(adj),
                               group=group)
    shape, dtype, ndim = g.shape(data), g.dtype(data), len(kernel)
    x, size = data, list(shape[2:])
    if any(s > 1 for s in stride):
        # (N, C, X1, 1, X2, 1, ...) padded to (N, C, X1, s1, X2, s2, ...) and merged: pixel i lands at s*i
        x = g.Reshape(x, g.int64s(list(shape[:2]) + [v for n in size for v in (n, 1)]))
        pads = [0] * (2 + 2 * ndim) + [0, 0] + [v for s in stride for v in (0, s - 1)]
        x = g.Pad(x, g.int64s(pads), g.scalar(0, dtype))
        size = [n * s for n, s in zip(size, stride)]
        x = g.Reshape(x, g.int64s(list(shape[:2]) + size))
    # padding of the zero-inserted input; its last s-1 zeros are already there
    begin = [d * (k - 1) - p for k, d, p in zip(kernel, dilate, pad)]
    end = [d * (k - 1) - p + a - (s - 1) for k, d, p, a, s in zip(kernel, dilate, pad_end, adj, stride)]
    if min(begin + end) < 0:      # a pad beyond the dilated kernel crops the input instead
        x = g.Slice(x, g.int64s([max(0, -b) for b in begin]), g.int64s([n - max(0, -e) for n, e in zip(size, end)]),
                    g.int64s(range(2, 2 + ndim)))
    cin, fpg = g.shape(weight)[:2]
    w = g.Reshape(weight, g.int64s([group, cin // group, fpg] + list(kernel)))
    w = g.Transpose(w, perm=[0, 2, 1] + list(range(3, 3 + ndim)))
    w = g.Reshape(w, g.int64s([group * fpg, cin // group] + list(kernel)))
    for axis, k in enumerate(kernel):
        if k > 1:
            w = g.Gather(w, g.int64s(range(k - 1, -1, -1)), axis=2 + axis)
    return _conv(g, x, w, bias, group, cin, group * fpg, kernel_shape=list(kernel), strides=[1] * ndim,
                 dilations=list(dilate), pads=[max(0, b) for b in begin] + [max(0, e) for e in end])


# ---------------------------------------------------------------- pooling
def _zero_padded(g, x, shape, dtype, pads, kernel):
    """x with zeros around its spatial axes (`pads`: begin values then end values, batch and channel included).
    A Pad ONNX Runtime folds into the pooling node after it; where a side's padding reaches the kernel size
    (pooling_convention='full' with pad), zeros concatenated instead: ORT 1.2x's Pad fusion makes such pads pool
    attributes, which its pooling kernels refuse ("Pad should be smaller than kernel"), also in exported files."""
    rank = len(shape)
    if not any(pads):
        return x
    if all(max(pads[2 + i], pads[rank + 2 + i]) < k for i, k in enumerate(kernel)):
        return g.Pad(x, g.int64s(pads), g.scalar(0, dtype))
    current = list(shape)
    for axis in range(2, rank):
        parts = []
        for side, size in (("begin", pads[axis]), ("end", pads[rank + axis])):
            if size:
                block = current[:axis] + [size] + current[axis + 1:]
                parts.append((side, g.const(np.zeros(block, dtype))))
        if parts:
            if len(parts) == 2 and parts[0][1] == parts[1][1]:
                # one value read twice by a node: ort-training's builder defines its gradient twice
                parts[1] = ("end", g.Identity(parts[1][1]))
            x = g.Concat(*[v for side, v in parts if side == "begin"], x,
                         *[v for side, v in parts if side == "end"], axis=axis)
            current[axis] += pads[axis] + pads[rank + axis]
            g.set_info(x, tuple(current), dtype)
    return x


def _cbrt(g, x, dtype):
    """Real cube root: -|x|^(1/3) where x < 0 (Pow of a negative base is NaN; ORT has no Sign gradient)."""
    root = g.Pow(g.Abs(x), g.scalar(1.0 / 3.0, dtype))
    return g.Where(g.Less(x, g.scalar(0, dtype)), g.Neg(root), root)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Pooling(OpDef):
    """max/avg/sum/lp over windows starting at o*s - p; 'full' keeps MXNet's unclamped last window.
    Mirrors MXNet src/operator/nn/pooling.cc and pool.h."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    aliases = ("_npx_pooling",)
    kernel: Shape = param((), doc="Pooling kernel size: (y, x) or (d, y, x); ignored when global_pool.")
    pool_type: str = param("max", choices=("max", "avg", "sum", "lp"), doc="Pooling type to be applied.")
    global_pool: bool = param(False, doc="Ignore kernel size, do global pooling based on current input.")
    cudnn_off: bool = param(False, doc="Turn off cudnn pooling; ignored.")
    pooling_convention: str = param("valid", choices=("valid", "full", "same"),
                                    doc="Pooling convention: valid (floor), full (ceil) or same (1-D only).")
    stride: Shape = param((), doc="Stride for pooling: (y, x) or (d, y, x). Defaults to 1 for each dimension.")
    pad: Shape = param((), min=0, doc="Pad for pooling: (y, x) or (d, y, x). Defaults to no padding.")
    p_value: Optional[int] = param(None, doc="Value of p for Lp pooling: 1, 2 or 3.")
    count_include_pad: Optional[bool] = param(None, doc="Count padded elements in avg pooling (None = True).")
    layout: Optional[str] = param(None, choices=_POOL_LAYOUTS, doc="Data layout; only NCW/NCHW/NCDHW.")

    def __post_init__(self):
        ndim = len(self.kernel)
        if not self.global_pool and not 1 <= ndim <= 3:
            raise MXNetError("Pooling: %dD pooling not supported (kernel=%s)" % (ndim, tuple(self.kernel)))
        if ndim:
            for name in ("kernel", "stride"):
                if any(v < 1 for v in _per_dim(self, name, ndim, 1, longer_ok=True)):
                    raise MXNetError("Pooling: incorrect %s size: %s" % (name, tuple(getattr(self, name))))
            _per_dim(self, "pad", ndim, 0, longer_ok=True)
        if self.pool_type == "lp" and self.p_value not in (1, 2, 3):
            raise MXNetError("Pooling: pool_type='lp' needs p_value 1, 2 or 3, got %s" % self.p_value)

    def output_names(self):
        # MXNet 1.9.1's wheels (MKLDNN builds) give max pooling a hidden workspace output; listing it keeps
        # node_row_ptr in the JSON identical to MXNet's.
        return ("output", "workspace") if self.pool_type == "max" else ("output",)

    def num_visible_outputs(self):
        return 1

    def window(self, data):
        """(kernel, stride, pad) for `data`'s spatial dims; global pooling covers the whole input."""
        ndim = len(data) - 2
        if self.global_pool:
            return tuple(data[2:]), (1,) * ndim, (0,) * ndim
        return (tuple(self.kernel), _per_dim(self, "stride", ndim, 1, longer_ok=True),
                _per_dim(self, "pad", ndim, 0, longer_ok=True))

    def out_spatial(self, data):
        if self.global_pool:
            return (1,) * (len(data) - 2)
        out = []
        for i, (x, k, s, p) in enumerate(zip(data[2:], *self.window(data))):
            if x is None:       # unknown stays unknown (MXNet 1.9.1 fails its kernel-size check here instead)
                out.append(None)
                continue
            if k > x + 2 * p:
                raise MXNetError("Pooling: kernel size (%d) exceeds input (%d padded to %d) on spatial axis %d of "
                                 "'data' %s" % (k, x, x + 2 * p, i, tuple(data)))
            if self.pooling_convention == "valid":
                out.append(1 + (x + 2 * p - k) // s)
            elif self.pooling_convention == "full":
                out.append(1 - (-(x + 2 * p - k) // s))
            else:
                out.append(-(-(x + 2 * p) // s))
        return tuple(out)

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        # forwards only, as MXNet's PoolingShape
        if data is None:
            return None
        if not 3 <= len(data) <= 5:
            raise MXNetError("Pooling: input 'data' should be 3-D, 4-D or 5-D (batch, channel, [d, y,] x), got "
                             "shape %s" % fmt(data))
        ndim = len(data) - 2
        if not self.global_pool:
            _check_rank(self, data, len(self.kernel))
        _check_layout(self, ndim)
        if self.pooling_convention == "same":
            if ndim != 1:
                raise MXNetError("Pooling: pooling_convention='same' supports 1-D pooling only (3-D 'data'), got "
                                 "shape %s" % fmt(data))
            if any(self.window(data)[2]):
                raise MXNetError("Pooling: pooling_convention='same' disables the pad parameter, got pad=%s"
                                 % (tuple(self.pad),))
        return [data], [tuple(data[:2]) + self.out_spatial(data)]

    def lower(self, g, data):
        shape, dtype = g.shape(data), g.dtype(data)
        kernel, stride, pad = self.window(shape)
        out = self.out_spatial(shape)
        # Pad explicitly so that every MXNet window, including a last one that starts in the padding, is a full
        # window of the padded input; then no ONNX pads or ceil_mode are needed.
        right = [max(0, (o - 1) * s + k - p - x) for x, k, s, p, o in zip(shape[2:], kernel, stride, pad, out)]
        pads = [0, 0] + list(pad) + [0, 0] + right
        attrs = dict(kernel_shape=list(kernel), strides=list(stride))
        if self.pool_type == "max":
            if all(p < k for p, k in zip(pads[2:2 + len(kernel)] + pads[4 + len(kernel):], kernel + kernel)):
                # every window holds data: MaxPool's own pads, which ORT skips as a lowest value would be skipped
                # (its NCHWc MaxPool takes them: an explicit Pad made ResNet-18's stem reorder its 51 MB activation
                # out of and back into the blocked layout, 8 % of its inference)
                if any(pads):
                    attrs["pads"] = pads[2:2 + len(kernel)] + pads[4 + len(kernel):]
                return g.MaxPool(data, **attrs), None
            # the lowest value never wins against real data, and is MXNet's result for an all-padding window
            x = g.Pad(data, g.int64s(pads), g.scalar(np.finfo(dtype).min, dtype))
            return g.MaxPool(x, **attrs), None
        x = data
        if self.pool_type == "lp" and self.p_value > 1:
            # Pow, not Mul(x, x): ORT's gradient builder emits a duplicate definition for Mul with one input twice
            x = g.Pow(data, g.scalar(self.p_value, dtype))
        area = math.prod(kernel)
        scale = np.asarray(area, dtype=dtype)
        if self.pool_type == "avg":
            with np.errstate(divide="ignore"):      # an empty window divides by 0 in MXNet too
                scale = area / self.divisor(shape)
        if _for_ort_training(g) and len(kernel) == 3:
            # ORT's AveragePoolGrad is wrong for overlapping 3-D windows: sum them with a ones-kernel Conv over
            # (N*C, 1, d, h, w), which needs no groups (see _conv)
            y = g.Reshape(x, g.int64s([-1, 1] + list(shape[2:])))
            y = g.Conv(y, g.const(np.ones((1, 1) + tuple(kernel), dtype)),
                       pads=pads[2:2 + len(kernel)] + pads[4 + len(kernel):], **attrs)
            y = g.Reshape(y, g.int64s(list(shape[:2]) + list(out)))
            scale = scale / area
        else:
            y = g.AveragePool(_zero_padded(g, x, shape, dtype, pads, kernel), **attrs)
        if np.any(scale != 1):
            y = g.Mul(y, g.const(np.asarray(scale, dtype=dtype)))
        if self.pool_type == "lp" and self.p_value == 2:
            return g.Sqrt(y)
        if self.pool_type == "lp" and self.p_value == 3:
            return _cbrt(g, y, dtype)
        return y

    def divisor(self, data):
        """MXNet's avg divisor per output position, shape (1, 1, *out): the window clipped to the padded input
        (count_include_pad) or to the input itself."""
        kernel, stride, pad = self.window(data)
        include = self.count_include_pad is None or self.count_include_pad
        sizes = []
        for x, k, s, p, o in zip(data[2:], kernel, stride, pad, self.out_spatial(data)):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, x + p)
            sizes.append(end - start if include else np.minimum(end, x) - np.maximum(start, 0))
        total = sizes[0].astype(np.float64)
        for size in sizes[1:]:
            total = np.multiply.outer(total, size)
        return total.reshape((1, 1) + total.shape)


# ---------------------------------------------------------------- resizing
def _nearest(g, x, scale_h, scale_w):
    """Integer nearest upsampling as Reshape + Expand + Reshape (ORT has no CPU Resize gradient)."""
    if scale_h == scale_w == 1:
        return x
    _, _, h, w = g.shape(x)
    y = g.Reshape(x, g.int64s([0, 0, h, 1, w, 1]))
    y = g.Expand(y, g.int64s([1, 1, 1, scale_h, 1, scale_w]))
    return g.Reshape(y, g.int64s([0, 0, h * scale_h, w * scale_w]))


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class UpSampling(OpDef):
    """nearest: every input repeated to (scale*h0, scale*w0), then concat or sum; bilinear: grouped deconvolution
    with a (C, 1, 2s - s%2, 2s - s%2) weight. Mirrors MXNet src/operator/nn/upsampling.cc."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    variadic = True
    scale: int = param(min=1, doc="Up sampling scale.")
    num_filter: int = param(0, min=0, doc="Input filter; only used by bilinear (= number of channels).")
    sample_type: str = param(choices=("nearest", "bilinear"), doc="Upsampling method.")
    multi_input_mode: str = param("concat", choices=("concat", "sum"),
                                  doc="How to combine several nearest-upsampled inputs: concat or sum.")
    num_args: int = param(min=1, doc="Number of inputs to be upsampled (bilinear: data and weight).")
    workspace: int = param(512, min=0, doc="Tmp workspace for deconvolution (MB); ignored.")

    def input_names(self):
        return ("data", "weight") if self.sample_type == "bilinear" else super().input_names()

    def input_attrs(self, input_name):
        return {"__init__": '["bilinear", {}]'} if self.sample_type == "bilinear" and input_name == "weight" else {}

    def bilinear_geometry(self):
        """(kernel, stride, pad) of the equivalent deconvolution."""
        s = self.scale
        return 2 * s - s % 2, s, -(-(s - 1) // 2)

    def infer_shape(self, *shapes):
        names = self.input_names()
        for name, shape in zip(names, shapes):
            if shape is not None and len(shape) != 4:
                raise MXNetError("UpSampling: input '%s' should be 4-D (batch, channel, y, x), got shape %s"
                                 % (name, tuple(shape)))
        data = shapes[0]
        if self.sample_type == "bilinear":
            if data is None:
                return None
            if self.num_filter != data[1]:
                raise MXNetError("UpSampling: bilinear needs num_filter equal to the channels of 'data' %s, got "
                                 "num_filter=%d" % (tuple(data), self.num_filter))
            k = self.bilinear_geometry()[0]
            out = (data[0], data[1], data[2] * self.scale, data[3] * self.scale)
            return [data, (data[1], 1, k, k)], [out]
        if any(s is None for s in shapes):
            return None
        oh, ow = data[2] * self.scale, data[3] * self.scale
        channels = [s[1] for s in shapes]
        for name, shape in zip(names, shapes):
            if oh % shape[2] or ow % shape[3]:
                raise MXNetError("UpSampling: input '%s' %s does not divide the output size (%d, %d)"
                                 % (name, tuple(shape), oh, ow))
        if self.multi_input_mode == "sum" and len(set(channels)) > 1:
            raise MXNetError("UpSampling: multi_input_mode='sum' needs equal channels, got shapes %s"
                             % ", ".join(str(tuple(s)) for s in shapes))
        c = channels[0] if self.multi_input_mode == "sum" else sum(channels)
        return list(shapes), [(data[0], c, oh, ow)]

    def lower(self, g, *inputs):
        if self.sample_type == "bilinear":
            k, s, p = self.bilinear_geometry()
            return conv_transpose(g, inputs[0], inputs[1], None, (k, k), (s, s), (1, 1), (p, p), (0, 0),
                                   g.shape(inputs[0])[1])
        oh, ow = (d * self.scale for d in g.shape(inputs[0])[2:])
        ups = [_nearest(g, x, oh // g.shape(x)[2], ow // g.shape(x)[3]) for x in inputs]
        if len(ups) == 1:
            return ups[0] if ups[0] != inputs[0] else g.Identity(ups[0])
        if self.multi_input_mode == "concat":
            return g.Concat(*ups, axis=1)
        total = ups[0]
        for y in ups[1:]:
            total = g.Add(total, y)
        return total


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Pad(OpDef):
    """numpy.pad on the spatial axes of a 4-D/5-D input (constant, edge or reflect). Mirrors MXNet
    src/operator/pad.cc."""
    aliases = ("pad",)
    fluent = ("pad",)
    mode: str = param(choices=("constant", "edge", "reflect"), doc="Padding type to use.")
    pad_width: Shape = param(min=0, doc="(before_1, after_1, ..., before_N, after_N); the first four must be 0.")
    constant_value: float = param(0.0, doc="The padding value for mode 'constant'.")

    def infer_shape(self, data):
        if data is None:
            return None
        width = tuple(self.pad_width)
        if len(data) not in (4, 5):
            raise MXNetError("Pad: input 'data' must be 4-D or 5-D, got shape %s" % (tuple(data),))
        if len(width) != 2 * len(data):
            raise MXNetError("Pad: pad_width %s must have 2*ndim = %d entries for 'data' %s"
                             % (width, 2 * len(data), tuple(data)))
        if any(width[:4]):
            raise MXNetError("Pad: padding on the first two axes must be zero, got pad_width %s" % (width,))
        if self.mode == "reflect" and any(max(width[2 * i], width[2 * i + 1]) >= data[i]
                                          for i in range(2, len(data))):
            raise MXNetError("Pad: reflect padding must be smaller than the input size, got pad_width %s for "
                             "'data' %s" % (width, tuple(data)))
        return [data], [tuple(d + width[2 * i] + width[2 * i + 1] for i, d in enumerate(data))]

    def lower(self, g, data):
        width = tuple(self.pad_width)
        ndim = len(g.shape(data))
        if self.mode == "constant":
            pads = [width[2 * i] for i in range(ndim)] + [width[2 * i + 1] for i in range(ndim)]
            return g.Pad(data, g.int64s(pads), g.scalar(self.constant_value, g.dtype(data)))
        # edge / reflect as index gathers: ORT's Pad gradient supports constant mode only
        x = data
        for axis in range(2, ndim):
            before, after = width[2 * axis], width[2 * axis + 1]
            if before or after:
                index = np.pad(np.arange(g.shape(data)[axis]), (before, after), mode=self.mode)
                x = g.Gather(x, g.int64s(index), axis=axis)
        return x if x != data else g.Identity(x)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Crop(OpDef):
    """out = data[:, :, oy:oy+h, ox:ox+w] with (h, w) from h_w or from the second input.
    Mirrors MXNet src/operator/crop.cc."""
    variadic = True
    num_args: int = param(min=1, max=3, doc="1: crop to h_w; 2: crop to the height and width of the second input.")
    offset: Shape = param((0, 0), min=0, doc="Crop offset coordinate: (y, x).")
    h_w: Shape = param((0, 0), min=0, doc="Crop height and width: (h, w).")
    center_crop: bool = param(False, doc="Centre the crop window instead of using offset.")

    def __post_init__(self):
        if self.num_args not in (1, 2):
            raise MXNetError("Crop: num_args must be 1 or 2, got %d" % self.num_args)
        if len(self.offset) != 2 or len(self.h_w) != 2:
            raise MXNetError("Crop: offset and h_w must have 2 entries (y, x), got %s and %s"
                             % (tuple(self.offset), tuple(self.h_w)))

    def window(self, data, like=None):
        """((y, x) offsets, (h, w)) of the crop."""
        if len(data) != 4:
            raise MXNetError("Crop: input 'arg0' should be 4-D (batch, channel, y, x), got shape %s"
                             % (tuple(data),))
        if self.num_args == 1:
            size = tuple(self.h_w)
            if not (1 <= size[0] <= data[2] and 1 <= size[1] <= data[3]):
                raise MXNetError("Crop: h_w %s must be between 1 and the input size %s of 'arg0' %s"
                                 % (size, tuple(data[2:]), tuple(data)))
        else:
            if len(like) != 4:
                raise MXNetError("Crop: input 'arg1' should be 4-D (batch, channel, y, x), got shape %s"
                                 % (tuple(like),))
            size = tuple(like[2:])
            if size[0] > data[2] or size[1] > data[3]:
                raise MXNetError("Crop: 'arg1' %s is larger than 'arg0' %s" % (tuple(like), tuple(data)))
        if self.center_crop:
            return ((data[2] - size[0]) // 2, (data[3] - size[1]) // 2), size
        for offset, room in zip(self.offset, (data[2] - size[0], data[3] - size[1])):
            if not 0 <= offset <= room:
                raise MXNetError("Crop: offset %s out of range for cropping %s to %s"
                                 % (tuple(self.offset), tuple(data), size))
        return tuple(self.offset), size

    def infer_shape(self, data, like=None):
        if data is None or (self.num_args == 2 and like is None):
            return None
        _, size = self.window(data, like)
        return [data, like][: self.num_args], [tuple(data[:2]) + size]

    def lower(self, g, data, like=None):
        offset, size = self.window(g.shape(data), None if like is None else g.shape(like))
        ends = [o + s for o, s in zip(offset, size)]
        return g.Slice(data, g.int64s(offset), g.int64s(ends), g.int64s([2, 3]))
