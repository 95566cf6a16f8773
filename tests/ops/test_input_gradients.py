"""Gradients with respect to every differentiable input of every op, not only the data: exponents, bounds, scales,
slopes, weights, biases, both operands, every branch. Two tables, each checked against central finite differences
in float64 and each with a coverage test so that no op with more than one differentiable input is left out:

- ONNX_CASES: imported ONNX nodes (`_onnx` ops), one case per op type of the default opset that has two or more
  float inputs (walked from onnx's schemas); NOT_DIFFERENTIABLE says why the others are not checked. The truth is
  onnx's reference implementation in float64 (tests/ops/onnx_gradcase.py).
- MXNet ops: every registered op whose cases (in the family test modules) have two or more inputs, checked in
  float64 on onnxsym's own float64 forward, or, where ORT has no float64 kernel, in float32 against float64 finite
  differences of the case's numpy reference. MXNET_NOT_CHECKED names the inputs that are not differentiable.
"""
import dataclasses

import numpy as np
import pytest
from onnx import defs

import onnxsym as mx
from onnxsym.ops.registry import all_ops
from onnxsym.test_utils import assert_almost_equal, check_numeric_gradient, random_projection

from .onnx_gradcase import OPSET, OnnxCase, central_differences, run_onnx_gradient_case
from .ort_training_gaps import skip_ort_training_gap
from .test_gradients import CASES as FAMILY_CASES, GRADIENT_CASES as FAMILY_GRADIENT_CASES

I64 = np.int64


# ---------------------------------------------------------------- references onnx's evaluator gets wrong
def _grid_sample(x, grid, mode="bilinear", padding="zeros", align=0):
    """ONNX GridSample (4-D) in float64 (onnx's reference computes the coordinates in float32)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c) + grid.shape[1:3])

    def pixel(image, row, col, size_h, size_w):
        if padding == "zeros":
            return image[:, row, col] if 0 <= row < size_h and 0 <= col < size_w else 0.0
        return image[:, min(max(row, 0), size_h - 1), min(max(col, 0), size_w - 1)]

    def unnormalize(v, size):
        v = (v + 1) / 2 * (size - 1) if align else ((v + 1) * size - 1) / 2
        low, high = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
        if padding == "border" and not low <= v <= high:
            v = min(max(v, 0.0), size - 1.0)
        elif padding == "reflection" and not low <= v <= high:
            span = high - low
            if v < low:
                turns, rest = divmod(low - v, span)
                v = low + rest if turns % 2 == 0 else high - rest
            else:
                turns, rest = divmod(v - high, span)
                v = high - rest if turns % 2 == 0 else low + rest
        return v

    for b in range(n):
        for i in range(grid.shape[1]):
            for j in range(grid.shape[2]):
                ix, iy = unnormalize(grid[b, i, j, 0], w), unnormalize(grid[b, i, j, 1], h)
                if mode == "nearest":
                    out[b, :, i, j] = pixel(x[b], int(np.rint(iy)), int(np.rint(ix)), h, w)
                    continue
                x0, y0 = int(np.floor(ix)), int(np.floor(iy))
                fx, fy = ix - x0, iy - y0
                out[b, :, i, j] = sum(pixel(x[b], y0 + dy, x0 + dx, h, w) * (fy if dy else 1 - fy) *
                                      (fx if dx else 1 - fx) for dy in (0, 1) for dx in (0, 1))
    return [out]


def _reference_node(op_type, inputs, **attrs):
    """One node run by onnx's reference implementation on float64 `inputs` ({name: array})."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node(op_type, list(inputs), ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, 11, None) for n in inputs],
                              [helper.make_tensor_value_info("y", 11, None)])
    session = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))
    return session.run(None, inputs)[0]


def _grouped_conv_transpose(x, w, b, group, **attrs):
    """onnx's reference ConvTranspose mis-reshapes grouped weights: one ungrouped node per group."""
    cin, per = x.shape[1] // group, b.shape[0] // group
    return [np.concatenate([_reference_node("ConvTranspose", {"x": x[:, k * cin:(k + 1) * cin],
                                                              "w": w[k * cin:(k + 1) * cin],
                                                              "b": b[k * per:(k + 1) * per]}, **attrs)
                            for k in range(group)], axis=1)]


def _cropping_pad(x, pads, value):
    """Pad with negative pads (crops), which onnx's reference rejects."""
    n = x.ndim
    begin, end = pads[:n], pads[n:]
    crop = x[tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begin, end)))]
    return [np.pad(crop, [(max(0, b), max(0, e)) for b, e in zip(begin, end)], constant_values=float(value))]


def _max_roi_pool(x, r, pooled=(2, 2), scale=1.0):
    """MaxRoiPool (Fast R-CNN / MXNet ROIPooling): bins of the rounded box, maximum, 0 for an empty bin."""
    out = np.zeros((len(r), x.shape[1]) + tuple(pooled))
    for k, (b, x1, y1, x2, y2) in enumerate(r):
        x1, y1, x2, y2 = [int(np.floor(v * scale + 0.5)) for v in (x1, y1, x2, y2)]
        height, width = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        for i in range(pooled[0]):
            for j in range(pooled[1]):
                r0 = min(max(int(np.floor(i * height / pooled[0])) + y1, 0), x.shape[2])
                r1 = min(max(int(np.ceil((i + 1) * height / pooled[0])) + y1, 0), x.shape[2])
                c0 = min(max(int(np.floor(j * width / pooled[1])) + x1, 0), x.shape[3])
                c1 = min(max(int(np.ceil((j + 1) * width / pooled[1])) + x1, 0), x.shape[3])
                if r1 > r0 and c1 > c0:
                    out[k, :, i, j] = x[int(b), :, r0:r1, c0:c1].max(axis=(1, 2))
    return [out]


