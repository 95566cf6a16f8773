"""Loss heads: SoftmaxOutput, the regression outputs, MakeLoss and SVMOutput.

Their backward is not the derivative of their forward: MXNet defines it directly and ignores head gradients.
Forward: SoftmaxOutput is a softmax, LogisticRegressionOutput a sigmoid, the others pass data through. Backward:
`head_gradients` writes MXNet's formula as graph values; the training graph turns them into gradients.
"""
import math

import numpy as np

from .._shapes import is_complete, partial_rule, same_shape_rule
from ..base import MXNetError
from .params import param
from .registry import OpDef, register


def _scale(value, *counts):
    """A float parameter divided by integer counts as MXNet's loss kernels compute it: in float32
    (``param.grad_scale / num_output``), the result cast to the data's dtype by the caller."""
    value = np.float32(value)
    for count in counts:
        value = np.float32(value / np.float32(count))
    return value


@register
class SoftmaxOutput(OpDef):
    """Softmax over the (N, -1) view (multi_output: axis 1; preserve_shape: last axis), trained with
    cross-entropy against `label`. Mirrors MXNet src/operator/softmax_output-inl.h."""
    aliases = ("Softmax",)
    is_loss = True
    float_only = True       # MXNet 1.9.1 on int32 data: "This operation only support floating point types"
    inputs = ("data", "label")
    grad_scale: float = param(1.0, doc="Scales the gradient by a float factor.")
    ignore_label: float = param(-1.0, doc="The instances whose labels == ignore_label will be ignored.")
    multi_output: bool = param(False, doc="Softmax along axis 1 for (N, C, ...) data.")
    use_ignore: bool = param(False, doc="Whether to ignore instances whose label == ignore_label.")
    preserve_shape: bool = param(False, doc="Softmax along the last axis.")
    normalization: str = param("null", choices=("batch", "null", "valid"), doc="Normalizes the gradient.")
    out_grad: bool = param(False, doc="Multiplies the gradient with the output gradient.")
    smooth_alpha: float = param(0.0, min=0, max=1, doc="Label smoothing constant.")

    def label_shapes(self, data):
        """The label shapes MXNet accepts for `data` (the first is the one it infers)."""
        if self.multi_output:       # MXNet infers (N, size / N / C) and also takes (N, *rest) and (N, 1, *rest)
            rest = tuple(data[2:])
            return [(data[0], int(math.prod(rest))), (data[0],) + rest, (data[0], 1) + rest, tuple(data)]
        return [tuple(data[:-1]), tuple(data)]

    @partial_rule
    def infer_shape(self, data, label, out_shapes=None):
        # forwards only, as MXNet's SoftmaxOutputShape; with unknown dimensions in data, the label gets data's
        # shape without the last axis (unknown ones included), or data's shape itself when it has data's rank
        if data is None:
            return None
        if is_complete(data) and (label is None or is_complete(label)):
            accepted = self.label_shapes(data)
            if label is not None and tuple(label) not in accepted:
                raise MXNetError("SoftmaxOutput: label shape %s does not match data shape %s (expected %s)"
                                 % (tuple(label), tuple(data), " or ".join(map(str, accepted))))
            return [data, label or accepted[0]], [data]
        if self.multi_output:
            return [data, label], [data]
        if label is not None and len(label) == len(data):
            return [data, data], [data]
        return [data, tuple(data[:-1])], [data]

    def infer_type(self, data, label):
        if data is None:
            return None
        if label is not None and np.dtype(label) != np.dtype(data):
            # MXNet 1.9.1 SoftmaxOutputType: "This layer requires uniform type. Expected 'float32' v.s. given
            # 'int32' at 'label'" (Module copies integer labels into arrays of data's dtype: NDArrayIter does)
            raise MXNetError("input 'label' is %s, but SoftmaxOutput takes a label of data's dtype (%s); cast it "
                             "first (astype('%s'))" % (np.dtype(label).name, np.dtype(data).name,
                                                      np.dtype(data).name))
        return [data, data], [data]

    def lower(self, g, data, label):
        shape = g.shape(data)
        if self.multi_output:
            out = g.Softmax(data, axis=1)
        elif self.preserve_shape or len(shape) == 2:
            out = g.Softmax(data, axis=-1)
        else:
            out = g.Reshape(g.Softmax(g.Flatten(data, axis=1), axis=-1), g.int64s(shape))
        if g.is_train and self.out_grad:
            # out_grad=True multiplies MXNet's gradient by the head gradient: out keeps its value and passes
            # head_grad * gradient back to data (x - stop(x) is 0 with derivative 1).
            g.set_info(out, shape, g.dtype(data))
            grad = g.stop_gradient(self._gradient(g, data, label, out), g.dtype(data))
            return g.Add(g.stop_gradient(out), g.Mul(g.Sub(data, g.stop_gradient(data)), grad))
        return out

    def head_gradients(self, g, inputs, outputs):
        if self.out_grad:
            return None
        data, label = inputs
        return [self._gradient(g, data, label, outputs[0]), None]

    def _gradient(self, g, data, label, out):
        """(softmax - target) * grad_scale / normalization, zero where label == ignore_label (use_ignore)."""
        shape, dtype = g.shape(data), g.dtype(data)
        if tuple(g.shape(label)) == tuple(shape):            # probabilities as labels
            return g.Mul(g.Sub(out, label), g.scalar(_scale(self.grad_scale), dtype))
        n = shape[0]
        if self.multi_output:
            k = shape[1]
            view, label_view, axis = (n, k, int(math.prod(shape)) // n // k), (n, -1), 1
        else:
            k = shape[-1] if self.preserve_shape else int(math.prod(shape)) // n
            view, label_view, axis = (int(math.prod(shape)) // k, k), (-1,), 1
        probs = g.Reshape(out, g.int64s(view))
        labels = g.Reshape(label, g.int64s(label_view))
        index = g.cast(g.Clip(labels, g.scalar(0, dtype), g.scalar(k - 1, dtype)), np.int64)
        target = g.OneHot(index, g.int64s([k]), g.const(np.array([0, 1], dtype)), axis=axis)
        grad = g.Sub(probs, target)
        if self.smooth_alpha:       # SmoothSoftmaxGrad: (p - 1) + alpha at the label, p - alpha/(k-1) elsewhere
            alpha = np.float32(self.smooth_alpha)
            grad = g.Sub(g.Add(grad, g.Mul(target, g.scalar(alpha, dtype))),
                         g.Mul(g.Sub(g.scalar(1, dtype), target), g.scalar(_scale(alpha, k - 1), dtype)))
        # labels and ignore_label compare as ints (static_cast<int>)
        valid = g.cast(g.Not(g.Equal(g.cast(labels, np.int64), g.int64s(int(np.float32(self.ignore_label))))),
                       dtype)
        if self.use_ignore:
            grad = g.Mul(grad, g.Unsqueeze(valid, g.int64s([axis])))
        spatial = () if not self.multi_output or self.normalization == "valid" else (view[2],)
        if self.normalization == "batch":
            scale = g.scalar(_scale(self.grad_scale, *spatial, n if self.multi_output else view[0]), dtype)
        elif self.normalization == "valid":
            count = g.Max(g.ReduceSum(valid, keepdims=0), g.scalar(1, dtype))
            scale = g.cast(g.Div(g.scalar(_scale(self.grad_scale), np.float32), g.cast(count, np.float32)), dtype)
        else:
            scale = g.scalar(_scale(self.grad_scale, *spatial), dtype)
        return g.Reshape(g.Mul(grad, scale), g.int64s(shape))


class _Regression(OpDef):
    is_loss = True
    inputs = ("data", "label")
    strict_attrs = False    # MXNet 1.9.1 stores unknown keywords of the regression outputs (no parser at creation)

    def infer_shape(self, data, label):
        # complete shapes only: MXNet's RegressionOpShape decides nothing from a partial data shape
        if data is None:
            return None
        default = (data[0],) if len(data) == 2 and data[1] == 1 else tuple(data)
        if label is not None and (label[0] != data[0] or math.prod(label) != math.prod(data)):
            raise MXNetError("%s: label shape %s is inconsistent with data shape %s (expected %s)"
                             % (self.op_name, tuple(label), tuple(data), default))
        return [data, label or default], [data]

    def lower(self, g, data, label):
        return g.Identity(data)

    def head_gradients(self, g, inputs, outputs):
        data, label = inputs
        shape, dtype = g.shape(data), g.dtype(data)
        num_output = int(math.prod(g.shape(label))) // g.shape(label)[0]
        diff = g.Sub(outputs[0], g.Reshape(label, g.int64s(shape)))
        return [g.Mul(self._backward(g, diff), g.scalar(_scale(self.grad_scale, num_output), dtype)), None]

    @staticmethod
    def _backward(g, diff):
        return diff


@register
class LinearRegressionOutput(_Regression):
    """Identity forward; backward grad_scale/num_output * (out - label). MXNet regression_output-inl.h."""
    grad_scale: float = param(1.0, doc="Scale the gradient by a float factor.")


@register
class MAERegressionOutput(_Regression):
    """Identity forward; backward grad_scale/num_output * sign(out - label)."""
    grad_scale: float = param(1.0, doc="Scale the gradient by a float factor.")

    @staticmethod
    def _backward(g, diff):
        return g.Sign(diff)


@register
class LogisticRegressionOutput(_Regression):
    """Sigmoid forward; backward grad_scale/num_output * (sigmoid(x) - label)."""
    grad_scale: float = param(1.0, doc="Scale the gradient by a float factor.")

    def lower(self, g, data, label):
        return g.Sigmoid(data)


@register
class MakeLoss(OpDef):
    """Identity forward; its gradient is grad_scale (÷ batch or ÷ valid count). MXNet make_loss-inl.h."""
    aliases = ("make_loss",)
    is_loss = True
    grad_scale: float = param(1.0, doc="Gradient scale as a supplement to unary and binary operators.")
    valid_thresh: float = param(0.0, doc="Clip each element in the array to 0 when it is less than this.")
    normalization: str = param("null", choices=("batch", "null", "valid"), doc="How the gradient is normalized.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.Identity(data)

    def head_gradients(self, g, inputs, outputs):
        data, = inputs
        shape, dtype = g.shape(data), g.dtype(data)
        if self.normalization == "batch":   # ÷ the rows of the data flattened to 2-D: all axes but the last
            return [g.Expand(g.scalar(_scale(self.grad_scale, math.prod(shape[:-1])), dtype), g.int64s(shape))]
        ones = g.Expand(g.scalar(_scale(self.grad_scale), dtype), g.int64s(shape))
        if self.normalization == "valid":
            valid = g.cast(g.Greater(data, g.scalar(np.float32(self.valid_thresh), dtype)), dtype)
            return [g.Div(ones, g.Max(g.ReduceSum(valid, keepdims=0), g.scalar(1, dtype)))]
        return [ones]


@register
class SVMOutput(OpDef):
    """Identity forward; hinge-loss backward. MXNet svm_output-inl.h."""
    is_loss = True
    inputs = ("data", "label")
    margin: float = param(1.0, doc="The loss function penalizes outputs that lie outside this margin.")
    regularization_coefficient: float = param(1.0, doc="Regularization parameter for the SVM.")
    use_linear: bool = param(False, doc="Whether to use L1-SVM (linear) instead of L2-SVM.")

    def infer_shape(self, data, label):
        if data is None:
            return None
        return [data, label or tuple(data[:1])], [data]

    def infer_type(self, data, label):
        if data is None:
            return None
        return [data, label or data], [data]

    def lower(self, g, data, label):
        return g.Identity(data)

    def head_gradients(self, g, inputs, outputs):
        """L1: -c*[margin > x_y] at the label, c*[margin > -x_j] elsewhere; L2: -2c*max(margin - x_y, 0) at the
        label, 2c*max(margin + x_j, 0) elsewhere (MXNet svm_output.cc)."""
        data, label = inputs
        shape, dtype = g.shape(data), g.dtype(data)
        k = shape[1]
        index = g.cast(g.Clip(g.Reshape(label, g.int64s([-1])), g.scalar(0, dtype), g.scalar(k - 1, dtype)),
                       np.int64)
        onehot = g.OneHot(index, g.int64s([k]), g.const(np.array([0, 1], dtype)), axis=1)
        sign = g.Sub(g.scalar(1, dtype), g.Mul(onehot, g.scalar(2, dtype)))       # -1 at the label, +1 elsewhere
        slack = g.Relu(g.Add(g.scalar(np.float32(self.margin), dtype), g.Mul(sign, data)))   # margin -x_y|+x_j
        if self.use_linear:
            magnitude = g.cast(g.Greater(slack, g.scalar(0, dtype)), dtype)
        else:
            magnitude = g.Mul(slack, g.scalar(2, dtype))
        return [g.Mul(g.Mul(sign, magnitude), g.scalar(np.float32(self.regularization_coefficient), dtype)), None]


@register
class smooth_l1(OpDef):
    """0.5 (scalar * x)^2 where |x| < 1 / scalar^2, else |x| - 0.5 / scalar^2 (MXNet smooth_l1, the Fast R-CNN
    loss); its gradient scalar^2 x, or sign(x)."""
    scalar: float = param(1.0, doc="sigma: the quadratic region is |x| < 1 / sigma^2.")
    infer_shape = same_shape_rule
    float_only = True

    def lower(self, g, data):
        dtype = g.dtype(data)
        s2 = self.scalar * self.scalar
        quadratic = g.Mul(g.scalar(0.5 * s2, dtype), g.Mul(data, data))
        linear = g.Sub(g.Abs(data), g.scalar(0.5 / s2, dtype))
        return g.Where(g.Less(g.Abs(data), g.scalar(1.0 / s2, dtype)), quadratic, linear)


@register
class softmax_cross_entropy(OpDef):
    """sum over the batch of -log softmax(data)[i, label[i]]: output shape (1,); data (N, C), label (N,) of data's
    dtype (MXNet loss_binary_op). The gradient of data is softmax - one_hot(label); label takes none."""
    inputs = ("data", "label")

    def infer_shape(self, data, label):
        if data is None:
            return None
        if len(data) != 2:
            raise MXNetError("softmax_cross_entropy: data must be 2-D (batch, classes), got shape %s" % (data,))
        if label is not None and (len(label) != 1 or label[0] not in (0, data[0])):
            raise MXNetError("softmax_cross_entropy: label must have shape (%d,), got %s" % (data[0], label))
        return [data, (data[0],)], [(1,)]

    def infer_type(self, data, label):
        if data is None:
            return None
        if label is not None and np.dtype(label) != np.dtype(data):
            raise MXNetError("softmax_cross_entropy: label must have data's dtype %s, got %s"
                             % (np.dtype(data), np.dtype(label)))
        return [data, data], [data]

    def lower(self, g, data, label):
        index = g.Unsqueeze(g.stop_gradient(g.cast(label, np.int64), np.int64), g.int64s([1]))
        picked = g.GatherElements(g.LogSoftmax(data, axis=1), index, axis=1)
        return g.Neg(g.Reshape(g.ReduceSum(picked, keepdims=0), g.int64s([1])))
