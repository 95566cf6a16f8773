"""Training lowerings of imported normalizations, recurrent ops and losses (onnx_training.py says why these
exist): InstanceNormalization, BatchNormalization, LayerNormalization, RNN/GRU/LSTM, NegativeLogLikelihoodLoss and
SoftmaxCrossEntropyLoss."""
import numpy as np

from ..base import MXNetError
from ._training_rules import _rule


# ---------------------------------------------------------------- normalization
def _per_channel(g, vector, ndim):
    return g.Reshape(vector, g.int64s([-1] + [1] * (ndim - 2))) if ndim > 2 else vector


def _normalize(g, x, mean, var, scale, bias, epsilon):
    """(x - mean) * scale / sqrt(var + epsilon) + bias."""
    inv = g.Div(scale, g.Sqrt(g.Add(var, g.scalar(epsilon, g.dtype(x)))))
    return g.Add(g.Mul(g.Sub(x, mean), inv), bias)


@_rule("InstanceNormalization", float64=True)
def _instance_norm(g, node, inputs):
    x, scale, bias = inputs
    ndim = len(g.shape(x))
    axes = list(range(2, ndim))
    mean = g.ReduceMean(x, axes=axes, keepdims=1)
    centered = g.Sub(x, mean)
    var = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1)
    return _normalize(g, x, mean, var, _per_channel(g, scale, ndim), _per_channel(g, bias, ndim),
                      node.attrs.get("epsilon", 1e-5))


@_rule("BatchNormalization")
def _batch_norm(g, node, inputs):
    """training_mode=0: the given statistics, differentiable too (ORT would use batch statistics); training_mode=1:
    batch statistics, biased variance, and running statistics blended with `momentum`."""
    x, scale, bias, mean, var = inputs
    ndim = len(g.shape(x))
    epsilon = node.attrs.get("epsilon", 1e-5)
    channel = lambda v: _per_channel(g, v, ndim)
    if not node.attrs.get("training_mode", 0):
        return _normalize(g, x, channel(mean), channel(var), channel(scale), channel(bias), epsilon)
    axes = [0] + list(range(2, ndim))
    batch_mean = g.ReduceMean(x, axes=axes, keepdims=1)
    centered = g.Sub(x, batch_mean)
    batch_var = g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1)
    y = _normalize(g, x, batch_mean, batch_var, channel(scale), channel(bias), epsilon)
    momentum = node.attrs.get("momentum", 0.9)
    blend = lambda running, batch: g.Add(g.Mul(running, g.scalar(momentum, g.dtype(x))), g.Mul(
        g.Reshape(batch, g.int64s([-1])), g.scalar(1 - momentum, g.dtype(x))))
    return (y, blend(mean, batch_mean), blend(var, batch_var))[:node.output_count]


@_rule("LayerNormalization")
def _layer_norm(g, node, inputs):
    """Only Y used: ORT's LayerNormalization, given a bias (zeros when the node has none) and its 3 outputs, which
    its gradient needs; Mean or InvStdDev used too: the arithmetic form (ORT's gradient ignores theirs)."""
    x, scale = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    if node.output_count == 1:
        bias = bias if bias is not None else g.const(np.zeros(g.shape(scale), g.dtype(scale)))
        return node.emit(g, [x, scale, bias], 3)[0]
    shape, dtype = g.shape(x), g.dtype(x)
    axes = list(range(node.attrs.get("axis", -1) % len(shape), len(shape)))
    mean = g.ReduceMean(x, axes=axes, keepdims=1)
    centered = g.Sub(x, mean)
    inv_std = g.Reciprocal(g.Sqrt(g.Add(g.ReduceMean(g.Mul(centered, centered), axes=axes, keepdims=1),
                                        g.scalar(node.attrs.get("epsilon", 1e-5), dtype))))
    y = g.Mul(g.Mul(centered, inv_std), scale)
    stats = [g.cast(v, t) if t != dtype else v for v, t in zip((mean, inv_std), node.out_types[1:])]  # stash_type
    return (y if bias is None else g.Add(y, bias), *stats)[:node.output_count]