# ---------------------------------------------------------------- ONNX nodes
_TRANSPOSE_ATTRS = dict(strides=[2, 1], pads=[1, 0, 0, 1], output_padding=[1, 0])
_CLIP_X = np.array([[-2, -0.7, 0.1, 0.4, 2.0], [0.9, -0.1, 0.3, 1.5, -1.2]])
_LABELS = np.array([0, 2, 1, 2], I64)

ONNX_CASES = [
    # arithmetic, broadcasting both ways
    OnnxCase("Add", [("a", (2, 3, 4)), ("b", (3, 1))]),
    OnnxCase("Sub", [("a", (3, 1)), ("b", (2, 3, 4))]),
    OnnxCase("Mul", [("a", (2, 3, 4)), ("b", (4,))]),
    OnnxCase("Div", [("a", (2, 3, 4)), ("b", (3, 1))], ranges={"b": (0.5, 2)}),
    OnnxCase("Pow", [("x", (2, 3)), ("y", (2, 3))], ranges={"x": (0.5, 2), "y": (-1, 2)}),
    OnnxCase("Pow", [("x", (2, 3)), ("y", ())], ranges={"x": (0.5, 2)}, name="Pow-scalar-exponent"),
    OnnxCase("Pow", [("x", (3, 1)), ("y", (2, 1, 4))], ranges={"x": (0.5, 2)}, name="Pow-broadcast"),
    OnnxCase("Mod", [("a", (2, 3)), ("b", (2, 3))], attrs={"fmod": 1}, ranges={"a": (-5, 5), "b": (0.7, 2)}),
    OnnxCase("Max", [("a", (2, 3, 4)), ("b", (3, 1)), ("c", (4,))]),
    OnnxCase("Min", [("a", (2, 3, 4)), ("b", (3, 1)), ("c", (4,))]),
    OnnxCase("Sum", [("a", (2, 3, 4)), ("b", (3, 1)), ("c", (4,))]),
    OnnxCase("Mean", [("a", (2, 3, 4)), ("b", (3, 1)), ("c", (4,))]),
    OnnxCase("Clip", [("x", _CLIP_X), ("lo", np.array(-0.5)), ("hi", np.array(0.5))]),
    OnnxCase("Clip", [("x", _CLIP_X), ("lo", np.array(-0.5))], name="Clip-min-only"),
    OnnxCase("Clip", [("x", _CLIP_X), ("lo", None), ("hi", np.array(0.5))], name="Clip-max-only"),
    OnnxCase("PRelu", [("x", (2, 3, 4)), ("slope", (3, 1))]),
    OnnxCase("Where", [("c", np.array([[True, False, True, False]] * 3)), ("x", (1, 4)), ("y", (3, 1))]),
    OnnxCase("Concat", [("a", (2, 3)), ("b", (2, 1)), ("c", (2, 2))], attrs={"axis": 1}),
    OnnxCase("CastLike", [("x", (2, 3)), ("like", (1,))], exclude={"like": "only its dtype is read"}),
    OnnxCase("Dropout", [("x", (2, 3)), ("ratio", np.array(0.0))],
             exclude={"ratio": "the drop probability: the output depends on it only through a random mask"}),
    OnnxCase("Pad", [("x", (2, 3)), ("pads", np.array([0, 1, 1, 2], I64)), ("value", np.array(0.7))]),
    OnnxCase("Pad", [("x", (2, 3)), ("pads", np.array([1, -1, 0, 2], I64)), ("value", np.array(-0.3))],
             name="Pad-crop", reference=_cropping_pad),
    OnnxCase("OneHot", [("i", np.array([0, 2, -1, 5], I64)), ("d", np.array(3, I64)), ("v", (2,))],
             attrs={"axis": 0}),
    OnnxCase("ScatterElements", [("x", (3, 4)), ("i", np.array([[0, 2], [1, 0]], I64)), ("u", (2, 2))],
             attrs={"axis": 1}),
    OnnxCase("ScatterElements", [("x", (3, 4)), ("i", np.array([[0, 2], [1, 0]], I64)), ("u", (2, 2))],
             attrs={"axis": 0, "reduction": "add"}, name="ScatterElements-add"),
    OnnxCase("ScatterND", [("x", (3, 4)), ("i", np.array([[2], [0]], I64)), ("u", (2, 4))]),
    # linear algebra
    OnnxCase("Gemm", [("a", (3, 2)), ("b", (4, 3)), ("c", (4,))],
             attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}),
    OnnxCase("Gemm", [("a", (2, 3)), ("b", (3, 4)), ("c", (2, 1))], name="Gemm-column-bias"),
    OnnxCase("MatMul", [("a", (2, 3, 4)), ("b", (4, 5))]),
    OnnxCase("MatMul", [("a", (3, 4)), ("b", (2, 4, 5))], name="MatMul-broadcast-left"),
    OnnxCase("MatMul", [("a", (2, 1, 3, 4)), ("b", (3, 4, 2))], name="MatMul-broadcast-both"),
    OnnxCase("MatMul", [("a", (4,)), ("b", (4, 5))], name="MatMul-vector"),
    OnnxCase("Einsum", [("a", (2, 3, 4)), ("b", (2, 4, 5))], attrs={"equation": "bij,bjk->bik"}),
    OnnxCase("Einsum", [("a", (2, 3, 4)), ("b", (2, 5, 4))], attrs={"equation": "bid,bjd->bij"},
             name="Einsum-attention"),
    OnnxCase("Einsum", [("a", (3,)), ("b", (4,))], attrs={"equation": "i,j"}, name="Einsum-outer-implicit"),
    OnnxCase("Einsum", [("a", (3, 3)), ("b", (3,))], attrs={"equation": "ii,i->i"}, name="Einsum-diagonal"),
    OnnxCase("Einsum", [("a", (2, 3)), ("b", (3, 4)), ("c", (4, 2))], attrs={"equation": "ij,jk,kl->li"},
             name="Einsum-chain"),
    OnnxCase("Einsum", [("a", (2, 1, 3, 4)), ("b", (1, 5, 4, 2))], attrs={"equation": "...ij,...jk->...ik"},
             name="Einsum-ellipsis-broadcast"),
    OnnxCase("Einsum", [("a", (2, 3)), ("b", (2, 3))], attrs={"equation": "ij,ij->"}, name="Einsum-full"),
    # convolution (ORT has no float64 Conv kernel)
    OnnxCase("Conv", [("x", (2, 4, 5, 5)), ("w", (6, 2, 3, 3)), ("b", (6,))],
             attrs={"group": 2, "pads": [1, 0, 1, 2], "strides": [2, 1]}, float64=False),
    OnnxCase("ConvTranspose", [("x", (2, 4, 3, 3)), ("w", (4, 3, 3, 3)), ("b", (3,))], attrs=_TRANSPOSE_ATTRS,
             float64=False),
    OnnxCase("ConvTranspose", [("x", (2, 4, 3, 3)), ("w", (4, 3, 3, 3)), ("b", (6,))],
             attrs=dict(group=2, **_TRANSPOSE_ATTRS), float64=False, name="ConvTranspose-groups",
             reference=lambda x, w, b: _grouped_conv_transpose(x, w, b, 2, **_TRANSPOSE_ATTRS)),
    OnnxCase("ConvTranspose", [("x", (1, 2, 3, 4)), ("w", (2, 3, 2, 3))],
             attrs={"strides": [2, 2], "auto_pad": "SAME_UPPER"}, float64=False, name="ConvTranspose-same"),
    OnnxCase("ConvTranspose", [("x", (1, 2, 3, 4)), ("w", (2, 3, 3, 3)), ("b", (3,))],
             attrs={"strides": [2, 2], "output_shape": [6, 8]}, float64=False, name="ConvTranspose-output-shape",
             # what output_shape means (ONNX: the total padding, split as SAME_LOWER); onnx's reference fails here
             reference=lambda x, w, b: [_reference_node("ConvTranspose", {"x": x, "w": w, "b": b}, strides=[2, 2],
                                                        pads=[1, 1, 0, 0])]),
    # normalization
    OnnxCase("LayerNormalization", [("x", (2, 3, 4)), ("s", (4,)), ("b", (4,))], attrs={"axis": -1}),
    OnnxCase("LayerNormalization", [("x", (2, 3, 4)), ("s", (3, 4))], attrs={"axis": 1}, outputs=3,
             name="LayerNormalization-no-bias-all-outputs"),
    OnnxCase("InstanceNormalization", [("x", (2, 3, 4, 2)), ("s", (3,)), ("b", (3,))], attrs={"epsilon": 0.01}),
    OnnxCase("BatchNormalization", [("x", (2, 3, 4)), ("s", (3,)), ("b", (3,)), ("m", (3,)), ("v", (3,))],
             ranges={"v": (0.5, 2)}),
    OnnxCase("BatchNormalization", [("x", (4, 3, 2)), ("s", (3,)), ("b", (3,)), ("m", (3,)), ("v", (3,))],
             attrs={"training_mode": 1, "momentum": 0.8}, outputs=3, ranges={"v": (0.5, 2)},
             name="BatchNormalization-training-mode"),
    # recurrent: ONNX gate orders, peepholes, directions, initial states
    OnnxCase("LSTM", [("X", (3, 2, 4)), ("W", (1, 20, 4)), ("R", (1, 20, 5)), ("B", (1, 40)), ("L", None),
                      ("h0", (1, 2, 5)), ("c0", (1, 2, 5)), ("P", (1, 15))], attrs={"hidden_size": 5}, outputs=3),
    OnnxCase("LSTM", [("X", (2, 3, 4)), ("W", (2, 12, 4)), ("R", (2, 12, 3))],
             attrs={"hidden_size": 3, "direction": "bidirectional", "layout": 1}, outputs=3,
             name="LSTM-bidirectional-batch-first"),
    OnnxCase("GRU", [("X", (3, 2, 4)), ("W", (1, 15, 4)), ("R", (1, 15, 5)), ("B", (1, 30)), ("L", None),
                     ("h0", (1, 2, 5))], attrs={"hidden_size": 5, "linear_before_reset": 1}, outputs=2),
    OnnxCase("GRU", [("X", (3, 2, 4)), ("W", (2, 9, 4)), ("R", (2, 9, 3)), ("B", (2, 18))],
             attrs={"hidden_size": 3, "direction": "bidirectional"}, outputs=2, name="GRU-bidirectional"),
    OnnxCase("RNN", [("X", (3, 2, 4)), ("W", (1, 5, 4)), ("R", (1, 5, 5)), ("B", (1, 10)), ("L", None),
                     ("h0", (1, 2, 5))], attrs={"hidden_size": 5, "direction": "reverse"}, outputs=2),
    # features onnx's reference ignores (sequence lengths, activations, clip): values checked against ORT's kernel
    OnnxCase("LSTM", [("X", (3, 2, 4)), ("W", (2, 12, 4)), ("R", (2, 12, 3)), ("B", (2, 24)),
                      ("L", np.array([3, 2], np.int32)), ("h0", (2, 2, 3))],
             attrs={"hidden_size": 3, "direction": "bidirectional", "clip": 0.5}, outputs=3,
             exclude={}, float64=False, reference="onnxsym", name="LSTM-lengths-clip"),
    OnnxCase("RNN", [("X", (3, 2, 4)), ("W", (1, 5, 4)), ("R", (1, 5, 5)), ("B", (1, 10)),
                     ("L", np.array([1, 3], np.int32))],
             attrs={"hidden_size": 5, "activations": ["Relu"]}, outputs=2, float64=False, reference="onnxsym",
             name="RNN-relu-lengths"),
    # sampling
    OnnxCase("GridSample", [("x", (1, 2, 3, 4)), ("g", (1, 3, 2, 2))], low=-1.2, high=1.2,
             reference=lambda x, g: _grid_sample(x, g)),
    OnnxCase("GridSample", [("x", (1, 2, 3, 4)), ("g", (1, 3, 2, 2))], low=-1.3, high=1.3,
             attrs={"padding_mode": "border", "align_corners": 1}, name="GridSample-border-aligned",
             reference=lambda x, g: _grid_sample(x, g, padding="border", align=1)),
    OnnxCase("GridSample", [("x", (1, 2, 3, 4)), ("g", (1, 3, 2, 2))], low=-2.5, high=2.5,
             attrs={"padding_mode": "reflection"}, name="GridSample-reflection",
             reference=lambda x, g: _grid_sample(x, g, padding="reflection")),
    OnnxCase("GridSample", [("x", (1, 2, 3, 4)), ("g", (1, 3, 2, 2))], low=-2.5, high=2.5, seed=1,
             attrs={"padding_mode": "reflection", "align_corners": 1}, name="GridSample-reflection-aligned",
             reference=lambda x, g: _grid_sample(x, g, padding="reflection", align=1)),
    OnnxCase("GridSample", [("x", (1, 2, 3, 4)), ("g", (1, 3, 2, 2))], attrs={"mode": "nearest"},
             name="GridSample-nearest", reference=lambda x, g: _grid_sample(x, g, mode="nearest")),
    OnnxCase("Resize", [("x", (1, 2, 3, 4)), ("roi", None), ("sc", np.array([1, 1, 2, 1.5], np.float32))],
             attrs={"mode": "linear"}, exclude={"sc": "the scale factors size the output"}, fixed_dtype=("sc",)),
    OnnxCase("Resize", [("x", (1, 2, 3, 4)), ("roi", None), ("sc", np.array([1, 1, 1.7, 0.6], np.float32))],
             attrs={"mode": "cubic", "coordinate_transformation_mode": "asymmetric"}, fixed_dtype=("sc",),
             float64=False,    # onnx's reference weighs cubic taps in float32 precision
             exclude={"sc": "the scale factors size the output"}, name="Resize-cubic-fractional"),
    OnnxCase("Resize", [("x", (1, 2, 3, 4)), ("roi", None), ("sc", None), ("sz", np.array([1, 2, 5, 3], I64))],
             attrs={"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}, name="Resize-cubic-sizes",
             float64=False),
    OnnxCase("Resize", [("x", (1, 2, 3, 4)), ("roi", None), ("sc", np.array([1, 1, 2, 0.5], np.float32))],
             attrs={"mode": "nearest", "nearest_mode": "round_prefer_ceil"}, fixed_dtype=("sc",),
             exclude={"sc": "the scale factors size the output"}, name="Resize-nearest"),
    OnnxCase("Resize", [("x", (1, 1, 3, 4)), ("roi", None), ("sc", None), ("sz", np.array([1, 1, 5, 7], I64))],
             attrs={"mode": "linear", "coordinate_transformation_mode": "align_corners"},
             name="Resize-linear-align-corners"),
    OnnxCase("RoiAlign", [("x", (2, 2, 5, 5)), ("r", np.array([[0.5, 0.7, 3.2, 3.9], [1.1, 0.2, 2.6, 4.3]])),
                          ("bi", np.array([1, 0], I64))],
             attrs={"output_height": 2, "output_width": 3, "sampling_ratio": 2},
             exclude={"r": "box coordinates: no gradient, as in MXNet's ROIAlign and torchvision's roi_align"}),
    OnnxCase("MaxRoiPool", [("x", (2, 2, 5, 5)), ("r", np.array([[1, 0, 1, 3, 4], [0, 1, 0, 4, 2.0]]))],
             attrs={"pooled_shape": [2, 2]}, exclude={"r": "batch index and box coordinates (rounded)"},
             float64=False, reference=lambda x, r: _max_roi_pool(x, r)),
    # losses
    OnnxCase("SoftmaxCrossEntropyLoss", [("s", (4, 3)), ("l", _LABELS), ("w", (3,))], outputs=2,
             ranges={"w": (0.5, 2)}),
    OnnxCase("SoftmaxCrossEntropyLoss", [("s", (2, 3, 2)), ("l", np.array([[0, 2], [1, 1]], I64))], outputs=1,
             attrs={"reduction": "sum", "ignore_index": 1}, name="SoftmaxCrossEntropyLoss-ignore"),
    OnnxCase("NegativeLogLikelihoodLoss", [("s", (4, 3)), ("l", _LABELS), ("w", (3,))], ranges={"w": (0.5, 2)}),
    OnnxCase("NegativeLogLikelihoodLoss", [("s", (2, 3, 2)), ("l", np.array([[0, 2], [1, 1]], I64)),
                                           ("w", (3,))], attrs={"reduction": "none", "ignore_index": 2},
             name="NegativeLogLikelihoodLoss-none"),
]

