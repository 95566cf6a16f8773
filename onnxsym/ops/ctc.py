"""Connectionist Temporal Classification loss: CTCLoss / ctc_loss (and the contrib aliases), as MXNet 1.9.1's
src/operator/nn/ctc_loss-inl.h with its warp-ctc CPU kernel (3rdparty/ctc_include/detail/cpu_ctc.h).

ONNX has no CTC operator: the forward (alpha) recursion of Graves et al. runs in log space over the static number
of time steps, written out step by step (straight-line ONNX), so that the VJP rules differentiate it: the gradient
w.r.t. `data` is the exact derivative of the loss, which is what warp-ctc's cost_and_grad computes (softmax minus
the label posteriors). Samples whose labels cannot fit their length (L + repeats > T) cost 0 with a zero gradient,
as warp-ctc returns them; time steps past a sample's data length get a zero gradient (MXNet's SequenceMask) and
their values (NaN included) are never read. MXNet's kernel reads float32 data only; float64 runs here in float64
and float16 in float32.
"""
import dataclasses

import numpy as np

from .._shapes import partial_rule
from ..base import MXNetError
from .params import param
from .registry import OpDef, register

__all__ = []

_NEG = -1e30     # log(0) kept finite: log-sum-exp of unreachable states stays finite, and so do their gradients


