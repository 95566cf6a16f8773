"""Ops of legacy MXNet models outside the core families: _contrib_BilinearResize2D, _contrib_AdaptiveAvgPooling2D,
ROIPooling, _contrib_ROIAlign, the fused RNN and amp_multicast (MXNet 1.9.1 semantics); _contrib_box_nms lives with
the other box operators in detection.py.

Bilinear resizing and adaptive average pooling are two MatMuls with interpolation / averaging matrices built from
the static shapes (exact and differentiable). ROIPooling and ROIAlign run ONNX MaxRoiPool / RoiAlign at inference
(their rounding equals MXNet's, checked against MXNet 1.9.1); onnxruntime-training has no gradient for either, so
training graphs use gather forms: ROIPooling a two-stage masked ArgMax (over columns, then rows: MXNet's first
maximum in scan order) with GatherElements, ROIAlign separable per-ROI interpolation matrices (rows x columns) around
a Gather of each ROI's image. RNN emits ONNX LSTM/GRU/RNN at inference and an unrolled cell (Gemm, Sigmoid, Tanh;
ORT has no LSTM/GRU/RNN gradient) in training graphs.
"""
import dataclasses
from typing import Optional

import numpy as np

from .._shapes import merge, partial_rule
from ..base import MXNetError
from .params import Shape, param
from .registry import OpDef, register


def _via_float32(g, op, inputs):
    """op lowered on float32 casts of its float16 inputs, outputs cast back to float16 (for lowerings whose ONNX
    kernels or onnxruntime-training gradients lack float16)."""
    wide = []
    for value in inputs:
        if value is not None and g.dtype(value) == np.float16:
            cast = g.cast(value, np.float32)
            g.set_info(cast, g.shape(value), np.float32)
            value = cast
        wide.append(value)
    outs = op.lower(g, *wide)
    back = lambda v: None if v is None else g.cast(v, np.float16)
    return tuple(back(v) for v in outs) if isinstance(outs, tuple) else back(outs)


def _rank4(op, shape, name="data"):
    if shape is not None and len(shape) != 4:
        raise MXNetError("%s: input '%s' must be 4-D (batch, channel, height, width), got shape %s"
                         % (op.op_name, name, tuple(shape)))


def _resize(g, data, rows, cols):
    """rows @ data @ cols.T over the last two axes (rows (OH, H), cols (OW, W) numpy matrices). float16 runs in
    float32 (MXNet accumulates in float32); float64 uses Gemm on flattened views, because the gradient of MatMul
    is a FusedMatMul that onnxruntime-training has no float64 kernel for."""
    dtype = g.dtype(data)
    if dtype == np.float16:
        wide = g.cast(data, np.float32)
        g.set_info(wide, g.shape(data), np.float32)
        return g.cast(_resize(g, wide, rows, cols), np.float16)
    n, c, h, w = g.shape(data)
    (oh, _), (ow, _) = rows.shape, cols.shape
    if dtype == np.float32:
        out = data if np.array_equal(cols, np.eye(w)) else g.MatMul(data, g.const(cols.T.astype(dtype)))
        out = out if np.array_equal(rows, np.eye(h)) else g.MatMul(g.const(rows.astype(dtype)), out)
        return g.Identity(out) if out == data else out
    out = g.Gemm(g.Reshape(data, g.int64s([n * c * h, w])), g.const(cols.T.astype(dtype)))
    out = g.Transpose(g.Reshape(out, g.int64s([n, c, h, ow])), perm=[0, 1, 3, 2])
    out = g.Gemm(g.Reshape(out, g.int64s([n * c * ow, h])), g.const(rows.T.astype(dtype)))
    return g.Transpose(g.Reshape(out, g.int64s([n, c, ow, oh])), perm=[0, 1, 3, 2])


# ---------------------------------------------------------------- bilinear resize / adaptive pooling
def _bilinear_matrix(n_in, n_out, align_corners):
    """(n_out, n_in) weights of MXNet's bilinear kernel: source (in-1)/(out-1)*o (align_corners), else
    max(in/out*(o+0.5)-0.5, 0); neighbours floor(src) and floor(src)+1 (clamped), float32 arithmetic as MXNet."""
    f = np.float32
    if align_corners:
        ratio = f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
    else:
        ratio = f(n_in) / f(n_out)
    matrix = np.zeros((n_out, n_in), np.float64)
    for o in range(n_out):
        src = ratio * f(o) if align_corners else max(ratio * (f(o) + f(0.5)) - f(0.5), f(0))
        low = int(src)
        lam = f(src - f(low))
        matrix[o, low] += f(1) - lam
        matrix[o, low + (1 if low < n_in - 1 else 0)] += lam
    return matrix