# ONNX ops of the default opset with two or more float inputs that ONNX_CASES does not check, and why.
NOT_DIFFERENTIABLE = {
    "Equal": "boolean output", "Greater": "boolean output", "GreaterOrEqual": "boolean output",
    "Less": "boolean output", "LessOrEqual": "boolean output",
    "NonMaxSuppression": "integer output (selected indices)",
    "QLinearConv": "integer (quantized) output", "QLinearMatMul": "integer (quantized) output",
    "QuantizeLinear": "integer (quantized) output",
    "Range": "a generator: its inputs fix the output length (not differentiable in PyTorch/JAX/TF either)",
    "MelWeightMatrix": "a constant generator (filter bank) of integer sizes and two frequencies",
    "Loop": "control flow over a subgraph: not differentiated", "Scan": "control flow over a subgraph: not "
    "differentiated", "SequenceConstruct": "sequence values", "SequenceMap": "sequence values",
}
# Ops whose gradient onnxsym still cannot give (xfail: the case passes once fixed).
NOT_YET = {"STFT": "no gradient builder in onnxruntime-training (signal and window)"}
NOT_YET_CASES = [
    OnnxCase("STFT", [("x", (1, 8, 1)), ("step", np.array(2, I64)), ("win", (4,))], float64=False),
]


