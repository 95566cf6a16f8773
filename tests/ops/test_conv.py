"""Convolution, Deconvolution, Pooling, UpSampling, Pad and Crop against naive numpy loops of MXNet's semantics."""
import dataclasses
import math

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.test_utils import check_numeric_gradient

from .opcase import OpCase, run_case


# ---------------------------------------------------------------- numpy references (loops, tiny sizes)
def _conv(data, weight, bias=None, stride=None, pad=None, dilate=None, groups=1):
    n = data.ndim - 2
    stride, pad, dilate = stride or (1,) * n, pad or (0,) * n, dilate or (1,) * n
    x = np.pad(data.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pad])
    kernel = weight.shape[2:]
    out_sp = [(x.shape[2 + i] - dilate[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    filters, cin = weight.shape[0] // groups, data.shape[1] // groups
    out = np.zeros((data.shape[0], weight.shape[0], *out_sp))
    axes = list(range(1, n + 2))
    for pos in np.ndindex(*out_sp):
        window = tuple(slice(pos[i] * stride[i], pos[i] * stride[i] + dilate[i] * (kernel[i] - 1) + 1, dilate[i])
                       for i in range(n))
        patch = x[(slice(None), slice(None)) + window]
        for grp in range(groups):
            w = weight[grp * filters:(grp + 1) * filters].astype(np.float64)
            out[(slice(None), slice(grp * filters, (grp + 1) * filters)) + pos] = np.tensordot(
                patch[:, grp * cin:(grp + 1) * cin], w, axes=(axes, axes))
    if bias is not None:
        out += bias.reshape((1, -1) + (1,) * n)
    return out


def _deconv(data, weight, bias=None, stride=None, pad=None, dilate=None, adj=None, groups=1):
    """Scatter every input pixel times the kernel, then crop `pad` from both ends (adj adds zeros at the end)."""
    n = data.ndim - 2
    stride, pad = stride or (1,) * n, pad or (0,) * n
    dilate, adj = dilate or (1,) * n, adj or (0,) * n
    kernel = weight.shape[2:]
    cin, filters = data.shape[1] // groups, weight.shape[1]
    full = [(data.shape[2 + i] - 1) * stride[i] + dilate[i] * (kernel[i] - 1) + 1 + adj[i] for i in range(n)]
    buf = np.zeros((data.shape[0], filters * groups, *full))
    for pos in np.ndindex(*data.shape[2:]):
        window = tuple(slice(pos[i] * stride[i], pos[i] * stride[i] + dilate[i] * (kernel[i] - 1) + 1, dilate[i])
                       for i in range(n))
        for grp in range(groups):
            x = data[(slice(None), slice(grp * cin, (grp + 1) * cin)) + pos].astype(np.float64)
            contrib = np.tensordot(x, weight[grp * cin:(grp + 1) * cin].astype(np.float64), axes=(1, 0))
            buf[(slice(None), slice(grp * filters, (grp + 1) * filters)) + window] += contrib
    out = buf[(slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(pad, full))]
    if bias is not None:
        out = out + bias.reshape((1, -1) + (1,) * n)
    return out


def _pool(data, kernel=(), stride=None, pad=None, pool_type="max", convention="valid", count_include_pad=True,
          p_value=None, global_pool=False):
    """MXNet pool.h: windows start at o*s - p; max/sum clip to the input, avg divides by the window clipped to
    the padded input (count_include_pad) or to the input."""
    n, sp = data.ndim - 2, data.shape[2:]
    if global_pool:
        kernel, stride, pad = sp, (1,) * n, (0,) * n
    stride, pad = stride or (1,) * n, pad or (0,) * n
    if global_pool:
        out_sp = (1,) * n
    elif convention == "valid":
        out_sp = [1 + (x + 2 * p - k) // s for x, k, s, p in zip(sp, kernel, stride, pad)]
    elif convention == "full":
        out_sp = [1 + math.ceil((x + 2 * p - k) / s) for x, k, s, p in zip(sp, kernel, stride, pad)]
    else:
        out_sp = [math.ceil((x + 2 * p) / s) for x, s, p in zip(sp, stride, pad)]
    out = np.zeros(data.shape[:2] + tuple(out_sp))
    x = data.astype(np.float64)
    for pos in np.ndindex(*out_sp):
        start = [o * s - p for o, s, p in zip(pos, stride, pad)]
        end_pad = [min(st + k, size + p) for st, k, size, p in zip(start, kernel, sp, pad)]
        lo = [max(st, 0) for st in start]
        hi = [min(e, size) for e, size in zip(end_pad, sp)]
        win = x[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in zip(lo, hi))].reshape(
            data.shape[:2] + (-1,))
        if pool_type == "max":
            value = win.max(-1) if win.shape[-1] else np.finfo(data.dtype).min
        elif pool_type == "sum":
            value = win.sum(-1)
        elif pool_type == "avg":
            size = np.prod([e - st for st, e in zip(start, end_pad)]) if count_include_pad else win.shape[-1]
            value = win.sum(-1) / size
        else:
            value = np.cbrt((win ** p_value).sum(-1)) if p_value == 3 else (win ** p_value).sum(-1) ** (1 / p_value)
        out[(slice(None), slice(None)) + pos] = value
    return out


def _upsample_nearest(*args, scale, mode="concat"):
    oh, ow = args[0].shape[2] * scale, args[0].shape[3] * scale
    ups = [x.repeat(oh // x.shape[2], axis=2).repeat(ow // x.shape[3], axis=3) for x in args]
    return np.concatenate(ups, axis=1) if mode == "concat" else sum(ups)


def _upsample_bilinear(data, weight, scale):
    """A grouped transposed convolution with kernel 2s - s%2 (the weight's size), stride s, pad ceil((s-1)/2)."""
    pad = math.ceil((scale - 1) / 2)
    return _deconv(data, weight, stride=(scale, scale), pad=(pad, pad), groups=data.shape[1])


def _pad(data, pad_width, mode, constant_value=0.0):
    width = list(zip(pad_width[::2], pad_width[1::2]))
    if mode == "constant":
        return np.pad(data, width, mode="constant", constant_values=constant_value)
    return np.pad(data, width, mode=mode)


# ---------------------------------------------------------------- MXNet documented examples
_PAD_X = np.array([[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]],
                   [[[11, 12, 13], [14, 15, 16]], [[17, 18, 19], [20, 21, 22]]]], dtype=np.float32)
_PAD_EDGE = np.array([[[[1, 1, 2, 3, 3], [1, 1, 2, 3, 3], [4, 4, 5, 6, 6], [4, 4, 5, 6, 6]],
                       [[7, 7, 8, 9, 9], [7, 7, 8, 9, 9], [10, 10, 11, 12, 12], [10, 10, 11, 12, 12]]],
                      [[[11, 11, 12, 13, 13], [11, 11, 12, 13, 13], [14, 14, 15, 16, 16], [14, 14, 15, 16, 16]],
                       [[17, 17, 18, 19, 19], [17, 17, 18, 19, 19], [20, 20, 21, 22, 22], [20, 20, 21, 22, 22]]]],
                     dtype=np.float32)
_PAD_CONST = np.array([[[[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 0, 0, 0, 0]],
                        [[0, 0, 0, 0, 0], [0, 7, 8, 9, 0], [0, 10, 11, 12, 0], [0, 0, 0, 0, 0]]],
                       [[[0, 0, 0, 0, 0], [0, 11, 12, 13, 0], [0, 14, 15, 16, 0], [0, 0, 0, 0, 0]],
                        [[0, 0, 0, 0, 0], [0, 17, 18, 19, 0], [0, 20, 21, 22, 0], [0, 0, 0, 0, 0]]]],
                      dtype=np.float32)
_BILINEAR_OUT = np.array([[[[1, 2, 2, 2, 2, 1], [2, 4, 4, 4, 4, 2], [2, 4, 4, 4, 4, 2],
                            [2, 4, 4, 4, 4, 2], [2, 4, 4, 4, 4, 2], [1, 2, 2, 2, 2, 1]]]], dtype=np.float32)


def _conv_case(attrs, shape, **kw):
    n = len(attrs["kernel"])
    geometry = dict(stride=attrs.get("stride"), pad=attrs.get("pad"), dilate=attrs.get("dilate"),
                    groups=attrs.get("num_group", 1))
    if attrs.get("no_bias"):
        ref = lambda data, weight: _conv(data, weight, **geometry)          # noqa: E731
    else:
        ref = lambda data, weight, bias: _conv(data, weight, bias, **geometry)  # noqa: E731
    return OpCase(kw.pop("op", "Convolution"), attrs, {"data": shape}, ref, name=kw.pop("name", "") or
                  "conv%dd-%s" % (n, "-".join("%s=%s" % kv for kv in attrs.items())), **kw)


def _deconv_case(attrs, shape, adj=None, pad=None, **kw):
    geometry = dict(stride=attrs.get("stride"), pad=pad or attrs.get("pad"), dilate=attrs.get("dilate"),
                    groups=attrs.get("num_group", 1), adj=adj or attrs.get("adj"))
    if attrs.get("no_bias", True):
        ref = lambda data, weight: _deconv(data, weight, **geometry)          # noqa: E731
    else:
        ref = lambda data, weight, bias: _deconv(data, weight, bias, **geometry)  # noqa: E731
    return OpCase("Deconvolution", attrs, {"data": shape}, ref,
                  name="deconv-%s" % "-".join("%s=%s" % kv for kv in attrs.items()), **kw)


def _pool_case(attrs, shape, **kw):
    keys = dict(kernel="kernel", stride="stride", pad="pad", pool_type="pool_type", global_pool="global_pool",
                pooling_convention="convention", count_include_pad="count_include_pad", p_value="p_value")
    ref_attrs = {keys[k]: v for k, v in attrs.items() if k in keys}
    if ref_attrs.get("count_include_pad") is None:
        ref_attrs.pop("count_include_pad", None)
    return OpCase(kw.pop("op", "Pooling"), attrs, {"data": shape}, lambda data: _pool(data, **ref_attrs),
                  name="pool-%s-%s" % ("-".join("%s=%s" % kv for kv in attrs.items()), "x".join(map(str, shape))),
                  **kw)


CASES = [
    # Convolution: 1-D, 2-D, 3-D, stride, pad, dilation, groups, depthwise, no_bias
    _conv_case(dict(kernel=(3,), num_filter=4), (2, 3, 9)),
    _conv_case(dict(kernel=(3,), num_filter=4, stride=(2,), pad=(1,), dilate=(2,)), (2, 2, 11)),
    _conv_case(dict(kernel=(3, 3), num_filter=4), (2, 3, 6, 7)),
    _conv_case(dict(kernel=(3, 2), num_filter=4, stride=(2, 1), pad=(1, 2), no_bias=True), (1, 3, 7, 5)),
    _conv_case(dict(kernel=(3, 3), num_filter=6, dilate=(2, 1), pad=(2, 1)), (2, 4, 8, 6)),
    _conv_case(dict(kernel=(3, 3), num_filter=6, num_group=2, stride=(2, 2), pad=(1, 1)), (2, 4, 7, 7)),
    _conv_case(dict(kernel=(3, 3), num_filter=4, num_group=4, pad=(1, 1), no_bias=True), (1, 4, 5, 5)),
    _conv_case(dict(kernel=(1, 1), num_filter=5, layout="NCHW", cudnn_tune="fastest", workspace=64), (2, 3, 4, 4)),
    _conv_case(dict(kernel=(2, 3, 2), num_filter=3, stride=(1, 2, 1), pad=(1, 0, 1)), (1, 2, 4, 5, 3)),
    _conv_case(dict(kernel=(3, 3), num_filter=2, pad=(1, 1)), (1, 2, 5, 5), op="Convolution_v1",
               name="convolution_v1"),
    _conv_case(dict(kernel=(2, 2), num_filter=2), (1, 2, 3, 3), op="_npx_convolution", name="npx_convolution"),
    # Deconvolution: no_bias defaults to True; adj; target_shape; groups; dilation; 1-D and 3-D
    _deconv_case(dict(kernel=(3, 3), num_filter=4), (2, 3, 4, 5)),
    _deconv_case(dict(kernel=(3, 3), num_filter=4, stride=(2, 2), pad=(1, 1), no_bias=False), (2, 3, 4, 4)),
    _deconv_case(dict(kernel=(4, 3), num_filter=2, stride=(3, 2), pad=(1, 0), adj=(2, 1)), (1, 2, 3, 4)),
    _deconv_case(dict(kernel=(3, 3), num_filter=4, num_group=2, stride=(2, 2), dilate=(2, 1)), (1, 4, 3, 3)),
    _deconv_case(dict(kernel=(3,), num_filter=3, stride=(2,), pad=(1,), adj=(1,)), (2, 2, 5)),
    _deconv_case(dict(kernel=(2, 2, 3), num_filter=2, stride=(2, 1, 2), pad=(0, 1, 1)), (1, 2, 2, 3, 3)),
    # target_shape (8, 8) from 4x4, k=4, s=2: total 2*3+4-8 = 2 -> pad 1, adj 0
    _deconv_case(dict(kernel=(4, 4), num_filter=2, stride=(2, 2), target_shape=(8, 8), pad=(5, 5)), (1, 3, 4, 4),
                 pad=(1, 1), adj=(0, 0)),
    # target_shape (7, 6) from 3x3, k=3, s=3: totals 9-7=2 -> (1, 0); 9-6=3 -> (2, 1)
    _deconv_case(dict(kernel=(3, 3), num_filter=2, stride=(3, 3), target_shape=(7, 6)), (1, 2, 3, 3),
                 pad=(1, 2), adj=(0, 1)),
    # Pooling: valid / full (with padding, MXNet's unclamped last window) / same; avg count_include_pad; sum; lp
    _pool_case(dict(kernel=(2, 2), stride=(2, 2)), (2, 3, 6, 5)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1)), (1, 2, 6, 7)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pooling_convention="full"), (2, 2, 6, 6)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 6, 6)),
    _pool_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 3, 4)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full"),
               (1, 2, 6, 6)),
    _pool_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full"),
               (1, 2, 3, 4)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False,
                    pooling_convention="full"), (1, 2, 6, 7)),
    _pool_case(dict(kernel=(3, 2), stride=(1, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
               (2, 2, 5, 5)),
    _pool_case(dict(kernel=(3, 3), pad=(1, 1), pool_type="avg", count_include_pad=True), (1, 2, 4, 4)),
    _pool_case(dict(kernel=(2, 3), stride=(2, 2), pad=(1, 1), pool_type="sum", pooling_convention="full"),
               (2, 2, 5, 6)),
    _pool_case(dict(kernel=(2, 2), stride=(2, 1), pool_type="lp", p_value=1), (1, 2, 4, 4)),
    _pool_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 0), pool_type="lp", p_value=2), (1, 2, 5, 4)),
    _pool_case(dict(kernel=(3, 3), stride=(2, 2), pool_type="lp", p_value=3, pooling_convention="full"),
               (1, 2, 6, 6), rtol=1e-4, atol=1e-5),
    _pool_case(dict(kernel=(3,), stride=(2,), pad=(1,)), (2, 3, 8)),
    _pool_case(dict(kernel=(3,), stride=(2,), pooling_convention="same"), (2, 3, 8)),
    _pool_case(dict(kernel=(3,), stride=(3,), pool_type="avg", pooling_convention="same"), (1, 2, 7)),
    _pool_case(dict(kernel=(2, 2, 2), stride=(2, 2, 2), pad=(1, 0, 1), pooling_convention="full"), (1, 2, 3, 4, 5)),
    _pool_case(dict(kernel=(2, 3, 2), pad=(1, 1, 0), pool_type="avg", count_include_pad=False), (1, 2, 3, 4, 3)),
    _pool_case(dict(global_pool=True), (2, 3, 4, 5)),
    _pool_case(dict(global_pool=True, pool_type="avg"), (2, 3, 4, 5)),
    _pool_case(dict(global_pool=True, pool_type="sum", kernel=(7, 7), stride=(3, 3), pad=(2, 2)), (2, 3, 4, 5)),
    _pool_case(dict(global_pool=True, pool_type="lp", p_value=2), (2, 3, 6)),
    _pool_case(dict(global_pool=True, pool_type="avg"), (1, 2, 2, 3, 4)),
    _pool_case(dict(kernel=(2, 2), stride=(2, 2)), (1, 2, 4, 4), op="_npx_pooling"),
    # UpSampling: nearest (1 input, several inputs with their own scale, concat and sum); bilinear
    OpCase("UpSampling", dict(scale=2, sample_type="nearest"), {"arg0": (2, 3, 2, 3)},
           lambda arg0: _upsample_nearest(arg0, scale=2), nargs=1),
    OpCase("UpSampling", dict(scale=3, sample_type="nearest", num_filter=7), {"arg0": (1, 2, 2, 2)},
           lambda arg0: _upsample_nearest(arg0, scale=3), nargs=1),
    OpCase("UpSampling", dict(scale=2, sample_type="nearest"),
           {"arg0": (2, 2, 2, 3), "arg1": (2, 3, 4, 6), "arg2": (2, 1, 1, 2)},
           lambda arg0, arg1, arg2: _upsample_nearest(arg0, arg1, arg2, scale=2), nargs=3),
    OpCase("UpSampling", dict(scale=2, sample_type="nearest", multi_input_mode="sum"),
           {"arg0": (2, 3, 2, 2), "arg1": (2, 3, 4, 4)},
           lambda arg0, arg1: _upsample_nearest(arg0, arg1, scale=2, mode="sum"), nargs=2),
    OpCase("UpSampling", dict(scale=2, sample_type="bilinear", num_filter=1), {"data": (1, 1, 3, 3)},
           lambda data, weight: _BILINEAR_OUT,
           values={"data": np.ones((1, 1, 3, 3), np.float32), "weight": np.ones((1, 1, 4, 4), np.float32)},
           nargs=2, name="upsampling-bilinear-mxnet-doc"),
    OpCase("UpSampling", dict(scale=2, sample_type="bilinear", num_filter=3), {"data": (2, 3, 3, 4)},
           lambda data, weight: _upsample_bilinear(data, weight, 2), nargs=2),
    OpCase("UpSampling", dict(scale=3, sample_type="bilinear", num_filter=2), {"data": (1, 2, 2, 3)},
           lambda data, weight: _upsample_bilinear(data, weight, 3), nargs=2),
    # Pad: MXNet's documented examples, reflect, 5-D, the `pad` alias
    OpCase("Pad", dict(mode="edge", pad_width=(0, 0, 0, 0, 1, 1, 1, 1)), {"data": (2, 2, 2, 3)},
           lambda data: _PAD_EDGE, values={"data": _PAD_X}, name="pad-edge-mxnet-doc"),
    OpCase("Pad", dict(mode="constant", constant_value=0, pad_width=(0, 0, 0, 0, 1, 1, 1, 1)),
           {"data": (2, 2, 2, 3)}, lambda data: _PAD_CONST, values={"data": _PAD_X}, name="pad-constant-mxnet-doc"),
    OpCase("Pad", dict(mode="constant", constant_value=2.5, pad_width=(0, 0, 0, 0, 2, 1, 0, 3)),
           {"data": (2, 3, 3, 4)}, lambda data: _pad(data, (0, 0, 0, 0, 2, 1, 0, 3), "constant", 2.5)),
    OpCase("Pad", dict(mode="reflect", pad_width=(0, 0, 0, 0, 2, 1, 1, 3)), {"data": (1, 2, 3, 4)},
           lambda data: _pad(data, (0, 0, 0, 0, 2, 1, 1, 3), "reflect")),
    OpCase("pad", dict(mode="edge", pad_width=(0, 0, 0, 0, 1, 2, 0, 0, 2, 1)), {"data": (1, 2, 2, 3, 2)},
           lambda data: _pad(data, (0, 0, 0, 0, 1, 2, 0, 0, 2, 1), "edge")),
    OpCase("pad", dict(mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 2, 0, 0, 1)), {"data": (1, 2, 3, 3, 2)},
           lambda data: _pad(data, (0, 0, 0, 0, 1, 1, 2, 0, 0, 1), "reflect")),
    # Crop: 1 input with offset / centred, 2 inputs (crop to the second input's H, W)
    OpCase("Crop", dict(h_w=(3, 2), offset=(1, 2)), {"arg0": (2, 3, 5, 6)},
           lambda arg0: arg0[:, :, 1:4, 2:4], nargs=1),
    OpCase("Crop", dict(h_w=(2, 3), center_crop=True), {"arg0": (1, 2, 5, 6)},
           lambda arg0: arg0[:, :, 1:3, 1:4], nargs=1),
    OpCase("Crop", dict(), {"arg0": (2, 3, 6, 7), "arg1": (2, 5, 4, 4)},
           lambda arg0, arg1: arg0[:, :, :4, :4], nargs=2),
    OpCase("Crop", dict(offset=(2, 1)), {"arg0": (1, 2, 6, 7), "arg1": (1, 1, 3, 5)},
           lambda arg0, arg1: arg0[:, :, 2:5, 1:6], nargs=2),
    OpCase("Crop", dict(center_crop=True), {"arg0": (1, 2, 7, 6), "arg1": (1, 1, 4, 3)},
           lambda arg0, arg1: arg0[:, :, 1:5, 1:4], nargs=2),
]