_RESIZE_MODES = ("size", "odd_scale", "like", "to_even_down", "to_even_up", "to_odd_down", "to_odd_up")


@register(name="_contrib_BilinearResize2D")
class BilinearResize2D(OpDef):
    """out[n, c] = Mh @ data[n, c] @ Mw.T with MXNet's bilinear weights (align_corners: (in-1)/(out-1) mapping).
    Mirrors MXNet src/operator/contrib/bilinear_resize-inl.h (output size rules of every mode included)."""
    height: int = param(1, min=1, doc="Output height (mode 'size' without scale_height).")
    width: int = param(1, min=1, doc="Output width (mode 'size' without scale_height).")
    scale_height: Optional[float] = param(None, doc="Sampling scale of the height (modes 'size', 'odd_scale').")
    scale_width: Optional[float] = param(None, doc="Sampling scale of the width (modes 'size', 'odd_scale').")
    mode: str = param("size", choices=_RESIZE_MODES, doc="Resizing mode.")
    align_corners: bool = param(True, doc="Map the corner pixels onto each other ((in-1)/(out-1) scaling).")

    def input_names(self):
        return ("data", "like") if self.mode == "like" else ("data",)

    def _scale(self, name):
        value = getattr(self, name)
        if value is None:
            raise MXNetError("_contrib_BilinearResize2D: mode '%s' needs %s (MXNet: bad optional access)"
                             % (self.mode, name))
        return np.float32(value)

    def _out_size(self, data, like):
        h, w = data[2], data[3]
        if self.mode == "size":
            if self.scale_height is None:       # MXNet tests scale_height for both sizes
                return self.height, self.width
            return int(self._scale("scale_height") * np.float32(h)), int(self._scale("scale_width") * np.float32(w))
        if self.mode == "odd_scale":
            sh, sw = self._scale("scale_height"), self._scale("scale_width")
            odd = lambda n, s: int(np.float32(n) * s) if n % 2 == 0 else int(np.float32(n - 1) * s) + 1
            return odd(h, sh), odd(w, sw)
        if self.mode == "like":
            return like[2], like[3]
        even, up = self.mode.startswith("to_even"), self.mode.endswith("up")
        fix = lambda n: n if (n % 2 == 0) == even else (n + 1 if up else n - 1)
        return fix(h), fix(w)

    def infer_shape(self, data, like=None):
        _rank4(self, data)
        _rank4(self, like, "like")
        if data is None or (self.mode == "like" and like is None):
            return None
        oh, ow = self._out_size(data, like)
        if oh < 1 or ow < 1:
            raise MXNetError("_contrib_BilinearResize2D: output size (%d, %d) for data %s must be positive"
                             % (oh, ow, tuple(data)))
        ins = [data] if self.mode != "like" else [data, like]
        return ins, [(data[0], data[1], oh, ow)]

    def lower(self, g, data, like=None):
        _, _, h, w = g.shape(data)
        oh, ow = self._out_size(g.shape(data), g.shape(like) if like is not None else None)
        matrix = lambda n_in, n_out: _bilinear_matrix(n_in, n_out, self.align_corners)
        return _resize(g, data, matrix(h, oh), matrix(w, ow))


def _average_matrix(n_in, n_out):
    """(n_out, n_in): 1/len over MXNet's adaptive bins [floor(i*in/out), ceil((i+1)*in/out))."""
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@register(name="_contrib_AdaptiveAvgPooling2D")
class AdaptiveAvgPooling2D(OpDef):
    """out[i, j] = mean(data[floor(i*H/OH):ceil((i+1)*H/OH), floor(j*W/OW):ceil((j+1)*W/OW)]).
    Mirrors MXNet src/operator/contrib/adaptive_avg_pooling-inl.h (output_size () = 1x1, one value = square)."""
    output_size: Shape = param((), doc="int (output size) or a tuple of int for output (height, width).")

    def _size(self):
        size = tuple(self.output_size)
        if len(size) > 2 or any(s < 1 for s in size):
            raise MXNetError("_contrib_AdaptiveAvgPooling2D: output_size must be () or 1 or 2 positive ints, got %s"
                             % (size,))
        return (1, 1) if not size else (size * 2 if len(size) == 1 else size)

    def infer_shape(self, data):
        _rank4(self, data)
        return None if data is None else ([data], [tuple(data[:2]) + self._size()])

    def lower(self, g, data):
        _, _, h, w = g.shape(data)
        oh, ow = self._size()
        return _resize(g, data, _average_matrix(h, oh), _average_matrix(w, ow))