def _float_input_ops():
    """ai.onnx ops of the default opset with two or more float inputs (a variadic float input counts as two)."""
    found = set()
    variadic = defs.OpSchema.FormalParameterOption.Variadic
    for schema in defs.get_all_schemas():
        if schema.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = defs.get_schema(schema.name, OPSET, "")
        except defs.SchemaError:
            continue
        if schema.deprecated:
            continue
        allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        floats = [i for i in schema.inputs if "tensor(double)" in allowed.get(i.type_str, [i.type_str])
                  or i.type_str == "tensor(float)"]
        if len(floats) >= 2 or any(i.option == variadic for i in floats):
            found.add(schema.name)
    return found


@pytest.mark.parametrize("case", ONNX_CASES, ids=str)
def test_onnx_node_gradients(case, tmp_path):
    run_onnx_gradient_case(case, tmp_path)


@pytest.mark.parametrize("case", NOT_YET_CASES, ids=str)
def test_onnx_node_gradients_not_yet(case, tmp_path):
    pytest.xfail(NOT_YET[case.op_type])


def test_every_onnx_op_with_several_float_inputs_is_checked():
    checked = {c.op_type for c in ONNX_CASES}
    missing = _float_input_ops() - checked - set(NOT_DIFFERENTIABLE) - set(NOT_YET)
    assert not missing, "ONNX ops with two or more float inputs and no gradient case: %s" % sorted(missing)
    for case in ONNX_CASES:
        assert case.checked(), "%s checks no input" % case