# ---------------------------------------------------------------- recurrent
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_ACTIVATIONS = {   # name -> (number of parameters, function(g, x, alpha, beta, dtype))
    "Sigmoid": (0, lambda g, x, a, b, t: g.Sigmoid(x)),
    "Tanh": (0, lambda g, x, a, b, t: g.Tanh(x)),
    "Relu": (0, lambda g, x, a, b, t: g.Max(x, g.scalar(0, t))),
    "LeakyRelu": (1, lambda g, x, a, b, t: g.Where(g.Greater(x, g.scalar(0, t)), x, g.Mul(x, g.scalar(a, t)))),
    "HardSigmoid": (2, lambda g, x, a, b, t: g.Clip(g.Add(g.Mul(x, g.scalar(a, t)), g.scalar(b, t)), g.scalar(0, t),
                                                   g.scalar(1, t))),
    "Affine": (2, lambda g, x, a, b, t: g.Add(g.Mul(x, g.scalar(a, t)), g.scalar(b, t))),
    "ScaledTanh": (2, lambda g, x, a, b, t: g.Mul(g.Tanh(g.Mul(x, g.scalar(b, t))), g.scalar(a, t))),
    "Softsign": (0, lambda g, x, a, b, t: g.Div(x, g.Add(g.Abs(x), g.scalar(1, t)))),
}


def _activations(node, directions, dtype):
    names = node.attrs.get("activations") or _DEFAULT_ACTIVATIONS[node.op_type] * directions
    alphas, betas = list(node.attrs.get("activation_alpha") or []), list(node.attrs.get("activation_beta") or [])
    defaults = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5), "Affine": (1.0, 0.0), "ScaledTanh": (1.0, 1.0)}
    result = []
    for name in names:
        name = name.decode() if isinstance(name, bytes) else name
        if name not in _ACTIVATIONS:
            raise MXNetError("%s: activation %s is not supported in training graphs" % (node.op_type, name))
        count, fn = _ACTIVATIONS[name]
        alpha, beta = defaults.get(name, (0.0, 0.0))
        if count >= 1 and alphas:
            alpha = alphas.pop(0)
        if count >= 2 and betas:
            beta = betas.pop(0)
        result.append(lambda g, x, fn=fn, alpha=alpha, beta=beta: fn(g, x, alpha, beta, dtype))
    per = len(_DEFAULT_ACTIVATIONS[node.op_type])
    return [result[d * per:(d + 1) * per] for d in range(directions)]


