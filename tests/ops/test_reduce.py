"""Reductions, softmax family and normalization layers against numpy references (MXNet 1.9.1 semantics)."""
import numpy as np
import onnx
import pytest

import onnxsym as mx
from onnxsym.test_utils import lowered_model

from .opcase import OpCase, run_case

RNG = np.random.RandomState(42)
NAN_DATA = np.array([[1.5, np.nan, -2.0], [np.nan, np.nan, 3.0]], dtype=np.float32)
DOC_SUM = np.array([[[1, 2], [2, 3], [1, 3]], [[1, 4], [4, 3], [5, 2]], [[7, 1], [7, 2], [7, 3]]], np.float32)
DOC_NORM = np.array([[[1, 2], [3, 4]], [[2, 2], [5, 6]]], np.float32)


# ---------------------------------------------------------------- numpy references
def _axes(ndim, axis, exclude=False):
    if axis is None or axis == ():
        return tuple(range(ndim))
    listed = {a % ndim for a in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(i for i in range(ndim) if (i in listed) != exclude)


def reduce_ref(fn, axis=None, keepdims=False, exclude=False):
    """MXNet 1.x legacy reduce: everything reduced without keepdims gives shape (1,), not ()."""
    def ref(data):
        all_axes = axis is None or axis == ()
        axes = _axes(data.ndim, axis, exclude and not all_axes)
        out = fn(data, axis=axes, keepdims=keepdims) if axes else data
        return np.asarray(out, dtype=data.dtype).reshape(out.shape or (1,))
    return ref


def norm_ref(ord_, axis=None, keepdims=False):
    def ref(data):
        axes = _axes(data.ndim, axis)
        x = np.abs(data) if ord_ == 1 else data * data
        out = x.sum(axis=axes, keepdims=keepdims)
        out = out if ord_ == 1 else np.sqrt(out)
        return out.reshape(out.shape or (1,))
    return ref


def softmax_ref(axis=-1, temperature=1.0, log=False, negate=False, dtype=None):
    def ref(data, length=None):
        x = (-data if negate else data).astype(dtype or data.dtype) / (temperature or 1.0)
        x = np.moveaxis(x, axis, -1)
        out = np.zeros_like(x)
        rows = x.reshape(-1, x.shape[-1])
        lengths = np.full(len(rows), x.shape[-1]) if length is None else length.reshape(-1)
        flat = out.reshape(-1, x.shape[-1])
        for i, (row, n) in enumerate(zip(rows, lengths)):
            e = np.exp(row[:n] - row[:n].max()) if n else row[:0]
            flat[i, :n] = np.log(e / e.sum()) if log else e / e.sum()
        return np.moveaxis(flat.reshape(x.shape), -1, axis)
    return ref


def batch_norm_ref(axis=1, eps=1e-3, fix_gamma=True, output_mean_var=False):
    def ref(data, gamma, beta, moving_mean, moving_var):
        shape = [1] * data.ndim
        shape[axis] = -1
        g = np.ones_like(gamma) if fix_gamma else gamma
        out = (data - moving_mean.reshape(shape)) / np.sqrt(moving_var.reshape(shape) + eps) * g.reshape(shape) \
            + beta.reshape(shape)
        # MXNet's inference-time hidden outputs: the moving mean and the inverse std.
        return [out, moving_mean, 1 / np.sqrt(moving_var + eps)] if output_mean_var else out
    return ref


def l2_normalization_ref(mode, eps=1e-10):
    def ref(data):
        axes = {"instance": tuple(range(1, data.ndim)), "channel": (1,), "spatial": tuple(range(2, data.ndim))}[mode]
        return data / np.sqrt((data.astype(np.float64) ** 2).sum(axis=axes, keepdims=True) + eps)
    return ref


def lrn_ref(nsize, alpha=1e-4, beta=0.75, knorm=2.0):
    def ref(data):
        out = np.empty_like(data)
        channels, half = data.shape[1], nsize // 2
        for c in range(channels):
            window = data[:, max(0, c - half):min(channels, c + half + 1)]
            out[:, c] = data[:, c] / (knorm + alpha / nsize * (window ** 2).sum(axis=1)) ** beta
        return out
    return ref


def instance_norm_ref(eps=1e-3):
    def ref(data, gamma, beta):
        axes = tuple(range(2, data.ndim))
        shape = (1, -1) + (1,) * (data.ndim - 2)
        mean, var = data.mean(axis=axes, keepdims=True), data.var(axis=axes, keepdims=True)
        return (data - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return ref


def layer_norm_ref(axis=-1, eps=1e-5, output_mean_var=False):
    def ref(data, gamma, beta):
        shape = [1] * data.ndim
        shape[axis] = -1
        mean = data.mean(axis=axis, keepdims=True)
        std = np.sqrt(data.var(axis=axis, keepdims=True) + eps)
        out = (data - mean) / std * gamma.reshape(shape) + beta.reshape(shape)
        return [out, mean, std] if output_mean_var else out
    return ref


def group_norm_ref(num_groups=1, eps=1e-5, output_mean_var=False):
    def ref(data, gamma, beta):
        grouped = data.reshape(data.shape[0], num_groups, -1)
        mean = grouped.mean(axis=2, keepdims=True)
        std = np.sqrt(grouped.var(axis=2, keepdims=True) + eps)
        out = ((grouped - mean) / std * gamma.reshape(1, -1, 1) + beta.reshape(1, -1, 1)).reshape(data.shape)
        return [out, mean[..., 0], std[..., 0]] if output_mean_var else out
    return ref


def bn_values(channels, **extra):
    """Positive moving variances (random ones in [-1, 1] would give NaN), other inputs random."""
    return dict(moving_var=RNG.uniform(0.5, 1.5, channels).astype(np.float32), **extra)


# ---------------------------------------------------------------- cases
REDUCE_CASES = [
    OpCase("sum", {}, {"data": (2, 3, 4)}, reduce_ref(np.sum), name="sum-all-is-(1,)"),
    OpCase("sum", dict(axis=()), {"data": (2, 3, 4)}, reduce_ref(np.sum), name="sum-axis-()-is-(1,)"),
    OpCase("sum", dict(keepdims=True), {"data": (2, 3, 4)}, reduce_ref(np.sum, keepdims=True)),
    OpCase("sum", dict(axis=-1), {"data": (2, 3, 4)}, reduce_ref(np.sum, -1)),
    OpCase("sum", dict(axis=(0, 2), keepdims=True), {"data": (2, 3, 4)}, reduce_ref(np.sum, (0, 2), True)),
    OpCase("sum", dict(axis=1, exclude=True), {"data": (2, 3, 4)}, reduce_ref(np.sum, 1, exclude=True)),
    OpCase("sum", dict(axis=(0, 1, 2), exclude=True), {"data": (2, 3, 4)},
           reduce_ref(np.sum, (0, 1, 2), exclude=True), name="sum-exclude-every-axis-is-identity"),
    OpCase("sum", dict(axis=(0, 1)), {"data": (2, 3)}, reduce_ref(np.sum, (0, 1)), name="sum-every-axis-listed"),
    OpCase("sum_axis", dict(axis=1), {"data": (3, 3, 2)}, lambda data: np.array([[4, 8], [10, 9], [21, 6]], "f"),
           values={"data": DOC_SUM}, name="sum-doc-axis-1"),
    OpCase("sum", dict(axis=(1, 2)), {"data": (3, 3, 2)}, lambda data: np.array([12, 19, 27], "f"),
           values={"data": DOC_SUM}, name="sum-doc-axis-1-2"),
    OpCase("sum", dict(axis=1), {"data": (2, 3)}, reduce_ref(np.sum, 1), dtype="float64"),
    OpCase("mean", dict(axis=(0, -1), exclude=True, keepdims=True), {"data": (2, 3, 4)},
           reduce_ref(np.mean, (0, -1), True, True)),
    OpCase("mean", {}, {"data": (4, 5)}, reduce_ref(np.mean)),
    OpCase("mean", dict(axis=-2), {"data": (2, 3, 4)}, reduce_ref(np.mean, -2)),
    OpCase("max", {}, {"data": (2, 3, 4)}, reduce_ref(np.max)),
    OpCase("max_axis", dict(axis=1), {"data": (2, 3, 4)}, reduce_ref(np.max, 1)),
    OpCase("max", dict(axis=(1, 2), exclude=True), {"data": (2, 3, 4)}, reduce_ref(np.max, (1, 2), exclude=True)),
    OpCase("min", dict(axis=0, keepdims=True), {"data": (2, 3, 4)}, reduce_ref(np.min, 0, True)),
    OpCase("min_axis", dict(axis=-2), {"data": (2, 3, 4)}, reduce_ref(np.min, -2)),
    OpCase("prod", dict(axis=(1, 2)), {"data": (2, 3, 4)}, reduce_ref(np.prod, (1, 2)), low=0.5, high=1.5),
    OpCase("prod", {}, {"data": (2, 3)}, reduce_ref(np.prod), low=0.5, high=1.5),
    OpCase("nansum", dict(axis=1), {"data": (2, 3)}, reduce_ref(np.nansum, 1), values={"data": NAN_DATA}),
    OpCase("nansum", {}, {"data": (2, 3)}, reduce_ref(np.nansum), values={"data": NAN_DATA}),
    OpCase("nanprod", dict(axis=0), {"data": (2, 3)}, reduce_ref(np.nanprod, 0), values={"data": NAN_DATA}),
    OpCase("nanprod", dict(keepdims=True), {"data": (2, 3)}, reduce_ref(np.nanprod, keepdims=True),
           values={"data": NAN_DATA}),
    OpCase("norm", {}, {"data": (2, 3, 4)}, norm_ref(2), name="norm-all-is-(1,)"),
    OpCase("norm", dict(ord=1, axis=1), {"data": (2, 2, 2)}, lambda data: np.array([[4, 6], [7, 8]], "f"),
           values={"data": DOC_NORM}, name="norm-doc-ord-1"),
    OpCase("norm", dict(ord=2, axis=1), {"data": (2, 2, 2)},
           lambda data: np.array([[3.1622777, 4.472136], [5.3851647, 6.3245554]], "f"),
           values={"data": DOC_NORM}, name="norm-doc-ord-2"),
    OpCase("norm", {}, {"data": (2, 2, 2)}, lambda data: np.array([np.sqrt(99.0)], "f"), values={"data": DOC_NORM},
           name="norm-all-exact"),
    OpCase("norm", dict(axis=(0, 2), keepdims=True), {"data": (2, 3, 4)}, norm_ref(2, (0, 2), True)),
    OpCase("norm", dict(ord=1, axis=-1, out_dtype="float64"), {"data": (2, 3)},
           lambda data: norm_ref(1, -1)(data).astype(np.float64)),
]

SOFTMAX_LENGTH = {"data": RNG.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
                  "length": np.array([[4, 1, 0], [2, 3, 4]], np.int32)}
SOFTMAX_CASES = [
    OpCase("softmax", {}, {"data": (2, 3, 4)}, softmax_ref()),
    OpCase("softmax", dict(axis=1, temperature=2.0), {"data": (2, 3, 4)}, softmax_ref(1, 2.0)),
    OpCase("softmax", dict(axis=0), {"data": (2, 3)}, lambda data: np.full((2, 3), 0.5, "f"),
           values={"data": np.ones((2, 3), "f")}, name="softmax-doc-axis-0"),
    OpCase("softmax", dict(axis=-2, dtype="float64"), {"data": (2, 3, 4)}, softmax_ref(-2, dtype=np.float64)),
    OpCase("softmax", dict(use_length=True), {"data": (2, 3, 4)}, softmax_ref(), values=SOFTMAX_LENGTH,
           name="softmax-use_length"),
    OpCase("softmax", dict(use_length=True, axis=1), {"data": (2, 3, 4)}, softmax_ref(1),
           values={"data": SOFTMAX_LENGTH["data"], "length": np.array([[3, 1, 0, 2], [2, 3, 3, 1]], np.int64)},
           name="softmax-use_length-axis-1"),
    OpCase("softmax", {}, {"data": (3, 5)}, softmax_ref(), dtype="float64"),
    OpCase("log_softmax", {}, {"data": (3,)}, lambda data: np.array([-1.41702998, -0.41702995, -2.31702995], "f"),
           values={"data": np.array([1, 2, .1], "f")}, name="log_softmax-doc"),
    OpCase("log_softmax", dict(axis=0), {"data": (2, 3)},
           lambda data: np.array([[-0.34115392, -0.69314718, -1.24115396], [-1.24115396, -0.69314718, -0.34115392]],
                                 "f"),
           values={"data": np.array([[1, 2, .1], [.1, 2, 1]], "f")}, name="log_softmax-doc-axis-0"),
    OpCase("log_softmax", dict(axis=1, temperature=0.5), {"data": (2, 3, 4)}, softmax_ref(1, 0.5, log=True)),
    OpCase("log_softmax", dict(use_length=True), {"data": (2, 3, 4)}, softmax_ref(log=True), values=SOFTMAX_LENGTH,
           name="log_softmax-use_length"),
    OpCase("softmin", dict(axis=0), {"data": (2, 3)},
           lambda data: np.array([[0.88079703, 0.5, 0.11920292], [0.11920292, 0.5, 0.88079703]], "f"),
           values={"data": np.array([[1, 2, 3], [3, 2, 1]], "f")}, name="softmin-doc-axis-0"),
    OpCase("softmin", dict(axis=1), {"data": (2, 3)},
           lambda data: np.array([[0.66524094, 0.24472848, 0.09003057], [0.09003057, 0.24472848, 0.66524094]], "f"),
           values={"data": np.array([[1, 2, 3], [3, 2, 1]], "f")}, name="softmin-doc-axis-1"),
    OpCase("softmin", dict(temperature=3.0), {"data": (2, 3, 4)}, softmax_ref(temperature=3.0, negate=True)),
    OpCase("SoftmaxActivation", {}, {"data": (2, 3, 4)},
           softmax_ref(-1), name="SoftmaxActivation-instance"),    # MXNet: last axis (FlatTo2D), not (N, -1)
    OpCase("SoftmaxActivation", {}, {"data": (2, 5)}, softmax_ref(), name="SoftmaxActivation-instance-2d"),
    OpCase("SoftmaxActivation", dict(mode="channel"), {"data": (2, 3, 4, 5)}, softmax_ref(1)),
]

NORM_CASES = [
    OpCase("BatchNorm", {}, {"data": (2, 3, 4, 5)}, batch_norm_ref(), values=bn_values(3), name="BatchNorm-fix_gamma"),
    OpCase("BatchNorm", dict(fix_gamma=False, eps=1e-5), {"data": (2, 3, 4, 5)},
           batch_norm_ref(eps=1e-5, fix_gamma=False), values=bn_values(3)),
    OpCase("BatchNorm", dict(fix_gamma=False, axis=-1), {"data": (2, 4, 3)}, batch_norm_ref(-1, fix_gamma=False),
           values=bn_values(3)),
    OpCase("BatchNorm", dict(fix_gamma=False, axis=3), {"data": (2, 3, 4, 5)}, batch_norm_ref(3, fix_gamma=False),
           values=bn_values(5)),
    OpCase("BatchNorm", dict(fix_gamma=False, axis=0), {"data": (3, 2)}, batch_norm_ref(0, fix_gamma=False),
           values=bn_values(3)),
    OpCase("BatchNorm", dict(fix_gamma=False), {"data": (4, 3)}, batch_norm_ref(fix_gamma=False),
           values=bn_values(3), name="BatchNorm-2d"),
    OpCase("BatchNorm", dict(output_mean_var=True, fix_gamma=False), {"data": (2, 3, 4)},
           batch_norm_ref(fix_gamma=False, output_mean_var=True), values=bn_values(3)),
    OpCase("BatchNorm", dict(fix_gamma=False), {"data": (2, 3, 4)}, batch_norm_ref(fix_gamma=False),
           values={"moving_var": np.array([0.5, 1.0, 2.0])}, dtype="float64"),
    OpCase("_contrib_SyncBatchNorm", dict(key="bn0", fix_gamma=False), {"data": (2, 3, 4, 5)},
           batch_norm_ref(fix_gamma=False), values=bn_values(3)),
    OpCase("_contrib_SyncBatchNorm", dict(key="bn1", ndev=2, output_mean_var=True), {"data": (2, 3, 4)},
           batch_norm_ref(output_mean_var=True), values=bn_values(3)),
    OpCase("BatchNorm_v1", dict(fix_gamma=False), {"data": (2, 3, 4, 5)}, batch_norm_ref(fix_gamma=False),
           values=bn_values(3)),
    OpCase("BatchNorm_v1", {}, {"data": (4, 3)}, batch_norm_ref(), values=bn_values(3)),
    OpCase("Dropout", {}, {"data": (2, 5)}, lambda data: data,
           values={"data": np.array([[3., 0.5, -0.5, 2., 7.], [2., -0.4, 7., 3., 0.2]], "f")},
           name="Dropout-doc-inference-is-identity"),
    OpCase("Dropout", dict(p=0.9, axes=(1,)), {"data": (2, 3, 4)}, lambda data: data),
    OpCase("Dropout", dict(p=0.0, mode="always"), {"data": (2, 3)}, lambda data: data),
    OpCase("L2Normalization", {}, {"data": (2, 2, 2)},
           lambda data: np.array([[[0.18257418, 0.36514837], [0.54772252, 0.73029673]],
                                  [[0.24077171, 0.24077171], [0.60192931, 0.72231513]]], "f"),
           values={"data": DOC_NORM}, name="L2Normalization-doc-instance"),
    OpCase("L2Normalization", dict(mode="channel"), {"data": (2, 2, 2)},
           lambda data: np.array([[[0.31622776, 0.44721359], [0.94868326, 0.89442718]],
                                  [[0.37139067, 0.31622776], [0.92847669, 0.94868326]]], "f"),
           values={"data": DOC_NORM}, name="L2Normalization-doc-channel"),
    OpCase("L2Normalization", dict(mode="spatial"), {"data": (2, 2, 2)},
           lambda data: np.array([[[0.44721359, 0.89442718], [0.60000002, 0.80000001]],
                                  [[0.70710677, 0.70710677], [0.6401844, 0.76822126]]], "f"),
           values={"data": DOC_NORM}, name="L2Normalization-doc-spatial"),
    OpCase("L2Normalization", {}, {"data": (3, 4)}, l2_normalization_ref("instance")),
    OpCase("L2Normalization", dict(mode="channel", eps=1e-3), {"data": (2, 3, 4, 5)},
           l2_normalization_ref("channel", 1e-3)),
    OpCase("L2Normalization", dict(mode="spatial"), {"data": (2, 3, 4, 5)}, l2_normalization_ref("spatial")),
    OpCase("L2Normalization", {}, {"data": (2, 3, 4)}, l2_normalization_ref("instance"), dtype="float64"),
    OpCase("LRN", dict(nsize=3), {"data": (2, 6, 3, 3)}, lrn_ref(3), low=-3, high=3),
    OpCase("LRN", dict(nsize=5, alpha=0.5, beta=0.6, knorm=1.5), {"data": (2, 7, 2, 3)},
           lrn_ref(5, 0.5, 0.6, 1.5), low=-3, high=3),
    OpCase("LRN", dict(nsize=1, alpha=0.2), {"data": (1, 2, 2, 2)}, lrn_ref(1, 0.2)),
    OpCase("InstanceNorm", {}, {"data": (2, 1, 2)},
           lambda data, gamma, beta: np.array([[[-0.997527, 1.99752665]], [[-0.99752653, 1.99752724]]], "f"),
           values={"data": np.array([[[1.1, 2.2]], [[3.3, 4.4]]], "f"), "gamma": np.array([1.5], "f"),
                   "beta": np.array([0.5], "f")}, name="InstanceNorm-doc"),
    OpCase("InstanceNorm", dict(eps=1e-5), {"data": (2, 3, 4, 5)}, instance_norm_ref(1e-5)),
    OpCase("LayerNorm", {}, {"data": (2, 3, 4)}, layer_norm_ref()),
    OpCase("LayerNorm", dict(axis=1), {"data": (2, 3, 4)}, layer_norm_ref(1), name="LayerNorm-non-last-axis"),
    OpCase("LayerNorm", dict(axis=-1, eps=1e-3, output_mean_var=True), {"data": (2, 5)},
           layer_norm_ref(-1, 1e-3, True)),
    OpCase("LayerNorm", dict(axis=0, output_mean_var=True), {"data": (3, 4)}, layer_norm_ref(0, output_mean_var=True)),
    OpCase("LayerNorm", {}, {"data": (2, 3)}, layer_norm_ref(), dtype="float64"),
    OpCase("GroupNorm", {}, {"data": (2, 3, 4)}, group_norm_ref()),
    OpCase("GroupNorm", dict(num_groups=2, eps=1e-3), {"data": (2, 4, 3, 3)}, group_norm_ref(2, 1e-3)),
    OpCase("GroupNorm", dict(num_groups=3, output_mean_var=True), {"data": (2, 6, 5)},
           group_norm_ref(3, output_mean_var=True)),
]

CASES = REDUCE_CASES + SOFTMAX_CASES + NORM_CASES


def distinct(shape, dtype=np.float32):
    """Values 0.05 apart in random order: max/min see no near-tie within the finite-difference step."""
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 0.5).astype(dtype)


D234 = {"data": distinct((2, 3, 4))}
PROD_ZEROS = {"data": np.array([[0.5, 0.0, 1.5, -1.2], [0.0, 0.0, 2.0, 0.7], [np.nan, 0.0, 1.1, 0.9]], "f")}
GRADIENT_CASES = [
    OpCase("max", {}, {"data": (2, 3, 4)}, reduce_ref(np.max), values=D234, name="max-grad-all"),
    OpCase("max_axis", dict(axis=1), {"data": (2, 3, 4)}, reduce_ref(np.max, 1), values=D234),
    OpCase("max", dict(axis=(1, 2), exclude=True), {"data": (2, 3, 4)}, reduce_ref(np.max, (1, 2), exclude=True),
           values=D234, name="max-grad-exclude"),
    OpCase("max", dict(axis=(0, 2), keepdims=True), {"data": (2, 3, 4)}, reduce_ref(np.max, (0, 2), True),
           values=D234, name="max-grad-keepdims"),
    OpCase("max", dict(axis=-1), {"data": (3, 5)}, reduce_ref(np.max, -1), values={"data": distinct((3, 5), "d")},
           dtype="float64"),
    OpCase("min", dict(keepdims=True), {"data": (2, 3, 4)}, reduce_ref(np.min, keepdims=True), values=D234,
           name="min-grad-all-keepdims"),
    OpCase("min_axis", dict(axis=-2), {"data": (2, 3, 4)}, reduce_ref(np.min, -2), values=D234),
    OpCase("min", dict(axis=0, exclude=True), {"data": (2, 3, 4)}, reduce_ref(np.min, 0, exclude=True),
           values=D234, name="min-grad-exclude"),
    OpCase("min", dict(axis=-1), {"data": (3, 5)}, reduce_ref(np.min, -1), values={"data": distinct((3, 5), "d")},
           dtype="float64"),
    OpCase("prod", dict(axis=(1, 2)), {"data": (2, 3, 4)}, reduce_ref(np.prod, (1, 2)), low=0.5, high=1.5),
    OpCase("prod", dict(keepdims=True), {"data": (2, 3)}, reduce_ref(np.prod, keepdims=True), low=0.5, high=1.5),
    OpCase("prod", dict(axis=1), {"data": (3, 4)}, reduce_ref(np.prod, 1),
           values={"data": np.nan_to_num(PROD_ZEROS["data"], nan=0.8)}, name="prod-grad-zeros"),
    OpCase("prod", dict(axis=0, exclude=True), {"data": (2, 3)}, reduce_ref(np.prod, 0, exclude=True),
           low=0.5, high=1.5, name="prod-grad-exclude"),
    OpCase("nanprod", dict(axis=0), {"data": (2, 3)}, reduce_ref(np.nanprod, 0), values={"data": NAN_DATA}),
    OpCase("nanprod", dict(axis=1, keepdims=True), {"data": (3, 4)}, reduce_ref(np.nanprod, 1, True),
           values=PROD_ZEROS, name="nanprod-grad-zeros"),
    OpCase("softmax", {}, {"data": (2, 3, 4)}, softmax_ref()),
    OpCase("softmax", dict(axis=1, temperature=2.0), {"data": (2, 3, 4)}, softmax_ref(1, 2.0)),
    OpCase("softmax", dict(use_length=True, axis=1, temperature=0.7), {"data": (2, 3, 4)}, softmax_ref(1, 0.7),
           values={"data": SOFTMAX_LENGTH["data"], "length": np.array([[3, 1, 0, 2], [2, 3, 3, 1]], np.int64)},
           int_inputs={"length": (0, 4)}, name="softmax-grad-use_length-temperature"),
    OpCase("log_softmax", dict(axis=0), {"data": (2, 3)}, softmax_ref(0, log=True)),
    OpCase("log_softmax", dict(use_length=True, temperature=2.0), {"data": (2, 3, 4)},
           softmax_ref(temperature=2.0, log=True), values=SOFTMAX_LENGTH, int_inputs={"length": (0, 5)},
           name="log_softmax-grad-use_length"),
    OpCase("softmin", dict(temperature=3.0), {"data": (2, 3, 4)}, softmax_ref(temperature=3.0, negate=True)),
    OpCase("softmin", dict(use_length=True), {"data": (2, 3, 4)}, softmax_ref(negate=True), values=SOFTMAX_LENGTH,
           int_inputs={"length": (0, 5)}, name="softmin-grad-use_length"),
    OpCase("norm", {}, {"data": (2, 3, 4)}, norm_ref(2), name="norm-grad-all"),
    OpCase("norm", dict(ord=1, axis=1), {"data": (2, 2, 2)}, lambda data: np.array([[4, 6], [7, 8]], "f"),
           values={"data": DOC_NORM}, name="norm-grad-ord-1"),
    OpCase("norm", dict(axis=(0, 2), keepdims=True), {"data": (2, 3, 4)}, norm_ref(2, (0, 2), True)),
    OpCase("norm", dict(axis=-1), {"data": (3, 4)}, norm_ref(2, -1), dtype="float64"),
    OpCase("L2Normalization", {}, {"data": (3, 4)}, l2_normalization_ref("instance")),
    OpCase("L2Normalization", dict(mode="channel", eps=1e-3), {"data": (2, 3, 2, 2)},
           l2_normalization_ref("channel", 1e-3)),
    OpCase("L2Normalization", dict(mode="spatial"), {"data": (2, 3, 2, 3)}, l2_normalization_ref("spatial")),
    OpCase("L2Normalization", {}, {"data": (2, 3, 4)}, l2_normalization_ref("instance"), dtype="float64"),
    OpCase("LRN", dict(nsize=3), {"data": (2, 6, 3, 3)}, lrn_ref(3), low=-3, high=3),
    OpCase("LRN", dict(nsize=5, alpha=0.5, beta=0.6, knorm=1.5), {"data": (2, 7, 2, 3)},
           lrn_ref(5, 0.5, 0.6, 1.5), low=-3, high=3),
    OpCase("LRN", dict(nsize=1, alpha=0.2), {"data": (1, 2, 2, 2)}, lrn_ref(1, 0.2)),
    OpCase("InstanceNorm", dict(eps=1e-5), {"data": (2, 3, 4, 5)}, instance_norm_ref(1e-5)),
    OpCase("InstanceNorm", {}, {"data": (2, 3, 4)}, instance_norm_ref(), dtype="float64"),
    OpCase("LayerNorm", {}, {"data": (2, 3, 4)}, layer_norm_ref()),
    OpCase("LayerNorm", dict(axis=1), {"data": (2, 3, 4)}, layer_norm_ref(1), name="LayerNorm-grad-non-last-axis"),
    OpCase("LayerNorm", dict(axis=0, eps=1e-3), {"data": (3, 4)}, layer_norm_ref(0, 1e-3)),
    OpCase("LayerNorm", {}, {"data": (2, 3)}, layer_norm_ref(), dtype="float64"),
    OpCase("GroupNorm", dict(num_groups=2, eps=1e-3), {"data": (2, 4, 3, 3)}, group_norm_ref(2, 1e-3)),
    OpCase("GroupNorm", dict(num_groups=3), {"data": (2, 6, 5)}, group_norm_ref(3)),
    OpCase("GroupNorm", {}, {"data": (2, 3, 4)}, group_norm_ref(), dtype="float64"),
    # Training forwards use batch statistics (what backward differentiates); the moving ones only change aux.
    OpCase("BatchNorm", {}, {"data": (2, 3, 4, 5)}, batch_norm_ref(), values=bn_values(3),
           name="BatchNorm-grad-fix_gamma"),
    OpCase("BatchNorm", dict(fix_gamma=False, eps=1e-5), {"data": (2, 3, 4)}, batch_norm_ref(eps=1e-5, fix_gamma=False),
           values=bn_values(3), name="BatchNorm-grad"),
    OpCase("BatchNorm", dict(fix_gamma=False, axis=-1), {"data": (4, 2, 3)}, batch_norm_ref(-1, fix_gamma=False),
           values=bn_values(3), name="BatchNorm-grad-axis-last"),
    OpCase("BatchNorm", dict(fix_gamma=False, use_global_stats=True), {"data": (2, 3, 4)},
           batch_norm_ref(fix_gamma=False), values=bn_values(3), name="BatchNorm-grad-use_global_stats"),
    OpCase("BatchNorm", dict(fix_gamma=False), {"data": (2, 3, 4)}, batch_norm_ref(fix_gamma=False),
           values={"moving_var": np.array([0.5, 1.0, 2.0])}, dtype="float64", name="BatchNorm-grad-float64"),
    OpCase("_contrib_SyncBatchNorm", dict(key="bn0", fix_gamma=False), {"data": (2, 3, 4, 5)},
           batch_norm_ref(fix_gamma=False), values=bn_values(3), name="SyncBatchNorm-grad"),
    OpCase("_contrib_SyncBatchNorm", dict(key="bn1", ndev=2), {"data": (3, 2, 4)}, batch_norm_ref(),
           values=bn_values(2), name="SyncBatchNorm-grad-fix_gamma"),
]
# Dropout draws a new mask in every training forward, so finite differences cannot see its gradient.
GRADIENT_SKIPS = {"Dropout": "random mask per forward: test_dropout_backward_uses_the_forward_mask checks "
                             "grad == out_grad * mask / (1 - p) instead"}


@pytest.mark.parametrize("case", CASES + GRADIENT_CASES, ids=str)
def test_forward(case):
    run_case(case)


# ---------------------------------------------------------------- shapes, names and defaults
def test_reduce_shapes_follow_mxnet_legacy_rules():
    x = mx.sym.Variable("x")
    shape = (2, 3, 4)
    assert mx.sym.sum(x).infer_shape(x=shape)[1] == [(1,)]
    assert mx.sym.mean(x, keepdims=True).infer_shape(x=shape)[1] == [(1, 1, 1)]
    assert mx.sym.max(x, axis=(0, 2), exclude=True).infer_shape(x=shape)[1] == [(2, 4)]
    assert mx.sym.min(x, axis=1, exclude=True, keepdims=True).infer_shape(x=shape)[1] == [(1, 3, 1)]
    assert mx.sym.prod(x, axis=-1).infer_shape(x=shape)[1] == [(2, 3)]
    assert mx.sym.norm(x, axis=(1,)).infer_shape(x=shape)[1] == [(2, 4)]


def test_reduce_aliases_and_fluent_methods():
    x = mx.sym.Variable("x")
    assert mx.sym.sum_axis(x, axis=1).name.startswith("sum_axis")
    reduced, same = (2, 4), (2, 3, 4)
    expected = dict(sum=reduced, mean=reduced, max=reduced, min=reduced, prod=reduced, nansum=reduced,
                    nanprod=reduced, norm=reduced, softmax=same, log_softmax=same, softmin=same)
    for method, shape in expected.items():
        out = getattr(x, method)(axis=1)
        assert out.name.startswith(method) and out.infer_shape(x=(2, 3, 4))[1] == [shape], method
    data = mx.nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_allclose(data.sum(axis=0).asnumpy(), [3, 5, 7])
    np.testing.assert_allclose(data.max().asnumpy(), [5])
    np.testing.assert_allclose(mx.nd.max_axis(data, axis=1).asnumpy(), [2, 5])
    np.testing.assert_allclose(data.norm().asnumpy(), [np.sqrt(55)], rtol=1e-6)


def test_reduce_rejects_out_of_range_and_duplicate_axes():
    x = mx.sym.Variable("x")
    with pytest.raises(mx.MXNetError) as err:
        mx.sym.sum(x, axis=3, name="s").infer_shape(x=(2, 3, 4))
    assert "s" in str(err.value) and "3" in str(err.value) and "(2, 3, 4)" in str(err.value)
    with pytest.raises(mx.MXNetError, match="-4"):
        mx.sym.mean(x, axis=-4).infer_shape(x=(2, 3, 4))
    with pytest.raises(mx.MXNetError, match="duplicate"):
        mx.sym.max(x, axis=(1, -2)).infer_shape(x=(2, 3, 4))


def test_norm_attribute_checks():
    x = mx.sym.Variable("x")
    with pytest.raises(mx.MXNetError, match="ord"):
        mx.sym.norm(x, ord=3)
    assert mx.sym.norm(x, out_dtype="float64").infer_type(x=np.float32)[1] == [np.float64]


def test_softmax_inputs_and_dtype():
    x = mx.sym.Variable("x")
    assert mx.sym.softmax(x, name="sm").list_arguments() == ["x"]
    masked = mx.sym.softmax(x, use_length=True, axis=1, name="sm")
    assert masked.list_arguments() == ["x", "sm_length"]
    assert masked.infer_shape(x=(2, 3, 4))[0] == [(2, 3, 4), (2, 4)]
    assert mx.sym.softmax(x, dtype="float64").infer_type(x=np.float32)[1] == [np.float64]
    assert mx.sym.log_softmax(x).infer_type(x=np.float64)[1] == [np.float64]


def test_batch_norm_names_shapes_and_init_attrs():
    data = mx.sym.Variable("data")
    bn = mx.sym.BatchNorm(data, name="bn")
    assert bn.list_arguments() == ["data", "bn_gamma", "bn_beta"]
    assert bn.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert bn.list_outputs() == ["bn_output"]
    args, outs, aux = bn.infer_shape(data=(2, 3, 4, 5))
    assert args == [(2, 3, 4, 5), (3,), (3,)] and outs == [(2, 3, 4, 5)] and aux == [(3,), (3,)]
    attrs = bn.attr_dict()
    assert attrs["bn_moving_mean"]["__init__"] == '["zero", {}]'
    assert attrs["bn_moving_var"]["__init__"] == '["one", {}]'
    with_stats = mx.sym.BatchNorm(data, output_mean_var=True, axis=-1, name="bn")
    assert with_stats.list_outputs() == ["bn_output", "bn_mean", "bn_var"]
    assert with_stats.infer_shape(data=(2, 3, 7))[1] == [(2, 3, 7), (7,), (7,)]
    assert mx.sym.BatchNorm(data).infer_type(data=np.float16)[0] == [np.float16] + [np.float32] * 2


def test_batch_norm_defaults():
    op = mx.sym.BatchNorm(mx.sym.Variable("data"), name="bn")
    bn_def = op.outputs[0][0].op
    assert (bn_def.eps, bn_def.momentum, bn_def.fix_gamma, bn_def.use_global_stats, bn_def.axis) == \
        (1e-3, 0.9, True, False, 1)


def test_batch_norm_gamma_shape_conflict_names_gamma_and_shapes():
    bn = mx.sym.BatchNorm(mx.sym.Variable("data"), name="bn")
    with pytest.raises(mx.MXNetError) as err:
        bn.infer_shape(data=(2, 3, 4, 5), bn_gamma=(4,))
    message = str(err.value)
    assert "gamma" in message and "(3,)" in message and "(4,)" in message


def test_batch_norm_axis_out_of_range():
    with pytest.raises(mx.MXNetError, match="axis"):
        mx.sym.BatchNorm(mx.sym.Variable("data"), axis=4).infer_shape(data=(2, 3, 4, 5))


def test_sync_batch_norm_attributes():
    data = mx.sym.Variable("data")
    with pytest.raises(mx.MXNetError, match="key"):
        mx.sym.contrib.SyncBatchNorm(data)
    with pytest.raises(mx.MXNetError, match="axis"):
        mx.sym.contrib.SyncBatchNorm(data, key="k", axis=1)
    sync = mx.sym.contrib.SyncBatchNorm(data, key="k", name="sbn")
    assert sync.list_auxiliary_states() == ["sbn_moving_mean", "sbn_moving_var"]


def test_hidden_outputs_and_visible_counts():
    x = mx.sym.Variable("x")
    assert mx.sym.Dropout(x, name="d").list_outputs() == ["d_output"]
    assert mx.sym.L2Normalization(x, name="l2").list_outputs() == ["l2_output"]
    assert mx.sym.LRN(x, nsize=3, name="lrn").list_outputs() == ["lrn_output"]
    assert mx.sym.InstanceNorm(x, name="in").list_outputs() == ["in_output"]
    assert mx.sym.LayerNorm(x, name="ln").list_outputs() == ["ln_output"]
    ln = mx.sym.LayerNorm(x, axis=1, output_mean_var=True, name="ln")
    assert ln.list_outputs() == ["ln_output", "ln_mean", "ln_std"]
    assert ln.infer_shape(x=(2, 3, 4)) == ([(2, 3, 4), (3,), (3,)], [(2, 3, 4), (2, 1, 4), (2, 1, 4)], [])
    gn = mx.sym.GroupNorm(x, num_groups=2, output_mean_var=True, name="gn")
    assert gn.infer_shape(x=(2, 4, 3)) == ([(2, 4, 3), (2,), (2,)], [(2, 4, 3), (2, 2), (2, 2)], [])


def test_normalization_shape_errors():
    x = mx.sym.Variable("x")
    with pytest.raises(mx.MXNetError, match="odd"):
        mx.sym.LRN(x, nsize=4).infer_shape(x=(1, 5, 2, 2))
    with pytest.raises(mx.MXNetError, match="4D"):
        mx.sym.LRN(x, nsize=3).infer_shape(x=(1, 5, 2))
    with pytest.raises(mx.MXNetError, match="channel"):
        mx.sym.L2Normalization(x, mode="channel").infer_shape(x=(2, 3))
    with pytest.raises(mx.MXNetError, match="divisible"):
        mx.sym.GroupNorm(x, num_groups=2).infer_shape(x=(2, 3, 4))
    with pytest.raises(mx.MXNetError, match="rank"):
        mx.sym.InstanceNorm(x).infer_shape(x=(2, 3))
    with pytest.raises(mx.MXNetError, match="axis"):
        mx.sym.LayerNorm(x, axis=2).infer_shape(x=(2, 3))
    with pytest.raises(mx.MXNetError, match="p"):
        mx.sym.Dropout(x, p=1.5)


# ---------------------------------------------------------------- Dropout mode='always' (random)
def _run(sym, data):
    ex = sym.bind(mx.cpu(), args={"x": mx.nd.array(data)})
    return ex.forward()[0].asnumpy()


@pytest.mark.parametrize("p", [0.3, 0.75])
def test_dropout_always_drops_at_inference(p):
    sym = mx.sym.Dropout(mx.sym.Variable("x"), p=p, mode="always")
    data = RNG.uniform(1, 2, (200, 300)).astype(np.float32)
    out = _run(sym, data)
    dropped = out == 0
    assert abs(dropped.mean() - p) < 0.01                       # 60000 draws: std ~0.002
    np.testing.assert_allclose(out[~dropped], data[~dropped] / (1 - p), rtol=1e-6)
    assert not np.array_equal(out, _run(sym, data))             # a new mask per run
    onnx.checker.check_model(lowered_model(sym, {"x": data.shape}).model, full_check=True)


def test_dropout_always_shares_the_mask_along_axes():
    sym = mx.sym.Dropout(mx.sym.Variable("x"), p=0.5, mode="always", axes=(1,))
    data = RNG.uniform(1, 2, (2000, 4)).astype(np.float32)
    out = _run(sym, data)
    kept = out != 0
    assert (kept == kept[:, :1]).all()                          # whole rows are kept or dropped
    assert abs(kept[:, 0].mean() - 0.5) < 0.05
    np.testing.assert_allclose(out[kept], data[kept] * 2, rtol=1e-6)
    onnx.checker.check_model(lowered_model(sym, {"x": data.shape}).model, full_check=True)


# ---------------------------------------------------------------- gradients finite differences cannot check
def _bind_train(sym, args, aux=None):
    """An executor with 'write' gradients for every argument."""
    args = {n: mx.nd.array(v, dtype=np.asarray(v).dtype) for n, v in args.items()}
    grads = {n: mx.nd.zeros(v.shape, dtype=v.dtype) for n, v in args.items()}
    aux = {n: mx.nd.array(v, dtype=np.asarray(v).dtype) for n, v in (aux or {}).items()}
    return sym.bind(mx.cpu(), args=args, args_grad=grads, aux_states=aux), grads


@pytest.mark.parametrize("op, attrs, data, head, expected", [
    # every position equal to the max/min gets the full head gradient (MXNet mshadow_op::eq; mxnet 1.9.1 output)
    ("max", dict(axis=1), [[1, 3, 3], [2, 2, 0]], [5, 7], [[0, 5, 5], [7, 7, 0]]),
    ("min", dict(axis=0, keepdims=True), [[1, 3, 3], [1, 2, 3]], [[5, 6, 7]], [[5, 0, 7], [5, 6, 7]]),
    ("max", {}, [[4, 1, 4], [4, 0, 2]], [2], [[2, 0, 2], [2, 0, 0]]),
    ("min", dict(axis=1, exclude=True), [[1, 3, 3], [1, 2, 3]], [5, 6, 7], [[5, 0, 7], [5, 6, 7]]),
    # prod / x; at a zero the product of the others (MXNet's 0/0 there is NaN and would poison the output)
    ("prod", dict(axis=1), [[2, 3, 4], [0, 3, 4], [0, 3, 0]], [1, 2, 3], [[12, 8, 6], [24, 0, 0], [0, 0, 0]]),
    # NaN counts as 1 and gets no gradient (MXNet nanprod_grad)
    ("nanprod", dict(axis=1), [[1, np.nan, 2], [0, 3, 4]], [1, 1], [[2, 0, 1], [12, 0, 0]]),
    ("nansum", {}, [[1, np.nan, 2], [0, 3, 4]], [3], [[3, 0, 3], [3, 3, 3]]),
    # infinite entries keep the forward exact and get no gradient (a with_gradient term x - x would be NaN)
    ("max", dict(axis=1), [[1, -np.inf, 2], [0, 3, np.inf]], [5, 7], [[0, 0, 5], [0, 0, 0]]),
    ("prod", dict(axis=1), [[1, -np.inf, 2], [0.5, 3, 2]], [1, 1], [[0, 0, 0], [6, 1, 1.5]]),
])
def test_reduce_gradient_ties_zeros_and_nan(op, attrs, data, head, expected):
    sym = getattr(mx.sym, op)(mx.sym.Variable("data"), **attrs)
    data = np.array(data, np.float32)
    exe, grads = _bind_train(sym, {"data": data})
    out = exe.forward(is_train=True)[0].asnumpy()
    np.testing.assert_array_equal(out, exe.forward(is_train=False)[0].asnumpy())    # training forward stays exact
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(np.array(head, np.float32))])
    np.testing.assert_array_equal(grads["data"].asnumpy(), np.array(expected, np.float32))