# Elementwise ONNX ops that onnxruntime-training cannot differentiate at all (no builder): checked in float32 (ORT
# has no float64 kernels for most) against float64 finite differences of numpy.
_STEPS = np.array([[-1.7, -0.6, 0.3], [0.8, 1.4, 2.2]])      # away from the jumps of floor, ceil, round, sign
_SELU = (1.6732632423543772, 1.0507009873554805)
UNARY = {  # op: (numpy reference, attributes, input range or values)
    "Asin": (np.arcsin, {}, (-0.9, 0.9)), "Acos": (np.arccos, {}, (-0.9, 0.9)), "Atan": (np.arctan, {}, (-2, 2)),
    "Asinh": (np.arcsinh, {}, (-2, 2)), "Acosh": (np.arccosh, {}, (1.2, 3)), "Atanh": (np.arctanh, {}, (-0.9, 0.9)),
    "Sinh": (np.sinh, {}, (-2, 2)), "Cosh": (np.cosh, {}, (-2, 2)), "Tan": (np.tan, {}, (-1.2, 1.2)),
    "Elu": (lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), {"alpha": 0.7}, (-2, 2)),
    "Celu": (lambda x: np.maximum(x, 0) + np.minimum(0, 0.8 * np.expm1(x / 0.8)), {"alpha": 0.8}, (-2, 2)),
    "Selu": (lambda x: _SELU[1] * np.where(x > 0, x, _SELU[0] * np.expm1(x)), {}, (-2, 2)),
    "HardSigmoid": (lambda x: np.clip(0.3 * x + 0.4, 0, 1), {"alpha": 0.3, "beta": 0.4}, (-3, 3)),
    "HardSwish": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1), {}, (-4, 4)),
    "Shrink": (lambda x: np.where(x > 0.3, x - 0.1, np.where(x < -0.3, x + 0.1, 0)), {"lambd": 0.3, "bias": 0.1},
               (-1, 1)),
    "Softplus": (lambda x: np.log1p(np.exp(x)), {}, (-2, 2)), "Softsign": (lambda x: x / (1 + np.abs(x)), {}, (-2, 2)),
    "ThresholdedRelu": (lambda x: np.where(x > 0.2, x, 0), {"alpha": 0.2}, (-1, 1)),
    "Floor": (np.floor, {}, _STEPS), "Ceil": (np.ceil, {}, _STEPS), "Round": (np.round, {}, _STEPS),
    "Sign": (np.sign, {}, _STEPS),
    "Hardmax": (lambda x: np.eye(x.shape[-1])[np.argmax(x, axis=-1)], {}, (-1, 1)),
}