# ---------------------------------------------------------------- region-of-interest pooling
class _RoiOp(OpDef):
    inputs = ("data", "rois")

    def _pooled(self):
        if len(self.pooled_size) != 2 or min(self.pooled_size) < 1:
            raise MXNetError("%s: pooled_size must be two positive ints (h, w), got %s"
                             % (self.op_name, tuple(self.pooled_size)))
        return tuple(self.pooled_size)

    def _out_channels(self, channels):
        return channels

    def infer_shape(self, data, rois):
        _rank4(self, data)
        if rois is not None and (len(rois) != 2 or rois[1] != 5):
            raise MXNetError("%s: input 'rois' must have shape (num_rois, 5) [batch_index, x1, y1, x2, y2], got %s"
                             % (self.op_name, tuple(rois)))
        if data is None or rois is None:
            return None
        out = (rois[0], self._out_channels(data[1])) + self._pooled()
        return [data, rois], [out] * self.count_outputs()

    def lower(self, g, data, rois):
        """float16 runs in float32 (onnxruntime-training's float16 scatter gradients of the gather forms are
        wrong); float32 inference uses ORT's kernels; otherwise the differentiable gather forms."""
        dtype = g.dtype(data)
        if dtype == np.float16:
            return _via_float32(g, self, (data, rois))
        rois = g.stop_gradient(rois, g.dtype(rois))
        if not g.is_train and dtype == np.float32:
            return self._onnx(g, data, rois)
        return self._gathered(g, data, rois)

    def _columns(self, g, rois):
        """(batch index as int64 (R,), x1, y1, x2, y2 as (R, 1) values) of the rois."""
        cols = [g.Slice(rois, g.int64s([i]), g.int64s([i + 1]), g.int64s([1])) for i in range(5)]
        batch = g.cast(g.Reshape(cols[0], g.int64s([-1])), np.int64)
        return batch, cols[1:]


def _grid(g, values, dtype):
    return g.const(np.asarray(values, dtype=dtype))


@register
class ROIPooling(_RoiOp):
    """out[r, c, i, j] = max of data[b_r, c] over bin (i, j) of the ROI rounded to round(coord * spatial_scale)
    (0 for an empty bin). Mirrors MXNet src/operator/roi_pooling.cc; the hidden output maxidx is not computed."""
    outputs = ("output", "maxidx")
    pooled_size: Shape = param(min=1, doc="ROI pooling output shape (h, w).")
    spatial_scale: float = param(min=0, max=1,
                                 doc="Ratio of input feature map height (or w) to raw image height (or w).")

    def num_visible_outputs(self):
        return 1

    def _onnx(self, g, data, rois):
        ph, pw = self._pooled()
        return g.MaxRoiPool(data, rois, pooled_shape=[ph, pw], spatial_scale=self.spatial_scale), None

    def _bins(self, g, lo, hi, pooled, size, dtype):
        """(R, pooled, size) masks of the rows (columns) of each bin, and (R, pooled) non-empty flags."""
        scale = g.scalar(np.float32(self.spatial_scale), dtype)      # MXNet's float attribute
        rounded = lambda v: g.Mul(g.Sign(v), g.Floor(g.Add(g.Abs(v), g.scalar(0.5, dtype))))  # C round()
        start, end = rounded(g.Mul(lo, scale)), rounded(g.Mul(hi, scale))
        length = g.Max(g.Add(g.Sub(end, start), g.scalar(1, dtype)), g.scalar(1, dtype))
        bin_size = g.Div(length, g.scalar(pooled, dtype))
        clip = lambda v: g.Min(g.Max(g.Add(v, start), g.scalar(0, dtype)), g.scalar(size, dtype))
        first = clip(g.Floor(g.Mul(_grid(g, np.arange(pooled).reshape(1, -1), dtype), bin_size)))
        last = clip(g.Ceil(g.Mul(_grid(g, np.arange(1, pooled + 1).reshape(1, -1), dtype), bin_size)))
        pos = _grid(g, np.arange(size).reshape(1, 1, -1), dtype)
        inside = g.And(g.GreaterOrEqual(pos, g.Unsqueeze(first, g.int64s([2]))),
                       g.Less(pos, g.Unsqueeze(last, g.int64s([2]))))
        return inside, g.Greater(last, first)

    def _gathered(self, g, data, rois):
        """Gather form (training, float64): per-ROI images, first-maximum indices by two masked ArgMax stages
        (stop-gradient) and GatherElements of the values, so data's gradient is MXNet's (at each bin's argmax)."""
        ph, pw = self._pooled()
        _, _, h, w = g.shape(data)
        dtype = calc = g.dtype(data)
        batch, (x1, y1, x2, y2) = self._columns(g, g.cast(rois, calc))
        rows, rows_full = self._bins(g, y1, y2, ph, h, calc)
        cols, cols_full = self._bins(g, x1, x2, pw, w, calc)
        images = g.Gather(data, batch, axis=0)                                      # (R, C, H, W)
        frozen = g.cast(g.stop_gradient(images, dtype), calc)
        low = g.scalar(-np.inf, calc)
        # stage 1: per image row, the first column maximum in each column bin -> (R, C, H, PW)
        masked = g.Where(g.Unsqueeze(cols, g.int64s([1, 2])), g.Unsqueeze(frozen, g.int64s([3])), low)
        col_idx = g.ArgMax(masked, axis=4, keepdims=0)
        row_max = g.GatherElements(frozen, col_idx, axis=3)
        # stage 2: the first row maximum in each row bin -> (R, C, PH, PW)
        masked = g.Where(g.Unsqueeze(rows, g.int64s([1, 3])),
                         g.Unsqueeze(g.Transpose(row_max, perm=[0, 1, 3, 2]), g.int64s([2])), low)
        row_idx = g.ArgMax(masked, axis=4, keepdims=0)
        out = g.GatherElements(g.GatherElements(images, col_idx, axis=3), row_idx, axis=2)
        full = g.And(g.Unsqueeze(rows_full, g.int64s([2])), g.Unsqueeze(cols_full, g.int64s([1])))
        return g.Mul(out, g.cast(g.Unsqueeze(full, g.int64s([1])), dtype)), None


