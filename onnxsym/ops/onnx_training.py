"""Training lowerings of imported ONNX nodes (`_onnx`) whose onnxruntime-training gradient is missing or wrong.

One rule per ONNX op type: `rule(g, node, inputs)` returns the node's outputs, built from ops whose gradients
onnxruntime-training 1.19.2 gets right (or with `g.with_gradient` for elementwise ops), with exactly the values of
the original node. Inference graphs keep the original node. onnxsym's own AD (the default) differentiates the
node itself with its VJP rule (onnxsym/autograd/vjp/) and uses a rule here only where it has none or the rewrite is
faster (`own_ad=True`: RNN/GRU/LSTM, GridSample, Resize, RoiAlign, MaxRoiPool, DeformConv,
SoftmaxCrossEntropyLoss); every rule applies for the optional onnxruntime-training backend
(`gradients='ort-training'`). Each rule is checked against float64 finite differences of onnx's reference
implementation in tests/ops/test_input_gradients.py. Why each op needs one (ORT_NOTES.md §1):
- no gradient builder: Sum, Mean, Mod, PRelu, CastLike, Einsum, InstanceNormalization, RNN, GridSample,
  RoiAlign, MaxRoiPool, DeformConv, NegativeLogLikelihoodLoss, and the elementwise UNARY_DERIVATIVES (Elu, Asin,
  Floor, ...);
- silently wrong or zero: Pow (exponent), Clip (min, max), Pad (constant_value), OneHot (values), Where with a
  broadcast branch (wrong shape), BatchNormalization (made BatchNormInternal: batch statistics even with
  training_mode=0), LSTM (peepholes ignored);
- fails to build or run: ConvTranspose and Resize (no CPU gradient kernel), LayerNormalization without B or with its
  Mean/InvStdDev outputs used, LSTM/GRU without initial states or not forward, SoftmaxCrossEntropyLoss with weights,
  CastLike, MatMul/Einsum with batches and Scatter* in float64 (FusedMatMul, float32 zeros).
The elementwise, matrix and scatter rules are here; the sampling ops' in onnx_training_sampling.py, the
normalizations', recurrent ops' and losses' in onnx_training_sequence.py, the registry in _training_rules.py.
"""
import string

import numpy as np

from ..base import MXNetError
from . import onnx_training_sampling, onnx_training_sequence  # noqa: F401  (they register their rules)
from ._training_rules import _mask, _one, _rule, _zero, rule_for
from .conv import conv_transpose
from .elemwise import power_partials
from .indexing import batch_matmul

__all__ = ["rule_for"]



# ---------------------------------------------------------------- elementwise
@_rule("Pow")
def _pow(g, node, inputs):
    base, exponent = inputs
    out = g.Pow(base, exponent)
    if not np.issubdtype(g.dtype(exponent), np.floating):
        return g.with_gradient(out, lambda: [(base, power_partials(g, base, g.cast(exponent, g.dtype(base)),
                                                                   out)[0])])
    same = g.dtype(exponent) == g.dtype(base)
    return g.with_gradient(out, lambda: list(zip((base, exponent), power_partials(
        g, base, exponent if same else g.cast(exponent, g.dtype(base)), out))))