def _unary_case(op):
    fn, attrs, values = UNARY[op]
    spec = values if isinstance(values, np.ndarray) else (2, 3)
    low, high = (-1, 1) if isinstance(values, np.ndarray) else values
    return OnnxCase(op, [("x", spec)], attrs=attrs, low=low, high=high, float64=False,
                    reference=lambda x, fn=fn: [fn(x)])


@pytest.mark.parametrize("op", sorted(UNARY))
def test_onnx_elementwise_gradients_without_builder(op, tmp_path):
    run_onnx_gradient_case(_unary_case(op), tmp_path)


def test_every_elementwise_training_rule_is_checked():
    from onnxsym.ops.onnx_training import UNARY_DERIVATIVES
    assert set(UNARY_DERIVATIVES) == set(UNARY)


# ---------------------------------------------------------------- conventions where the derivative is undefined
def _imported(tmp_path, case):
    import onnx
    model, arrays = case.model(np.float64)
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    return mx.onnx.import_model(path)[0], arrays


def _gradients(sym, arrays, head=None):
    args = {n: mx.nd.NDArray(np.array(a, order="C")) for n, a in arrays.items()}
    grads = {n: mx.nd.NDArray(np.zeros_like(a)) for n, a in arrays.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads)
    out = exe.forward(is_train=True)[0].asnumpy().copy()
    exe.backward([mx.nd.NDArray(np.ones_like(out) if head is None else head)])
    return out, {n: g.asnumpy() for n, g in grads.items()}


def test_pow_where_the_exponent_derivative_is_undefined(tmp_path):
    """d x^y / dy is 0 where x <= 0 (the limit at x = 0 for y > 0; no real derivative for x < 0), d/dx is 0
    where y == 0, and the training forward is the plain power (it was NaN for x <= 0)."""
    x = np.array([-2.0, -2.0, 0.0, 0.0, 0.0, 3.0])
    y = np.array([2.0, 0.5, 2.0, 0.0, 0.5, 0.0])
    sym, arrays = _imported(tmp_path, OnnxCase("Pow", [("x", x), ("y", y)]))
    out, grads = _gradients(sym, arrays)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(out, np.power(x, y))
    np.testing.assert_array_equal(grads["y"][:5], 0)
    np.testing.assert_allclose(grads["y"][5], np.log(3.0), rtol=1e-15)
    np.testing.assert_array_equal(grads["x"][[0, 2, 3, 5]], [-4.0, 0.0, 0.0, 0.0])


def test_clip_ties_and_crossed_bounds(tmp_path):
    """x on a bound: the gradient goes to x (PyTorch's clamp); min > max: everything to max."""
    x = np.array([-0.5, 0.5, 0.2, -1.0, 1.0])
    for low, high, expect in ((-0.5, 0.5, {"x": [1, 1, 1, 0, 0], "lo": 1, "hi": 1}),
                              (0.6, 0.4, {"x": [0, 0, 0, 0, 0], "lo": 0, "hi": 5})):
        case = OnnxCase("Clip", [("x", x), ("lo", np.array(low)), ("hi", np.array(high))])
        sym, arrays = _imported(tmp_path, case)
        out, grads = _gradients(sym, arrays)
        np.testing.assert_array_equal(out, np.minimum(np.maximum(x, low), high))
        for name, value in expect.items():
            np.testing.assert_array_equal(grads[name], value, err_msg="%s %s" % (case, name))