def _distinct(shape, low=None):
    """Inputs 0.03 apart in a random order (from `low`, default centred on 0): no ties within a finite-difference
    step, which would move max pooling's gradient to another element."""
    size = math.prod(shape)
    low = -0.015 * size if low is None else low
    return (low + 0.03 * np.random.RandomState(0).permutation(size)).astype(np.float32).reshape(shape)


def _pool_gradient_case(attrs, shape, low=None):
    case = _pool_case(attrs, shape, values={"data": _distinct(shape, low)})
    return dataclasses.replace(case, name=case.name + "-distinct")


_SMOOTH_OPS = ("Convolution", "Convolution_v1", "_npx_convolution", "Deconvolution", "UpSampling", "Pad", "pad",
               "Crop")
# Gradient checks only. Deconvolution: a pad beyond the dilated kernel (the training decomposition crops the input),
# grouped 1-D with bias, target_shape with bias. Pooling: tie-free inputs, no max window that lies wholly in the
# padding (its output, the lowest float, overflows the finite differences), lp with p=3 away from a zero sum (the
# cube root's infinite slope), 3-D avg/sum with overlapping windows (ORT's AveragePoolGrad is wrong there).
_GRADIENT_ONLY = [
    _deconv_case(dict(kernel=(2, 2), num_filter=2, stride=(3, 2), pad=(2, 1), no_bias=False), (1, 2, 4, 3)),
    _deconv_case(dict(kernel=(3,), num_filter=4, num_group=2, stride=(2,), dilate=(2,), adj=(1,), no_bias=False),
                 (2, 4, 5)),
    _deconv_case(dict(kernel=(3, 3), num_filter=3, stride=(2, 2), target_shape=(9, 8), no_bias=False), (1, 2, 4, 4),
                 pad=(0, 1), adj=(0, 1)),
    _deconv_case(dict(kernel=(2, 2, 3), num_filter=4, num_group=2, stride=(2, 1, 2), pad=(0, 1, 1), no_bias=False),
                 (1, 4, 2, 3, 3)),
    _conv_case(dict(kernel=(2, 3, 2), num_filter=4, num_group=2, pad=(1, 0, 1)), (1, 4, 3, 4, 3)),
    # float64 (Conv and the pooling ops have no float64 CPU kernels in ORT)
    OpCase("Pad", dict(mode="reflect", pad_width=(0, 0, 0, 0, 1, 2, 2, 1)), {"data": (1, 2, 3, 4)},
           lambda data: _pad(data, (0, 0, 0, 0, 1, 2, 2, 1), "reflect"), dtype="float64"),
    OpCase("UpSampling", dict(scale=2, sample_type="nearest", multi_input_mode="sum"),
           {"arg0": (1, 2, 2, 2), "arg1": (1, 2, 4, 4)},
           lambda arg0, arg1: _upsample_nearest(arg0, arg1, scale=2, mode="sum"), nargs=2, dtype="float64"),
    OpCase("Crop", dict(h_w=(2, 3), offset=(1, 0)), {"arg0": (1, 2, 4, 5)}, lambda arg0: arg0[:, :, 1:3, 0:3],
           nargs=1, dtype="float64"),
    _pool_gradient_case(dict(kernel=(2, 2), stride=(2, 2)), (2, 3, 6, 5)),
    _pool_gradient_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1)), (1, 2, 6, 7)),
    _pool_gradient_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 6, 6)),
    _pool_gradient_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 4, 4)),
    _pool_gradient_case(dict(kernel=(3,), stride=(2,), pad=(1,)), (2, 3, 8)),
    _pool_gradient_case(dict(kernel=(3,), stride=(2,), pooling_convention="same"), (2, 3, 8)),
    _pool_gradient_case(dict(kernel=(2, 2, 2), stride=(2, 2, 2), pad=(1, 0, 1), pooling_convention="full"),
                        (1, 2, 4, 4, 4)),
    _pool_gradient_case(dict(kernel=(2, 3, 2), stride=(1, 2, 1), pad=(1, 1, 0)), (1, 2, 3, 5, 3)),
    _pool_gradient_case(dict(global_pool=True), (2, 3, 4, 5)),
    _pool_gradient_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full"),
                        (1, 2, 6, 6)),
    _pool_gradient_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full"),
                        (1, 2, 3, 4)),
    _pool_gradient_case(dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False,
                             pooling_convention="full"), (1, 2, 6, 7)),
    _pool_gradient_case(dict(kernel=(3, 2), stride=(1, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
                        (2, 2, 5, 5)),
    _pool_gradient_case(dict(kernel=(3,), stride=(3,), pool_type="avg", pooling_convention="same"), (1, 2, 7)),
    _pool_gradient_case(dict(kernel=(2, 3, 2), pad=(1, 1, 0), pool_type="avg", count_include_pad=False),
                        (1, 2, 3, 4, 3)),
    _pool_gradient_case(dict(kernel=(2, 2, 2), stride=(1, 2, 1), pool_type="avg", pooling_convention="full"),
                        (1, 2, 3, 4, 3)),
    _pool_gradient_case(dict(global_pool=True, pool_type="avg"), (1, 2, 2, 3, 4)),
    _pool_gradient_case(dict(kernel=(2, 3), stride=(2, 2), pad=(1, 1), pool_type="sum", pooling_convention="full"),
                        (2, 2, 5, 6)),
    _pool_gradient_case(dict(kernel=(2, 2, 2), pool_type="sum"), (1, 2, 3, 3, 3)),
    _pool_gradient_case(dict(kernel=(2, 2), stride=(2, 1), pool_type="lp", p_value=1), (1, 2, 4, 4)),
    _pool_gradient_case(dict(kernel=(2, 2), stride=(2, 2), pad=(1, 0), pool_type="lp", p_value=2), (1, 2, 5, 4)),
    _pool_gradient_case(dict(kernel=(2, 2, 2), pool_type="lp", p_value=2), (1, 1, 3, 3, 3)),
    _pool_gradient_case(dict(kernel=(3, 3), stride=(2, 2), pool_type="lp", p_value=3, pooling_convention="full"),
                        (1, 2, 6, 6), low=0.5),
    _pool_gradient_case(dict(global_pool=True, pool_type="lp", p_value=2), (2, 3, 6)),
]
GRADIENT_CASES = [case for case in CASES if case.op in _SMOOTH_OPS] + _GRADIENT_ONLY


@pytest.mark.parametrize("case", CASES + _GRADIENT_ONLY, ids=str)
def test_forward(case):
    run_case(case)


@pytest.mark.parametrize("case", [c for c in CASES + _GRADIENT_ONLY if c.op == "Deconvolution" or
                                  c.attrs.get("sample_type") == "bilinear"], ids=str)
def test_transposed_convolution_training_forward(case):
    """Training lowers ConvTranspose as zero insertion + Conv (ORT has no ConvTransposeGrad on CPU): same values."""
    sym = case.symbol()
    arrays = case.inputs(sym)
    args = {n: mx.nd.array(a) for n, a in arrays.items()}
    inference = sym.bind(mx.cpu(), args=args).forward()[0].asnumpy()
    grads = {n: mx.nd.zeros(a.shape) for n, a in arrays.items()}
    training = sym.bind(mx.cpu(), args=args, args_grad=grads).forward(is_train=True)[0].asnumpy()
    np.testing.assert_allclose(training, inference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(training, case.ref(**arrays), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda x: mx.sym.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 1, 1, 1, 1, 1)),
    lambda x: mx.sym.tile(x, reps=(1, 1, 2, 1, 2)),
], ids=["pad", "tile"])
def test_grouped_3d_convolution_gradient_after_pad(make):
    """onnxruntime-training's ConvGrad gives the second group a wrong data gradient for a grouped 3-D Conv fed by
    Pad or Tile; training lowers such a Conv as one Conv per group."""
    rng = np.random.RandomState(0)
    sym = mx.sym.Convolution(make(_var()), kernel=(2, 3, 2), num_filter=4, num_group=2, name="c")
    location = {"data": rng.uniform(-1, 1, (1, 4, 2, 3, 2)), "c_weight": rng.uniform(-1, 1, (4, 2, 2, 3, 2)),
                "c_bias": rng.uniform(-1, 1, (4,))}
    check_numeric_gradient(sym, location)


