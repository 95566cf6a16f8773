"""Shape ops (reshape, transpose, concat/split, slicing, tiling, broadcasting, casts, *_like) against numpy."""
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.ops.shape import reshape_target
from onnxsym.test_utils import check_numeric_gradient, check_symbolic_backward
from .opcase import OpCase, run_case


def _arange(*shape):
    return np.arange(1, 1 + int(np.prod(shape)), dtype=np.float32).reshape(shape)


# MXNet's Reshape docstring examples, plus -3/-4 with -1 and reverse: (input shape, shape, reverse, output shape).
RESHAPES = [
    ((4,), (2, 2), False, (2, 2)),
    ((2, 3, 4), (4, 0, 2), False, (4, 3, 2)),
    ((2, 3, 4), (2, 0, 0), False, (2, 3, 4)),
    ((2, 3, 4), (6, 1, -1), False, (6, 1, 4)),
    ((2, 3, 4), (3, -1, 8), False, (3, 1, 8)),
    ((2, 3, 4), (-1,), False, (24,)),
    ((2, 3, 4), (-2,), False, (2, 3, 4)),
    ((2, 3, 4), (2, -2), False, (2, 3, 4)),
    ((2, 3, 4), (-2, 1, 1), False, (2, 3, 4, 1, 1)),
    ((2, 3, 4), (-3, 4), False, (6, 4)),
    ((2, 3, 4, 5), (-3, -3), False, (6, 20)),
    ((2, 3, 4), (0, -3), False, (2, 12)),
    ((2, 3, 4), (-3, -2), False, (6, 4)),
    ((2, 3, 4), (-4, 1, 2, -2), False, (1, 2, 3, 4)),
    ((2, 3, 4), (2, -4, -1, 3, -2), False, (2, 1, 3, 4)),
    ((10, 5, 4), (-1, 0), False, (40, 5)),
    ((10, 5, 4), (-1, 0), True, (50, 4)),
    ((2, 6, 4), (0, -4, 2, -1, 0), False, (2, 2, 3, 4)),
    ((2, 6, 4), (0, -4, -1, 3, -1), False, (2, 2, 3, 4)),
    ((2, 3, 4, 5), (-3, -1), False, (6, 20)),
    ((2, 3, 4, 5), (-1, -3), True, (6, 20)),
    ((2, 3, 4, 5), (0, -1), True, (4, 30)),
    ((2, 3, 4), (0, -1), True, (3, 8)),
    ((2, 3, 4), (-2, -1), True, (2, 3, 4)),
]


def _reshape_case(in_shape, spec, reverse, out):
    attrs = dict(shape=spec, reverse=True) if reverse else dict(shape=spec)
    return OpCase("Reshape", attrs, {"data": in_shape}, lambda data: data.reshape(out),
                  name="Reshape-%s-%s%s" % (in_shape, spec, "-rev" if reverse else ""))


X34 = _arange(3, 4)            # MXNet's slice / slice_axis / slice_like docstring array
SQ = np.array([[[0], [1], [2]]], np.float32)
D2S_IN = np.arange(24, dtype=np.float32).reshape(1, 4, 2, 3)
D2S_OUT = np.array([[[[0, 6, 1, 7, 2, 8], [12, 18, 13, 19, 14, 20], [3, 9, 4, 10, 5, 11],
                      [15, 21, 16, 22, 17, 23]]]], np.float32)
SPLIT_X = np.array([[[1], [2]], [[3], [4]], [[5], [6]]], np.float32)
NAN_INF = np.array([[np.nan, np.inf], [-np.inf, 2.0]], np.float32)