@_rule("RNN", "GRU", "LSTM", float64=True, own_ad=True)
def _recurrent(g, node, inputs):
    """The cell unrolled over the static sequence length, ONNX's equations and gate orders (LSTM i,o,f,c with
    peepholes; GRU z,r,h), masked per sequence length: ORT has no RNN gradient, ignores LSTM peepholes, and fails
    on LSTM/GRU without initial states or not forward."""
    op_type, count = node.op_type, _GATES[node.op_type]
    x, w, r = inputs[:3]
    bias, lengths, h0 = (list(inputs[3:6]) + [None] * 3)[:3]
    c0 = inputs[6] if op_type == "LSTM" and len(inputs) > 6 else None
    peephole = inputs[7] if op_type == "LSTM" and len(inputs) > 7 else None
    if op_type == "LSTM" and node.attrs.get("input_forget", 0):
        raise MXNetError("LSTM: input_forget=1 is not supported in training graphs")
    dtype = g.dtype(x)
    layout = node.attrs.get("layout", 0)
    hidden = node.attrs["hidden_size"]
    direction = node.attrs.get("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    clip = node.attrs.get("clip")
    if layout:
        x = g.Transpose(x, perm=[1, 0, 2])
        h0 = None if h0 is None else g.Transpose(h0, perm=[1, 0, 2])
        c0 = None if c0 is None else g.Transpose(c0, perm=[1, 0, 2])
    shape = g.shape(inputs[0])
    seq, batch, size = (shape[1], shape[0], shape[2]) if layout else tuple(shape)
    acts = _activations(node, directions, dtype)
    one = g.scalar(1, dtype)
    row = lambda value, d, rows: g.Reshape(g.Slice(value, g.int64s([d]), g.int64s([d + 1]), g.int64s([0])),
                                           g.int64s(rows))
    piece = lambda value, k, axis=1: g.Slice(value, g.int64s([k * hidden]), g.int64s([(k + 1) * hidden]),
                                             g.int64s([axis]))
    zeros = lambda: g.Expand(g.scalar(0, dtype), g.int64s([batch, hidden]))
    cut = (lambda v: g.Clip(v, g.scalar(-clip, dtype), g.scalar(clip, dtype))) if clip else (lambda v: v)
    masks = None
    if lengths is not None:
        steps = g.const(np.arange(seq, dtype=np.int64).reshape(seq, 1, 1))
        valid = g.Less(steps, g.Reshape(g.cast(lengths, np.int64), g.int64s([1, batch, 1])))
        masks = g.cast(valid, dtype)
    outputs, last_h, last_c = [], [], []
    for d in range(directions):
        wd, rd = row(w, d, [count * hidden, size]), row(r, d, [count * hidden, hidden])
        bd = None if bias is None else row(bias, d, [2 * count * hidden])
        bx = None if bd is None else g.Slice(bd, g.int64s([0]), g.int64s([count * hidden]), g.int64s([0]))
        bh = None if bd is None else g.Slice(bd, g.int64s([count * hidden]), g.int64s([2 * count * hidden]),
                                              g.int64s([0]))
        f = acts[d]
        xw = g.Reshape(g.Gemm(g.Reshape(x, g.int64s([seq * batch, size])), wd, bx, transB=1),
                       g.int64s([seq, batch, count * hidden]))
        h = zeros() if h0 is None else row(h0, d, [batch, hidden])
        c = None
        if op_type == "GRU":
            split = lambda v, a, b: None if v is None else g.Slice(v, g.int64s([a * hidden]), g.int64s([b * hidden]),
                                                                   g.int64s([0]))
            r_zr, r_h, b_zr, b_h = split(rd, 0, 2), split(rd, 2, 3), split(bh, 0, 2), split(bh, 2, 3)
        if op_type == "LSTM":
            c = zeros() if c0 is None else row(c0, d, [batch, hidden])
            pd = None if peephole is None else row(peephole, d, [3 * hidden])
            p_i, p_o, p_f = [None if pd is None else piece(pd, k, 0) for k in range(3)]
        ys = [None] * seq
        forward = direction == "forward" or (direction == "bidirectional" and d == 0)
        for t in (range(seq) if forward else reversed(range(seq))):
            gx = g.Reshape(g.Slice(xw, g.int64s([t]), g.int64s([t + 1]), g.int64s([0])),
                           g.int64s([batch, count * hidden]))
            if op_type == "RNN":
                new_h, new_c = f[0](g, cut(g.Add(gx, g.Gemm(h, rd, bh, transB=1)))), None
            elif op_type == "LSTM":
                s = g.Add(gx, g.Gemm(h, rd, bh, transB=1))
                gate_i, gate_o, gate_f, gate_c = [piece(s, k) for k in range(4)]
                if p_i is not None:
                    gate_i, gate_f = g.Add(gate_i, g.Mul(p_i, c)), g.Add(gate_f, g.Mul(p_f, c))
                i, fg, cand = f[0](g, cut(gate_i)), f[0](g, cut(gate_f)), f[1](g, cut(gate_c))
                new_c = g.Add(g.Mul(fg, c), g.Mul(i, cand))
                if p_o is not None:
                    gate_o = g.Add(gate_o, g.Mul(p_o, new_c))
                new_h = g.Mul(f[0](g, cut(gate_o)), f[2](g, new_c))
            else:
                hr = g.Gemm(h, r_zr, b_zr, transB=1)
                z = f[0](g, cut(g.Add(piece(gx, 0), piece(hr, 0))))
                reset = f[0](g, cut(g.Add(piece(gx, 1), piece(hr, 1))))
                if node.attrs.get("linear_before_reset", 0):
                    hh = g.Mul(reset, g.Gemm(h, r_h, b_h, transB=1))
                else:
                    hh = g.Gemm(g.Mul(reset, h), r_h, b_h, transB=1)
                cand = f[1](g, cut(g.Add(piece(gx, 2), hh)))
                new_h, new_c = g.Add(g.Mul(g.Sub(one, z), cand), g.Mul(z, h)), None
            if masks is not None:
                m = g.Reshape(g.Slice(masks, g.int64s([t]), g.int64s([t + 1]), g.int64s([0])), g.int64s([batch, 1]))
                keep = g.Sub(one, m)
                ys[t] = g.Mul(new_h, m)
                new_h = g.Add(ys[t], g.Mul(h, keep))
                if new_c is not None:
                    new_c = g.Add(g.Mul(new_c, m), g.Mul(c, keep))
            else:
                ys[t] = new_h
            h, c = new_h, new_c
        outputs.append(g.Concat(*[g.Unsqueeze(y, g.int64s([0, 1])) for y in ys], axis=0) if seq > 1 else
                       g.Unsqueeze(ys[0], g.int64s([0, 1])))
        last_h.append(g.Unsqueeze(h, g.int64s([0])))
        if c is not None:
            last_c.append(g.Unsqueeze(c, g.int64s([0])))
    join = lambda values, axis: values[0] if len(values) == 1 else g.Concat(*values, axis=axis)
    y, y_h = join(outputs, 1), join(last_h, 0)
    y_c = join(last_c, 0) if last_c else None
    if layout:
        y = g.Transpose(y, perm=[2, 0, 1, 3])
        y_h = g.Transpose(y_h, perm=[1, 0, 2])
        y_c = None if y_c is None else g.Transpose(y_c, perm=[1, 0, 2])
    results = (y, y_h, y_c)[:node.output_count]
    return results


# ---------------------------------------------------------------- losses
def _class_weights(g, weight, labels, dtype, ignore_index, label_shape):
    """Per-position weight[label] (1 without weights), 0 where label == ignore_index."""
    safe = labels
    ignored = None
    if ignore_index is not None:
        ignored = g.Equal(labels, g.const(np.asarray(ignore_index, dtype=g.dtype(labels))))
        safe = g.Where(ignored, g.const(np.zeros((), g.dtype(labels))), labels)
    per = g.Gather(weight, safe, axis=0) if weight is not None else g.Expand(g.scalar(1, dtype),
                                                                            g.int64s(label_shape))
    if ignored is not None:
        per = g.Where(ignored, g.Expand(g.scalar(0, dtype), g.int64s(label_shape)), per)
    return per, safe


def _nll(g, node, log_prob, labels, weight, dtype):
    """NegativeLogLikelihoodLoss of log-probabilities (N, C, ...) with `reduction` none / sum / mean."""
    label_shape = list(g.shape(labels))
    ignore = node.attrs.get("ignore_index")
    per, safe = _class_weights(g, weight, labels, dtype, ignore, label_shape)
    picked = g.Squeeze(g.GatherElements(log_prob, g.Unsqueeze(safe, g.int64s([1])), axis=1), g.int64s([1]))
    loss = g.Neg(g.Mul(picked, per))
    reduction = node.attrs.get("reduction", "mean")
    if reduction == "none":
        return loss
    total = g.ReduceSum(loss, keepdims=0)
    if reduction == "sum":
        return total
    return g.Div(total, g.ReduceSum(per, keepdims=0))


def _log_softmax(g, x, axis, dtype):
    """LogSoftmax; other dtypes than float32 as x - max - log(sum(exp(x - max))) with the max held constant
    (exact: log-softmax does not depend on the shift), since ORT's LogSoftmaxGrad has no float64 kernel."""
    if np.dtype(dtype) == np.float32:
        return g.LogSoftmax(x, axis=axis)
    shifted = g.Sub(x, g.stop_gradient(g.ReduceMax(x, axes=[axis], keepdims=1), dtype))
    return g.Sub(shifted, g.Log(g.ReduceSum(g.Exp(shifted), g.int64s([axis]), keepdims=1)))


@_rule("NegativeLogLikelihoodLoss")
def _negative_log_likelihood(g, node, inputs):
    log_prob, labels = inputs[:2]
    return _nll(g, node, log_prob, labels, inputs[2] if len(inputs) > 2 else None, g.dtype(log_prob))


@_rule("SoftmaxCrossEntropyLoss", own_ad=True)
def _softmax_cross_entropy(g, node, inputs):
    """LogSoftmax over axis 1 + NegativeLogLikelihoodLoss (ORT's builder fails when the weights need a gradient)."""
    scores, labels = inputs[:2]
    weight = inputs[2] if len(inputs) > 2 else None
    log_prob = _log_softmax(g, scores, 1, g.dtype(scores))
    loss = _nll(g, node, log_prob, labels, weight, g.dtype(scores))
    return (loss, log_prob)[:node.output_count]