@pytest.mark.parametrize("attrs, shape", [(dict(nsize=3), (2, 6, 3, 3)),
                                          (dict(nsize=5, alpha=0.5, beta=0.6, knorm=1.5), (2, 7, 2, 3))])
def test_lrn_training_graph_matches_lrn(attrs, shape):
    data = RNG.uniform(-3, 3, shape).astype(np.float32)
    exe, _ = _bind_train(mx.sym.LRN(mx.sym.Variable("data"), **attrs), {"data": data})
    expected = lrn_ref(**attrs)(data)
    np.testing.assert_allclose(exe.forward(is_train=True)[0].asnumpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exe.forward(is_train=False)[0].asnumpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [dict(p=0.4), dict(p=0.3, axes=(1,)), dict(p=0.5, axes=(0,)),
                                   dict(p=0.4, mode="always")], ids=str)
def test_dropout_backward_uses_the_forward_mask(attrs):
    p, shape = attrs["p"], (40, 6, 8)
    data = RNG.uniform(1, 2, shape).astype(np.float32)            # never 0: the output shows the mask
    head = RNG.uniform(-1, 1, shape).astype(np.float32)
    exe, grads = _bind_train(mx.sym.Dropout(mx.sym.Variable("x"), **attrs), {"x": data})

    def train_forward():
        out = exe.forward(is_train=True)[0].asnumpy()
        mask = (out != 0).astype(np.float32)
        np.testing.assert_allclose(out, data * mask / (1 - p), rtol=1e-6)
        for axis in attrs.get("axes", ()):
            assert (mask == mask.take([0], axis=axis)).all()        # shared along axes
        draws = mask.size // int(np.prod([shape[a] for a in attrs.get("axes", ())]))
        assert abs(mask.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / draws)    # 4 sigma failed once in CI
        return mask

    first, second = train_forward(), train_forward()
    assert not np.array_equal(first, second)                        # a new mask per training forward
    exe.backward([mx.nd.array(head)])                               # follows the latest forward
    np.testing.assert_allclose(grads["x"].asnumpy(), head * second / (1 - p), rtol=1e-6)
    if attrs.get("mode") != "always":
        np.testing.assert_array_equal(exe.forward(is_train=False)[0].asnumpy(), data)