@register(name="_contrib_ROIAlign")
class ROIAlign(_RoiOp):
    """out[r, c, i, j] = mean over the bin's sample grid of the bilinear interpolation of data[b_r, c] (Mask R-CNN
    RoIAlign; aligned: -0.5 pixel shift; position_sensitive: channel c*ph*pw + i*pw + j; rows with batch index < 0
    give 0). Mirrors MXNet src/operator/contrib/roi_align.cc (sample_ratio <= 0: ceil(roi_size / pooled_size))."""
    pooled_size: Shape = param(doc="ROI Align output roi feature map height and width: (h, w).")
    spatial_scale: float = param(doc="Ratio of input feature map height (or w) to raw image height (or w).")
    sample_ratio: int = param(-1, doc="Optional sampling ratio of ROI align, using adaptive size by default.")
    position_sensitive: bool = param(False, doc="Whether to perform position-sensitive RoI pooling.")
    aligned: bool = param(False, doc="Center-aligned ROIAlign introduced in Detectron2.")

    def _out_channels(self, channels):
        if not self.position_sensitive:
            return channels
        bins = self._pooled()[0] * self._pooled()[1]
        if channels % bins:
            raise MXNetError("_contrib_ROIAlign: position_sensitive needs the channels of 'data' (%d) to be a "
                             "multiple of ph*pw = %d" % (channels, bins))
        return channels // bins

    def _onnx(self, g, data, rois):
        ph, pw = self._pooled()
        batch, coords = self._columns(g, rois)
        out = g.RoiAlign(data, g.Concat(*coords, axis=1), g.Max(batch, g.const(np.array(0, np.int64))), mode="avg",
                         output_height=ph, output_width=pw, sampling_ratio=max(self.sample_ratio, 0),
                         spatial_scale=self.spatial_scale,
                         coordinate_transformation_mode="half_pixel" if self.aligned else "output_half_pixel")
        return self._finish(g, out, batch, g.dtype(data))

    def _gathered(self, g, data, rois):
        """Gather form (training, float64): rows(R, PH, H) @ data[b_r] @ cols(R, PW, W).T with per-ROI
        interpolation matrices (stop-gradient), so data's gradient is MXNet's."""
        ph, pw = self._pooled()
        _, _, h, w = g.shape(data)
        dtype = g.dtype(data)
        batch, (x1, y1, x2, y2) = self._columns(g, g.cast(rois, dtype))
        rows = self._axis_weights(g, y1, y2, ph, h, dtype)
        cols = self._axis_weights(g, x1, x2, pw, w, dtype)
        images = g.Gather(data, g.Max(batch, g.const(np.array(0, np.int64))), axis=0)      # (R, C, H, W)
        if dtype == np.float64:     # no float64 FusedMatMul (MatMul's gradient) in onnxruntime-training: Mul + sum
            out = g.ReduceSum(g.Mul(g.Unsqueeze(rows, g.int64s([1, 4])), g.Unsqueeze(images, g.int64s([2]))),
                              g.int64s([3]), keepdims=0)                                    # (R, C, PH, W)
            out = g.ReduceSum(g.Mul(g.Unsqueeze(out, g.int64s([3])), g.Unsqueeze(cols, g.int64s([1, 2]))),
                              g.int64s([4]), keepdims=0)
            return self._finish(g, out, batch, dtype)
        out = g.MatMul(g.Unsqueeze(rows, g.int64s([1])), images)
        out = g.MatMul(out, g.Unsqueeze(g.Transpose(cols, perm=[0, 2, 1]), g.int64s([1])))
        return self._finish(g, out, batch, dtype)

    def _finish(self, g, out, batch, dtype):
        """Position-sensitive channel selection, and zeros for ROIs with a negative batch index."""
        if self.position_sensitive:     # keep channel c*K + k at bin k: the diagonal of (R, C, K, K)
            ph, pw = self._pooled()
            k = ph * pw
            cols = g.Reshape(out, g.int64s([0, -1, k, k]))
            out = g.ReduceSum(g.Mul(cols, g.const(np.eye(k, dtype=dtype))), g.int64s([2]), keepdims=0)
            out = g.Reshape(out, g.int64s([0, -1, ph, pw]))
        valid = g.cast(g.GreaterOrEqual(batch, g.const(np.array(0, np.int64))), dtype)
        return g.Mul(out, g.Reshape(valid, g.int64s([-1, 1, 1, 1])))

    def _axis_weights(self, g, lo, hi, pooled, size, calc):
        """(R, pooled, size): per bin, the sample-grid average of the bilinear weights on each row (column)."""
        c = lambda v: g.scalar(v, calc)
        offset = c(0.5 if self.aligned else 0.0)
        scale = c(np.float32(self.spatial_scale))
        start = g.Sub(g.Mul(lo, scale), offset)
        length = g.Sub(g.Sub(g.Mul(hi, scale), offset), start)
        if not self.aligned:
            length = g.Max(length, c(1))
        bin_size = g.Div(length, c(pooled))                                          # (R, 1)
        base = g.Add(start, g.Mul(_grid(g, np.arange(pooled).reshape(1, -1), calc), bin_size))   # (R, P)
        if self.sample_ratio > 0:
            grid = c(self.sample_ratio)
            index = _grid(g, np.arange(self.sample_ratio).reshape(1, 1, -1), calc)
            in_grid = None
        else:
            # ceil(bin) samples; those inside [-1, size] are consecutive and >= 0.5 apart (bin/ceil(bin) > 0.5
            # when ceil(bin) >= 2), so 2*size + 4 of them from the first one at or above -1 (minus one) cover all
            count = g.Ceil(bin_size)
            grid = g.Max(count, c(1))   # an empty ROI (aligned=True) samples nothing: 0 as MXNet, not 0/0
            step = g.Div(bin_size, grid)
            first = g.Sub(g.Ceil(g.Sub(g.Div(g.Sub(c(-1), base), step), c(0.5))), c(1))
            first = g.Max(first, c(0))
            index = g.Add(g.Unsqueeze(first, g.int64s([2])),
                          _grid(g, np.arange(2 * size + 4).reshape(1, 1, -1), calc))            # (R, P, G)
            in_grid = g.Less(index, g.Unsqueeze(count, g.int64s([2])))
        grid3 = grid if self.sample_ratio > 0 else g.Unsqueeze(grid, g.int64s([2]))
        offsets = g.Div(g.Mul(g.Add(index, c(0.5)), g.Unsqueeze(bin_size, g.int64s([2]))), grid3)
        y = g.Add(g.Unsqueeze(base, g.int64s([2])), offsets)                                       # (R, P, G)
        valid = g.And(g.GreaterOrEqual(y, c(-1)), g.LessOrEqual(y, c(size)))
        valid = valid if in_grid is None else g.And(valid, in_grid)
        y = g.Max(y, c(0))
        low = g.Floor(y)
        at_end = g.GreaterOrEqual(low, c(size - 1))
        low = g.Where(at_end, g.Expand(c(size - 1), g.Shape(low)), low)
        frac = g.Sub(g.Where(at_end, low, y), low)
        pos = _grid(g, np.arange(size).reshape(1, 1, 1, -1), calc)
        low4, frac4 = g.Unsqueeze(low, g.int64s([3])), g.Unsqueeze(frac, g.int64s([3]))
        weights = g.Add(g.Mul(g.cast(g.Equal(pos, low4), calc), g.Sub(c(1), frac4)),
                        g.Mul(g.cast(g.Equal(pos, g.Add(low4, c(1))), calc), frac4))
        weights = g.Mul(weights, g.cast(g.Unsqueeze(valid, g.int64s([3])), calc))
        return g.Div(g.ReduceSum(weights, g.int64s([2]), keepdims=0), grid3)