def _unary_derivatives():
    """d y / d x of the elementwise ops that have no onnxruntime-training gradient builder: (g, x, y, attrs, c)
    with c(value) a scalar of x's dtype. Piecewise-constant ops (Floor, Ceil, Round, Sign, Hardmax): derivative 0."""
    one_minus_square = lambda g, x, c: g.Sub(c(1), g.Mul(x, x))
    positive = lambda g, x, c: g.Greater(x, c(0))
    return {
        "Asin": lambda g, x, y, a, c: g.Reciprocal(g.Sqrt(one_minus_square(g, x, c))),
        "Acos": lambda g, x, y, a, c: g.Neg(g.Reciprocal(g.Sqrt(one_minus_square(g, x, c)))),
        "Atan": lambda g, x, y, a, c: g.Reciprocal(g.Add(c(1), g.Mul(x, x))),
        "Asinh": lambda g, x, y, a, c: g.Reciprocal(g.Sqrt(g.Add(g.Mul(x, x), c(1)))),
        "Acosh": lambda g, x, y, a, c: g.Reciprocal(g.Sqrt(g.Sub(g.Mul(x, x), c(1)))),
        "Atanh": lambda g, x, y, a, c: g.Reciprocal(one_minus_square(g, x, c)),
        "Sinh": lambda g, x, y, a, c: g.Cosh(x),
        "Cosh": lambda g, x, y, a, c: g.Sinh(x),
        "Tan": lambda g, x, y, a, c: g.Add(c(1), g.Mul(y, y)),
        "Elu": lambda g, x, y, a, c: g.Where(positive(g, x, c), c(1), g.Add(y, c(a.get("alpha", 1.0)))),
        "Celu": lambda g, x, y, a, c: g.Where(positive(g, x, c), c(1), g.Exp(g.Div(x, c(a.get("alpha", 1.0))))),
        "Selu": lambda g, x, y, a, c: g.Mul(c(a.get("gamma", 1.0507009873554805)), g.Where(
            positive(g, x, c), c(1), g.Mul(c(a.get("alpha", 1.6732632423543772)), g.Exp(x)))),
        "HardSigmoid": lambda g, x, y, a, c: _inside(
            g, g.Add(g.Mul(x, c(a.get("alpha", 0.2))), c(a.get("beta", 0.5))), c, c(a.get("alpha", 0.2))),
        "HardSwish": lambda g, x, y, a, c: g.Where(g.Greater(x, c(3)), c(1), g.Where(
            g.Less(x, c(-3)), c(0), g.Add(g.Div(x, c(3)), c(0.5)))),
        "Shrink": lambda g, x, y, a, c: g.cast(g.Greater(g.Abs(x), c(a.get("lambd", 0.5))), g.dtype(x)),
        "Softplus": lambda g, x, y, a, c: g.Sigmoid(x),
        "Softsign": lambda g, x, y, a, c: g.Reciprocal(g.Mul(g.Add(c(1), g.Abs(x)), g.Add(c(1), g.Abs(x)))),
        "ThresholdedRelu": lambda g, x, y, a, c: g.cast(g.Greater(x, c(a.get("alpha", 1.0))), g.dtype(x)),
        "Floor": None, "Ceil": None, "Round": None, "Sign": None, "Hardmax": None,
    }


def _inside(g, value, c, slope):
    """slope where 0 < value < 1, else 0."""
    return g.Where(g.And(g.Greater(value, c(0)), g.Less(value, c(1))), slope, c(0))


UNARY_DERIVATIVES = _unary_derivatives()


@_rule(*UNARY_DERIVATIVES)
def _unary(g, node, inputs):
    """The node, differentiated through its derivative (g.with_gradient); 0 for piecewise-constant ops."""
    x = inputs[0]
    out = node.emit(g, inputs)
    derivative = UNARY_DERIVATIVES[node.op_type]
    if derivative is None:
        return g.stop_gradient(out, g.dtype(x))
    c = lambda v: g.scalar(v, g.dtype(x))
    return g.with_gradient(out, lambda: [(x, derivative(g, x, out, node.attrs, c))])


@_rule("Clip")
def _clip(g, node, inputs):
    """d/dx where min <= x <= max, d/dmin where x < min, d/dmax where max(x, min) > max (ONNX's Clip is
    min(max(x, min), max): ties go to x, as in PyTorch's clamp; with min > max everything goes to max)."""
    x, low, high = (list(inputs) + [None, None])[:3]
    out = g.Clip(x, low, high)

    def partials():
        below = g.Less(x, low) if low is not None else None
        above = g.Greater(x if low is None else g.Max(x, low), high) if high is not None else None
        inside = below if above is None else above if below is None else g.Or(below, above)
        result = [(x, _mask(g, g.Not(inside), x) if inside is not None else _one(g, x))]
        if low is not None:
            result.append((low, _mask(g, below if above is None else g.And(below, g.Not(above)), x)))
        if high is not None:
            result.append((high, _mask(g, above, x)))
        return result
    return g.with_gradient(out, partials)