# ---------------------------------------------------------------- shape rules and defaults
def _var(name="data"):
    return mx.sym.Variable(name)


def test_convolution_infers_weight_and_bias():
    conv = mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=8, num_group=2, stride=(2, 2), pad=(1, 1), name="c")
    assert conv.list_arguments() == ["data", "c_weight", "c_bias"]
    assert conv.infer_shape(data=(4, 6, 9, 8)) == ([(4, 6, 9, 8), (8, 3, 3, 3), (8,)], [(4, 8, 5, 4)], [])


def test_deconvolution_defaults_to_no_bias():
    deconv = mx.sym.Deconvolution(_var(), kernel=(2, 2), num_filter=4, num_group=2, name="d")
    assert deconv.list_arguments() == ["data", "d_weight"]
    assert deconv.infer_shape(data=(1, 6, 3, 3)) == ([(1, 6, 3, 3), (6, 2, 2, 2)], [(1, 4, 4, 4)], [])
    with_bias = mx.sym.Deconvolution(_var(), kernel=(2, 2), num_filter=4, no_bias=False, name="d")
    assert with_bias.list_arguments() == ["data", "d_weight", "d_bias"]


def test_deconvolution_target_shape_ignores_pad_and_adj():
    deconv = mx.sym.Deconvolution(_var(), kernel=(3, 3), stride=(2, 2), pad=(9, 9), adj=(1, 1),
                                  target_shape=(10, 9), num_filter=2)
    assert deconv.infer_shape(data=(1, 3, 5, 5))[1] == [(1, 2, 10, 9)]


