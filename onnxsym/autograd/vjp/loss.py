"""VJP rules of ONNX's loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (class weights, ignore_index,
reductions none / sum / mean, SoftmaxCrossEntropyLoss's log_prob output).

Both read the labels as a class mask `hit` (N, C, d1, ...) = (label == class), ignored positions matching no class,
so that every gradient is elementwise arithmetic and one reduction, with no gather or scatter:
  loss_i = -w_i lp[i, label_i], w_i = weight[label_i] (1 without weights, 0 where ignored);
  none: L_i = loss_i; sum: L = sum_i loss_i; mean: L = sum_i loss_i / W, W = sum_i w_i.
  d lp = -hit * weight * c_i with c_i = dL_i (none), dL (sum), dL / W (mean);
  d weight[k] = sum_{i: label_i = k} -lp[i, k] c_i (none, sum), (-lp[i, k] - L) c_i (mean).
"""
import numpy as np

from .registry import rule
from .shape import static_shape


def _wants(g, value):
    active = getattr(g, "active", None)
    return bool(value) and (active is None or value in active)


def _nll(g, node, shape, log_prob, labels, weight, dy, dtype):
    """(d log_prob, d weight or None) of NegativeLogLikelihoodLoss(log_prob, labels, weight) = node.output[0];
    `log_prob` (of static `shape`) is read only for the weight's gradient."""
    attrs = g.attrs(node)
    rank, classes = len(shape), shape[1]
    label_type = g.dtype(labels)
    ignore = attrs.get("ignore_index")
    if ignore is not None:      # ignored positions match no class
        labels = g.Where(g.Equal(labels, g.scalar(ignore, label_type)), g.scalar(-1, label_type), labels)
    class_index = np.arange(classes).reshape([1, classes] + [1] * (rank - 2)).astype(label_type)
    hit = g.Equal(g.Unsqueeze(labels, g.int64s([1])), g.const(class_index))
    zero = g.scalar(0, dtype)
    if weight:
        weighted = g.Where(hit, g.Reshape(weight, g.int64s([1, classes] + [1] * (rank - 2))), zero)
    else:
        weighted = g.cast(hit, dtype)
    reduction = attrs.get("reduction", b"mean")
    reduction = reduction.decode() if isinstance(reduction, bytes) else reduction
    if reduction == "none":
        coefficient = g.Unsqueeze(dy, g.int64s([1]))
    elif reduction == "sum":
        coefficient = dy
    else:
        coefficient = g.Div(dy, g.ReduceSum(weighted, keepdims=0))
    d_log_prob = g.Neg(g.Mul(weighted, coefficient))
    g.set_info(d_log_prob, shape, dtype)
    d_weight = None
    if weight and _wants(g, weight):
        per_class = log_prob if reduction != "mean" else g.Add(log_prob, node.output[0])
        picked = g.Where(hit, g.Neg(per_class), zero)
        axes = [0] + list(range(2, rank))
        d_weight = g.like(g.ReduceSum(g.Mul(picked, coefficient), g.int64s(axes), keepdims=0), weight)
    return d_log_prob, d_weight


def _input(node, index):
    return node.input[index] if len(node.input) > index and node.input[index] else None


@rule("NegativeLogLikelihoodLoss")
def _negative_log_likelihood(g, node, out_grads):
    log_prob, labels = node.input[:2]
    d_log_prob, d_weight = _nll(g, node, static_shape(g, log_prob), log_prob, labels, _input(node, 2), out_grads[0],
                                g.dtype(log_prob))
    return [d_log_prob, None, d_weight]


@rule("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(g, node, out_grads):
    """NegativeLogLikelihoodLoss's gradient on log_prob = LogSoftmax(scores, axis=1), plus log_prob's own
    gradient, through LogSoftmax: d scores = d lp - softmax * sum(d lp, axis=1)."""
    scores, labels = node.input[:2]
    weight = _input(node, 2)
    dtype = g.dtype(scores)
    given = node.output[1] if len(node.output) > 1 and node.output[1] else None
    log_prob = given
    if log_prob is None and weight and _wants(g, weight):
        log_prob = g.LogSoftmax(scores, axis=1)
    d_log_prob, d_weight = None, None
    if out_grads[0] is not None:
        d_log_prob, d_weight = _nll(g, node, static_shape(g, scores), log_prob, labels, weight, out_grads[0], dtype)
    if len(out_grads) > 1 and out_grads[1] is not None:
        d_log_prob = out_grads[1] if d_log_prob is None else g.Add(d_log_prob, out_grads[1])
    if d_log_prob is None:
        return [None, None, None]
    probability = g.Exp(given) if given else g.Softmax(scores, axis=1)
    total = g.ReduceSum(d_log_prob, g.int64s([1]), keepdims=1)
    return [g.like(g.Sub(d_log_prob, g.Mul(probability, total)), scores), None, d_weight]