@_rule("Mod")
def _mod(g, node, inputs):
    """fmod (the only Mod of floats): d/da = 1, d/db = -trunc(a / b)."""
    a, b = inputs
    out = node.emit(g, inputs)
    if not np.issubdtype(g.dtype(a), np.floating):
        return out

    def partials():
        ratio = g.Div(a, b)
        trunc = g.Mul(g.Sign(ratio), g.Floor(g.Abs(ratio)))
        return [(a, g.Expand(_one(g, a), g.int64s(node.out_shapes[0]))), (b, g.Neg(trunc))]
    return g.with_gradient(out, partials)


@_rule("Sum", "Mean", float64=True)
def _sum(g, node, inputs):
    """A chain of Add (no Sum/Mean gradient builder; no float64 Mean kernel)."""
    total = inputs[0]
    for value in inputs[1:]:
        total = g.Add(total, value)
    if node.op_type == "Mean" and len(inputs) > 1:
        return g.Div(total, g.scalar(len(inputs), g.dtype(inputs[0])))
    return total if len(inputs) > 1 else g.Identity(total)


@_rule("CastLike")
def _cast_like(g, node, inputs):
    """Cast to the second input's dtype (no CastLike gradient builder)."""
    return g.cast(inputs[0], g.dtype(inputs[1]))


@_rule("PRelu")
def _prelu(g, node, inputs):
    """x where x > 0, else slope * x (the slope broadcasts to x): d/dx at 0 is the slope, as in PyTorch."""
    x, slope = inputs
    return g.Where(g.Greater(x, _zero(g, x)), x, g.Mul(x, slope))


@_rule("Where")
def _where(g, node, inputs):
    """Both branches expanded to the output shape (ORT's Where gradient keeps the broadcast shape)."""
    condition, x, y = inputs
    shape = g.int64s(node.out_shapes[0])
    return g.Where(condition, g.Expand(x, shape), g.Expand(y, shape))


@_rule("OneHot", float64=True)
def _one_hot(g, node, inputs):
    """Where(index == range(depth), on, off) with both values expanded: ORT's OneHot has no gradient for values
    (and no float64 kernel). Negative indices count from the end, out-of-range ones select no class."""
    indices, _, values = inputs
    shape = node.out_shapes[0]
    axis = node.attrs.get("axis", -1) % len(shape)
    depth = shape[axis]
    index = g.cast(indices, np.int64)
    index = g.Where(g.Less(index, g.int64s(0)), g.Add(index, g.int64s(depth)), index)
    classes = np.arange(depth, dtype=np.int64).reshape([depth] + [1] * (len(shape) - 1 - axis))
    hit = g.Equal(g.Unsqueeze(index, g.int64s([axis])), g.const(classes))
    full = g.int64s(shape)
    pick = lambda k: g.Expand(g.Gather(values, g.int64s(k), axis=0), full)
    return g.Where(hit, pick(1), pick(0))


@_rule("Pad")
def _pad(g, node, inputs):
    """constant mode with a value: Pad(x, 0) + value * (padded positions), so that the value gets its gradient
    (ORT's Pad gradient ignores it)."""
    x, pads = inputs[:2]
    value = inputs[2] if len(inputs) > 2 else None
    if node.attrs.get("mode", "constant") != "constant" or value is None:
        return node.emit(g, inputs)
    zero = _zero(g, x)
    inside = g.Pad(g.Expand(_one(g, x), g.int64s(g.shape(x))), pads, zero)
    return g.Add(g.Pad(x, pads, zero), g.Mul(g.Reshape(value, g.int64s([])), g.Sub(_one(g, x), inside)))