CASES = [_reshape_case(*r) for r in RESHAPES] + [
    OpCase("reshape", dict(shape=(-1, 0), reverse=True), {"data": (10, 5, 4)}, lambda data: data.reshape(50, 4)),
    OpCase("Reshape", dict(target_shape=(0, 6)), {"data": (2, 3, 4)}, lambda data: data.reshape(4, 6),
           name="Reshape-legacy-target_shape"),
    OpCase("Reshape", dict(target_shape=(7, 0, 3), keep_highest=True), {"data": (2, 3, 4)},
           lambda data: data.reshape(2, 4, 3), name="Reshape-legacy-keep_highest"),
    OpCase("Reshape", dict(shape=(0, -1)), {"data": (2, 3)}, lambda data: data.copy(), dtype="int32",
           int_inputs={"data": (-50, 50)}),
    # Flatten
    OpCase("Flatten", {}, {"data": (2, 3, 3)}, lambda data: data.reshape(2, 9),
           values={"data": np.tile(np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3), (2, 1, 1))}),
    OpCase("flatten", {}, {"data": (2, 3, 4, 5)}, lambda data: data.reshape(2, 60)),
    OpCase("Flatten", {}, {"data": (5,)}, lambda data: data.reshape(5, 1)),
    # transpose / SwapAxis
    OpCase("transpose", {}, {"data": (2, 2)}, lambda data: np.array([[1, 3], [2, 4]], np.float32),
           values={"data": _arange(2, 2)}),
    OpCase("transpose", {}, {"data": (2, 2, 2)},
           lambda data: np.array([[[1, 5], [3, 7]], [[2, 6], [4, 8]]], np.float32), values={"data": _arange(2, 2, 2)}),
    OpCase("transpose", dict(axes=(1, 0, 2)), {"data": (2, 2, 2)},
           lambda data: np.array([[[1, 2], [5, 6]], [[3, 4], [7, 8]]], np.float32), values={"data": _arange(2, 2, 2)}),
    OpCase("transpose", dict(axes=(0, 3, 1, 2)), {"data": (2, 3, 4, 5)}, lambda data: data.transpose(0, 3, 1, 2)),
    OpCase("SwapAxis", dict(dim1=0, dim2=2), {"data": (2, 3, 4)}, lambda data: np.swapaxes(data, 0, 2)),
    OpCase("swapaxes", dict(dim1=1, dim2=-1), {"data": (2, 3, 4)}, lambda data: np.swapaxes(data, 1, 2)),
    OpCase("SwapAxis", {}, {"data": (2, 3)}, lambda data: data.copy(), name="SwapAxis-default-dims-equal"),
    # expand_dims / squeeze (MXNet's squeeze docstring)
    OpCase("expand_dims", dict(axis=1), {"data": (2, 3, 4)}, lambda data: data.reshape(2, 1, 3, 4)),
    OpCase("expand_dims", dict(axis=-1), {"data": (2, 3)}, lambda data: data.reshape(2, 3, 1)),
    OpCase("expand_dims", dict(axis=-3), {"data": (2, 3)}, lambda data: data.reshape(1, 2, 3)),
    OpCase("squeeze", {}, {"data": (1, 3, 1)}, lambda data: np.array([0, 1, 2], np.float32), values={"data": SQ}),
    OpCase("squeeze", dict(axis=0), {"data": (1, 3, 1)}, lambda data: np.array([[0], [1], [2]], np.float32),
           values={"data": SQ}),
    OpCase("squeeze", dict(axis=2), {"data": (1, 3, 1)}, lambda data: np.array([[0, 1, 2]], np.float32),
           values={"data": SQ}),
    OpCase("squeeze", dict(axis=(0, 2)), {"data": (1, 3, 1)}, lambda data: np.array([0, 1, 2], np.float32),
           values={"data": SQ}),
    OpCase("squeeze", {}, {"data": (1, 1, 1)}, lambda data: data.reshape(1), name="squeeze-keeps-one-dim"),
    OpCase("squeeze", dict(axis=-1), {"data": (2, 1)}, lambda data: data.reshape(2)),
    # Concat (MXNet's docstring) and SliceChannel
    OpCase("Concat", dict(dim=0), {"arg0": (2, 2), "arg1": (3, 2), "arg2": (3, 2)},
           lambda arg0, arg1, arg2: np.array([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6], [7, 7], [8, 8]],
                                             np.float32), nargs=3,
           values={"arg0": np.array([[1, 1], [2, 2]], np.float32),
                   "arg1": np.array([[3, 3], [4, 4], [5, 5]], np.float32),
                   "arg2": np.array([[6, 6], [7, 7], [8, 8]], np.float32)}),
    OpCase("concat", dict(dim=1), {"arg0": (3, 2), "arg1": (3, 2)},
           lambda arg0, arg1: np.array([[3, 3, 6, 6], [4, 4, 7, 7], [5, 5, 8, 8]], np.float32), nargs=2,
           values={"arg0": np.array([[3, 3], [4, 4], [5, 5]], np.float32),
                   "arg1": np.array([[6, 6], [7, 7], [8, 8]], np.float32)}),
    OpCase("Concat", {}, {"arg0": (2, 3, 4), "arg1": (2, 1, 4)},
           lambda arg0, arg1: np.concatenate([arg0, arg1], axis=1), nargs=2, name="Concat-default-dim-1"),
    OpCase("Concat", dict(dim=-1), {"arg0": (2, 3), "arg1": (2, 2), "arg2": (2, 1)},
           lambda arg0, arg1, arg2: np.concatenate([arg0, arg1, arg2], axis=-1), nargs=3),
    OpCase("Concat", dict(dim=0), {"arg0": (2, 3)}, lambda arg0: arg0.copy(), nargs=1),
    OpCase("SliceChannel", dict(num_outputs=2), {"data": (3, 2, 1)},
           lambda data: [np.array([[[1]], [[3]], [[5]]], np.float32), np.array([[[2]], [[4]], [[6]]], np.float32)],
           values={"data": SPLIT_X}, name="SliceChannel-default-axis-1"),
    OpCase("split", dict(num_outputs=3, axis=0), {"data": (3, 2, 1)}, lambda data: [data[0:1], data[1:2], data[2:3]],
           values={"data": SPLIT_X}),
    OpCase("split", dict(num_outputs=3, axis=0, squeeze_axis=True), {"data": (3, 2, 1)},
           lambda data: [data[0], data[1], data[2]], values={"data": SPLIT_X}),
    OpCase("SliceChannel", dict(num_outputs=2, axis=-1), {"data": (2, 3, 4)},
           lambda data: [data[..., :2], data[..., 2:]]),
    OpCase("SliceChannel", dict(num_outputs=1), {"data": (2, 3)}, lambda data: [data.copy()]),
    # _split_v2 (mx.nd/sym.split_v2): numpy.split at indices, numpy.array_split into sections
    OpCase("_split_v2", dict(indices=(0, 1, 3), axis=1), {"data": (2, 5, 3)},
           lambda data: np.split(data, [1, 3], axis=1)),
    OpCase("_split_v2", dict(indices=(0,), sections=3, axis=-1), {"data": (2, 7)},
           lambda data: np.array_split(data, 3, axis=-1)),
    OpCase("_split_v2", dict(indices=(0,), sections=2, axis=0, squeeze_axis=True), {"data": (2, 3)},
           lambda data: [data[0], data[1]]),
    # slice (MXNet's docstring, None, negative indices, steps)
    OpCase("slice", dict(begin=(0, 1), end=(2, 4)), {"data": (3, 4)},
           lambda data: np.array([[2, 3, 4], [6, 7, 8]], np.float32), values={"data": X34}),
    OpCase("slice", dict(begin=(None, 0), end=(None, 3), step=(-1, 2)), {"data": (3, 4)},
           lambda data: np.array([[9, 11], [5, 7], [1, 3]], np.float32), values={"data": X34}),
    OpCase("crop", dict(begin=(1,), end=(3,)), {"data": (4, 3)}, lambda data: data[1:3]),
    OpCase("slice", dict(begin=(-3, None, 1), end=(-1, None, None)), {"data": (4, 5, 6)},
           lambda data: data[1:3, :, 1:]),
    OpCase("slice", dict(begin=(None, 4), end=(None, 0), step=(None, -2)), {"data": (2, 6)},
           lambda data: data[:, 4:0:-2]),
    OpCase("slice", dict(begin=(5,), end=(None,), step=(-1,)), {"data": (6, 2)}, lambda data: data[::-1]),
    OpCase("slice", dict(begin=(-1, 0), end=(-6, 5), step=(-2, 3)), {"data": (6, 5)}, lambda data: data[5:0:-2, 0:5:3]),
    OpCase("slice", dict(begin=(0, 1), end=(4, 5), step=(3, None)), {"data": (5, 6)}, lambda data: data[0:4:3, 1:5]),
    OpCase("slice", dict(begin=(None,), end=(None,)), {"data": (3, 2)}, lambda data: data.copy(),
           name="slice-everything"),
    # slice_axis (MXNet's docstring) and slice_like (MXNet's docstring)
    OpCase("slice_axis", dict(axis=0, begin=1, end=3), {"data": (3, 4)},
           lambda data: np.array([[5, 6, 7, 8], [9, 10, 11, 12]], np.float32), values={"data": X34}),
    OpCase("slice_axis", dict(axis=1, begin=0, end=2), {"data": (3, 4)},
           lambda data: np.array([[1, 2], [5, 6], [9, 10]], np.float32), values={"data": X34}),
    OpCase("slice_axis", dict(axis=1, begin=-3, end=-1), {"data": (3, 4)},
           lambda data: np.array([[2, 3], [6, 7], [10, 11]], np.float32), values={"data": X34}),
    OpCase("slice_axis", dict(axis=-1, begin=1, end=None), {"data": (2, 3, 4)}, lambda data: data[..., 1:]),
    OpCase("slice_like", {}, {"data": (3, 4), "shape_like": (2, 3)},
           lambda data, shape_like: np.array([[1, 2, 3], [5, 6, 7]], np.float32), values={"data": X34}),
    OpCase("slice_like", dict(axes=(0, 1)), {"data": (3, 4), "shape_like": (2, 3)},
           lambda data, shape_like: np.array([[1, 2, 3], [5, 6, 7]], np.float32), values={"data": X34}),
    OpCase("slice_like", dict(axes=(0,)), {"data": (3, 4), "shape_like": (2, 3)},
           lambda data, shape_like: np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32), values={"data": X34}),
    OpCase("slice_like", dict(axes=(-1,)), {"data": (3, 4), "shape_like": (2, 3)},
           lambda data, shape_like: np.array([[1, 2, 3], [5, 6, 7], [9, 10, 11]], np.float32), values={"data": X34}),
    OpCase("slice_like", dict(axes=(0, 2)), {"data": (2, 3, 4, 5), "shape_like": (1, 2, 3)},
           lambda data, shape_like: data[:1, :, :3]),
    # reverse / flip (MXNet's docstring)
    OpCase("reverse", dict(axis=0), {"data": (2, 5)},
           lambda data: np.array([[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]], np.float32),
           values={"data": np.arange(10, dtype=np.float32).reshape(2, 5)}),
    OpCase("flip", dict(axis=1), {"data": (2, 5)},
           lambda data: np.array([[4, 3, 2, 1, 0], [9, 8, 7, 6, 5]], np.float32),
           values={"data": np.arange(10, dtype=np.float32).reshape(2, 5)}),
    OpCase("reverse", dict(axis=(0, 2)), {"data": (2, 3, 4)}, lambda data: data[::-1, :, ::-1]),
    OpCase("flip", dict(axis=-1), {"data": (3, 1)}, lambda data: data.copy()),
    # tile / repeat (MXNet's docstrings)
    OpCase("tile", dict(reps=(2, 3)), {"data": (2, 2)},
           lambda data: np.array([[1, 2, 1, 2, 1, 2], [3, 4, 3, 4, 3, 4]] * 2, np.float32),
           values={"data": _arange(2, 2)}),
    OpCase("tile", dict(reps=(2,)), {"data": (2, 2)},
           lambda data: np.array([[1, 2, 1, 2], [3, 4, 3, 4]], np.float32), values={"data": _arange(2, 2)}),
    OpCase("tile", dict(reps=(2, 2, 3)), {"data": (2, 2)}, lambda data: np.tile(data, (2, 2, 3))),
    OpCase("tile", dict(reps=()), {"data": (2, 3)}, lambda data: data.copy()),
    OpCase("repeat", dict(repeats=2), {"data": (2, 2)},
           lambda data: np.array([1, 1, 2, 2, 3, 3, 4, 4], np.float32), values={"data": _arange(2, 2)}),
    OpCase("repeat", dict(repeats=2, axis=1), {"data": (2, 2)},
           lambda data: np.array([[1, 1, 2, 2], [3, 3, 4, 4]], np.float32), values={"data": _arange(2, 2)}),
    OpCase("repeat", dict(repeats=2, axis=0), {"data": (2, 2)},
           lambda data: np.array([[1, 2], [1, 2], [3, 4], [3, 4]], np.float32), values={"data": _arange(2, 2)}),
    OpCase("repeat", dict(repeats=3, axis=-1), {"data": (2, 3, 2)}, lambda data: np.repeat(data, 3, axis=-1)),
    # broadcast_to / broadcast_axis / broadcast_like (MXNet's docstrings)
    OpCase("broadcast_to", dict(shape=(2, 3)), {"data": (1, 3)},
           lambda data: np.array([[1, 2, 3], [1, 2, 3]], np.float32), values={"data": _arange(1, 3)}),
    OpCase("broadcast_to", dict(shape=(2, 0)), {"data": (1, 3)}, lambda data: np.broadcast_to(data, (2, 3))),
    OpCase("broadcast_to", dict(shape=(0, 4, 0, 5)), {"data": (2, 1, 3, 1)},
           lambda data: np.broadcast_to(data, (2, 4, 3, 5))),
    OpCase("broadcast_axis", dict(axis=2, size=3), {"data": (1, 2, 1)},
           lambda data: np.array([[[1, 1, 1], [2, 2, 2]]], np.float32), values={"data": _arange(1, 2, 1)}),
    OpCase("broadcast_axes", dict(axis=(0, 2), size=(2, 3)), {"data": (1, 2, 1)},
           lambda data: np.array([[[1, 1, 1], [2, 2, 2]], [[1, 1, 1], [2, 2, 2]]], np.float32),
           values={"data": _arange(1, 2, 1)}),
    OpCase("broadcast_axis", dict(axis=-1, size=4), {"data": (2, 1)}, lambda data: np.broadcast_to(data, (2, 4))),
    OpCase("broadcast_like", {}, {"lhs": (1, 3), "rhs": (2, 3)},
           lambda lhs, rhs: np.array([[1, 2, 3], [1, 2, 3]], np.float32),
           values={"lhs": _arange(1, 3), "rhs": np.array([[5, 6, 7], [7, 8, 9]], np.float32)}),
    OpCase("broadcast_like", dict(lhs_axes=(0,), rhs_axes=(-1,)), {"lhs": (1,), "rhs": (5,)},
           lambda lhs, rhs: np.array([9, 9, 9, 9, 9], np.float32),
           values={"lhs": np.array([9], np.float32), "rhs": _arange(5)}),
    OpCase("broadcast_like", dict(lhs_axes=(0, 2), rhs_axes=(1, 0)), {"lhs": (1, 3, 1), "rhs": (4, 2)},
           lambda lhs, rhs: np.broadcast_to(lhs, (2, 3, 4))),
    # reshape_like (MXNet's docstring)
    OpCase("reshape_like", {}, {"lhs": (6,), "rhs": (3, 2)},
           lambda lhs, rhs: np.array([[1, 2], [3, 4], [5, 6]], np.float32),
           values={"lhs": _arange(6), "rhs": np.array([[0, -4], [3, 2], [2, 2]], np.float32)}),
    OpCase("reshape_like", dict(lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2), {"lhs": (30, 7), "rhs": (15, 2, 4)},
           lambda lhs, rhs: lhs.reshape(15, 2, 7)),
    OpCase("reshape_like", dict(lhs_begin=0, lhs_end=2, rhs_begin=1, rhs_end=2), {"lhs": (3, 5), "rhs": (1, 15, 4)},
           lambda lhs, rhs: lhs.reshape(15)),
    OpCase("reshape_like", dict(lhs_begin=-1, lhs_end=None, rhs_begin=1, rhs_end=None),
           {"lhs": (30, 12), "rhs": (4, 2, 2, 3)}, lambda lhs, rhs: lhs.reshape(30, 2, 2, 3)),
    # depth_to_space / space_to_depth (MXNet's docstrings: DCR order)
    OpCase("depth_to_space", dict(block_size=2), {"data": (1, 4, 2, 3)}, lambda data: D2S_OUT, values={"data": D2S_IN}),
    OpCase("space_to_depth", dict(block_size=2), {"data": (1, 1, 4, 6)}, lambda data: D2S_IN, values={"data": D2S_OUT}),
    OpCase("depth_to_space", dict(block_size=3), {"data": (2, 18, 2, 3)},
           lambda data: data.reshape(2, 3, 3, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(2, 2, 6, 9)),
    OpCase("space_to_depth", dict(block_size=2), {"data": (2, 3, 4, 2)},
           lambda data: data.reshape(2, 3, 2, 2, 1, 2).transpose(0, 3, 5, 1, 2, 4).reshape(2, 12, 2, 1)),
    # Cast (MXNet's docstring) / amp_cast
    OpCase("Cast", dict(dtype="int32"), {"data": (2,)}, lambda data: np.array([0, 1], np.int32),
           values={"data": np.array([0.9, 1.3], np.float32)}),
    OpCase("cast", dict(dtype="float16"), {"data": (2,)}, lambda data: np.array([np.inf, 11.09375], np.float16),
           values={"data": np.array([1e20, 11.1], np.float32)}),
    OpCase("Cast", dict(dtype="uint8"), {"data": (5,)}, lambda data: np.array([44, 11, 10, 255, 253], np.uint8),
           values={"data": np.array([300, 11.1, 10.9, -1, -3], np.float32)}),
    OpCase("Cast", dict(dtype="int32"), {"data": (2, 3)}, lambda data: np.trunc(data).astype(np.int32), low=-5, high=5),
    OpCase("Cast", dict(dtype="float64"), {"data": (2, 3)}, lambda data: data.astype(np.float64)),
    OpCase("Cast", dict(dtype="float32"), {"data": (2, 3)}, lambda data: data.astype(np.float32), dtype="int64",
           int_inputs={"data": (-9, 9)}),
    OpCase("amp_cast", dict(dtype="float16"), {"data": (2, 3)}, lambda data: data.astype(np.float16)),
    OpCase("amp_cast", dict(dtype="float16"), {"data": (2, 3)}, lambda data: data.copy(), dtype="float64",
           name="amp_cast-float64-passes-through"),
    OpCase("amp_cast", dict(dtype="float16"), {"data": (2, 3)}, lambda data: data.copy(), dtype="int32",
           int_inputs={"data": (-9, 9)}, name="amp_cast-int32-passes-through"),
    # clip (MXNet's docstring)
    OpCase("clip", dict(a_min=1, a_max=8), {"data": (10,)},
           lambda data: np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 8], np.float32),
           values={"data": np.arange(10, dtype=np.float32)}),
    OpCase("clip", dict(a_min=-0.25, a_max=0.5), {"data": (3, 4)}, lambda data: np.clip(data, -0.25, 0.5)),
    OpCase("clip", dict(a_min=-2.5, a_max=3.7), {"data": (3, 4)}, lambda data: np.clip(data, -2, 3), dtype="int32",
           int_inputs={"data": (-9, 9)}),
    OpCase("clip", dict(a_min=0.0, a_max=6.0), {"data": (3, 4)}, lambda data: np.clip(data, 0, 6), dtype="float64",
           low=-10, high=10),
    # float64 data is clipped at the float32 bound (MXNet's a_min/a_max are real_t): 0.1 < float32(0.1) stays
    OpCase("clip", dict(a_min=-0.5, a_max=0.1), {"data": (4,)},
           lambda data: np.array([-0.5, 0.1, 0.1000000001, float(np.float32(0.1))]), dtype="float64",
           values={"data": np.array([-0.7, 0.1, 0.1000000001, 0.2])}, rtol=0, atol=0, name="clip-float64-f32-bounds"),
    OpCase("clip", dict(a_min=0.1, a_max=0.5), {"data": (2, 3)}, lambda data: np.clip(data, 0.1, 0.5).astype(np.float16),
           dtype="float16"),
    # zeros_like / ones_like: NaN and inf inputs must not leak
    OpCase("zeros_like", {}, {"data": (2, 2)}, lambda data: np.zeros((2, 2), np.float32), values={"data": NAN_INF}),
    OpCase("ones_like", {}, {"data": (2, 2)}, lambda data: np.ones((2, 2), np.float32), values={"data": NAN_INF}),
    OpCase("zeros_like", {}, {"data": (2, 3)}, lambda data: np.zeros((2, 3), np.int32), dtype="int32",
           int_inputs={"data": (-9, 9)}),
    OpCase("ones_like", {}, {"data": (4,)}, lambda data: np.ones(4), dtype="float64"),
    # BlockGrad
    OpCase("BlockGrad", {}, {"data": (2, 3)}, lambda data: data.copy()),
    OpCase("stop_gradient", {}, {"data": (4,)}, lambda data: data.copy()),
    # shape_array / size_array (MXNet's docstrings)
    OpCase("shape_array", {}, {"data": (2, 4)}, lambda data: np.array([2, 4], np.int64)),
    OpCase("shape_array", {}, {"data": (2, 3, 5)}, lambda data: np.array([2, 3, 5], np.int64)),
    OpCase("size_array", {}, {"data": (2, 4)}, lambda data: np.array([8], np.int64)),
]


