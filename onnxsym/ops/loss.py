"""Loss heads: SoftmaxOutput, the regression outputs, MakeLoss and SVMOutput (forward behaviour).

Their backward is not the derivative of their forward (MXNet defines it directly and ignores head gradients);
the training side lives with the gradients. Forward: SoftmaxOutput is a softmax, LogisticRegressionOutput a
sigmoid, the others pass data through.
"""
import math

from ..base import MXNetError
from .params import param
from .registry import OpDef, register


@register
class SoftmaxOutput(OpDef):
    """Softmax over the (N, -1) view (multi_output: axis 1; preserve_shape: last axis), trained with
    cross-entropy against `label`. Mirrors MXNet src/operator/softmax_output-inl.h."""
    aliases = ("Softmax",)
    inputs = ("data", "label")
    grad_scale: float = param(1.0, doc="Scales the gradient by a float factor.")
    ignore_label: float = param(-1.0, doc="The instances whose labels == ignore_label will be ignored.")
    multi_output: bool = param(False, doc="Softmax along axis 1 for (N, C, ...) data.")
    use_ignore: bool = param(False, doc="Whether to ignore instances whose label == ignore_label.")
    preserve_shape: bool = param(False, doc="Softmax along the last axis.")
    normalization: str = param("null", choices=("batch", "null", "valid"), doc="Normalizes the gradient.")
    out_grad: bool = param(False, doc="Multiplies the gradient with the output gradient.")
    smooth_alpha: float = param(0.0, doc="Label smoothing constant.")

    def label_shapes(self, data):
        """The label shapes MXNet accepts for `data` (the first is the one it infers)."""
        if self.multi_output:
            rest = tuple(data[2:])
            return [(data[0],) + rest, (data[0], int(math.prod(rest)))]
        return [tuple(data[:-1]), tuple(data)]

    def infer_shape(self, data, label):
        if data is None:
            return None
        accepted = self.label_shapes(data)
        if label is not None and tuple(label) not in accepted:
            raise MXNetError("SoftmaxOutput: label shape %s does not match data shape %s (expected %s)"
                             % (tuple(label), tuple(data), " or ".join(map(str, accepted))))
        return [data, label or accepted[0]], [data]

    def infer_type(self, data, label):
        if data is None:
            return None
        return [data, label or data], [data]

    def lower(self, g, data, label):
        shape = g.shape(data)
        if self.multi_output:
            return g.Softmax(data, axis=1)
        if self.preserve_shape or len(shape) == 2:
            return g.Softmax(data, axis=-1)
        flat = g.Softmax(g.Flatten(data, axis=1), axis=-1)
        return g.Reshape(flat, g.int64s(shape))


class _Regression(OpDef):
    inputs = ("data", "label")

    def infer_shape(self, data, label):
        if data is None:
            return None
        default = (data[0],) if len(data) == 2 and data[1] == 1 else tuple(data)
        if label is not None and (label[0] != data[0] or math.prod(label) != math.prod(data)):
            raise MXNetError("%s: label shape %s is inconsistent with data shape %s (expected %s)"
                             % (self.op_name, tuple(label), tuple(data), default))
        return [data, label or default], [data]

    def lower(self, g, data, label):
        return g.Identity(data)


@register
class LinearRegressionOutput(_Regression):
    """Identity forward; backward grad_scale/num_output * (out - label). MXNet regression_output-inl.h."""
    grad_scale: float = param(1.0, doc="Scale the gradient by a float factor.")


@register
class MAERegressionOutput(_Regression):
    """Identity forward; backward grad_scale/num_output * sign(out - label)."""
    grad_scale: float = param(1.0, doc="Scale the gradient by a float factor.")


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
    grad_scale: float = param(1.0, doc="Gradient scale as a supplement to unary and binary operators.")
    valid_thresh: float = param(0.0, doc="Clip each element in the array to 0 when it is less than this.")
    normalization: str = param("null", choices=("batch", "null", "valid"), doc="How the gradient is normalized.")

    def lower(self, g, data):
        return g.Identity(data)


@register
class SVMOutput(OpDef):
    """Identity forward; hinge-loss backward. MXNet svm_output-inl.h."""
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