# ---------------------------------------------------------------- fused RNN
_RNN_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_ONNX_GATES = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_tanh": [0], "rnn_relu": [0]}   # MXNet i,f,g,o / r,z,n


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class RNN(OpDef):
    """Fused multi-layer (bi)directional LSTM / GRU (r,z,n; reset applied after the hidden matmul) / tanh / relu RNN
    over data (T, N, I). `parameters` packs every layer's and direction's i2h and h2h weights (gate blocks in
    MXNet's order), then all their i2h and h2h biases. Mirrors MXNet src/operator/rnn-inl.h (CPU: no projection,
    state clipping or sequence lengths); dropout p acts between layers when training."""
    state_size: int = param(min=1, doc="Size of the state for each layer.")
    num_layers: int = param(min=1, doc="Number of stacked layers.")
    bidirectional: bool = param(False, doc="Whether to use bidirectional recurrent layers.")
    mode: str = param(choices=tuple(_RNN_GATES), doc="The type of RNN to compute.")
    p: float = param(0.0, min=0, max=1, doc="Dropout rate on the outputs of each RNN layer, except the last layer.")
    state_outputs: bool = param(False, doc="Whether to have the states as symbol outputs.")
    projection_size: Optional[int] = param(None, doc="Size of the projection (LSTMP; GPU only in MXNet).")
    lstm_state_clip_min: Optional[float] = param(None, doc="Minimum clip value of LSTM states (GPU only).")
    lstm_state_clip_max: Optional[float] = param(None, doc="Maximum clip value of LSTM states (GPU only).")
    lstm_state_clip_nan: bool = param(False, doc="Whether to stop NaN from propagating in clipped states.")
    use_sequence_length: bool = param(False, doc="Take an extra input sequence_length (GPU only).")

    def __post_init__(self):
        if self.p >= 1:
            raise MXNetError("RNN: dropout p must be in [0, 1), got %s" % self.p)
        for name in ("projection_size", "lstm_state_clip_min", "lstm_state_clip_max"):
            if getattr(self, name) is not None:
                raise MXNetError("RNN: %s is only supported with cuDNN on GPU in MXNet 1.9.1; the CPU operator "
                                 "(which onnxsym implements) rejects it" % name)
        if self.use_sequence_length:
            raise MXNetError("RNN: use_sequence_length is not supported (MXNet implements it with cuDNN only)")

    @property
    def _dirs(self):
        return 2 if self.bidirectional else 1

    def input_names(self):
        return ("data", "parameters", "state", "state_cell") if self.mode == "lstm" else \
            ("data", "parameters", "state")

    def output_names(self):
        if not self.state_outputs:
            return ("output",)
        return ("output", "state_output", "statecell_output") if self.mode == "lstm" else ("output", "state_output")

    def _layout(self, input_size):
        """[[i2h offset, i2h width, h2h offset, i2h bias offset, h2h bias offset] per layer and direction], size."""
        gh, h, d = _RNN_GATES[self.mode] * self.state_size, self.state_size, self._dirs
        blocks, pos = [], 0
        for layer in range(self.num_layers):
            width = input_size if layer == 0 else d * h
            for _ in range(d):
                blocks.append([pos, width, pos + gh * width])
                pos += gh * (width + h)
        for block in blocks:
            block += [pos, pos + gh]
            pos += 2 * gh
        return blocks, pos

    def infer_shape(self, data, parameters, state, state_cell=None):
        if data is None:
            return None
        if len(data) != 3:
            raise MXNetError("RNN: input 'data' must be 3-D (seq_length, batch, input_size), got %s" % (tuple(data),))
        t, n, size = data
        states = (self.num_layers * self._dirs, n, self.state_size)
        expected = {"data": tuple(data), "parameters": (self._layout(size)[1],), "state": states,
                    "state_cell": states}
        given = dict(zip(self.input_names(), (data, parameters, state, state_cell)))
        for name, shape in given.items():
            if shape is not None and tuple(shape) != expected[name]:
                raise MXNetError("RNN: input '%s' should have shape %s (mode=%s, state_size=%d, num_layers=%d, "
                                 "bidirectional=%s), got %s" % (name, expected[name], self.mode, self.state_size,
                                                                self.num_layers, self.bidirectional, tuple(shape)))
        outs = [(t, n, self._dirs * self.state_size), states, states][: self.count_outputs()]
        return [expected[name] for name in self.input_names()], outs

    def lower(self, g, data, parameters, state, state_cell=None):
        if g.dtype(data) == np.float16:
            return _via_float32(g, self, (data, parameters, state, state_cell))
        h, d, dtype = self.state_size, self._dirs, g.dtype(data)
        gh = _RNN_GATES[self.mode] * h
        piece = lambda start, size, shape: g.Reshape(
            g.Slice(parameters, g.int64s([start]), g.int64s([start + size]), g.int64s([0])), g.int64s(shape))
        seq, batch, size = g.shape(data)
        weights = [(piece(wx, gh * width, [gh, width]), piece(wh, gh * h, [gh, h]), piece(bx, gh, [gh]),
                    piece(bh, gh, [gh])) for wx, width, wh, bx, bh in self._layout(size)[0]]
        # ORT's CPU LSTM/GRU/RNN kernels are float32 only and have no gradient: otherwise the unrolled cell
        layer_run = self._onnx_layer if not g.is_train and dtype == np.float32 else self._unrolled
        x, hy, cy = data, [], []
        for layer in range(self.num_layers):
            if layer and self.p > 0 and g.train_mode:
                # the mask output, not Dropout's values: onnxruntime 1.2x+ removes a Dropout whose mask is unread
                keep = g.Dropout(x, g.scalar(self.p, dtype), g.const(np.array(True)), _outputs=2)[1]
                x = g.Mul(x, g.Mul(g.cast(keep, dtype), g.scalar(1 / (1 - self.p) if self.p < 1 else 0, dtype)))
            dims = (seq, batch, size if layer == 0 else d * h, dtype)
            x, hs, cs = layer_run(g, x, dims, weights[layer * d:(layer + 1) * d], state, state_cell, layer * d)
            hy += hs
            cy += cs
        if not self.state_outputs:
            return x
        stack = lambda values: values[0] if len(values) == 1 else g.Concat(*values, axis=0)
        return (x, stack(hy), stack(cy)) if self.mode == "lstm" else (x, stack(hy))

    @staticmethod
    def _initial(g, state, index, count):
        return g.Slice(state, g.int64s([index]), g.int64s([index + count]), g.int64s([0]))

    def _onnx_layer(self, g, x, dims, weights, state, state_cell, index):
        """ONNX LSTM / GRU / RNN over one layer: ((T, N, D*H) output, [hy (D, N, H)], [cy])."""
        h, d = self.state_size, self._dirs
        order = g.int64s(np.concatenate([np.arange(k * h, (k + 1) * h) for k in _ONNX_GATES[self.mode]]))
        pick = lambda v: g.Gather(v, order, axis=0)
        stack = lambda values: g.Concat(*[g.Unsqueeze(v, g.int64s([0])) for v in values], axis=0)
        w = stack([pick(wx) for wx, _, _, _ in weights])
        r = stack([pick(wh) for _, wh, _, _ in weights])
        b = stack([g.Concat(pick(bx), pick(bh), axis=0) for _, _, bx, bh in weights])
        h0 = self._initial(g, state, index, d)
        attrs = dict(hidden_size=h, direction="bidirectional" if d == 2 else "forward")
        if self.mode == "lstm":
            y, hn, cn = g.LSTM(x, w, r, b, None, h0, self._initial(g, state_cell, index, d), _outputs=3, **attrs)
        elif self.mode == "gru":
            (y, hn), cn = g.GRU(x, w, r, b, None, h0, linear_before_reset=1, _outputs=2, **attrs), None
        else:
            act = "Tanh" if self.mode == "rnn_tanh" else "Relu"
            (y, hn), cn = g.RNN(x, w, r, b, None, h0, activations=[act] * d, _outputs=2, **attrs), None
        t, n = dims[:2]
        out = g.Reshape(g.Transpose(y, perm=[0, 2, 1, 3]), g.int64s([t, n, d * h]))
        return out, [hn], [cn] if cn else []

    def _unrolled(self, g, x, dims, weights, state, state_cell, index):
        """The cell unrolled over the static sequence length (Gemm, Slice, Sigmoid, Tanh): ((T, N, D*H) output,
        [hy (1, N, H) per direction], [cy ...])."""
        t, n, size, dtype = dims
        h = self.state_size
        gh = _RNN_GATES[self.mode] * h
        gate = lambda v, k: g.Slice(v, g.int64s([k * h]), g.int64s([(k + 1) * h]), g.int64s([1]))
        one = g.scalar(1, dtype)
        outputs, hy, cy = [], [], []
        for direction, (wx, wh, bx, bh) in enumerate(weights):
            xw = g.Reshape(g.Gemm(g.Reshape(x, g.int64s([t * n, size])), wx, bx, transB=1), g.int64s([t, n, gh]))
            hid = g.Reshape(self._initial(g, state, index + direction, 1), g.int64s([n, h]))
            cell = g.Reshape(self._initial(g, state_cell, index + direction, 1), g.int64s([n, h])) \
                if self.mode == "lstm" else None
            steps = [None] * t
            for step in (range(t) if direction == 0 else reversed(range(t))):
                gx = g.Reshape(g.Slice(xw, g.int64s([step]), g.int64s([step + 1]), g.int64s([0])), g.int64s([n, gh]))
                hx = g.Gemm(hid, wh, bh, transB=1)
                if self.mode == "lstm":
                    s = g.Add(gx, hx)
                    i, f, c, o = g.Sigmoid(gate(s, 0)), g.Sigmoid(gate(s, 1)), g.Tanh(gate(s, 2)), g.Sigmoid(gate(s, 3))
                    cell = g.Add(g.Mul(f, cell), g.Mul(i, c))
                    hid = g.Mul(o, g.Tanh(cell))
                elif self.mode == "gru":
                    r = g.Sigmoid(g.Add(gate(gx, 0), gate(hx, 0)))
                    z = g.Sigmoid(g.Add(gate(gx, 1), gate(hx, 1)))
                    cand = g.Tanh(g.Add(gate(gx, 2), g.Mul(r, gate(hx, 2))))
                    hid = g.Add(g.Mul(g.Sub(one, z), cand), g.Mul(z, hid))
                else:
                    s = g.Add(gx, hx)
                    hid = g.Tanh(s) if self.mode == "rnn_tanh" else g.Relu(s)
                steps[step] = g.Unsqueeze(hid, g.int64s([0]))
            outputs.append(g.Concat(*steps, axis=0) if t > 1 else steps[0])
            hy.append(steps[-1 if direction == 0 else 0])
            if cell is not None:
                cy.append(g.Unsqueeze(cell, g.int64s([0])))
        return (outputs[0] if len(outputs) == 1 else g.Concat(*outputs, axis=2)), hy, cy


