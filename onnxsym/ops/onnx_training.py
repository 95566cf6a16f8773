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
"""
import itertools
import string

import numpy as np

from ..base import MXNetError
from .contrib import ROIAlign, ROIPooling
from .conv import conv_transpose
from .elemwise import power_partials
from .indexing import batch_matmul

__all__ = ["rule_for"]

_RULES = {}          # op type -> rule
_FLOAT64_RULES = set()   # op types whose rule also lowers float64 inference graphs (ORT has no float64 CPU kernel)
_OWN_AD_RULES = set()    # op types whose rule onnxsym's own AD uses too (no VJP rule of its own, or a faster graph)


def _rule(*op_types, float64=False, own_ad=False):
    def register(fn):
        for op_type in op_types:
            _RULES[op_type] = fn
            if float64:
                _FLOAT64_RULES.add(op_type)
            if own_ad:
                _OWN_AD_RULES.add(op_type)
        return fn
    return register


def rule_for(op_type, training, dtypes, gradients="onnxsym"):
    """The rule lowering an ai.onnx node of `op_type` with input `dtypes`, or None for the node as it is.
    `gradients`: who differentiates the training graph, 'onnxsym' (its own VJP rules, autograd/vjp/, cover the
    node itself for most ops) or 'ort-training' (every rule here)."""
    if training and (gradients == "ort-training" or op_type in _OWN_AD_RULES):
        return _RULES.get(op_type)
    if op_type in _FLOAT64_RULES and any(np.dtype(d) == np.float64 for d in dtypes):
        return _RULES.get(op_type)
    return None


def _zero(g, like):
    return g.scalar(0, g.dtype(like))


def _one(g, like):
    return g.scalar(1, g.dtype(like))


def _mask(g, condition, like):
    return g.cast(condition, g.dtype(like))


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


def _deform_positions(g, node, offset, kernel, out_spatial, offset_group, dtype):
    """Sampling rows and columns (N, offset_group, kH*kW*oH*oW): output position * stride - pad + tap * dilation
    + the offset, whose channels are (offset group, tap, (y, x))."""
    n = g.shape(offset)[0]
    taps, count = int(np.prod(kernel)), int(np.prod(out_spatial))
    stride = node.attrs.get("strides") or [1, 1]
    dilate = node.attrs.get("dilations") or [1, 1]
    pads = node.attrs.get("pads") or [0, 0, 0, 0]
    grid = np.meshgrid(*[np.arange(k) for k in kernel], *[np.arange(o) for o in out_spatial], indexing="ij")
    offsets = g.Reshape(offset, g.int64s([n, offset_group, taps, 2, count]))
    positions = []
    for d in range(2):
        base = grid[2 + d] * stride[d] - pads[d] + grid[d] * dilate[d]          # (kH, kW, oH, oW)
        part = g.Slice(offsets, g.int64s([d]), g.int64s([d + 1]), g.int64s([3]))
        part = g.Reshape(part, g.int64s([n, offset_group, taps * count]))
        positions.append(g.Add(part, g.const(base.reshape(1, 1, -1).astype(dtype))))
    return positions


@_rule("DeformConv", own_ad=True)
def _deform_conv(g, node, inputs):
    """Bilinear samples of X at the offset kernel taps (0 outside the image, as ORT and torchvision), times the
    mask, contracted with W per group by a batched MatMul, plus B: Gathers and products whose gradients reach X,
    W, offset, mask and B (ORT has no DeformConv gradient)."""
    x, w, offset = inputs[:3]
    bias = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    if len(g.shape(x)) != 4:
        raise MXNetError("DeformConv: onnxsym differentiates 2-D DeformConv only (X of rank 4), not X of shape %s"
                         % (tuple(g.shape(x)),))
    dtype = g.dtype(x)
    c = lambda v: g.scalar(v, dtype)
    n, channels, height, width = g.shape(x)
    out_channels = g.shape(w)[0]
    kernel = list(node.attrs.get("kernel_shape") or g.shape(w)[2:])
    group, offset_group = node.attrs.get("group", 1), node.attrs.get("offset_group", 1)
    out_spatial = list(g.shape(offset)[2:])
    taps, count = int(np.prod(kernel)), int(np.prod(out_spatial))
    rows, columns = _deform_positions(g, node, offset, kernel, out_spatial, offset_group, dtype)
    per_group = channels // offset_group
    images = g.Reshape(x, g.int64s([n, offset_group, per_group, height * width]))

    def corners(position, size):
        """[(index along the axis, no gradient; 0/1 inside the image; bilinear weight)] of the two neighbours."""
        low = g.Floor(g.stop_gradient(position, dtype))
        t = g.Sub(position, low)
        out = []
        for index, weight in ((low, g.Sub(c(1), t)), (g.Add(low, c(1)), t)):
            inside = g.And(g.GreaterOrEqual(index, c(0)), g.LessOrEqual(index, c(size - 1)))
            out.append((g.Clip(index, c(0), c(size - 1)), g.cast(inside, dtype), weight))
        return out

    scale = None if mask is None else g.Reshape(mask, g.int64s([n, offset_group, 1, taps * count]))
    sampled = None
    for (row, row_in, row_weight), (column, column_in, column_weight) in itertools.product(
            corners(rows, height), corners(columns, width)):
        index = g.cast(g.Add(g.Mul(row, c(width)), column), np.int64)
        index = g.Expand(g.Unsqueeze(index, g.int64s([2])), g.int64s([n, offset_group, per_group, taps * count]))
        weight = g.Unsqueeze(g.Mul(g.Mul(row_weight, column_weight), g.Mul(row_in, column_in)), g.int64s([2]))
        if scale is not None:
            weight = g.Mul(weight, scale)
        term = g.Mul(g.GatherElements(images, index, axis=3), weight)     # (N, offset groups, C/og, K*L)
        sampled = term if sampled is None else g.Add(sampled, term)
    in_group, out_group = channels // group, out_channels // group
    unfolded = g.Reshape(sampled, g.int64s([n, group, in_group * taps, count]))        # im2col, per group
    kernels = g.Expand(g.Reshape(w, g.int64s([1, group, out_group, in_group * taps])),
                       g.int64s([n, group, out_group, in_group * taps]))
    out = g.Reshape(batch_matmul(g, kernels, unfolded, False, False, 4, dtype),
                    g.int64s([n, out_channels, *out_spatial]))
    return out if bias is None else g.Add(out, g.Reshape(bias, g.int64s([out_channels, 1, 1])))


# ---------------------------------------------------------------- sampling
def _reflect(g, value, low, high, dtype):
    """(value reflected by the near border until inside [low, high], d reflected / d value: +-1), no gradient
    (ONNX GridSample's reflection, applied to coordinates and to the pixels a kernel reaches)."""
    c = lambda v: g.scalar(v, dtype)
    span = high - low
    frozen = g.stop_gradient(value, dtype)
    if span <= 0:           # a single pixel with align_corners: every coordinate reflects onto it
        return g.Add(g.Mul(frozen, c(0)), c(low)), c(0)
    below, above = g.Less(frozen, c(low)), g.Greater(frozen, c(high))
    distance = g.Where(below, g.Sub(c(low), frozen), g.Where(above, g.Sub(frozen, c(high)), c(0)))
    turns = g.Floor(g.Div(distance, c(span)))
    rest = g.Sub(distance, g.Mul(turns, c(span)))
    even = g.Equal(g.Mod(turns, c(2), fmod=1), c(0))
    near, far = g.Where(below, c(low), c(high)), g.Where(below, c(high), c(low))
    toward = g.Where(below, c(1), c(-1))          # from the near border into the image
    reflected = g.Where(even, g.Add(near, g.Mul(toward, rest)), g.Sub(far, g.Mul(toward, rest)))
    reflected = g.Where(g.Or(below, above), reflected, frozen)
    sign = g.Where(g.And(g.Or(below, above), even), c(-1), c(1))
    return g.stop_gradient(reflected, dtype), g.stop_gradient(sign, dtype)


def _sample_axis(g, coordinate, size, align_corners, padding, dtype):
    """Pixel coordinate of a normalized one, padded (border: clamped; reflection: reflected, derivative +-1)."""
    c = lambda v: g.scalar(v, dtype)
    if align_corners:
        x = g.Mul(g.Add(coordinate, c(1)), c((size - 1) / 2.0))
    else:
        x = g.Div(g.Sub(g.Mul(g.Add(coordinate, c(1)), c(size)), c(1)), c(2))
    return x if padding is None else _pad_coordinate(g, x, size, align_corners, padding, dtype)


def _pad_coordinate(g, x, size, align_corners, padding, dtype):
    c = lambda v: g.scalar(v, dtype)
    low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if padding == "border":
        return g.Clip(x, c(0), c(size - 1))
    if padding == "reflection":
        reflected, sign = _reflect(g, x, low, high, dtype)
        return g.Add(reflected, g.Mul(g.Sub(x, g.stop_gradient(x, dtype)), sign))
    return x


def _cubic_weights(g, t, c, a=-0.75):
    """Keys' cubic convolution weights of the taps at -1, 0, 1, 2 from the left neighbour, t in [0, 1)."""
    far = lambda d: g.Sub(g.Mul(g.Add(g.Mul(g.Sub(g.Mul(c(a), d), c(5 * a)), d), c(8 * a)), d), c(4 * a))
    near = lambda d: g.Add(g.Mul(g.Mul(g.Sub(g.Mul(c(a + 2), d), c(a + 3)), d), d), c(1))
    one_minus = g.Sub(c(1), t)
    return [far(g.Add(t, c(1))), near(t), near(one_minus), far(g.Add(one_minus, c(1)))]


@_rule("GridSample", float64=True, own_ad=True)
def _grid_sample(g, node, inputs):
    """Nearest / (bi, tri)linear / bicubic sampling of 2-D or 3-D images as GatherElements of the taps times
    interpolation weights that are differentiable in the grid (ORT has no GridSample gradient, nor a float64
    kernel). As ORT: nearest rounds half to even before padding; the coordinate is padded (border, reflection;
    bicubic: reflection only) before the kernel; the taps outside the image are 0 (zeros), the edge (border) or
    reflected (reflection)."""
    x, grid = inputs
    mode = node.attrs.get("mode", "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = node.attrs.get("padding_mode", "zeros")
    if mode not in ("linear", "nearest", "cubic") or padding not in ("zeros", "border", "reflection"):
        raise MXNetError("GridSample: mode %s / padding_mode %s is not one ONNX defines" % (mode, padding))
    align = bool(node.attrs.get("align_corners", 0))
    n, channels, *sizes = g.shape(x)
    out_spatial = g.shape(grid)[1:-1]
    rank, count = len(sizes), int(np.prod(out_spatial))
    dtype = g.dtype(x)
    c = lambda v: g.scalar(v, dtype)
    # grid[..., 0] is the last spatial axis (width), grid[..., 1] the one before, ...
    part = lambda k: g.Reshape(g.Slice(grid, g.int64s([k]), g.int64s([k + 1]), g.int64s([rank + 1])),
                               g.int64s([n, 1, count]))
    flat = g.Reshape(x, g.int64s([n, channels, int(np.prod(sizes))]))
    strides = [int(np.prod(sizes[d + 1:])) for d in range(rank)]

    def taps(d):
        """[(pixel index along spatial axis d (float-valued, no gradient), weight or None)]."""
        size = sizes[d]
        if mode == "nearest":
            pixel = g.Round(g.stop_gradient(_sample_axis(g, part(rank - 1 - d), size, align, None, dtype), dtype))
            return [(g.stop_gradient(_pad_coordinate(g, pixel, size, align, padding, dtype), dtype), None)]
        # ORT's bicubic leaves the coordinate as it is with border padding: only the taps are clamped
        coordinate = _sample_axis(g, part(rank - 1 - d), size, align,
                                  None if mode == "cubic" and padding == "border" else padding, dtype)
        low = g.Floor(g.stop_gradient(coordinate, dtype))
        t = g.Sub(coordinate, low)
        if mode == "linear":
            return [(low, g.Sub(c(1), t)), (g.Add(low, c(1)), t)]
        return [(g.Add(low, c(k)), w) for k, w in zip((-1, 0, 1, 2), _cubic_weights(g, t, c))]

    def pixel(d, index):
        """(index inside axis d, 0/1 mask or None) under the padding mode."""
        size = sizes[d]
        if padding == "reflection":
            low, high = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
            index = _reflect(g, index, low, high, dtype)[0]
        inside = None
        if padding == "zeros":
            inside = g.And(g.GreaterOrEqual(index, c(0)), g.LessOrEqual(index, c(size - 1)))
        return g.Clip(index, c(0), c(size - 1)), inside

    per_axis = [[(pixel(d, index), weight) for index, weight in taps(d)] for d in range(rank)]
    out = None
    for combination in itertools.product(*per_axis):
        index, inside, weight = None, None, None
        for d, ((position, mask), w) in enumerate(combination):
            term = g.Mul(position, c(strides[d])) if strides[d] != 1 else position
            index = term if index is None else g.Add(index, term)
            if mask is not None:
                inside = mask if inside is None else g.And(inside, mask)
            if w is not None:
                weight = w if weight is None else g.Mul(weight, w)
        index = g.cast(index, np.int64)
        value = g.GatherElements(flat, g.Expand(index, g.int64s([n, channels, count])), axis=2)
        if inside is not None:
            weight = g.cast(inside, dtype) if weight is None else g.Mul(weight, g.cast(inside, dtype))
        term = value if weight is None else g.Mul(value, weight)
        out = term if out is None else g.Add(out, term)
    return g.Reshape(out, g.int64s([n, channels, *out_spatial]))


def _resize_setting(g, value, position, dtype):
    """Element `position` of a Resize setting input (roi, scales) as a scalar of `dtype`, without gradient."""
    return g.stop_gradient(g.cast(g.Gather(value, g.int64s(position), axis=0), dtype), dtype)


def _resize_scale(g, node, settings, k, n_in, n_out, dtype):
    """(the runtime scale of the k-th resized axis, a static lower bound of it). With `sizes` the scale is
    n_out / n_in, or, with keep_aspect_ratio_policy, the one scale of every axis (min or max of sizes / input)."""
    roi, scales, sizes, axes, in_shape = settings
    if scales is not None:
        # ONNX: n_out = floor(n_in * scale); the margin covers float32 rounding of the product
        return _resize_setting(g, scales, k, dtype), n_out / n_in * (1 - 1e-6)
    policy = node.attrs.get("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return g.scalar(n_out / n_in, dtype), n_out / n_in
    if policy not in ("not_larger", "not_smaller"):
        raise MXNetError("Resize: keep_aspect_ratio_policy %s is not one of stretch, not_larger, not_smaller" % policy)
    ratios = g.Div(g.cast(sizes, dtype), g.const(np.array([in_shape[a] for a in axes], dtype=dtype)))
    scale = (g.ReduceMin if policy == "not_larger" else g.ReduceMax)(ratios, keepdims=0)
    return g.stop_gradient(scale, dtype), max(n_out - 0.5, 0.5) / n_in      # n_out = round(n_in * scale)


def _resize_coordinates(g, node, settings, k, n_in, n_out, scale, dtype):
    """The input coordinate of each output position along the k-th resized axis (n_out,), as ONNX's
    coordinate_transformation_mode defines it (values, no gradient: roi and scales are settings)."""
    c = lambda v: g.scalar(v, dtype)
    mode = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    position = g.const(np.arange(n_out, dtype=dtype))
    half_pixel = lambda: g.Sub(g.Div(g.Add(position, c(0.5)), scale), c(0.5))
    if mode == "align_corners":
        return g.Mul(position, c((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0))
    if mode == "asymmetric":
        return g.Div(position, scale)
    if mode == "half_pixel":
        return half_pixel()
    if mode == "pytorch_half_pixel":
        return half_pixel() if n_out > 1 else g.Mul(position, c(0.0))
    if mode == "half_pixel_symmetric":
        adjustment = g.Div(c(n_out), g.Mul(scale, c(n_in)))       # the integer output size over the exact one
        offset = g.Mul(c(n_in / 2.0), g.Sub(c(1), adjustment))
        return g.Add(offset, half_pixel())
    if mode == "tf_crop_and_resize":
        roi, rank = settings[0], len(settings[3])
        if roi is None:
            raise MXNetError("Resize: coordinate_transformation_mode tf_crop_and_resize needs the roi input")
        start, end = _resize_setting(g, roi, k, dtype), _resize_setting(g, roi, k + rank, dtype)
        if n_out == 1:
            return g.Add(g.Mul(position, c(0.0)), g.Mul(g.Add(start, end), c(0.5 * (n_in - 1))))
        step = g.Mul(g.Sub(end, start), c((n_in - 1) / (n_out - 1)))
        return g.Add(g.Mul(start, c(n_in - 1)), g.Mul(position, step))
    raise MXNetError("Resize: coordinate_transformation_mode %s is not one ONNX defines" % mode)


def _resize_kernel(g, node, distance, c):
    """The interpolation kernel at `distance` (|t|): linear's triangle or the Keys cubic with cubic_coeff_a."""
    if node.attrs.get("mode") == "linear":
        return g.Max(g.Sub(c(1), distance), c(0))
    a = node.attrs.get("cubic_coeff_a", -0.75)
    t = distance
    near = g.Add(g.Mul(g.Mul(g.Sub(g.Mul(c(a + 2), t), c(a + 3)), t), t), c(1))
    far = g.Sub(g.Mul(g.Add(g.Mul(g.Sub(g.Mul(c(a), t), c(5 * a)), t), c(8 * a)), t), c(4 * a))
    return g.Where(g.LessOrEqual(t, c(1)), near, g.Where(g.Less(t, c(2)), far, c(0)))


def _resize_taps(g, node, coordinate, n_in, scale, scale_low, dtype):
    """[(input index (n_out,) int64, weight (n_out,) or None)] of the interpolation along one axis, as onnx's
    reference defines it: the taps left of the coordinate (ratio in (0, 1]) and right of it, edge-padded; with
    antialias and a scale below 1 the kernel is stretched by 1 / scale (more taps) and normalized to sum 1;
    exclude_outside drops the taps outside the input and renormalizes."""
    c = lambda v: g.scalar(v, dtype)
    index = lambda v: g.cast(g.Clip(v, c(0), c(n_in - 1)), np.int64)
    mode = node.attrs.get("mode", "nearest")
    if mode == "nearest":       # (antialias and exclude_outside apply to linear and cubic only)
        rounding = node.attrs.get("nearest_mode", "round_prefer_floor")
        rounders = {"round_prefer_floor": lambda v: g.Ceil(g.Sub(v, c(0.5))),
                    "round_prefer_ceil": lambda v: g.Floor(g.Add(v, c(0.5))), "floor": g.Floor, "ceil": g.Ceil}
        if rounding not in rounders:
            raise MXNetError("Resize: nearest_mode %s is not one ONNX defines" % rounding)
        return [(index(rounders[rounding](coordinate)), None)]
    radius = 1 if mode == "linear" else 2
    antialias = bool(node.attrs.get("antialias", 0))
    stretch = 1.0 / min(scale_low, 1.0) if antialias else 1.0
    first = int(np.floor(-radius * stretch)) + 1          # taps first .. 1 - first around the left neighbour
    base = g.Sub(g.Ceil(coordinate), c(1))                # left neighbour: ratio = coordinate - base in (0, 1]
    ratio = g.Sub(coordinate, base)
    factor = g.Min(scale, c(1.0)) if antialias else None
    taps, weights = [], []
    for k in range(first, 2 - first):
        offset = g.Sub(c(k), ratio)
        distance = g.Abs(offset if factor is None else g.Mul(offset, factor))
        taps.append(g.Add(base, c(k)))
        weights.append(_resize_kernel(g, node, distance, c))
    if node.attrs.get("exclude_outside", 0):
        weights = [g.Mul(w, g.cast(g.And(g.GreaterOrEqual(t, c(0)), g.LessOrEqual(t, c(n_in - 1))), dtype))
                   for w, t in zip(weights, taps)]
    if antialias or node.attrs.get("exclude_outside", 0):
        total = weights[0]
        for w in weights[1:]:
            total = g.Add(total, w)
        weights = [g.Div(w, total) for w in weights]
    return [(index(t), w) for t, w in zip(taps, weights)]


@_rule("Resize", float64=True, own_ad=True)
def _resize(g, node, inputs):
    """One axis at a time: Gather of the interpolation taps times their weights (ORT has no CPU ResizeGrad
    kernel); every attribute as ONNX's spec and reference define it. roi, scales and sizes are settings (no
    gradient). An axis is skipped only where it is the identity for any setting (size 1, or sizes keeping it)."""
    if node._op.opset < 11:
        raise MXNetError("Resize: the opset-10 form (scales as the second input) is not supported in training "
                         "graphs; convert the model to opset 11 or later")
    x, roi, scales, sizes = (list(inputs) + [None] * 4)[:4]
    present = lambda v: v is not None and g.shape(v)[0] > 0
    roi = roi if present(roi) else None
    scales, sizes = (scales if present(scales) else None), (sizes if present(sizes) else None)
    mode = node.attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise MXNetError("Resize: mode %s is not one ONNX defines (nearest, linear, cubic)" % mode)
    transform = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    shape, out_shape, dtype = list(g.shape(x)), node.out_shapes[0], g.dtype(x)
    axes = [a % len(shape) for a in node.attrs.get("axes", range(len(shape)))]
    if node.attrs.get("antialias", 0) and mode != "nearest" and transform == "tf_crop_and_resize":
        raise MXNetError("Resize: antialias with tf_crop_and_resize is not supported in training graphs (the "
                         "filter width depends on the run-time roi)")
    if list(out_shape) == shape:        # ORT copies the input whatever the scales and roi say (the reference not)
        return g.Identity(x)
    settings = (roi, scales, sizes, axes, shape)
    fixed = scales is None and node.attrs.get("keep_aspect_ratio_policy", "stretch") == "stretch"
    out, outside = x, None
    for k, axis in enumerate(axes):
        n_in, n_out = shape[axis], out_shape[axis]
        if n_in == n_out and (n_in == 1 or (fixed and transform != "tf_crop_and_resize")):
            continue
        scale, scale_low = _resize_scale(g, node, settings, k, n_in, n_out, dtype)
        coordinate = _resize_coordinates(g, node, settings, k, n_in, n_out, scale, dtype)
        result = None
        for index, weight in _resize_taps(g, node, coordinate, n_in, scale, scale_low, dtype):
            value = g.Gather(out, index, axis=axis)
            if weight is not None:
                value = g.Mul(value, g.Reshape(weight, g.int64s([n_out] + [1] * (len(shape) - axis - 1))))
            result = value if result is None else g.Add(result, value)
        out = result
        if transform == "tf_crop_and_resize":       # outside the input: extrapolation_value
            c = lambda v: g.scalar(v, dtype)
            away = g.Or(g.Less(coordinate, c(0)), g.Greater(coordinate, c(n_in - 1)))
            away = g.Reshape(away, g.int64s([n_out] + [1] * (len(shape) - axis - 1)))
            outside = away if outside is None else g.Or(outside, away)
    if outside is not None:
        out = g.Where(outside, g.scalar(node.attrs.get("extrapolation_value", 0.0), dtype), out)
    return out if out is not x else g.Identity(x)


def _reduce(g, op_type, value, axis):
    """ReduceMax / ReduceMin over one axis, dropped (axes are an input from opset 18, an attribute before)."""
    if g.domains[""] >= 18:
        return g.emit(op_type, [value, g.int64s([axis])], {"keepdims": 0})
    return g.emit(op_type, [value], {"axes": [axis], "keepdims": 0})


def _roi_max_axis(g, lo, hi, pooled, size, ratio, half_pixel, scale, dtype):
    """ORT's RoiAlign samples along one axis, summarized per pixel: (max weight, min weight) over the samples of
    each bin whose bilinear taps reach the pixel, (R, pooled, size) (-1 / 2 where none does), and (R, pooled)
    whether some sample of the bin lies outside [-1, size] (it contributes 0)."""
    c = lambda v: g.scalar(v, dtype)
    start = g.Sub(g.Mul(lo, scale), c(0.5 if half_pixel else 0.0))
    length = g.Sub(g.Sub(g.Mul(hi, scale), c(0.5 if half_pixel else 0.0)), start)
    if not half_pixel:
        length = g.Max(length, c(1))
    bin_size = g.Div(length, c(pooled))                                                  # (R, 1)
    base = g.Add(start, g.Mul(g.const(np.arange(pooled, dtype=dtype).reshape(1, -1)), bin_size))   # (R, P)
    if ratio > 0:
        count, first = c(ratio), None
        index = g.const(np.arange(ratio, dtype=dtype).reshape(1, 1, -1))
        window = ratio
    else:
        # ceil(bin) samples, >= 0.5 apart when there are several: 2*size + 4 of them from the first at or above -1
        # (minus one) reach past `size`; the rest lie outside [-1, size]
        count = g.Ceil(bin_size)
        step = g.Div(bin_size, g.Max(count, c(1)))
        first = g.Max(g.Sub(g.Ceil(g.Sub(g.Div(g.Sub(c(-1), base), step), c(0.5))), c(1)), c(0))   # (R, P)
        window = 2 * size + 4
        index = g.Add(g.Unsqueeze(first, g.int64s([2])),
                      g.const(np.arange(window, dtype=dtype).reshape(1, 1, -1)))
    grid = count if ratio > 0 else g.Unsqueeze(g.Max(count, c(1)), g.int64s([2]))
    y = g.Add(g.Unsqueeze(base, g.int64s([2])),
              g.Div(g.Mul(g.Add(index, c(0.5)), g.Unsqueeze(bin_size, g.int64s([2]))), grid))   # (R, P, G)
    in_grid = None if ratio > 0 else g.Less(index, g.Unsqueeze(count, g.int64s([2])))
    inside = g.And(g.GreaterOrEqual(y, c(-1)), g.LessOrEqual(y, c(size)))
    outside = g.Not(inside) if in_grid is None else g.And(in_grid, g.Not(inside))
    some_outside = g.cast(_reduce(g, "ReduceMax", g.cast(outside, dtype), 2), np.bool_)
    if ratio <= 0:
        beyond = g.Greater(count, g.Add(first, c(window)))
        some_outside = g.Or(some_outside, g.Or(g.Greater(first, c(0)), beyond))
    used = inside if in_grid is None else g.And(inside, in_grid)
    y = g.Max(y, c(0))
    low = g.Floor(y)
    at_end = g.GreaterOrEqual(low, c(size - 1))
    low = g.Where(at_end, g.Expand(c(size - 1), g.Shape(low)), low)
    high = g.Where(at_end, low, g.Add(low, c(1)))
    frac = g.Sub(g.Where(at_end, low, y), low)
    pixel = g.const(np.arange(size, dtype=dtype).reshape(1, 1, 1, -1))
    expand = lambda v: g.Unsqueeze(v, g.int64s([3]))
    used4 = expand(used)
    at_low = g.And(used4, g.Equal(pixel, expand(low)))
    at_high = g.And(used4, g.Equal(pixel, expand(high)))
    weight_low, weight_high = expand(g.Sub(c(1), frac)), expand(frac)
    largest = g.Max(g.Where(at_low, weight_low, c(-1)), g.Where(at_high, weight_high, c(-1)))
    smallest = g.Min(g.Where(at_low, weight_low, c(2)), g.Where(at_high, weight_high, c(2)))
    return _reduce(g, "ReduceMax", largest, 2), _reduce(g, "ReduceMin", smallest, 2), some_outside


def _roi_align_max(g, node, x, rois, batch):
    """mode max as ORT computes it: per bin, the largest of w_k * x[tap_k] over the four bilinear taps of every
    sample (0 for a sample outside [-1, size]). For a pixel the weights reaching it form a product set, so the
    largest candidate of the pixel is x * (max wy * max wx) for x >= 0 and x * (min wy * min wx) for x < 0: two
    masked maxima, first along the width, then along the height."""
    dtype = g.dtype(x)
    _, _, height, width = g.shape(x)
    c = lambda v: g.scalar(v, dtype)
    ph, pw = node.attrs.get("output_height", 1), node.attrs.get("output_width", 1)
    ratio = node.attrs.get("sampling_ratio", 0)
    half_pixel = node.attrs.get("coordinate_transformation_mode", "half_pixel") == "half_pixel"
    scale = c(np.float32(node.attrs.get("spatial_scale", 1.0)))
    boxes = g.stop_gradient(g.cast(rois, dtype), dtype)
    x1, y1, x2, y2 = [g.Slice(boxes, g.int64s([i]), g.int64s([i + 1]), g.int64s([1])) for i in range(4)]
    wy_max, wy_min, out_y = _roi_max_axis(g, y1, y2, ph, height, ratio, half_pixel, scale, dtype)
    wx_max, wx_min, out_x = _roi_max_axis(g, x1, x2, pw, width, ratio, half_pixel, scale, dtype)
    lowest = c(np.finfo(dtype).min / 4)
    images = g.Unsqueeze(g.Gather(x, g.cast(batch, np.int64), axis=0), g.int64s([3]))       # (R, C, H, 1, W)
    wx = lambda v: g.Unsqueeze(v, g.int64s([1, 2]))                                         # (R, 1, 1, PW, W)
    reach_x = wx(g.GreaterOrEqual(wx_max, c(0)))
    positive = g.GreaterOrEqual(images, c(0))
    best = lambda mask, weight: _reduce(g, "ReduceMax", g.Where(g.And(reach_x, mask), g.Mul(images, wx(weight)),
                                                                lowest), 4)                # (R, C, H, PW)
    pos, neg = best(positive, wx_max), best(g.Not(positive), wx_min)
    wy = lambda v: g.Unsqueeze(v, g.int64s([1, 4]))                                         # (R, 1, PH, H, 1)
    pos, neg = g.Unsqueeze(pos, g.int64s([2])), g.Unsqueeze(neg, g.int64s([2]))             # (R, C, 1, H, PW)
    candidate = g.Max(g.Where(g.Greater(pos, lowest), g.Mul(pos, wy(wy_max)), lowest),
                      g.Where(g.Greater(neg, lowest), g.Mul(neg, wy(wy_min)), lowest))
    candidate = g.Where(wy(g.GreaterOrEqual(wy_max, c(0))), candidate, lowest)
    out = _reduce(g, "ReduceMax", candidate, 3)                                             # (R, C, PH, PW)
    some_outside = g.Or(g.Unsqueeze(out_y, g.int64s([1, 3])), g.Unsqueeze(out_x, g.int64s([1, 2])))
    out = g.Where(some_outside, g.Max(out, c(0)), out)
    return g.Where(g.Greater(out, lowest), out, c(0))       # a bin without samples: 0


@_rule("RoiAlign", own_ad=True)
def _roi_align(g, node, inputs):
    """mode avg: MXNet's ROIAlign gather form (ORT has no RoiAlign gradient; its CPU kernel equals MXNet's,
    half_pixel being MXNet's aligned=True); mode max: _roi_align_max. The boxes get no gradient, as in MXNet."""
    x, rois, batch = inputs
    mode = node.attrs.get("mode", "avg")
    if mode == "max":
        return _roi_align_max(g, node, x, rois, batch)
    if mode != "avg":
        raise MXNetError("RoiAlign: mode %s is not one ONNX defines (avg, max)" % mode)
    op = ROIAlign(pooled_size=(node.attrs.get("output_height", 1), node.attrs.get("output_width", 1)),
                  spatial_scale=node.attrs.get("spatial_scale", 1.0),
                  sample_ratio=node.attrs.get("sampling_ratio", 0) or -1,
                  aligned=node.attrs.get("coordinate_transformation_mode", "half_pixel") == "half_pixel")
    dtype = g.dtype(rois)
    rois = g.Concat(g.cast(g.Unsqueeze(batch, g.int64s([1])), dtype), rois, axis=1)
    g.set_info(rois, None, dtype)
    return op.lower(g, x, rois)


@_rule("MaxRoiPool", own_ad=True)
def _max_roi_pool(g, node, inputs):
    """MXNet's ROIPooling gather form (ORT has no MaxRoiPool gradient; its CPU kernel equals MXNet's). The boxes
    get no gradient, as in MXNet."""
    x, rois = inputs
    op = ROIPooling(pooled_size=tuple(node.attrs["pooled_shape"]), spatial_scale=node.attrs.get("spatial_scale", 1.0))
    return op.lower(g, x, rois)[0]


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