# Gradient cases (tests/ops/test_gradients.py). Its finite differences multiply the output by a projection of the
# input's dtype, so only casts that keep the dtype fit there; casts across dtypes are checked below.
CLIP_X = np.linspace(-1, 1, 12).reshape(3, 4)      # >= 0.02 from the bounds -0.25 and 0.5: no kink inside +-eps
GRADIENT_CASES = [
    OpCase("Cast", dict(dtype="float32"), {"data": (2, 3)}, lambda data: data.copy()),
    OpCase("Cast", dict(dtype="float64"), {"data": (2, 3)}, lambda data: data.copy(), dtype="float64"),
    OpCase("amp_cast", dict(dtype="float32"), {"data": (2, 3)}, lambda data: data.copy()),
    OpCase("amp_cast", dict(dtype="float16"), {"data": (2, 3)}, lambda data: data.copy(), dtype="float64",
           name="amp_cast-float64-passes-through-grad"),
    OpCase("clip", dict(a_min=-0.25, a_max=0.5), {"data": (3, 4)}, lambda data: np.clip(data, -0.25, 0.5),
           values={"data": CLIP_X.astype(np.float32)}, name="clip-away-from-bounds"),
    OpCase("clip", dict(a_min=-0.25, a_max=0.5), {"data": (3, 4)}, lambda data: np.clip(data, -0.25, 0.5),
           dtype="float64", values={"data": CLIP_X}, name="clip-away-from-bounds-float64"),
    # float64 Concat trains through the Pad + Add rewrite (float64_without_missing_kernels): ORT has no float64 Concat grad
    OpCase("Concat", dict(dim=-1), {"arg0": (2, 3), "arg1": (2, 2), "arg2": (2, 1)},
           lambda arg0, arg1, arg2: np.concatenate([arg0, arg1, arg2], axis=-1), nargs=3),
    OpCase("Concat", dict(dim=1), {"arg0": (2, 3, 2), "arg1": (2, 1, 2)},
           lambda arg0, arg1: np.concatenate([arg0, arg1], axis=1), nargs=2, dtype="float64",
           name="Concat-float64-gradient"),
]