def batch_norm_train_ref(data, gamma, beta, axis=1, eps=1e-3, fix_gamma=True):
    """(output, batch mean, 1/sqrt(batch var + eps)) with the biased batch variance over every non-channel axis."""
    axes = tuple(i for i in range(data.ndim) if i != axis % data.ndim)
    shape = [1] * data.ndim
    shape[axis] = -1
    mean, var = data.mean(axis=axes), data.var(axis=axes)
    scale = np.ones_like(gamma) if fix_gamma else gamma
    out = (data - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) \
        + beta.reshape(shape)
    return out, mean, 1 / np.sqrt(var + eps)


def _bn_train(op, data, momentum=0.9, **attrs):
    channels = data.shape[attrs.get("axis", 1)]
    extra = {"key": "k"} if op == "_contrib_SyncBatchNorm" else {}
    sym = getattr(mx.sym, op)(mx.sym.Variable("data"), name="bn", momentum=momentum, **attrs, **extra)
    params = {"data": data, "bn_gamma": RNG.uniform(0.5, 1.5, channels).astype(np.float32),
              "bn_beta": RNG.uniform(-1, 1, channels).astype(np.float32)}
    aux = {"bn_moving_mean": RNG.uniform(-1, 1, channels).astype(np.float32),
           "bn_moving_var": RNG.uniform(0.5, 1.5, channels).astype(np.float32)}
    exe, grads = _bind_train(sym, params, aux)
    return exe, grads, params, aux