# ---------------------------------------------------------------- AMP
_AMP_FLOATS = (np.dtype(np.float32), np.dtype(np.float16))


@register
class amp_multicast(OpDef):
    """out_i = data_i cast to the widest (cast_narrow: narrowest) float type among the float32/float16 inputs;
    other dtypes pass unchanged. Without a float32 input the first input's dtype is the target (even float64), as
    in MXNet's AMPMultiCastType (src/operator/tensor/amp_cast.h)."""
    num_outputs: int = param(min=1, doc="Number of input/output pairs to be casted to the widest type.")
    cast_narrow: bool = param(False, doc="Whether to cast to the narrowest type.")

    def input_names(self):
        return tuple("data_%d" % i for i in range(self.num_outputs))

    def output_names(self):
        return tuple("output%d" % i for i in range(self.num_outputs))

    @partial_rule
    def infer_shape(self, *shapes, out_shapes=None):
        # MXNet's AMPMultiCastShape: input i and output i share one shape, merged both ways
        merged = [merge(a, b) for a, b in zip(shapes, out_shapes or [None] * len(shapes))]
        return merged, merged

    def _target(self, types):
        types = [np.dtype(t) for t in types]
        target = np.dtype(np.float32) if self.cast_narrow else types[0]
        for t in types:
            if t == (np.float16 if self.cast_narrow else np.float32):
                target = t
        return target

    def infer_type(self, *types):
        # partial as MXNet's AMPMultiCastType: without cast_narrow the target is the first input's dtype (unknown
        # when it is) unless some input is float32; each known float input's output gets it (amp.convert_symbol's
        # dtype inference relies on this)
        if all(t is None for t in types):
            return None
        target = self._target([t for t in types if t is not None]) if types[0] is not None or self.cast_narrow \
            else (np.dtype(np.float32) if any(t is not None and np.dtype(t) == np.float32 for t in types) else None)
        outs = [None if t is None else (target if np.dtype(t) in _AMP_FLOATS else np.dtype(t)) for t in types]
        return list(types), outs

    def lower(self, g, *inputs):
        target = self._target([g.dtype(v) for v in inputs])
        return tuple(g.cast(v, target) if g.dtype(v) in _AMP_FLOATS and g.dtype(v) != target else g.Identity(v)
                     for v in inputs)