@pytest.mark.parametrize("case", CASES + GRADIENT_CASES, ids=str)
def test_forward(case):
    run_case(case)


# ---------------------------------------------------------------- gradients that finite differences cannot see
CAST_X = np.array([[0.5, -1.25, 2.0], [3.5, -0.75, 1e-3]])
CAST_HEAD = np.array([[1.3, 2.0, -3.1], [0.1, 1e4, -7.7]])


@pytest.mark.parametrize("op,src,dst", [
    ("Cast", "float32", "float64"), ("Cast", "float32", "float16"), ("Cast", "float64", "float32"),
    ("Cast", "float16", "float32"), ("Cast", "float64", "float16"),
    ("amp_cast", "float32", "float16"), ("amp_cast", "float16", "float32"),
])
def test_cast_gradient_is_head_cast_back(op, src, dst):
    """MXNet Cast backward: d data = head gradient (of dtype dst) cast to data's dtype."""
    sym = getattr(mx.sym, op)(mx.sym.var("data"), dtype=dst)
    head = CAST_HEAD.astype(dst)
    grads = check_symbolic_backward(sym, {"data": CAST_X.astype(src)}, [mx.nd.array(head, dtype=dst)],
                                    {"data": head.astype(src)}, rtol=0, atol=0, dtype=None)
    assert grads["data"].dtype == np.dtype(src)