def test_pooling_full_keeps_window_starting_in_padding():
    # 1 + ceil((3 + 2 - 2) / 2) = 3 windows; the last one starts at 3 = input size (ONNX ceil_mode drops it)
    pool = mx.sym.Pooling(_var(), kernel=(2,), stride=(2,), pad=(1,), pooling_convention="full", pool_type="avg")
    assert pool.infer_shape(data=(1, 1, 3))[1] == [(1, 1, 3)]
    x = np.array([[[1.0, 2.0, 4.0]]], np.float32)
    out = pool.eval(data=mx.nd.array(x))[0].asnumpy()
    np.testing.assert_allclose(out, [[[0.5, 3.0, 0.0]]])


@pytest.mark.parametrize("attrs,shape,pads", [
    (dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1)), (2, 3, 9, 8), True),         # ResNet's stem pooling
    (dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 6, 6), True),
    (dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pooling_convention="full"), (1, 2, 3, 4), False),
])
def test_max_pooling_pads_inside_maxpool_where_every_window_holds_data(attrs, shape, pads):
    """MaxPool's own pads (ORT's blocked-layout MaxPool takes them; an explicit Pad made ResNet-18's stem leave
    that layout) where every window holds data; an explicit lowest-value Pad where a window can lie wholly in the
    padding (the last case: MXNet's 'full' window starting at the input's end). Numbers: pool.h's windows."""
    from onnxsym.lower.to_onnx import lower_symbol
    sym = mx.sym.Pooling(_var(), pool_type="max", **attrs)
    ops = [n.op_type for n in lower_symbol(sym, {"data": shape}, {"data": np.float32}).model.graph.node]
    assert ops == (["MaxPool"] if pads else ["Pad", "MaxPool"])
    x = np.random.RandomState(0).normal(0, 1, shape).astype(np.float32)
    ref = _pool(x, **{("convention" if k == "pooling_convention" else k): v for k, v in attrs.items()})
    np.testing.assert_array_equal(sym.eval(data=mx.nd.array(x))[0].asnumpy(), ref.astype(np.float32))