@pytest.mark.parametrize("op, attrs", [("BatchNorm", dict(fix_gamma=False)), ("BatchNorm", {}),
                                       ("BatchNorm", dict(fix_gamma=False, axis=-1, eps=1e-5)),
                                       ("_contrib_SyncBatchNorm", dict(fix_gamma=False)),
                                       ("_contrib_SyncBatchNorm", {}), ("BatchNorm_v1", dict(fix_gamma=False))],
                         ids=str)
def test_batch_norm_training_uses_batch_stats_and_updates_moving_ones(op, attrs):
    data = RNG.uniform(-2, 3, (4, 3, 5, 3)).astype(np.float32)
    exe, _, params, aux = _bn_train(op, data, momentum=0.8, output_mean_var=True, **attrs)
    out, mean, inv_std = batch_norm_train_ref(data, params["bn_gamma"], params["bn_beta"], **attrs)
    if op != "BatchNorm":       # their third output is the batch variance (sync_batch_norm-inl.h, batch_norm_v1-inl.h)
        inv_std = data.var(axis=tuple(i for i in range(4) if i != 1))
    got = [o.asnumpy() for o in exe.forward(is_train=True)]
    for value, expected in zip(got, (out, mean, inv_std)):      # MXNet's training outputs: batch mean, inv std
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
    for name, value in aux.items():         # MXNet 1.x updates the moving statistics in the backward pass
        np.testing.assert_array_equal(exe.aux_dict[name].asnumpy(), value)
    axes = tuple(i for i in range(4) if i != attrs.get("axis", 1) % 4)
    exe.backward([mx.nd.array(np.ones(o.shape, np.float32)) for o in got])
    np.testing.assert_allclose(exe.aux_dict["bn_moving_mean"].asnumpy(),
                               aux["bn_moving_mean"] * 0.8 + data.mean(axis=axes) * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exe.aux_dict["bn_moving_var"].asnumpy(),
                               aux["bn_moving_var"] * 0.8 + data.var(axis=axes) * 0.2, rtol=1e-5, atol=1e-6)