# ---------------------------------------------------------------- MXNet ops
# Inputs of the multi-input MXNet ops that are not differentiable, and why (the rest are checked).
MXNET_NOT_CHECKED = {
    "BatchNorm": {"moving_mean": "auxiliary state", "moving_var": "auxiliary state"},
    "_contrib_SyncBatchNorm": {"moving_mean": "auxiliary state", "moving_var": "auxiliary state"},
    "BatchNorm_v1": {"moving_mean": "auxiliary state", "moving_var": "auxiliary state"},
    "Embedding": {"data": "indices"}, "take": {"indices": "indices"}, "pick": {"index": "indices"},
    "_contrib_SparseEmbedding": {"data": "indices"}, "_sparse_retain": {"indices": "row ids"},
    "gather_nd": {"indices": "indices"}, "batch_take": {"indices": "indices"},
    "scatter_nd": {"indices": "indices"},
    "SequenceLast": {"sequence_length": "lengths"}, "SequenceMask": {"sequence_length": "lengths"},
    "SequenceReverse": {"sequence_length": "lengths"},
    "softmax": {"length": "lengths"}, "log_softmax": {"length": "lengths"}, "softmin": {"length": "lengths"},
    "where": {"condition": "a mask: the output is piecewise constant in it (MXNet gives it no gradient)"},
    "ROIPooling": {"rois": "box coordinates: MXNet gives them no gradient"},
    "_contrib_ROIAlign": {"rois": "box coordinates: MXNet gives them no gradient"},
    "_contrib_index_copy": {"index_vector": "indices"}, "fill_element_0index": {"rhs": "indices"},
    "_identity_with_attr_like_rhs": {"rhs": "a shape constraint: MXNet gives it no gradient"},
    "softmax_cross_entropy": {"label": "class labels: MXNet gives them no gradient"},
    "CTCLoss": {"label": "indices", "data_lengths": "lengths", "label_lengths": "lengths"},
}
# Ops that ORT runs or differentiates in float32 only: checked in float32 against float64 finite differences of
# the case's numpy reference. op -> (reason, which of its cases).
FLOAT32_ONLY = {
    "Convolution": ("no float64 Conv kernel", lambda case: True),
    "Convolution_v1": ("no float64 Conv kernel", lambda case: True),
    "Deconvolution": ("no float64 Conv kernel", lambda case: True),
    "UpSampling": ("no float64 ConvTranspose kernel (bilinear)", lambda case: case.attrs["sample_type"] == "bilinear"),
    "softmax": ("no float64 SoftmaxGrad kernel (with length)", lambda case: True),
    "softmin": ("no float64 SoftmaxGrad kernel (with length)", lambda case: True),
    "log_softmax": ("no float64 LogSoftmaxGrad kernel (with length)", lambda case: True),
}
CASES_PER_OP = 3


def _multi_input_cases():
    """{op: its family cases with two or more inputs} over the differentiable registered ops (loss heads have
    MXNet's backward, not a derivative: tests/test_mxnet_gradients.py)."""
    found = {}
    for name, opcls in all_ops().items():
        if opcls.is_loss or not opcls.differentiable or name == "_onnx":    # _onnx: ONNX_CASES above
            continue
        cases = FAMILY_GRADIENT_CASES.get(name) or FAMILY_CASES.get(name, [])
        cases = [c for c in cases if c.dtype in ("float32", "float64") and len(c.symbol().list_arguments()) > 1]
        # cases on random inputs first (recorded examples may have a constant reference), then any case that
        # brings an input name the chosen ones lack
        cases.sort(key=lambda c: c.values is not None)
        chosen, names = [], set()
        for case in cases:
            new = set(case.symbol().list_arguments()) - names
            if len(chosen) < CASES_PER_OP or new:
                chosen.append(case)
                names |= new
        if chosen:
            found[name] = chosen
    return found


MULTI_INPUT = _multi_input_cases()
MXNET_CASES = [(op, case) for op, cases in sorted(MULTI_INPUT.items()) for case in cases]


def _checked(op, case, sym):
    skip = MXNET_NOT_CHECKED.get(op, {})
    return [n for n in sym.list_arguments() if n not in skip and n not in case.int_inputs]


def _reference_gradient(case, sym, arrays, names, projection, eps=1e-6):
    """Central differences in float64 of sum(ref(arrays) * projection)."""
    base = {n: a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a for n, a in arrays.items()}

    def objective():
        out = case.ref(**base)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return float((np.asarray(out, np.float64) * projection).sum())

    return central_differences(base, names, objective, eps)


