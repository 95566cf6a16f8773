"""Reductions, softmax family and normalization layers: sum/mean/max/min/prod/nansum/nanprod, norm, softmax,
log_softmax, softmin, SoftmaxActivation, BatchNorm (+ _contrib_SyncBatchNorm), Dropout, L2Normalization, LRN,
InstanceNorm, LayerNorm, GroupNorm.

MXNet 1.9.1 semantics. Lowerings avoid ops without an onnxruntime-training gradient where an exact arithmetic
form exists (BatchNormalization, InstanceNormalization, ReduceL2, LpNormalization). ReduceMax/Min/Prod get MXNet's
gradients through g.with_gradient, and LRN is decomposed into differentiable ops in training graphs.
"""
import dataclasses
from typing import Optional

import numpy as np

from .._shapes import is_complete, partial_rule, same_shape_rule
from ..base import MXNetError
from ..lower.builder import onnx_dtype
from .params import Dtype, Shape, param
from .registry import OpDef, register

__all__ = ["reduce_axes", "any_nan"]


def _axis(op, axis, ndim, what="axis"):
    """`axis` made non-negative; MXNetError when it is outside [-ndim, ndim)."""
    real = axis + ndim if axis < 0 else axis
    if not 0 <= real < ndim:
        raise MXNetError("%s: %s %d is out of range for data with %d dimensions" % (op.op_name, what, axis, ndim))
    return real


def _param_shape(ndim, axis, size):
    """(1, .., size, .., 1): a per-channel vector reshaped to broadcast along `axis`."""
    shape = [1] * ndim
    shape[axis] = size
    return shape


def _broadcast(g, vector, shape, axis, cast_to=None):
    """Reshape a (shape[axis],) parameter to broadcast along `axis` of a tensor of `shape`; Cast if asked."""
    out = g.Reshape(vector, g.int64s(_param_shape(len(shape), axis, shape[axis])))
    return out if cast_to is None else g.cast(out, cast_to)


def _expand(g, value, dtype, shape):
    """A constant broadcast to the full `shape` (Where branches are expanded: ORT's Where gradient needs it)."""
    return g.Expand(g.scalar(value, dtype), g.int64s(shape))


def _reduce(g, x, shape, onnx_type, axes, keepdims, out_shape, derivative=None):
    """Reduce*(x) (x of `shape`) over `axes`, reshaped to MXNet's output shape (legacy (1,) for a full
    reduction). `derivative(g, x, y, axes)`: d y / d x (x-shaped, y the keepdims reduction) for Reduce ops that
    have no onnxruntime-training gradient; training graphs reduce with keepdims and attach it (g.with_gradient).
    Infinite and NaN entries get no gradient there: with_gradient's x - x would turn the output into NaN."""
    if not axes:
        return g.Identity(x)
    if derivative is not None and g.is_train:
        keepdims, y = True, getattr(g, onnx_type)(x, axes=list(axes), keepdims=1)
        y = g.with_gradient(y, lambda: [(_finite(g, x, shape), _finite(g, derivative(g, x, y, axes), shape))],
                            reduce_axes=axes)
    elif onnx_type == "ReduceSum":      # axes is an input from opset 13; the other Reduce* take an attribute at 17
        y = g.ReduceSum(x, g.int64s(axes), keepdims=int(keepdims))
    else:
        y = getattr(g, onnx_type)(x, axes=list(axes), keepdims=int(keepdims))
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    return y if kept == tuple(out_shape) else g.Reshape(y, g.int64s(list(out_shape)))


def _statistics(g, dtype, *values):
    """The mean/std outputs of the normalization layers: MXNet's backward ignores their head gradients
    (checked against mxnet 1.9.1 for BatchNorm, LayerNorm and GroupNorm), so no gradient flows through them."""
    return tuple(g.stop_gradient(v, dtype) for v in values)


def _finite(g, x, shape):
    """x (of `shape`) with its infinite and NaN entries replaced by 0 (x - x is 0 only for finite x)."""
    dtype = g.dtype(x)
    out = g.Where(g.Equal(g.Sub(x, x), g.scalar(0, dtype)), x, _expand(g, 0, dtype, shape))
    g.set_info(out, shape, dtype)
    return out


def _moments(g, x, axes):
    """(mean, x - mean, biased variance) over `axes`, all with keepdims."""
    mean = g.ReduceMean(x, axes=list(axes), keepdims=1)
    centered = g.Sub(x, mean)
    return mean, centered, g.ReduceMean(g.Mul(centered, centered), axes=list(axes), keepdims=1)