def test_batch_norm_use_global_stats_trains_with_moving_stats():
    data = RNG.uniform(-2, 3, (4, 3, 5)).astype(np.float32)
    exe, grads, params, aux = _bn_train("BatchNorm", data, use_global_stats=True, fix_gamma=False)
    expected = batch_norm_ref(fix_gamma=False)(data, params["bn_gamma"], params["bn_beta"], **
                                               {k[3:]: v for k, v in aux.items()})
    np.testing.assert_allclose(exe.forward(is_train=True)[0].asnumpy(), expected, rtol=1e-5, atol=1e-6)
    for name, value in aux.items():
        np.testing.assert_array_equal(exe.aux_dict[name].asnumpy(), value)
    head = RNG.uniform(-1, 1, data.shape).astype(np.float32)
    exe.backward([mx.nd.array(head)])          # the moving stats are constants: d out / d data = gamma * inv_std
    scale = params["bn_gamma"] / np.sqrt(aux["bn_moving_var"] + 1e-3)
    np.testing.assert_allclose(grads["data"].asnumpy(), head * scale.reshape(1, 3, 1), rtol=1e-5)


@pytest.mark.parametrize("op", ["BatchNorm", "_contrib_SyncBatchNorm"])
def test_batch_norm_training_gradients(op):
    """fix_gamma: gamma gets 0; data gets the derivative through the batch statistics; beta the summed head."""
    data = RNG.uniform(-2, 3, (4, 3, 2, 3)).astype(np.float32)
    head = RNG.uniform(-1, 1, data.shape).astype(np.float32)
    exe, grads, params, _ = _bn_train(op, data)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(head)])
    np.testing.assert_array_equal(grads["bn_gamma"].asnumpy(), 0)
    axes, count = (0, 2, 3), data.size // 3
    np.testing.assert_allclose(grads["bn_beta"].asnumpy(), head.sum(axis=axes), rtol=1e-5, atol=1e-5)
    _, _, inv_std = batch_norm_train_ref(data, params["bn_gamma"], params["bn_beta"])
    inv_std = inv_std.reshape(1, 3, 1, 1)
    normed = (data - data.mean(axis=axes, keepdims=True)) * inv_std
    expected = inv_std / count * (count * head - head.sum(axis=axes, keepdims=True)
                                  - normed * (head * normed).sum(axis=axes, keepdims=True))
    np.testing.assert_allclose(grads["data"].asnumpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op, attrs", [
    ("BatchNorm", dict(fix_gamma=False)),
    ("LayerNorm", dict()),                        # LayerNormalization path
    ("LayerNorm", dict(axis=1)),                  # arithmetic path
    ("GroupNorm", dict(num_groups=3)),
], ids=str)
def test_mean_and_std_outputs_pass_no_gradient(op, attrs):
    """MXNet's backward ignores the head gradients of the mean/var (std) outputs (checked on mxnet 1.9.1)."""
    data = RNG.uniform(-1, 1, (2, 3, 4)).astype(np.float32)
    sym = getattr(mx.sym, op)(mx.sym.Variable("data"), name="n", output_mean_var=True, **attrs)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=data.shape)
    args = {n: RNG.uniform(0.5, 1.5, s).astype(np.float32) for n, s in zip(sym.list_arguments(), arg_shapes)}
    args["data"] = data
    aux = {n: np.ones(s, np.float32) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    exe, grads = _bind_train(sym, args, aux)
    outs = exe.forward(is_train=True)
    heads = [mx.nd.zeros(outs[0].shape)] + [mx.nd.ones(o.shape) for o in outs[1:]]
    exe.backward(heads)
    for name, grad in grads.items():
        np.testing.assert_array_equal(grad.asnumpy(), 0, err_msg=name)


def test_max_min_argmax_argmin_propagate_nan_as_mxnet():
    """ORT's ReduceMax/Min and ArgMax/Min skip NaN; MXNet 1.9.1 (recorded in its venv on this array) gives NaN and
    the NaN's position: max [nan, 2], min [nan, -inf], argmax [1, 1], argmin [1, 0], whole-array max/min NaN."""
    a = np.array([[1.0, np.nan, 3.0], [-np.inf, 2, 1]], np.float32)
    for dtype in ("float16", "float32", "float64"):
        x = mx.nd.array(a, dtype=dtype)
        np.testing.assert_array_equal(mx.nd.max(x, axis=1).asnumpy(), np.array([np.nan, 2], dtype))
        np.testing.assert_array_equal(mx.nd.min(x, axis=1).asnumpy(), np.array([np.nan, -np.inf], dtype))
        np.testing.assert_array_equal(mx.nd.argmax(x, axis=1).asnumpy(), np.array([1, 1], dtype))
        np.testing.assert_array_equal(mx.nd.argmin(x, axis=1).asnumpy(), np.array([1, 0], dtype))
        assert np.isnan(mx.nd.max(x).asscalar()) and np.isnan(mx.nd.min(x).asscalar())
    # without NaN nothing changes, and the gradient of max still reaches the maximum
    x = mx.sym.var("x")
    exe = mx.sym.max(x, axis=1).bind(mx.cpu(), {"x": mx.nd.array([[1, 5, 2]])}, {"x": mx.nd.zeros((1, 3))})
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((1,)))
    np.testing.assert_array_equal(exe.grad_dict["x"].asnumpy(), [[0, 1, 0]])