def test_pooling_global_without_kernel_and_defaults():
    pool = mx.sym.Pooling(_var(), global_pool=True, pool_type="avg")
    assert pool.infer_shape(data=(2, 3, 4, 5))[1] == [(2, 3, 1, 1)]
    pool = mx.sym.Pooling(_var(), kernel=(2, 2))       # max, stride 1, valid convention
    assert pool.infer_shape(data=(1, 1, 5, 5))[1] == [(1, 1, 4, 4)]
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    np.testing.assert_array_equal(pool.eval(data=mx.nd.array(x))[0].asnumpy(), x[:, :, 1:, 1:])


def test_upsampling_bilinear_creates_weight_with_init():
    up = mx.sym.UpSampling(_var(), scale=2, sample_type="bilinear", num_filter=3, name="up")
    assert up.list_arguments() == ["data", "up_weight"]
    weight = up.get_internals()["up_weight"]
    assert weight.attr("__init__") == '["bilinear", {}]'
    assert up.infer_shape(data=(1, 3, 5, 5)) == ([(1, 3, 5, 5), (3, 1, 4, 4)], [(1, 3, 10, 10)], [])


def test_pad_fluent_method():
    out = _var().pad(mode="constant", pad_width=(0, 0, 0, 0, 1, 0, 0, 2))
    assert out.infer_shape(data=(1, 1, 2, 2))[1] == [(1, 1, 3, 4)]


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("make, message", [
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=2, layout="NHWC"), "layout"),
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=2, stride=(1, 1, 1)), "stride"),
    (lambda: mx.sym.Convolution(_var(), kernel=(1, 1, 1, 1), num_filter=2), "4D"),
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=3, num_group=2), "num_group"),
    (lambda: mx.sym.Convolution_v1(_var(), kernel=(3, 3, 3), num_filter=2), "3D"),
    (lambda: mx.sym.Deconvolution(_var(), kernel=(3, 3), num_filter=2, layout="NDHWC"), "layout"),
    (lambda: mx.sym.Deconvolution(_var(), kernel=(3, 3), num_filter=2, adj=(1,)), "adj"),
    (lambda: mx.sym.Deconvolution(_var(), kernel=(3, 3), num_filter=2, target_shape=(4, 4, 4)), "target_shape"),
    (lambda: mx.sym.Pooling(_var(), kernel=(2, 2), layout="NHWC"), "layout"),
    (lambda: mx.sym.Pooling(_var(), pool_type="max"), "pooling not supported"),
    (lambda: mx.sym.Pooling(_var(), kernel=(2, 2), pool_type="lp"), "p_value"),
    (lambda: mx.sym.Pooling(_var(), kernel=(2, 2), pad=(1,)), "pad"),
    (lambda: mx.sym.UpSampling(_var(), scale=2), "sample_type"),
    (lambda: mx.sym.Crop(_var("a"), _var("b"), _var("c"), h_w=(1, 1)), "num_args"),
    (lambda: mx.sym.Pad(_var(), mode="wrap", pad_width=(0, 0, 0, 0, 1, 1, 1, 1)), "mode"),
])
def test_invalid_attributes(make, message):
    with pytest.raises(mx.MXNetError) as err:
        sym = make()
        sym.infer_shape(data=(1, 4, 6, 6))
    assert message in str(err.value)