@_rule("ScatterElements", "ScatterND")
def _scatter(g, node, inputs):
    """Other dtypes than float32, reduction none or add: data * (1 - hit) + scatter(zeros, updates) (ORT's
    Scatter* gradient builders make float32 zeros, a type error in float64 graphs)."""
    data, indices, updates = inputs
    reduction = node.attrs.get("reduction", "none")
    dtype = g.dtype(data)
    if np.dtype(dtype) == np.float32 or reduction not in ("none", "add"):
        return node.emit(g, inputs)
    scatter = lambda base, values: g.emit_with_attributes(node.op_type, [base, indices, values], node.raw, 1)
    zeros = g.const(np.zeros(g.shape(data), dtype))
    spread = scatter(zeros, updates)
    if reduction == "add":
        return g.Add(data, spread)
    hit = scatter(zeros, g.const(np.ones(g.shape(updates), dtype)))
    return g.Add(g.Mul(data, g.Sub(g.scalar(1, dtype), hit)), spread)


# ---------------------------------------------------------------- linear algebra
@_rule("MatMul")
def _matmul(g, node, inputs):
    """Other dtypes than float32 (ORT's gradient of a batched or vector MatMul uses FusedMatMul, which has no
    float64 kernel): vectors made matrices, (..., M, K) @ (K, N) one 2-D MatMul, other batch shapes expanded to the
    output's and multiplied by batch_matmul."""
    a, b = inputs
    sa, sb, out_shape, dtype = list(g.shape(a)), list(g.shape(b)), node.out_shapes[0], g.dtype(a)
    if dtype == np.float32 or (len(sa) == 2 and len(sb) == 2):
        return g.MatMul(a, b)
    if len(sa) == 1:
        a, sa = g.Unsqueeze(a, g.int64s([0])), [1] + sa
    if len(sb) == 1:
        b, sb = g.Unsqueeze(b, g.int64s([1])), sb + [1]
    if len(sb) == 2:
        product = g.MatMul(g.Reshape(a, g.int64s([-1, sa[-1]])), b)
    else:
        batch = [max(x, y) for x, y in zip([1] * (len(sb) - len(sa)) + sa[:-2], [1] * (len(sa) - len(sb)) + sb[:-2])]
        a = g.Expand(a, g.int64s(batch + sa[-2:])) if sa[:-2] != batch else a
        b = g.Expand(b, g.int64s(batch + sb[-2:])) if sb[:-2] != batch else b
        product = batch_matmul(g, a, b, False, False, len(batch) + 2, dtype)
    return g.Reshape(product, g.int64s(out_shape))