def test_dropout_of_every_element_is_mxnets_nan():
    """p=1 in training: ORT's Dropout refuses ratio 1; MXNet 1.9.1 outputs NaN (0 * 1/(1-p)), as its test_dropout
    asserts, and its gradient is NaN too."""
    exe = mx.sym.Dropout(mx.sym.var("x"), p=1.0).bind(mx.cpu(), {"x": mx.nd.ones((2, 3))},
                                                        {"x": mx.nd.zeros((2, 3))})
    exe.forward(is_train=True)
    assert np.all(np.isnan(exe.outputs[0].asnumpy()))
    exe.backward(mx.nd.ones((2, 3)))
    assert np.all(np.isnan(exe.grad_dict["x"].asnumpy()))


def test_batch_norm_statistics_outputs_in_training():
    # training with output_mean_var: BatchNorm gives (mean, 1/sqrt(var + eps)), SyncBatchNorm (mean, var): MXNet
    # 1.9.1's kernels (its test_batchnorm checks both)
    data = np.random.RandomState(3).randn(4, 3, 5).astype(np.float32)
    mean, var = data.mean(axis=(0, 2)), data.var(axis=(0, 2))
    for name, third in (("BatchNorm", 1 / np.sqrt(var + 1e-3)), ("_contrib_SyncBatchNorm", var)):
        x = mx.nd.array(data)
        params = [mx.nd.ones((3,)), mx.nd.zeros((3,)), mx.nd.zeros((3,)), mx.nd.ones((3,))]
        with mx.autograd.record():
            out = getattr(mx.nd, name)(x, *params, eps=1e-3, output_mean_var=True, fix_gamma=False,
                                       **({"key": "k"} if name != "BatchNorm" else {}))
        np.testing.assert_allclose(out[1].asnumpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[2].asnumpy(), third, rtol=1e-5, atol=1e-6)