@register
@dataclasses.dataclass(frozen=True)
class CTCLoss(OpDef):
    """out[n] = -log p(label[n] | data[:, n, :]) with p summed over CTC alignments of softmax(data) (data: (T, N, C)
    activations before softmax; label: (N, L) indices). The hidden second output is MXNet's gradient of out w.r.t.
    data (softmax - label posteriors), computed with the backward (beta) recursion. Mirrors MXNet
    src/operator/nn/ctc_loss-inl.h."""
    aliases = ("ctc_loss", "_contrib_CTCLoss", "_contrib_ctc_loss")
    float_only = True
    outputs = ("output0", "output1")     # (MXNet registers its names under a misspelt key: the defaults remain)
    use_data_lengths: bool = param(False, doc="Whether the data lenghts are decided by `data_lengths`. If false, "
                                              "the lengths are equal to the max sequence length.")
    use_label_lengths: bool = param(False, doc="Whether the label lenghts are decided by `label_lengths`, or "
                                               "derived from `padding_mask` (0 when blank_label is 'first', -1 "
                                               "when 'last': labels end at its first occurrence).")
    blank_label: str = param("first", choices=("first", "last"),
                             doc="The label reserved for blank: 'first' (0) or 'last' (alphabet_size-1).")

    def input_names(self):
        return ("data", "label") + (("data_lengths",) if self.use_data_lengths else ()) + \
            (("label_lengths",) if self.use_label_lengths else ())

    def num_visible_outputs(self):
        return 1

    @partial_rule
    def infer_shape(self, data, label, *lengths, out_shapes=None):
        if data is not None and len(data) != 3:
            raise MXNetError("CTCLoss: The number of dimensions of data array must be 3, got data shape %s"
                             % (tuple(data),))
        if label is not None and len(label) != 2:
            raise MXNetError("CTCLoss: The number of dimensions of labels array must be 2, got label shape %s"
                             % (tuple(label),))
        if data is None or label is None or None in data or None in label:
            return None
        if data[1] != label[0]:
            raise MXNetError("CTCLoss: The batch size for the labels and data arrays must be the same (data %s, "
                             "label %s)" % (tuple(data), tuple(label)))
        if data[0] < label[1]:
            raise MXNetError("CTCLoss: The max number of labels cannot exceed the maximum sequence length of the "
                             "data (data %s, label %s)" % (tuple(data), tuple(label)))
        batch = (data[1],)
        names = self.input_names()[2:]
        for name, shape in zip(names, lengths):
            if shape is not None and tuple(shape) != batch:
                raise MXNetError("CTCLoss: %s must be a vector of the batch size %d, got shape %s"
                                 % (name, batch[0], tuple(shape)))
        return [data, label] + [batch] * len(names), [batch, data]

    def infer_type(self, data, label, *lengths):
        # (MXNet 1.9.1's kernel reads float32 data only and fails a type check on others; float64 and float16
        # run here: float64 in float64, float16 in float32)
        if data is None:
            return None
        return [data, label] + list(lengths), [data, data]

    def lower(self, g, data, label, *lengths):
        steps, batch, classes = g.shape(data)
        length = g.shape(label)[1]
        width = 2 * length + 1
        dtype = g.dtype(data)
        real, i64 = (np.float64 if dtype == np.float64 else np.float32), np.int64
        if dtype == np.float16:
            data = g.cast(data, real)
        blank = 0 if self.blank_label == "first" else classes - 1
        lengths = list(lengths)
        data_lengths = lengths.pop(0) if self.use_data_lengths else None
        label_lengths = lengths.pop(0) if self.use_label_lengths else None

        labels = g.cast(label, i64)
        if label_lengths is not None:
            count = g.cast(label_lengths, i64)
        else:   # up to the first padding value
            pad = g.cast(g.Equal(labels, g.const(np.int64(0 if blank == 0 else -1))), i64)
            before = g.cast(g.Equal(g.CumSum(pad, g.const(np.int64(1))), g.const(np.int64(0))), i64)
            count = g.ReduceSum(before, g.int64s([1]), keepdims=0)
        count = g.Min(g.Max(count, g.const(np.int64(0))), g.const(np.int64(length)))           # (N,)
        if data_lengths is not None:
            time = g.Min(g.Max(g.cast(data_lengths, i64), g.const(np.int64(0))), g.const(np.int64(steps)))
        else:
            time = g.const(np.full(batch, steps, np.int64))                                     # (N,)

        # labels with blanks between them, blank past each sample's 2 * count + 1 states: (N, S)
        blanks = g.const(np.full((batch, length, 1), blank, np.int64))
        pairs = g.Concat(blanks, g.Unsqueeze(labels, g.int64s([2])), axis=2)
        extended = g.Concat(g.Reshape(pairs, g.int64s([batch, 2 * length])),
                            g.const(np.full((batch, 1), blank, np.int64)), axis=1)
        position = g.const(np.arange(width, dtype=np.int64))
        states = g.Add(g.Mul(count, g.const(np.int64(2))), g.const(np.int64(1)))              # (N,)
        inside = g.Less(position, g.Unsqueeze(states, g.int64s([1])))                         # (N, S)
        extended = g.Where(inside, extended, g.const(np.int64(blank)))
        # a state may be entered from two states back: a label different from the label before it
        earlier = g.Concat(g.const(np.full((batch, 2), blank, np.int64)),
                           g.Slice(extended, g.int64s([0]), g.int64s([width - 2]), g.int64s([1])), axis=1)
        skip = g.And(g.And(g.Not(g.Equal(extended, g.const(np.int64(blank)))), g.Not(g.Equal(extended, earlier))),
                     g.GreaterOrEqual(position, g.const(np.int64(2))))

        # log-probabilities; steps past a sample's length read 0 instead of data (MXNet never reads them)
        live = g.Less(g.const(np.arange(steps, dtype=np.int64).reshape(steps, 1)),
                      g.Unsqueeze(time, g.int64s([0])))                                        # (T, N)
        masked = g.Where(g.Unsqueeze(live, g.int64s([2])), data, g.scalar(0, real))
        log_probs = g.LogSoftmax(masked, axis=2)
        emit = g.GatherElements(log_probs, g.Expand(g.Unsqueeze(extended, g.int64s([0])),
                                                    g.int64s([steps, batch, width])), axis=2)    # (T, N, S)

        neg = g.scalar(_NEG, real)
        neg1, neg2 = g.const(np.full((batch, 1), _NEG, real)), g.const(np.full((batch, 2), _NEG, real))
        last = g.Sub(time, g.const(np.int64(1)))                                               # (N,)
        final_state = g.Or(g.Equal(position, g.Unsqueeze(g.Mul(count, g.const(np.int64(2))), g.int64s([1]))),
                           g.And(g.Equal(position, g.Unsqueeze(g.Sub(g.Mul(count, g.const(np.int64(2))),
                                                                     g.const(np.int64(1))), g.int64s([1]))),
                                 g.Greater(g.Unsqueeze(count, g.int64s([1])), g.const(np.int64(0)))))

        def at(t):
            return g.Gather(emit, g.const(np.int64(t)), axis=0)

        def logsumexp3(a, b, c):
            stacked = g.Concat(*(g.Unsqueeze(v, g.int64s([2])) for v in (a, b, c)), axis=2)
            return g.ReduceLogSumExp(stacked, axes=[2], keepdims=0)

        def when(t, value, otherwise):
            hit = g.Unsqueeze(g.Equal(last, g.const(np.int64(t))), g.int64s([1]))
            return g.Where(hit, value, otherwise)

        alpha = g.Where(g.Less(position, g.const(np.int64(2))), at(0), neg)
        alphas = [alpha]
        final = when(0, alpha, neg)
        for t in range(1, steps):
            one = g.Concat(neg1, g.Slice(alpha, g.int64s([0]), g.int64s([width - 1]), g.int64s([1])), axis=1)
            two = g.Concat(neg2, g.Slice(alpha, g.int64s([0]), g.int64s([width - 2]), g.int64s([1])), axis=1)
            alpha = g.Add(logsumexp3(alpha, one, g.Where(skip, two, neg)), at(t))
            alphas.append(alpha)
            final = when(t, alpha, final)
        likelihood = g.ReduceLogSumExp(g.Where(final_state, final, neg), axes=[1], keepdims=0)   # (N,)

        # warp-ctc skips a sample whose labels cannot fit: count + repeats > time (cost 0, no gradient)
        same = g.Equal(g.Slice(labels, g.int64s([1]), g.int64s([length]), g.int64s([1])),
                       g.Slice(labels, g.int64s([0]), g.int64s([length - 1]), g.int64s([1])))
        counted = g.Less(g.const(np.arange(1, length, dtype=np.int64)), g.Unsqueeze(count, g.int64s([1])))
        repeats = g.ReduceSum(g.cast(g.And(same, counted), i64), g.int64s([1]), keepdims=0) if length > 1 else \
            g.const(np.zeros(batch, np.int64))
        feasible = g.And(g.LessOrEqual(g.Add(count, repeats), time), g.GreaterOrEqual(time, g.const(np.int64(1))))
        loss = g.Where(feasible, g.Neg(likelihood), g.scalar(0, real))
        gradient = self._gradient(g, alphas, at, emit, log_probs, extended, skip, final_state, last, live, feasible,
                                  likelihood, (steps, batch, classes, width), neg, neg1, neg2, logsumexp3, real)
        if dtype == np.float16:
            loss, gradient = g.cast(loss, dtype), g.cast(gradient, dtype)
        return loss, gradient

    @staticmethod
    def _gradient(g, alphas, at, emit, log_probs, extended, skip, final_state, last, live, feasible, likelihood,
                  sizes, neg, neg1, neg2, logsumexp3, real):
        """MXNet's hidden output: d out / d data = softmax - sum over the states of each class of
        exp(alpha + beta - emission - log p), by the backward (beta) recursion; 0 past a sample's length and for
        skipped samples. (Only computed when that output is read: unused nodes are dropped.)"""
        steps, batch, classes, width = sizes
        skip_next = g.Concat(g.Slice(skip, g.int64s([2]), g.int64s([width]), g.int64s([1])),
                             g.const(np.zeros((batch, 2), bool)), axis=1)
        betas = [None] * steps
        beta = None
        for t in range(steps - 1, -1, -1):
            start = g.Where(final_state, at(t), neg)
            if beta is None:
                later = neg
            else:
                one = g.Concat(g.Slice(beta, g.int64s([1]), g.int64s([width]), g.int64s([1])), neg1, axis=1)
                two = g.Concat(g.Slice(beta, g.int64s([2]), g.int64s([width]), g.int64s([1])), neg2, axis=1)
                later = g.Add(logsumexp3(beta, one, g.Where(skip_next, two, neg)), at(t))
            before = g.Unsqueeze(g.Greater(last, g.const(np.int64(t))), g.int64s([1]))
            here = g.Unsqueeze(g.Equal(last, g.const(np.int64(t))), g.int64s([1]))
            beta = g.Where(here, start, g.Where(before, later, neg))
            betas[t] = beta
        stack = lambda values: g.Concat(*(g.Unsqueeze(v, g.int64s([0])) for v in values), axis=0)   # (T, N, S)
        posterior = g.Exp(g.Sub(g.Sub(g.Add(stack(alphas), stack(betas)), emit),
                                g.Unsqueeze(likelihood, g.int64s([0, 2]))))
        onehot = g.OneHot(extended, g.const(np.int64(classes)), g.const(np.array([0, 1], real)))  # (N, S, C)
        occupancy = g.Transpose(g.MatMul(g.Transpose(posterior, perm=[1, 0, 2]), onehot), perm=[1, 0, 2])
        keep = g.Unsqueeze(g.And(live, g.Unsqueeze(feasible, g.int64s([0]))), g.int64s([2]))
        return g.Where(keep, g.Sub(g.Exp(log_probs), occupancy), g.scalar(0, real))