def _einsum_terms(equation, shapes):
    """(operand subscripts, output subscripts) with the ellipsis spelt out as letters of its own."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise MXNetError("Einsum: equation %r names %d operands, the node has %d" % (equation, len(terms),
                                                                                   len(shapes)))
    spare = [c for c in string.ascii_letters if c not in equation]
    width = max([len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t] or [0])
    ellipsis = "".join(spare[:width])
    terms = [t.replace("...", ellipsis[width - (len(s) - len(t.replace("...", ""))):]) for t, s in
             zip(terms, shapes)]
    if arrow:
        output = rhs.replace("...", ellipsis)
    else:
        letters = "".join(terms)
        output = ellipsis + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis))
    return terms, output


def _einsum_reduce(g, value, term, sizes, keep, dtype):
    """`value` (subscripts `term`) with repeated letters taken on the diagonal and letters not in `keep` summed."""
    for letter in set(term):
        while term.count(letter) > 1:
            first, second = term.index(letter), term.index(letter, term.index(letter) + 1)
            n = sizes[letter]
            eye = np.eye(n).reshape([n if i in (first, second) else 1 for i in range(len(term))])
            value = g.ReduceSum(g.Mul(value, g.const(eye.astype(dtype))), g.int64s([second]), keepdims=0)
            term = term[:second] + term[second + 1:]
    drop = [i for i, c in enumerate(term) if c not in keep]
    if drop:
        value = g.ReduceSum(value, g.int64s(drop), keepdims=0)
        term = "".join(c for c in term if c in keep)
    return value, term


def _einsum_pair(g, a, ta, b, tb, keep, sizes, dtype):
    """Contract two operands with one (batched) MatMul: (batch, left, shared) @ (batch, shared, right)."""
    batch = [c for c in ta if c in tb and c in keep]
    shared = [c for c in ta if c in tb and c not in keep]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    size = lambda letters: int(np.prod([sizes[c] for c in letters])) if letters else 1
    a = g.Transpose(a, perm=[ta.index(c) for c in batch + left + shared])
    b = g.Transpose(b, perm=[tb.index(c) for c in batch + shared + right])
    if batch:
        a = g.Reshape(a, g.int64s([size(batch), size(left), size(shared)]))
        b = g.Reshape(b, g.int64s([size(batch), size(shared), size(right)]))
        product = batch_matmul(g, a, b, False, False, 3, dtype)
    else:
        a = g.Reshape(a, g.int64s([size(left), size(shared)]))
        product = g.MatMul(a, g.Reshape(b, g.int64s([size(shared), size(right)])))
    out = g.Reshape(product, g.int64s([sizes[c] for c in batch + left + right]))
    return out, "".join(batch + left + right)


@_rule("Einsum")
def _einsum(g, node, inputs):
    """Diagonals as a Mul by an identity, summed letters as ReduceSum, each pair of operands as one batched
    MatMul (ORT has no Einsum gradient)."""
    shapes = [list(g.shape(v)) for v in inputs]
    terms, output = _einsum_terms(node.attrs["equation"], shapes)
    sizes = {}
    for term, shape in zip(terms, shapes):
        for letter, size in zip(term, shape):
            sizes[letter] = max(size, sizes.get(letter, 1))
    values = []
    for value, term, shape in zip(inputs, terms, shapes):
        full = [sizes[c] for c in term]
        if full != list(shape):        # size-1 dimensions broadcast
            value = g.Expand(value, g.int64s(full))
        values.append(value)
    dtype, value, term = g.dtype(inputs[0]), None, ""
    for index, (operand, operand_term) in enumerate(zip(values, terms)):
        needed = set(output).union(*[set(t) for t in terms[index + 1:]])    # by later operands or the output
        operand, operand_term = _einsum_reduce(g, operand, operand_term, sizes, needed | set(term), dtype)
        if value is None:
            value, term = operand, operand_term
            continue
        value, term = _einsum_reduce(g, value, term, sizes, needed | set(operand_term), dtype)
        value, term = _einsum_pair(g, value, term, operand, operand_term, needed, sizes, dtype)
    value, term = _einsum_reduce(g, value, term, sizes, set(output), dtype)
    if term != output:
        value = g.Transpose(value, perm=[term.index(c) for c in output])
    return g.Reshape(value, g.int64s(node.out_shapes[0]))


# ---------------------------------------------------------------- convolution
@_rule("ConvTranspose")
def _conv_transpose(g, node, inputs):
    """A stride-1 Conv of the zero-inserted input with the flipped kernel (no CPU ConvTransposeGrad kernel)."""
    x, w = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    shape, wshape, out_shape = g.shape(x), g.shape(w), node.out_shapes[0]
    ndim = len(shape) - 2
    kernel = node.attrs.get("kernel_shape") or list(wshape[2:])
    stride = node.attrs.get("strides") or [1] * ndim
    dilate = node.attrs.get("dilations") or [1] * ndim
    adj = node.attrs.get("output_padding") or [0] * ndim
    group = node.attrs.get("group", 1)
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    pads = node.attrs.get("pads") or [0] * (2 * ndim)
    if auto_pad != "NOTSET" or node.attrs.get("output_shape"):
        pads = [0] * (2 * ndim)
        if auto_pad != "VALID":
            for i in range(ndim):
                full = stride[i] * (shape[2 + i] - 1) + adj[i] + (kernel[i] - 1) * dilate[i] + 1
                total = full - out_shape[2 + i]
                small, large = total // 2, total - total // 2
                pads[i], pads[ndim + i] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    return conv_transpose(g, x, w, bias, kernel, stride, dilate, pads[:ndim], adj, group, pad_end=pads[ndim:])