@pytest.mark.parametrize("make, shapes, words", [
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=2, name="c1"), dict(data=(1, 3, 6)),
     ["c1", "data", "(1, 3, 6)"]),
    (lambda: mx.sym.Convolution(_var(), kernel=(5, 5), num_filter=2, name="c1"), dict(data=(1, 3, 4, 8)),
     ["c1", "exceeds"]),
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=2, num_group=2, name="c1"),
     dict(data=(1, 3, 6, 6)), ["c1", "num_group", "(1, 3, 6, 6)"]),
    (lambda: mx.sym.Convolution(_var(), kernel=(3, 3), num_filter=2, name="c1"),
     dict(data=(1, 3, 6, 6), c1_weight=(2, 3, 2, 2)), ["c1", "weight", "(2, 3, 3, 3)", "(2, 3, 2, 2)"]),
    (lambda: mx.sym.Deconvolution(_var(), kernel=(3, 3), num_filter=2, adj=(2, 0), stride=(2, 2), name="d1"),
     dict(data=(1, 3, 4, 4)), ["d1", "adj"]),
    (lambda: mx.sym.Deconvolution(_var(), kernel=(3, 3), num_filter=2, target_shape=(20, 20), name="d1"),
     dict(data=(1, 3, 4, 4)), ["d1", "target shape"]),
    (lambda: mx.sym.Pooling(_var(), kernel=(5, 5), name="p1"), dict(data=(1, 3, 4, 8)), ["p1", "exceeds"]),
    (lambda: mx.sym.Pooling(_var(), kernel=(2, 2), pooling_convention="same", name="p1"), dict(data=(1, 3, 4, 8)),
     ["p1", "same"]),
    (lambda: mx.sym.Pooling(_var(), kernel=(2,), pad=(1,), pooling_convention="same", name="p1"),
     dict(data=(1, 3, 8)), ["p1", "pad"]),
    (lambda: mx.sym.Pooling(_var(), kernel=(2,), name="p1"), dict(data=(1, 3, 4, 4)), ["p1", "data"]),
    (lambda: mx.sym.UpSampling(_var("a"), _var("b"), scale=2, sample_type="nearest", multi_input_mode="sum",
                               name="u1"), dict(a=(1, 2, 2, 2), b=(1, 3, 4, 4)), ["u1", "sum"]),
    (lambda: mx.sym.UpSampling(_var("a"), _var("b"), scale=2, sample_type="nearest", name="u1"),
     dict(a=(1, 2, 2, 2), b=(1, 3, 3, 4)), ["u1", "arg1", "(1, 3, 3, 4)"]),
    (lambda: mx.sym.UpSampling(_var(), scale=2, sample_type="bilinear", num_filter=2, name="u1"),
     dict(data=(1, 3, 2, 2)), ["u1", "num_filter"]),
    (lambda: mx.sym.Pad(_var(), mode="constant", pad_width=(1, 1, 0, 0, 1, 1, 1, 1), name="pd"),
     dict(data=(1, 3, 4, 4)), ["pd", "first two axes"]),
    (lambda: mx.sym.Pad(_var(), mode="constant", pad_width=(0, 0, 0, 0, 1, 1), name="pd"),
     dict(data=(1, 3, 4, 4)), ["pd", "pad_width"]),
    (lambda: mx.sym.Pad(_var(), mode="constant", pad_width=(0, 0, 1, 1, 1, 1), name="pd"),
     dict(data=(3, 4, 4)), ["pd", "4-D or 5-D"]),
    (lambda: mx.sym.Pad(_var(), mode="reflect", pad_width=(0, 0, 0, 0, 4, 1, 1, 1), name="pd"),
     dict(data=(1, 3, 4, 4)), ["pd", "reflect"]),
    (lambda: mx.sym.Crop(_var(), h_w=(5, 2), name="cr"), dict(data=(1, 3, 4, 4)), ["cr", "h_w"]),
    (lambda: mx.sym.Crop(_var(), h_w=(2, 2), offset=(3, 0), name="cr"), dict(data=(1, 3, 4, 4)), ["cr", "offset"]),
    (lambda: mx.sym.Crop(_var("a"), _var("b"), name="cr"), dict(a=(1, 3, 4, 4), b=(1, 3, 5, 2)),
     ["cr", "larger"]),
])
def test_invalid_shapes(make, shapes, words):
    sym = make()
    with pytest.raises(mx.MXNetError) as err:
        sym.infer_shape(**shapes)
    for word in words:
        assert word in str(err.value)