def test_cast_round_trip_numeric_gradient():
    """Finite differences through float32 -> float64 -> float32 and float64 -> float32 -> float64."""
    x = mx.sym.var("data")
    data = np.random.RandomState(1).uniform(-2, 2, (3, 4))
    check_numeric_gradient(mx.sym.Cast(mx.sym.Cast(x, dtype="float64"), dtype="float32"), {"data": data},
                           dtype=np.float32)
    check_numeric_gradient(mx.sym.Cast(mx.sym.Cast(x, dtype="float32"), dtype="float64"), {"data": data},
                           dtype=np.float64, numeric_eps=1e-2, rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("src,dst", [("float32", "int32"), ("float32", "uint8"), ("float64", "int64"),
                                     ("float16", "int32"), ("int32", "float32")])
def test_cast_integer_gradient_is_zero(src, dst):
    """Integer values carry no gradient: training forward + backward work and give data zero."""
    sym = mx.sym.Cast(mx.sym.var("data"), dtype=dst)
    head = mx.nd.array(np.full((2, 3), 3), dtype=dst)
    check_symbolic_backward(sym, {"data": CAST_X.astype(src)}, [head], {"data": np.zeros((2, 3), src)},
                            rtol=0, atol=0, dtype=None)


def _clip_grad_ref(data, head, a_min, a_max):
    """MXNet clip backward: head where a_min <= data <= a_max (bounds pass), 0 outside; the bounds are float32
    and the comparison runs in the wider of data's dtype and float32."""
    wide = np.promote_types(data.dtype, np.float32)
    x, lo, hi = data.astype(wide), np.float32(a_min).astype(wide), np.float32(a_max).astype(wide)
    return np.where((x >= lo) & (x <= hi), head, 0).astype(data.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("a_min,a_max", [(1, 8), (0.1, 8), (-3, 0.1)])
def test_clip_gradient_at_and_outside_bounds(dtype, a_min, a_max):
    data = np.array([0, 1, 2, 7.5, 8, 9, np.float32(0.1), -3, 0.1, -4], dtype)
    head = np.arange(1, 11).astype(dtype)
    expected = _clip_grad_ref(data, head, a_min, a_max)
    check_symbolic_backward(mx.sym.clip(mx.sym.var("data"), a_min=a_min, a_max=a_max), {"data": data},
                            [mx.nd.array(head, dtype=dtype)], {"data": expected}, rtol=0, atol=0, dtype=None)


def test_clip_gradient_measured_in_mxnet():
    """MXNet 1.9.1's numbers: the docstring array with bounds (1, 8); float16 0.1 lies below float32 0.1 (grad 0),
    float64(float32(0.1)) equals the float32 bound (grad passes)."""
    clip = lambda **kw: mx.sym.clip(mx.sym.var("data"), **kw)
    data = np.arange(10, dtype=np.float32)
    check_symbolic_backward(clip(a_min=1, a_max=8), {"data": data}, [np.ones(10, np.float32)],
                            {"data": [0, 1, 1, 1, 1, 1, 1, 1, 1, 0]}, rtol=0, atol=0)
    near = np.array([np.float32(0.1), 0.1, 0.5])
    check_symbolic_backward(clip(a_min=0.1, a_max=8), {"data": near.astype(np.float16)},
                            [mx.nd.ones((3,), dtype="float16")], {"data": [0, 0, 1]}, rtol=0, atol=0, dtype=None)
    check_symbolic_backward(clip(a_min=-3, a_max=0.1), {"data": near}, [mx.nd.ones((3,), dtype="float64")],
                            {"data": [1, 1, 0]}, rtol=0, atol=0, dtype=None)


def test_stop_ops_block_only_their_path():
    """d/dx [x * BlockGrad(x) + zeros_like(x) * x + ones_like(x) + size_array(x) + shape_array(x)] = BlockGrad(x)."""
    x = mx.sym.var("data")
    sizes = mx.sym.broadcast_add(mx.sym.Cast(mx.sym.size_array(x), dtype="float32"),
                                 mx.sym.Cast(mx.sym.shape_array(x), dtype="float32"))
    sym = mx.sym.broadcast_add(x * mx.sym.BlockGrad(x) + mx.sym.zeros_like(x) * x + mx.sym.ones_like(x), sizes)
    data = np.random.RandomState(2).uniform(-1, 1, (3, 2)).astype(np.float32)
    head = np.random.RandomState(3).uniform(-1, 1, (3, 2)).astype(np.float32)
    check_symbolic_backward(sym, {"data": data}, [head], {"data": head * data}, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- reshape_target and NDArray.reshape
@pytest.mark.parametrize("in_shape,spec,reverse,out", RESHAPES)
def test_reshape_target(in_shape, spec, reverse, out):
    assert reshape_target(in_shape, spec, reverse) == out


@pytest.mark.parametrize("in_shape,spec,reverse", [
    ((2, 3), (5, -1), False),            # 6 elements do not divide by 5
    ((2, 3), (4, 2), False),             # sizes differ
    ((2, 3), (-1, -1), False),           # two inferred dims
    ((2, 3), (0, 0, 0), False),          # 0 beyond the input's dims
    ((2, 3), (-3, -3), False),           # -3 needs two dims
    ((2, 6), (0, -4, -1, -1), False),    # -4 with both -1
    ((2, 6), (0, -4, 4, -1), False),     # 4 does not divide 6
    ((2, 6), (0, -4, 2), False),         # -4 needs two values after it
    ((2, 3), (-5, 6), False),            # not a code
    ((2, 6), (0, -4, 2, 3), True),       # -4 read right to left has its values before it
])
def test_reshape_target_errors(in_shape, spec, reverse):
    with pytest.raises(mx.MXNetError, match="Reshape"):
        reshape_target(in_shape, spec, reverse)


def test_ndarray_reshape_is_a_view_with_special_codes():
    a = mx.nd.array(np.arange(24).reshape(2, 3, 4))
    b = a.reshape((-4, 1, 2, -2))
    assert b.shape == (1, 2, 3, 4)
    assert a.reshape(-1, 0, reverse=True).shape == (6, 4)
    assert a.reshape(shape=(0, -3)).shape == (2, 12)
    assert a.reshape(-1).shape == (24,)
    b[0, 1, 2, 3] = -7.0
    assert a.asnumpy()[1, 2, 3] == -7.0
    with pytest.raises(mx.MXNetError, match="Reshape"):
        a.reshape((5, -1))


def test_fluent_methods():
    x = mx.sym.var("x")
    assert x.reshape((-1,)).name.startswith("reshape")
    assert x.flatten().infer_shape(x=(2, 3, 4))[1] == [(2, 12)]
    assert x.transpose().infer_shape(x=(2, 3, 4))[1] == [(4, 3, 2)]
    assert x.swapaxes(0, 1).infer_shape(x=(2, 3))[1] == [(3, 2)]
    assert x.expand_dims(0).squeeze().infer_shape(x=(2, 1, 3))[1] == [(2, 3)]
    assert x.slice_axis(1, 0, None).infer_shape(x=(2, 3))[1] == [(2, 3)]
    assert x.broadcast_axes(axis=1, size=4).infer_shape(x=(2, 1))[1] == [(2, 4)]
    assert x.tile((2, 1)).repeat(2, axis=1).infer_shape(x=(2, 3))[1] == [(4, 6)]
    assert x.clip(0, 1).flip(axis=0).infer_shape(x=(3,))[1] == [(3,)]
    assert x.shape_array().infer_type(x="float32")[1] == [np.int64]
    assert x.size_array().infer_shape(x=(2, 3))[1] == [(1,)]
    parts = x.split(3, axis=0)
    assert len(parts.list_outputs()) == 3 and parts.list_outputs()[2].endswith("_output2")
    assert parts.infer_shape(x=(6, 2))[1] == [(2, 2)] * 3
    a = mx.nd.array(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(a.flatten().asnumpy(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(a.slice(begin=(None, 2), end=(None, None), step=(1, -1)).asnumpy(),
                                  np.arange(6).reshape(2, 3)[:, ::-1])
    np.testing.assert_array_equal(a.zeros_like().asnumpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(a.split(num_outputs=3)[1].asnumpy(), [[1], [4]])
    assert not hasattr(mx.sym.Symbol, "cast")


def test_attribute_defaults():
    x = mx.sym.var("x")
    assert mx.sym.transpose(x).infer_shape(x=(2, 3, 4))[1] == [(4, 3, 2)]
    assert mx.sym.SliceChannel(x, num_outputs=2).infer_shape(x=(4, 6))[1] == [(4, 3), (4, 3)]
    assert mx.sym.squeeze(x).infer_shape(x=(1, 2, 1, 3))[1] == [(2, 3)]
    assert mx.sym.Concat(x, mx.sym.var("y")).infer_shape(x=(2, 3), y=(2, 4))[1] == [(2, 7)]
    assert mx.sym.slice(x, begin=(1,), end=(None,)).infer_shape(x=(4, 2))[1] == [(3, 2)]
    with pytest.raises(mx.MXNetError, match="end"):
        mx.sym.slice_axis(x, axis=0, begin=1)          # end is required (None allowed)
    with pytest.raises(mx.MXNetError, match="dtype"):
        mx.sym.Cast(x)
    assert mx.sym.Cast(x, dtype="float16").infer_type(x="float32")[1] == [np.float16]
    assert mx.sym.amp_cast(x, dtype="float16").infer_type(x="int32")[1] == [np.int32]
    from onnxsym.ops.registry import get_op
    assert get_op("stop_gradient") is get_op("BlockGrad")
    assert not get_op("zeros_like").differentiable and not get_op("shape_array").differentiable


# ---------------------------------------------------------------- errors
def _shape_error(sym, **shapes):
    with pytest.raises(mx.MXNetError) as err:
        sym.infer_shape(**shapes)
    return str(err.value)


def test_reshape_impossible_spec():
    message = _shape_error(mx.sym.Reshape(mx.sym.var("x"), shape=(5, -1), name="r"), x=(2, 3))
    assert "r" in message and "(2, 3)" in message and "(5, -1)" in message


def test_squeeze_non_unit_axis():
    message = _shape_error(mx.sym.squeeze(mx.sym.var("x"), axis=1, name="sq"), x=(2, 3))
    assert "sq" in message and "axis 1" in message and "(2, 3)" in message


def test_concat_mismatch_names_input_and_shapes():
    sym = mx.sym.Concat(mx.sym.var("a"), mx.sym.var("b"), dim=1, name="cat")
    message = _shape_error(sym, a=(2, 3), b=(3, 3))
    assert "cat" in message and "arg1" in message and "(3, 3)" in message and "(2, 3)" in message


@pytest.mark.parametrize("make,shape", [
    (lambda x: mx.sym.slice(x, begin=(0,), end=(5,)), (4, 2)),                 # end beyond the dim
    (lambda x: mx.sym.slice(x, begin=(2,), end=(2,)), (4, 2)),                 # empty
    (lambda x: mx.sym.slice(x, begin=(0,), end=(3,), step=(-1,)), (4, 2)),     # wrong direction
    (lambda x: mx.sym.slice(x, begin=(0, 0), end=(1,)), (4, 2)),               # lengths differ
    (lambda x: mx.sym.slice_axis(x, axis=2, begin=0, end=1), (4, 2)),          # axis out of range
    (lambda x: mx.sym.SliceChannel(x, num_outputs=3), (4, 2)),                 # 2 does not split in 3
    (lambda x: mx.sym.split(x, num_outputs=2, axis=0, squeeze_axis=True), (4, 2)),
    (lambda x: mx.sym.broadcast_to(x, shape=(3, 3)), (2, 3)),
    (lambda x: mx.sym.broadcast_axis(x, axis=0, size=3), (2, 3)),
    (lambda x: mx.sym.transpose(x, axes=(0, 0)), (2, 3)),
    (lambda x: mx.sym.expand_dims(x, axis=3), (2, 3)),
    (lambda x: mx.sym.tile(x, reps=(0, 1)), (2, 3)),
    (lambda x: mx.sym.repeat(x, repeats=-1), (2, 3)),
    (lambda x: mx.sym.depth_to_space(x, block_size=2), (1, 6, 2, 2)),
    (lambda x: mx.sym.space_to_depth(x, block_size=2), (1, 6, 3, 2)),
    (lambda x: mx.sym.reshape_like(x, mx.sym.var("y")), (2, 3)),
    (lambda x: mx.sym.slice_like(x, mx.sym.var("y")), (2, 3)),
    (lambda x: mx.sym.broadcast_like(x, mx.sym.var("y")), (2, 3)),
])
def test_shape_errors(make, shape):
    sym = make(mx.sym.var("x"))
    extra = {"y": (4, 4)} if "y" in sym.list_arguments() else {}
    _shape_error(sym, x=shape, **extra)


def test_split_v2_functions_as_mxnets():
    data = np.arange(20, dtype=np.float32).reshape(4, 5)
    parts = mx.nd.split_v2(mx.nd.array(data), (1, 3), axis=1)
    for got, want in zip(parts, np.split(data, [1, 3], axis=1)):
        np.testing.assert_array_equal(got.asnumpy(), want)
    parts = mx.nd.array(data).split_v2(3)          # int: sections along axis 0, as numpy.array_split
    assert [p.shape for p in parts] == [(2, 5), (1, 5), (1, 5)]
    sym = mx.sym.Variable("x").split_v2(2, axis=1, squeeze_axis=False)
    assert sym.infer_shape(x=(4, 5))[1] == [(4, 3), (4, 2)]
    with pytest.raises(ValueError, match="int or tuple of ints"):
        mx.nd.split_v2(mx.nd.array(data), [1, 2])
    with pytest.raises(mx.MXNetError, match="does not fit"):
        mx.nd.split_v2(mx.nd.array(data), (3, 2), axis=1)
    with pytest.raises(mx.MXNetError, match="squeeze_axis=True needs parts of size 1"):
        mx.nd.split_v2(mx.nd.array(data), 2, squeeze_axis=True)


def test_slice_keeps_unknown_dimensions_unknown():
    # MXNet's partial shape inference: a slice of an unknown (0) dimension stays unknown, the others are computed
    data = mx.sym.var("data", shape=(0, 20))
    for begin, end, step, want in [((None, None), (None, 10), (), (0, 10)), ((None, None), (None, 10), (None, 2), (0, 5)),
                                   ((2, 3), (None, 10), (), (0, 7)), ((2, 3), (None, 10), (3, 3), (0, 3))]:
        assert mx.sym.slice(data, begin=begin, end=end, step=step).infer_shape_partial()[1][0] == want
    with pytest.raises(mx.MXNetError, match="index out of range"):
        mx.sym.slice(data, begin=(None, 30), end=(None, None)).infer_shape_partial()


def _assigned(lhs, region, value):
    out = lhs.copy()
    out[region] = value
    return out


ASSIGN_CASES = [
    # slice assignment (NDArray's x[a:b] = y in MXNet: _slice_assign / _crop_assign) and fill_element_0index
    OpCase("_slice_assign", dict(begin=(0, 1), end=(2, 3)), {"lhs": (3, 4), "rhs": (2, 2)},
           lambda lhs, rhs: _assigned(lhs, np.s_[0:2, 1:3], rhs)),
    OpCase("_crop_assign", dict(begin=(None, None), end=(None, None), step=(2, -1)), {"lhs": (3, 3), "rhs": (2, 3)},
           lambda lhs, rhs: _assigned(lhs, np.s_[::2, ::-1], rhs)),
    OpCase("_slice_assign_scalar", dict(begin=(1,), end=(3,), scalar=5.0), {"data": (4, 2)},
           lambda data: _assigned(data, np.s_[1:3], 5.0)),
    OpCase("_crop_assign_scalar", dict(begin=(0, 0), end=(2, 1), scalar=-1.0), {"data": (2, 3)},
           lambda data: _assigned(data, np.s_[0:2, 0:1], -1.0), dtype="float64"),
    OpCase("fill_element_0index", {}, {"lhs": (3, 4), "mhs": (3,), "rhs": (3,)},
           lambda lhs, mhs, rhs: _assigned(lhs, (np.arange(3), rhs.astype(int)), mhs),
           int_inputs={"rhs": (0, 4)}),
]
CASES += ASSIGN_CASES


@pytest.mark.parametrize("case", ASSIGN_CASES, ids=str)
def test_slice_assign_forward(case):
    run_case(case)


def test_slice_assign_errors_name_the_region():
    with pytest.raises(mx.MXNetError, match="region"):
        mx.nd._internal._slice_assign(mx.nd.ones((3, 4)), mx.nd.ones((2, 3)), begin=(0, 1), end=(2, 3))
    with pytest.raises(mx.MXNetError, match="must have shape"):
        mx.nd.fill_element_0index(mx.nd.ones((3, 4)), mx.nd.ones((2,)), mx.nd.ones((3,)))