def reduce_axes(op, shape, axis, keepdims, exclude=False):
    """(reduced axes, output shape) as MXNet 1.x ReduceAxesShapeImpl: no axis or () reduces everything into
    shape (1,) (or all ones with keepdims); `exclude` reduces the axes not listed."""
    ndim = len(shape)
    if not axis:
        return tuple(range(ndim)), (1,) * ndim if keepdims else (1,)
    axes = sorted(a + ndim if a < 0 else a for a in axis)
    if len(set(axes)) != len(axes):
        raise MXNetError("%s: reduction axes have duplicates %s" % (op.op_name, tuple(axis)))
    if axes[0] < 0 or axes[-1] >= ndim:
        raise MXNetError("%s: reduction axis %s exceeds input dimensions %s"
                         % (op.op_name, axes[-1] if axes[-1] >= ndim else axes[0] - ndim, tuple(shape)))
    reduced = tuple(i for i in range(ndim) if (i in axes) != exclude)
    if keepdims:
        return reduced, tuple(1 if i in reduced else d for i, d in enumerate(shape))
    return reduced, tuple(d for i, d in enumerate(shape) if i not in reduced) or (1,)


# ---------------------------------------------------------------- sum, mean, max, min, prod, nansum, nanprod
def _extremum_derivative(g, x, y, axes):
    """d max / d x = (x == max): MXNet gives every tied position the full head gradient
    (ReduceAxesBackwardUseInOut with mshadow_op::eq)."""
    out = g.cast(g.Equal(x, y), g.dtype(x))
    g.set_info(out, g.shape(x), g.dtype(x))
    return out


def _prod_derivative(g, x, y, axes):
    """d prod / d x = prod / x (MXNet's mshadow_op::div). Where x == 0 MXNet's 0/0 is NaN, which would also
    poison the forward value (with_gradient multiplies by the derivative); there the exact derivative is used:
    the product of the other entries (0 when the slice holds another zero)."""
    shape, dtype = g.shape(x), g.dtype(x)
    zero = g.Equal(x, g.scalar(0, dtype))
    nonzero = g.Where(zero, _expand(g, 1, dtype, shape), x)
    zeros = g.ReduceSum(g.cast(zero, dtype), g.int64s(axes), keepdims=1)
    others = g.Where(g.Equal(zeros, g.scalar(1, dtype)), g.ReduceProd(nonzero, axes=list(axes), keepdims=1),
                     g.scalar(0, dtype))
    out = g.Where(zero, g.Expand(others, g.int64s(shape)), g.Div(y, nonzero))
    g.set_info(out, shape, dtype)
    return out


@dataclasses.dataclass(frozen=True)
class _Reduce(OpDef):
    """reduce(data) over `axis` (MXNet broadcast_reduce_op_value.cc)."""
    axis: Optional[Shape] = param(None, doc="The axis or axes along which to reduce; None or () = all axes.")
    keepdims: bool = param(False, doc="Keep the reduced axes as dimensions of size one.")
    exclude: bool = param(False, doc="Reduce over the axes that are NOT in axis instead.")
    _onnx = ""
    _nan_fill = None            # nansum/nanprod: NaN counts as this value
    _derivative = None          # d reduce / d x for Reduce ops without an ORT gradient
    _needs_complete = False     # max/min: MXNet's ReduceMinMaxAxesShape decides nothing from a partial shape

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        # MXNet's ReduceAxesShape: the kept dimensions pass through, known or not; forwards only
        if data is None or (self._needs_complete and not is_complete(data)):
            return None
        return [data], [reduce_axes(self, data, self.axis, self.keepdims, self.exclude)[1]]

    def lower(self, g, data):
        shape, dtype = g.shape(data), g.dtype(data)
        axes, out = reduce_axes(self, shape, self.axis, self.keepdims, self.exclude)
        if self._derivative is _extremum_derivative and any(shape[a] == 0 for a in axes):
            # (zero-size arrays exist under NumPy shape semantics) a max/min of nothing has no value
            raise MXNetError("%s: cannot reduce over a zero-size axis of data with shape %s (no identity)"
                             % (self.op_name, tuple(shape)))
        x = data
        if self._nan_fill is not None and np.issubdtype(dtype, np.floating):
            x = g.Where(g.IsNaN(data), _expand(g, self._nan_fill, dtype, shape), data)
            g.set_info(x, shape, dtype)
        # nanprod: NaN entries become 1 before the derivative, so they get no gradient (MXNet nanprod_grad).
        y = _reduce(g, x, shape, self._onnx, axes, self.keepdims, out, self._derivative)
        if self._derivative is _extremum_derivative and np.issubdtype(dtype, np.floating):
            # ORT's ReduceMax/Min skip NaN; MXNet's max/min (and numpy's) are NaN where the slice holds one
            y = g.Where(any_nan(g, data, axes, self.keepdims, out), g.scalar(np.nan, dtype), y)
        return y