@pytest.mark.parametrize("op,case", MXNET_CASES, ids=[str(c) for _, c in MXNET_CASES])
def test_mxnet_op_gradients(op, case):
    skip_ort_training_gap(type(case.symbol().outputs[0][0].op).op_name)
    if op in FLOAT32_ONLY and FLOAT32_ONLY[op][1](case):
        case = dataclasses.replace(case, dtype="float32")
        sym = case.symbol()
        arrays = case.inputs(sym)
        names = _checked(op, case, sym)
        _, out_shapes, _ = sym.infer_shape(**{n: a.shape for n, a in arrays.items()})
        projection = random_projection(out_shapes[0])
        args = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_arguments()}
        aux = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_auxiliary_states()}
        grads = {n: mx.nd.zeros(arrays[n].shape, dtype=arrays[n].dtype) for n in names}
        exe = sym[0].bind(mx.cpu(), args=args, args_grad=grads, grad_req={n: "write" for n in names},
                          aux_states=aux)
        exe.forward(is_train=True)
        exe.backward([mx.nd.array(projection, dtype=arrays[names[0]].dtype)])
        numeric = _reference_gradient(case, sym, arrays, names, projection)
        for name in names:
            scale = max(1.0, float(np.abs(numeric[name]).max()))
            assert_almost_equal(grads[name].asnumpy(), numeric[name], 2e-3, 1e-4 * scale,
                                names=("%s: gradient of %s" % (case, name), "float64 finite differences"))
        return
    case = dataclasses.replace(case, dtype="float64")
    sym = case.symbol()
    arrays = case.inputs(sym)
    aux = {n: arrays[n] for n in sym.list_auxiliary_states()}
    location = {n: arrays[n] for n in sym.list_arguments()}
    _, out_types, _ = sym.infer_type(**{n: arrays[n].dtype for n in sym.list_arguments()})
    for index in range(len(sym.list_outputs())):
        if out_types and not np.issubdtype(np.dtype(out_types[index]), np.floating):
            continue
        check_numeric_gradient(sym[index], location, aux_states=aux, grad_nodes=_checked(op, case, sym),
                               dtype=np.float64, numeric_eps=1e-6, rtol=1e-5, atol=1e-7)


def test_every_multi_input_mxnet_op_is_checked():
    """Every differentiable op that takes two or more inputs has a case here, and each of its inputs is checked
    in some case or named in MXNET_NOT_CHECKED with the reason."""
    for op, cases in MULTI_INPUT.items():
        seen, checked = set(), set()
        for case in cases:
            sym = case.symbol()
            seen.update(sym.list_arguments())
            checked.update(_checked(op, case, sym))
        unexplained = seen - checked - set(MXNET_NOT_CHECKED.get(op, {}))
        assert not unexplained, "%s: inputs %s are neither checked nor explained" % (op, sorted(unexplained))
    expected = {"broadcast_power", "_power", "_hypot", "broadcast_hypot", "_maximum", "_minimum",
                "broadcast_maximum", "broadcast_minimum", "LeakyReLU", "BatchNorm", "LayerNorm", "InstanceNorm",
                "GroupNorm", "FullyConnected", "Convolution", "Deconvolution", "Embedding", "batch_dot", "dot",
                "_linalg_gemm2", "where", "broadcast_mod", "_mod", "elemwise_div", "broadcast_div", "RNN"}
    assert expected <= set(MULTI_INPUT), sorted(expected - set(MULTI_INPUT))


def _mxnet_gradients(sym, arrays):
    args = {n: mx.nd.array(a) for n, a in arrays.items()}
    grads = {n: mx.nd.zeros(a.shape) for n, a in arrays.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads)
    out = exe.forward(is_train=True)[0]
    exe.backward([mx.nd.ones(out.shape)])
    return {n: g.asnumpy() for n, g in grads.items()}


def test_maximum_minimum_ties_go_to_lhs_as_in_mxnet():
    """A tie is a kink (no derivative): MXNet 1.9.1 gives its gradient wholly to lhs (or the data of a *_scalar
    op), where ORT's Max/Min gradient would split it in halves (which `_onnx` Max/Min keep, as PyTorch)."""
    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    values = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 1.0, 4.0])}
    for op, lhs, rhs in ((mx.sym.broadcast_maximum, [1, 1, 0], [0, 0, 1]), (mx.sym._maximum, [1, 1, 0], [0, 0, 1]),
                         (mx.sym.broadcast_minimum, [1, 0, 1], [0, 1, 0]), (mx.sym._minimum, [1, 0, 1], [0, 1, 0])):
        grads = _mxnet_gradients(op(a, b), values)
        np.testing.assert_array_equal(grads["a"], lhs, err_msg=op.__name__)
        np.testing.assert_array_equal(grads["b"], rhs, err_msg=op.__name__)
    data = {"a": np.array([1.0, 2.0, 3.0])}
    np.testing.assert_array_equal(_mxnet_gradients(mx.sym._maximum_scalar(a, scalar=2.0), data)["a"], [0, 1, 1])
    np.testing.assert_array_equal(_mxnet_gradients(mx.sym._minimum_scalar(a, scalar=2.0), data)["a"], [1, 1, 0])
    # hard_sigmoid: alpha strictly inside (0, 1), 0 on the bounds (MXNet)
    np.testing.assert_allclose(_mxnet_gradients(mx.sym.hard_sigmoid(a), {"a": np.array([-2.5, 0.0, 2.5])})["a"],
                               [0, 0.2, 0], rtol=1e-6)


def test_power_gradients_where_mxnet_gives_nan():
    """At a base of 0, MXNet 1.9.1 gives NaN for both partials of broadcast_power (0 * log 0 and 0 * 0^-1) where
    the derivative is 0 (0^b is 0 for every b > 0; a^0 is 1 for every a): onnxsym gives the derivative."""
    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    grads = _mxnet_gradients(mx.sym.broadcast_power(a, b), {"a": np.array([0.0, 0.0, 1.5]),
                                                           "b": np.array([2.0, 0.0, 1.0])})
    np.testing.assert_allclose(grads["a"], [0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [0, 0, 1.5 * np.log(1.5)], rtol=1e-6)
