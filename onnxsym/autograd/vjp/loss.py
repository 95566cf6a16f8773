"""VJP rules of ONNX's loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (class weights, ignore_index,
reductions none / sum / mean, SoftmaxCrossEntropyLoss's log_prob output).

  loss_i = -w_i lp[i, label_i], w_i = weight[label_i] (1 without weights, 0 where ignored);
  none: L_i = loss_i; sum: L = sum_i loss_i; mean: L = sum_i loss_i / W, W = sum_i w_i.
  d lp = -c_i at (i, label_i), 0 elsewhere, with c_i = w_i dL_i (none), w_i dL (sum), w_i dL / W (mean);
  d weight[k] = sum_{i: label_i = k} -lp[i, k] dL_i (none, sum), (-lp[i, k] - L) dL / W (mean).
The class axis is touched only at the labels (Gather, GatherElements, ScatterElements): SoftmaxCrossEntropyLoss's
d scores = softmax * c_i - c_i at the labels is three passes over (N, C, ...), 4x faster than a class mask
(Equal against the class range) and 5x faster than onnxruntime-training's SoftmaxCrossEntropyLossGrad kernel
(bench/bench_vjp_math.py). (ORT's SoftmaxCrossEntropyLoss forward kernel itself is ~10x slower than LogSoftmax at
256 x 1000, so ops/onnx_training.py's training rewrite, LogSoftmax + gathers, is still the faster training graph.)
"""
import numpy as np

from .registry import rule
from .shape import static_shape


def _wants(g, value):
    active = getattr(g, "active", None)
    return bool(value) and (active is None or value in active)


def _input(node, index):
    return node.input[index] if len(node.input) > index and node.input[index] else None


class _Labels:
    """The per-position pieces of a loss node: safe labels (ignored ones as class 0), their weights w_i, the
    coefficients c_i of the head gradient `dy`, all unsqueezed at the class axis (N, 1, d1, ...)."""

    def __init__(self, g, node, shape, labels, weight, dy, dtype):
        attrs = g.attrs(node)
        self.shape, self.dtype, self.rank = shape, dtype, len(shape)
        label_shape = static_shape(g, labels)
        label_type = g.dtype(labels)
        one = g.int64s([1])
        ignore = attrs.get("ignore_index")
        self.kept = None                # where the label is not ignored (None: everywhere)
        if ignore is not None:
            ignored = g.Equal(labels, g.scalar(ignore, label_type))
            labels = g.Where(ignored, g.scalar(0, label_type), labels)
            self.kept = g.Not(ignored)
        self.index = g.cast(g.Unsqueeze(labels, one), np.int64) if label_type != np.int64 else \
            g.Unsqueeze(labels, one)
        zero = g.scalar(0, dtype)
        if weight:
            per = g.Gather(weight, labels, axis=0)
            per = per if self.kept is None else g.Where(self.kept, per, zero)
        elif self.kept is not None:
            per = g.cast(self.kept, dtype)
        else:
            per = None                  # all ones
        reduction = attrs.get("reduction", b"mean")
        self.reduction = reduction.decode() if isinstance(reduction, bytes) else reduction
        scale = dy
        if self.reduction == "mean":
            total = g.ReduceSum(per, keepdims=0) if per is not None else \
                g.scalar(int(np.prod(label_shape)), dtype)
            scale = g.Div(dy, total)
        self.scale = scale              # dL_i (none), dL (sum), dL / W (mean)
        coefficient = scale if per is None else g.Mul(per, scale)
        if per is None and self.reduction != "none":
            coefficient = g.Expand(coefficient, g.int64s(label_shape))
        self.coefficient = g.Unsqueeze(coefficient, one)

    def scatter(self, g, base, values):
        return g.ScatterElements(base, self.index, values, axis=1)

    def weight_gradient(self, g, node, log_prob, weight):
        """d weight[k]: sum over the positions labelled k of -lp (minus L for mean) times dL_i or dL / W."""
        picked = g.Neg(g.GatherElements(log_prob, self.index, axis=1))
        if self.reduction == "mean":
            picked = g.Sub(picked, node.output[0])
        value = g.Mul(picked, self.scale if self.reduction != "none" else g.Unsqueeze(self.scale, g.int64s([1])))
        zero = g.scalar(0, self.dtype)
        if self.kept is not None:
            value = g.Where(g.Unsqueeze(self.kept, g.int64s([1])), value, zero)
        classes = self.shape[1]
        class_index = np.arange(classes, dtype=np.int64).reshape([1, classes] + [1] * (self.rank - 2))
        hit = g.Equal(self.index, g.const(class_index))
        axes = [0] + list(range(2, self.rank))
        return g.like(g.ReduceSum(g.Where(hit, value, zero), g.int64s(axes), keepdims=0), weight)


@rule("NegativeLogLikelihoodLoss")
def _negative_log_likelihood(g, node, out_grads):
    log_prob, labels = node.input[:2]
    weight = _input(node, 2)
    shape, dtype = static_shape(g, log_prob), g.dtype(log_prob)
    parts = _Labels(g, node, shape, labels, weight, out_grads[0], dtype)
    d_log_prob = g.like(parts.scatter(g, g.zeros_like(log_prob), g.Neg(parts.coefficient)), log_prob)
    d_weight = parts.weight_gradient(g, node, log_prob, weight) if _wants(g, weight) else None
    return [d_log_prob, None, d_weight]


@rule("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(g, node, out_grads):
    """The loss alone: d scores = p c_i - c_i at the labels (p = softmax(scores)); with log_prob's own gradient
    too: NegativeLogLikelihoodLoss's d lp plus that, through LogSoftmax (d lp - p sum(d lp, axis=1))."""
    scores, labels = node.input[:2]
    weight = _input(node, 2)
    shape, dtype = static_shape(g, scores), g.dtype(scores)
    given = node.output[1] if len(node.output) > 1 and node.output[1] else None
    d_out = out_grads[1] if len(out_grads) > 1 else None
    probability = g.Exp(given) if given else g.Softmax(scores, axis=1)
    d_scores, d_weight = None, None
    if out_grads[0] is not None:
        parts = _Labels(g, node, shape, labels, weight, out_grads[0], dtype)
        if _wants(g, weight):
            d_weight = parts.weight_gradient(g, node, given or g.LogSoftmax(scores, axis=1), weight)
        if d_out is None:
            spread = g.Mul(probability, parts.coefficient)
            at_label = g.Sub(g.GatherElements(spread, parts.index, axis=1), parts.coefficient)
            return [g.like(parts.scatter(g, spread, at_label), scores), None, d_weight]
        d_out = g.Add(d_out, parts.scatter(g, g.zeros_like(scores), g.Neg(parts.coefficient)))
    if d_out is None:
        return [None, None, None]
    total = g.ReduceSum(d_out, g.int64s([1]), keepdims=1)
    d_scores = g.Sub(d_out, g.Mul(probability, total))
    return [g.like(d_scores, scores), None, d_weight]