def any_nan(g, data, axes, keepdims, out_shape):
    """Whether each slice of `data` over `axes` holds a NaN (bool, of the reduction's MXNet output shape)."""
    flags = g.Cast(g.IsNaN(data), to=onnx_dtype(np.int32))
    return g.Cast(_reduce(g, flags, g.shape(data), "ReduceMax", axes, keepdims, out_shape), to=onnx_dtype(np.bool_))


_REDUCTIONS = {  # name: (ONNX op, NaN replacement, derivative without an ORT gradient, aliases)
    "sum": ("ReduceSum", None, None, ("sum_axis",)),
    "mean": ("ReduceMean", None, None, ()),
    "max": ("ReduceMax", None, _extremum_derivative, ("max_axis",)),
    "min": ("ReduceMin", None, _extremum_derivative, ("min_axis",)),
    "prod": ("ReduceProd", None, _prod_derivative, ()),
    "nansum": ("ReduceSum", 0.0, None, ()),
    "nanprod": ("ReduceProd", 1.0, _prod_derivative, ()),
}
for _name, (_onnx_op, _fill, _derivative, _aliases) in _REDUCTIONS.items():
    register(type(_name, (_Reduce,), {
        "__module__": __name__, "aliases": _aliases, "fluent": (_name,), "_onnx": _onnx_op, "_nan_fill": _fill,
        "_derivative": staticmethod(_derivative) if _derivative else None, "_needs_complete": _name in ("max", "min"),
        "__doc__": "%s(data) over axis (%s; MXNet %s)." % (_name, _onnx_op, _name)}))
del _name, _onnx_op, _fill, _derivative, _aliases


@register
class norm(OpDef):
    """ord=2: sqrt(sum(x^2)); ord=1: sum(|x|) over axis (MXNet broadcast_reduce_norm_value.cc)."""
    fluent = ("norm",)
    ord: int = param(2, choices=(1, 2), doc="Order of the norm (1 or 2).")
    axis: Optional[Shape] = param(None, doc="The axis or axes along which to reduce; None or () = all axes.")
    out_dtype: Optional[Dtype] = param(None, choices=("float16", "float32", "float64", "int64", "int32", "int8"),
                                       doc="The data type of the output.")
    keepdims: bool = param(False, doc="Keep the reduced axes as dimensions of size one.")

    def infer_shape(self, data):
        if data is None:
            return None
        return [data], [reduce_axes(self, data, self.axis, self.keepdims)[1]]

    def infer_type(self, data):
        if data is None:
            return None
        return [data], [np.dtype(self.out_dtype) if self.out_dtype else data]

    def lower(self, g, data):
        shape = g.shape(data)
        axes, out = reduce_axes(self, shape, self.axis, self.keepdims)
        # ReduceSum of squares + Sqrt, not ReduceL2: ORT's ReduceL2 gradient breaks with keepdims=0 at opset 17.
        if self.ord == 2:
            y = g.Sqrt(_reduce(g, g.Mul(data, data), shape, "ReduceSum", axes, self.keepdims, out))
        else:
            y = _reduce(g, g.Abs(data), shape, "ReduceSum", axes, self.keepdims, out)
        if self.out_dtype and np.dtype(self.out_dtype) != g.dtype(data):
            y = g.cast(y, self.out_dtype)
        return y


# ---------------------------------------------------------------- softmax family
@dataclasses.dataclass(frozen=True)
class _Softmax(OpDef):
    """Softmax along `axis` of data / temperature; with use_length, only the first length[i] entries of each
    row take part and the rest are 0 (MXNet nn/softmax.cc)."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    axis: int = param(-1, doc="The axis along which to compute softmax.")
    temperature: Optional[float] = param(None, doc="Temperature parameter in softmax.")
    dtype: Optional[Dtype] = param(None, choices=("float16", "float32", "float64"),
                                   doc="Output dtype; defaults to the input's dtype.")
    use_length: Optional[bool] = param(False, doc="Whether to use the length input as a mask over the data input.")
    _onnx = "Softmax"
    _negate = False

    def input_names(self):
        return ("data", "length") if self.use_length else ("data",)

    @partial_rule
    def infer_shape(self, data, length=None, out_shapes=None):
        # MXNet's SoftmaxOpShape: data and output share one shape (both ways); length has data's shape without axis
        shapes = same_shape_rule(self, data, out_shapes=out_shapes[:1] if out_shapes else None)
        if shapes is None:
            return shapes
        data = shapes[0][0]
        axis = _axis(self, self.axis, len(data))     # MXNet checks it only when running the op
        if not self.use_length:
            return shapes
        return [data, tuple(d for i, d in enumerate(data) if i != axis) or (1,)], shapes[1]

    def infer_type(self, data, length=None):
        if data is None:
            return None
        out = np.dtype(self.dtype) if self.dtype else data
        if not self.use_length:
            return [data], [out]
        return [data, np.dtype(np.int32) if length is None else length], [out]   # MXNet takes int32/int64 lengths

    def lower(self, g, data, length=None):
        shape = g.shape(data)
        dtype = np.dtype(self.dtype) if self.dtype else g.dtype(data)
        axis = _axis(self, self.axis, len(shape))
        x = data if dtype == g.dtype(data) else g.cast(data, dtype)
        if self._negate:
            x = g.Neg(x)
        if self.temperature is not None and self.temperature != 1.0:
            x = g.Div(x, g.scalar(self.temperature, dtype))
        softmax = getattr(g, self._onnx)
        if length is None:
            return softmax(x, axis=axis)
        positions = g.const(np.arange(shape[axis], dtype=np.int64).reshape(_param_shape(len(shape), axis, -1)))
        limits = g.Reshape(g.cast(length, np.int64), g.int64s([1 if i == axis else d for i, d in enumerate(shape)]))
        mask = g.Less(positions, limits)            # full shape by broadcasting
        # Masked entries get the lowest finite value (not -inf) so an all-masked row stays finite; zeroed after.
        y = softmax(g.Where(mask, x, _expand(g, np.finfo(dtype).min, dtype, shape)), axis=axis)
        return g.Where(mask, y, _expand(g, 0, dtype, shape))


@register
class softmax(_Softmax):
    """exp(x/T) / sum(exp(x/T)) along axis (MXNet softmax)."""
    fluent = ("softmax",)


@register
class log_softmax(_Softmax):
    """log(softmax(x/T)) along axis (MXNet log_softmax)."""
    fluent = ("log_softmax",)
    _onnx = "LogSoftmax"


@register
class softmin(_Softmax):
    """softmax(-x/T) along axis (MXNet softmin)."""
    fluent = ("softmin",)
    _negate = True


@register
class SoftmaxActivation(OpDef):
    """instance: softmax over the last axis (MXNet flattens to (size / last, last) with FlatTo2D); channel:
    softmax over axis 1 (MXNet nn/softmax_activation-inl.h; checked against mxnet 1.9.1)."""
    mode: str = param("instance", choices=("instance", "channel"),
                      doc="instance: softmax per instance; channel: softmax across channels at each position.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.Softmax(data, axis=1 if self.mode == "channel" else -1)


# ---------------------------------------------------------------- batch normalization
@dataclasses.dataclass(frozen=True)
class _BatchNormBase(OpDef):
    """Inference: y = (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta along the channel axis, gamma = 1
    when fix_gamma. The hidden outputs are MXNet's inference values: mean = moving_mean and var =
    1/sqrt(moving_var + eps) (MXNet stores the inverse std there, apache/mxnet#9216)."""
    inputs = ("data", "gamma", "beta", "moving_mean", "moving_var")
    aux = ("moving_mean", "moving_var")
    _var_output = False
    _double_eps = False     # (BatchNorm: True)
    outputs = ("output", "mean", "var")
    eps: float = param(1e-3, doc="Epsilon to prevent div 0.")
    momentum: float = param(0.9, doc="Momentum for moving average.")
    fix_gamma: bool = param(True, doc="Fix gamma while training (gamma = 1).")
    use_global_stats: bool = param(False, doc="Use the moving statistics instead of the batch ones when training.")
    output_mean_var: bool = param(False, doc="Output the mean and var as well.")

    def channel_axis(self, ndim):
        return 1

    def num_visible_outputs(self):
        return 3 if self.output_mean_var else 1

    @partial_rule
    def infer_shape(self, data, *params, out_shapes=None):
        # forwards only, as MXNet's BatchNormShape; an unknown channel count leaves the parameters' unknown
        if data is None:
            return None
        channels = (data[self.channel_axis(len(data))],)
        return [data] + [channels] * 4, [data, channels, channels]

    def infer_type(self, data, *params):
        if data is None:
            return None
        # float16 data keeps gamma/beta/moving stats in float32 (MXNet BatchNormType); otherwise the data dtype.
        param_dtype = np.dtype(np.float32) if np.dtype(data) == np.float16 else data
        return [data] + [param_dtype] * 4, [data, param_dtype, param_dtype]

    def lower(self, g, data, gamma, beta, moving_mean, moving_var):
        if g.train_mode and not self.use_global_stats:
            return self._lower_train(g, data, gamma, beta, moving_mean, moving_var)
        shape, dtype, param_dtype = g.shape(data), g.dtype(data), g.dtype(moving_var)
        axis, cast_to = self.channel_axis(len(shape)), (dtype if dtype != param_dtype else None)
        eps = self._epsilon()
        inv_std = g.Reciprocal(g.Sqrt(g.Add(moving_var, g.scalar(eps, param_dtype))))
        if not g.is_train and axis == 1 and len(shape) >= 2 and cast_to is None and dtype != np.float16 and \
                (dtype == np.float32 or float(np.float32(eps)) == eps):
            # the standard node: what serving runtimes recognise (ORT folds it into the preceding Conv); its
            # epsilon attribute is a float32, so float64 data whose eps float32 cannot hold takes the formula
            ones = g.const(np.ones(shape[1], dtype))
            y = g.BatchNormalization(data, ones if self.fix_gamma else gamma, beta, moving_mean, moving_var,
                                     epsilon=float(eps))
            return y, moving_mean, inv_std
        scale = inv_std if self.fix_gamma else g.Mul(inv_std, gamma)
        centered = g.Sub(data, _broadcast(g, moving_mean, shape, axis, cast_to))
        y = g.Add(g.Mul(centered, _broadcast(g, scale, shape, axis, cast_to)),
                  _broadcast(g, beta, shape, axis, cast_to))
        return y, moving_mean, inv_std

    def _epsilon(self):
        """eps as the kernel sees it: BatchNorm's is a C++ double (exact); BatchNorm_v1's and SyncBatchNorm's are
        floats (float32 values)."""
        return self.eps if self._double_eps else float(np.float32(self.eps))

    def _lower_train(self, g, data, gamma, beta, moving_mean, moving_var):
        """Batch statistics (biased variance) over every axis but the channel one; the moving statistics become
        moving * momentum + batch * (1 - momentum) in the backward pass, as in MXNet (`update_aux`). The forward is
        MXNet's arithmetic; the gradient MXNet's formula (the exact derivative through the batch statistics, zero
        for gamma when fix_gamma), from a rule of its own (custom_vjp)."""
        shape, dtype, param_dtype = g.shape(data), g.dtype(data), g.dtype(moving_var)
        axis = self.channel_axis(len(shape))
        axes = [i for i in range(len(shape)) if i != axis]
        cast_to = dtype if dtype != param_dtype else None
        mean = g.ReduceMean(data, axes=axes, keepdims=1)
        centered = g.Sub(data, mean)
        var = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1)
        inv_std = g.Reciprocal(g.Sqrt(g.Add(var, g.scalar(self._epsilon(), dtype))))
        y = g.Mul(centered, inv_std)
        saved = [data, centered, inv_std, _broadcast(g, beta, shape, axis, cast_to)]
        if not self.fix_gamma:
            saved.append(_broadcast(g, gamma, shape, axis, cast_to))
            y = g.Mul(y, saved[-1])
        y = g.Add(y, saved[3])
        # differentiated as MXNet's backward does, from x - mean (autograd/vjp/nn.py): the backward pass then keeps
        # no normalized copy of the data (ResNet-18 training, batch 16: one activation less per BatchNorm)
        y = g.custom_vjp(y, saved, "batch_norm_train", axes)
        flat = [shape[axis]]
        batch_mean, batch_var = (g.Reshape(v, g.int64s(flat)) for v in (mean, var))
        if cast_to is not None:
            batch_mean, batch_var = g.cast(batch_mean, param_dtype), g.cast(batch_var, param_dtype)
        g.update_aux(moving_mean, batch_mean, momentum=self.momentum)
        g.update_aux(moving_var, batch_var, momentum=self.momentum)
        if self._var_output:
            return (y,) + _statistics(g, param_dtype, batch_mean, batch_var)
        inv_std = g.Reshape(inv_std, g.int64s(flat))
        if cast_to is not None:
            inv_std = g.cast(inv_std, param_dtype)
        return (y,) + _statistics(g, param_dtype, batch_mean, inv_std)


@register
class BatchNorm(_BatchNormBase):
    __doc__ = _BatchNormBase.__doc__ + " Mirrors MXNet src/operator/nn/batch_norm.cc."
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    _double_eps = True
    axis: int = param(1, doc="The channel axis.")
    cudnn_off: bool = param(False, doc="Do not select CUDNN operator, if available.")
    min_calib_range: Optional[float] = param(None, doc="Minimum calibration value (quantization only).")
    max_calib_range: Optional[float] = param(None, doc="Maximum calibration value (quantization only).")

    def channel_axis(self, ndim):
        real = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 <= real < ndim:
            raise MXNetError("BatchNorm: channel axis out of range: %d (data has %d dimensions)" % (self.axis, ndim))
        return real

    def input_attrs(self, input_name):
        # MXNet's FSetInputVarAttrOnCompose for inputs 3 and 4.
        return {"moving_mean": {"__init__": '["zero", {}]'}, "moving_var": {"__init__": '["one", {}]'}}.get(
            input_name, {})


@register
class BatchNorm_v1(_BatchNormBase):
    __doc__ = _BatchNormBase.__doc__ + (" MXNet's legacy BatchNorm_v1 (channel axis 1; its training statistics outputs "
                                        "are the batch mean and variance): src/operator/batch_norm_v1-inl.h.")
    float_only = True
    _var_output = True

    def input_attrs(self, input_name):
        return {"moving_mean": {"__init__": '["zero", {}]'}, "moving_var": {"__init__": '["one", {}]'}}.get(
            input_name, {})


@register(name="_contrib_SyncBatchNorm")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncBatchNorm(_BatchNormBase):
    __doc__ = _BatchNormBase.__doc__ + (" Channel axis 1; mirrors MXNet src/operator/contrib/sync_batch_norm-inl.h"
                                        " (the cross-device sync only matters when training).")
    ndev: int = param(1, doc="The count of GPU devices.")
    key: str = param(doc="Hash key for synchronization.")
    _var_output = True      # training: its third output is the batch variance (BatchNorm's: the inverse std)


# ---------------------------------------------------------------- dropout
@register
class Dropout(OpDef):
    """Inference: identity in mode 'training'; mode 'always' zeroes each element with probability p and scales
    the rest by 1/(1-p), the mask shared along `axes`. Mirrors MXNet src/operator/nn/dropout.cc; the hidden mask
    is MXNet 1.x's: the factor (0 or 1/(1-p)) per element, of data's shape with `axes` set to 1."""
    outputs = ("output", "mask")
    p: float = param(0.5, min=0, max=1, doc="Fraction of the input that gets dropped out during training time.")
    mode: str = param("training", choices=("training", "always"),
                      doc="'training': dropout only when training; 'always': also at inference.")
    axes: Shape = param((), doc="Axes along which the dropout mask is shared.")
    cudnn_off: Optional[bool] = param(False, doc="Whether to turn off cudnn in dropout operator.")

    def num_visible_outputs(self):
        return 1

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        # forwards only, as MXNet's Dropout shape function
        if data is None:
            return None
        mask = list(data)
        for axis in self.axes:
            mask[_axis(self, axis, len(data), "axes entry")] = 1
        return [data], [data, tuple(mask)]

    def lower(self, g, data):
        return self.dropout(g, data, training=g.train_mode or self.mode == "always")

    def dropout(self, g, data, training):
        """(output, mask) when dropping (training, or mode 'always'); (data, None) otherwise."""
        if not training or self.p == 0:
            return data, None
        shape, dtype = g.shape(data), g.dtype(data)
        if self.p >= 1:
            # ORT's Dropout refuses ratio 1; MXNet 1.9.1's mask is keep * 1/(1-p) = 0 * inf: NaN everywhere
            # (its test_dropout asserts the NaN output)
            mask = _expand(g, np.nan, dtype, self.infer_shape(tuple(shape))[1][1])
            return g.Mul(data, mask), mask
        ratio, on = g.scalar(self.p, dtype), g.const(np.array(True))
        # MXNet's keep scale, 1.0f / (1.0f - p): float32 arithmetic on its float p
        factor = g.scalar(np.float32(1) / (np.float32(1) - np.float32(self.p)), dtype)
        # The values come from the mask output: onnxruntime 1.2x+ removes a Dropout whose mask nobody reads, even
        # in training mode (then nothing is dropped).
        if not self.axes:
            _, keep = g.Dropout(data, ratio, on, _outputs=2)
            mask = g.Mul(g.cast(keep, dtype), factor)
            return g.Mul(data, mask), mask
        mask_shape = self.infer_shape(tuple(shape))[1][1]
        _, keep = g.Dropout(_expand(g, 1, dtype, mask_shape), ratio, on, _outputs=2)
        mask = g.Mul(g.cast(keep, dtype), factor)
        return g.Mul(data, mask), mask


# ---------------------------------------------------------------- other normalizations
# (L2Normalization's, InstanceNorm's, LayerNorm's and GroupNorm's eps is a C++ float in MXNet: float64 data sees
# float64(float32(eps)); BatchNorm's is a double)
@register
class L2Normalization(OpDef):
    """y = x / sqrt(sum(x^2) + eps) over all axes but 0 (instance), axis 1 (channel) or axes >= 2 (spatial).
    Mirrors MXNet src/operator/l2_normalization-inl.h (hidden output: the norm)."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    outputs = ("output", "norm")
    eps: float = param(1e-10, doc="A small constant for numerical stability.")
    mode: str = param("instance", choices=("instance", "channel", "spatial"),
                      doc="Specify the dimension along which to compute L2 norm.")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data):
        if data is None:
            return None
        if self.mode == "instance":
            return [data], [data, data[:1]]
        if len(data) < 3:
            raise MXNetError("L2Normalization: at least 3 dimensions required in %s mode, got data of shape %s"
                             % (self.mode, tuple(data)))
        if self.mode == "channel":
            return [data], [data, (data[0], 1) + tuple(data[2:])]
        return [data], [data, tuple(data[:2])]

    def lower(self, g, data):
        shape = g.shape(data)
        axes = {"instance": range(1, len(shape)), "channel": [1], "spatial": range(2, len(shape))}[self.mode]
        squares = g.Mul(data, data)
        total = g.ReduceSum(squares, g.int64s(list(axes)), keepdims=1) if len(axes) else squares
        norm = g.Sqrt(g.Add(total, g.scalar(np.float32(self.eps), g.dtype(data))))
        return g.Div(data, norm), g.Reshape(norm, g.int64s(list(self.infer_shape(tuple(shape))[1][1])))


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class LRN(OpDef):
    """y = x * (knorm + alpha/nsize * sum of x^2 over nsize neighbouring channels)^-beta (MXNet nn/lrn-inl.h).
    ONNX LRN divides alpha by size the same way; training graphs use a differentiable form of it (ORT has no LRN
    gradient): the channel-window mean of x^2 as an AveragePool over (N, 1, C, H*W) with zero padding."""
    float_only = True       # MXNet 1.9.1 on int32: "TBlob data type do not match"
    outputs = ("output", "tmp_norm")
    alpha: float = param(1e-4, doc="The variance scaling parameter alpha.")
    beta: float = param(0.75, doc="The power parameter beta.")
    knorm: float = param(2.0, doc="The parameter k.")
    nsize: int = param(min=1, doc="Normalization window width in elements (odd).")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data):
        if self.nsize % 2 != 1:
            raise MXNetError("LRN only supports odd values for nsize (local_size), got %d" % self.nsize)
        if data is None:
            return None
        if len(data) != 4:
            raise MXNetError("LRN: input data should be 4D in batch-num_filter-y-x, got shape %s" % (tuple(data),))
        return [data], [data, data]

    def lower(self, g, data):
        # the standard node, but for onnxruntime-training's builders (no LRN gradient): the window sum spelled out
        if not (g.is_train and g.gradients == "ort-training"):
            return g.LRN(data, size=self.nsize, alpha=self.alpha, beta=self.beta, bias=self.knorm), None
        (n, c, h, w), dtype, half = g.shape(data), g.dtype(data), self.nsize // 2
        squares = g.Reshape(g.Mul(data, data), g.int64s([n, 1, c, h * w]))
        window_mean = g.AveragePool(squares, kernel_shape=[self.nsize, 1], pads=[half, 0, half, 0],
                                    count_include_pad=1)
        scale = g.Add(g.scalar(self.knorm, dtype),
                      g.Mul(g.Reshape(window_mean, g.int64s([n, c, h, w])), g.scalar(self.alpha, dtype)))
        return g.Div(data, g.Pow(scale, g.scalar(self.beta, dtype))), None


@register
class InstanceNorm(OpDef):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, moments over the axes >= 2 of each (n, c)
    (MXNet src/operator/instance_norm-inl.h). ReduceMean arithmetic: ORT has no InstanceNormalization gradient."""
    float_only = True       # MXNet 1.9.1 on int32: "Unsupported data type 4"
    inputs = ("data", "gamma", "beta")
    outputs = ("output", "mean", "var")
    eps: float = param(1e-3, doc="An epsilon parameter to prevent division by 0.")

    def num_visible_outputs(self):
        return 1

    def infer_shape(self, data, gamma=None, beta=None):
        if data is None:
            return None
        if len(data) < 3:
            raise MXNetError("InstanceNorm only supports input tensors of rank >= 3, got shape %s" % (tuple(data),))
        channels, moments = (data[1],), tuple(data[:2])
        return [data, channels, channels], [data, moments, moments]

    def lower(self, g, data, gamma, beta):
        shape, dtype = g.shape(data), g.dtype(data)
        mean, centered, var = _moments(g, data, range(2, len(shape)))
        normed = g.Div(centered, g.Sqrt(g.Add(var, g.scalar(np.float32(self.eps), dtype))))
        y = g.Add(g.Mul(normed, _broadcast(g, gamma, shape, 1)), _broadcast(g, beta, shape, 1))
        moments = g.int64s(list(shape[:2]))
        return y, g.Reshape(mean, moments), g.Reshape(var, moments)


@register
class LayerNorm(OpDef):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta along `axis`; outputs mean and std = sqrt(var + eps) with
    the axis kept (MXNet src/operator/nn/layer_norm.cc)."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    inputs = ("data", "gamma", "beta")
    outputs = ("output", "mean", "std")
    axis: int = param(-1, doc="The axis to perform layer normalization.")
    eps: float = param(1e-5, doc="An epsilon parameter to prevent division by 0.")
    output_mean_var: bool = param(False, doc="Output the mean and std calculated along the given axis.")

    def num_visible_outputs(self):
        return 3 if self.output_mean_var else 1

    @partial_rule
    def infer_shape(self, data, gamma=None, beta=None, out_shapes=None):
        # forwards only, as MXNet's LayerNormShape
        if data is None:
            return None
        axis = _axis(self, self.axis, len(data))
        moments = tuple(1 if i == axis else d for i, d in enumerate(data))
        return [data, (data[axis],), (data[axis],)], [data, moments, moments]

    def lower(self, g, data, gamma, beta):
        shape, dtype = g.shape(data), g.dtype(data)
        axis = _axis(self, self.axis, len(shape))
        if axis == len(shape) - 1 and dtype == np.float32:
            # Declare all 3 outputs and pass the bias: ORT's LayerNormalization gradient needs both.
            y, mean, inv_std = g.LayerNormalization(data, gamma, beta, axis=-1, epsilon=self.eps, _outputs=3)
            if not self.output_mean_var:
                return y, None, None
            return (y,) + _statistics(g, dtype, mean, g.Reciprocal(inv_std))
        mean, centered, var = _moments(g, data, [axis])
        std = g.Sqrt(g.Add(var, g.scalar(np.float32(self.eps), dtype)))
        y = g.Add(g.Mul(g.Div(centered, std), _broadcast(g, gamma, shape, axis)), _broadcast(g, beta, shape, axis))
        return (y,) + _statistics(g, dtype, mean, std)


@register
class GroupNorm(OpDef):
    """Channels split into num_groups groups; y = (x - mean) / sqrt(var + eps) * gamma + beta per group, with
    gamma and beta of shape (num_groups,) as in MXNet 1.x (src/operator/nn/group_norm.cc)."""
    inputs = ("data", "gamma", "beta")
    outputs = ("output", "mean", "std")
    num_groups: int = param(1, min=1, doc="Total number of groups.")
    eps: float = param(1e-5, doc="An epsilon parameter to prevent division by 0.")
    output_mean_var: bool = param(False, doc="Output the mean and std calculated per group.")

    def num_visible_outputs(self):
        return 3 if self.output_mean_var else 1

    def infer_shape(self, data, gamma=None, beta=None):
        if data is None:
            return None
        if len(data) < 3:
            raise MXNetError("GroupNorm needs data of rank >= 3, got shape %s" % (tuple(data),))
        if data[1] % self.num_groups:
            raise MXNetError("GroupNorm: # of channels (%d) must be divisible by # of groups (%d)"
                             % (data[1], self.num_groups))
        groups, moments = (self.num_groups,), (data[0], self.num_groups)
        return [data, groups, groups], [data, moments, moments]

    def lower(self, g, data, gamma, beta):
        shape, dtype = g.shape(data), g.dtype(data)
        grouped = g.Reshape(data, g.int64s([shape[0], self.num_groups, -1]))
        mean, centered, var = _moments(g, grouped, [2])
        std = g.Sqrt(g.Add(var, g.scalar(np.float32(self.eps), dtype)))
        groups = (1, self.num_groups, 1)
        y = g.Add(g.Mul(g.Div(centered, std), _broadcast(g, gamma, groups, 1)), _broadcast(g, beta, groups, 1))
        moments = g.int64s([shape[0], self.num_groups])
        return (g.Reshape(y, g.int64s(list(shape))),) + _statistics(g, dtype, g.Reshape(mean, moments),
                                                                     g.Reshape(std, moments))
