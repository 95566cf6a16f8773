"""VJP rules of ONNX ops that index, scatter, pad, sort or select elements.

Gathers differentiate into scatter-adds of the output gradient into zeros; scatters into gathers of it. Indices
may be negative (they count from the end) and are normalised first."""
from math import prod

import numpy as np

from ...base import MXNetError
from .registry import rule
from .reduce import _reduced_axes
from .shape import static_shape

# Hardmax: math.py; NonZero: elementwise.py (no gradient)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _zeros(g, shape, dtype):
    out = g.Expand(g.scalar(0, dtype), g.int64s(shape))
    g.set_info(out, shape, dtype)
    return out


def _wrapped(g, indices, size):
    """int64 indices with negative ones counted from the end of an axis of `size` (a number, or an array
    broadcasting against the indices); a constant when the indices are."""
    size = np.asarray(size, np.int64)
    values = g.constant(indices)
    if values is not None:
        values = values.astype(np.int64)
        return g.const(np.where(values < 0, values + size, values))
    if g.dtype(indices) != np.int64:
        indices = g.cast(indices, np.int64)
    return g.Where(g.Less(indices, g.const(np.asarray(0, np.int64))), g.Add(indices, g.const(size)), indices)


def _index_shape(g, node, position=1):
    indices = node.input[position]
    shape = g.known_shape(indices)
    if shape is None:
        constant = g.constant(indices)
        shape = None if constant is None else tuple(constant.shape)
    if shape is None:
        raise MXNetError("the gradient of %s needs the static shape of its indices (node %s)"
                         % (node.op_type, node.name))
    return shape


def _scatter_rows(g, dy, positions, outer, n, inner, dtype):
    """(outer, n, inner) zeros plus dy (outer, m, inner) added at `positions` (m int64 indices into n) along
    axis 1. ScatterND(add) of whole rows, the axis moved first by Transposes when outer > 1; there, for few rows
    (n <= 64, float32/64), a MatMul with OneHot(positions) instead. bench/gather_grad.py (ORT 1.19 CPU, 2 cores):
    Embedding-like 10000x128 table, 64x32 indices: ScatterND 0.9 ms, ScatterElements(add) with expanded indices
    8-25 ms; (16, 128) table, 64x32 indices: ScatterND 0.06, OneHot-MatMul 0.13 ms; (32, 64, 64) along axis 1,
    10 indices: OneHot-MatMul 0.04, ScatterND 0.09, ScatterElements 0.29 ms."""
    m = g.known_shape(positions)[0]
    if outer > 1 and n <= 64 and np.dtype(dtype) in (np.float32, np.float64):
        if inner == 1:      # one GEMM: (outer, m) @ (m, n)
            hot = g.OneHot(positions, g.int64s([n]), g.const(np.array([0, 1], dtype)), axis=-1)
            return g.MatMul(g.Reshape(dy, g.int64s([outer, m])), hot)
        hot = g.OneHot(positions, g.int64s([n]), g.const(np.array([0, 1], dtype)), axis=0)   # (n, m)
        return g.MatMul(hot, g.Reshape(dy, g.int64s([outer, m, inner])))
    rows = g.Unsqueeze(positions, g.int64s([1]))
    if outer == 1:
        return g.ScatterND(_zeros(g, (n, inner), dtype), rows, g.Reshape(dy, g.int64s([m, inner])), reduction="add")
    moved = g.Transpose(g.Reshape(dy, g.int64s([outer, m, inner])), perm=[1, 0, 2])
    grad = g.ScatterND(_zeros(g, (n, outer, inner), dtype), rows, moved, reduction="add")
    return g.Transpose(grad, perm=[1, 0, 2])


@rule("Gather")
def _gather(g, node, out_grads):
    """dy scatter-added into zeros at the indices (see _scatter_rows for the measured choice)."""
    data, indices = node.input
    shape = static_shape(g, data)
    rank = len(shape)
    axis = g.attrs(node).get("axis", 0) % rank
    k = prod(_index_shape(g, node))
    outer, n, inner = prod(shape[:axis]), shape[axis], prod(shape[axis + 1:])
    index = g.Reshape(_wrapped(g, indices, n), g.int64s([-1]))
    g.set_info(index, (k,), np.int64)
    grad = _scatter_rows(g, out_grads[0], index, outer, n, inner, g.dtype(data))
    return [g.reshape_to(grad, shape), None]


@rule("GatherElements")
def _gather_elements(g, node, out_grads):
    data, indices = node.input
    shape = static_shape(g, data)
    axis = g.attrs(node).get("axis", 0) % len(shape)
    index = _wrapped(g, indices, shape[axis])
    grad = g.ScatterElements(_zeros(g, shape, g.dtype(data)), index, out_grads[0], axis=axis, reduction="add")
    return [g.like(grad, data), None]


def _nd_index(g, node, indices, data_shape, batch_dims):
    """GatherND/ScatterND indices with negative entries wrapped and `batch_dims` leading batch axes folded into
    one explicit first coordinate: (indices (b, m, 1 + q), data shape (b,) + data_shape[batch_dims:], (b, m)) where
    b is the product of the batch dimensions and m that of the index tuples per batch."""
    index_shape = _index_shape(g, node)
    q = index_shape[-1]
    bounds = np.asarray(data_shape[batch_dims:batch_dims + q], np.int64)
    index = _wrapped(g, indices, bounds)
    if not batch_dims:
        return index, tuple(data_shape), tuple(index_shape[:-1])
    b = prod(data_shape[:batch_dims])
    m = prod(index_shape[batch_dims:-1])
    index = g.Reshape(index, g.int64s([b, m, q]))
    batch = np.broadcast_to(np.arange(b, dtype=np.int64).reshape(b, 1, 1), (b, m, 1))
    index = g.Concat(g.const(np.asarray(batch, order="C")), index, axis=2)
    return index, (b,) + tuple(data_shape[batch_dims:]), (b, m)


@rule("GatherND")
def _gather_nd(g, node, out_grads):
    data, indices = node.input
    shape = static_shape(g, data)
    batch_dims = g.attrs(node).get("batch_dims", 0)
    index, folded, tuples = _nd_index(g, node, indices, shape, batch_dims)
    dy = out_grads[0]
    if batch_dims:
        q = _index_shape(g, node)[-1]
        dy = g.Reshape(dy, g.int64s(list(tuples) + list(shape[batch_dims + q:])))
    grad = g.ScatterND(_zeros(g, folded, g.dtype(data)), index, dy, reduction="add")
    return [g.reshape_to(grad, shape), None]


def _last_writes(g, op_type, node, index, update_shape, data_shape, attrs):
    """A boolean mask of the updates that survive a reduction='none' scatter with duplicate indices: the updates'
    positions scattered the same way show which one the kernel kept (ORT's CPU kernels: the last in row-major
    order). reduction='max' would say the same on CPU, but ORT's CUDA ScatterND has no max (only none/add)."""
    count = prod(update_shape)
    order = g.const(np.arange(count, dtype=np.int64).reshape(update_shape))
    start = g.Expand(g.const(np.asarray(-1, np.int64)), g.int64s(data_shape))
    winner = getattr(g, op_type)(start, index, order, **attrs)
    gather = "GatherElements" if op_type == "ScatterElements" else "GatherND"
    return g.Equal(getattr(g, gather)(winner, index, **attrs), order)


def _distinct_targets(g, op_type, indices, shape, axis):
    """Whether constant scatter indices write each position at most once (then no update is overwritten)."""
    values = g.constant(indices)
    if values is None:
        return False
    values = values.astype(np.int64)
    if op_type == "ScatterElements":
        values = np.where(values < 0, values + shape[axis], values)
        grid = list(np.indices(values.shape))
        grid[axis] = values
        targets = np.ravel_multi_index(grid, shape).reshape(-1)
    else:
        q = values.shape[-1]
        values = np.where(values < 0, values + np.asarray(shape[:q]), values).reshape(-1, q)
        targets = np.ravel_multi_index(tuple(values.T), shape[:q])
    return len(np.unique(targets)) == targets.size


def _scatter_extremum(g, node, out_grads, op_type, index, extra):
    """reduction max/min: dy to whichever of data and the updates written there equals the result, split evenly
    among ties (as ReduceMax and Max do)."""
    data, _, updates = node.input
    y, dy = node.output[0], out_grads[0]
    dtype = g.dtype(data)
    gather = getattr(g, "GatherElements" if op_type == "ScatterElements" else "GatherND")
    data_won = g.cast(g.Equal(data, y), dtype)
    update_won = g.cast(g.Equal(updates, gather(y, index, **extra)), dtype)
    ties = getattr(g, op_type)(data_won, index, update_won, reduction="add", **extra)
    share = g.Div(dy, ties)
    kept = g.like(g.Mul(data_won, share), data) if data in g.active else None
    picked = g.like(g.Mul(update_won, gather(share, index, **extra)), updates) if updates in g.active else None
    return [kept, None, picked]


def _scatter_product(g, node, out_grads, op_type, index, extra):
    """reduction mul: y = data * (product of the updates written there). d data = dy * that product; d update =
    dy * data * the product of the other updates written at its position, exact with zeros and duplicates: the
    product of the non-zero updates there divided by the update itself (non-zero) when no update there is zero;
    with exactly one zero update there, that product for the zero update and 0 for the others; 0 with more."""
    data, _, updates = node.input
    dy = out_grads[0]
    dtype = g.dtype(data)
    gather = getattr(g, "GatherElements" if op_type == "ScatterElements" else "GatherND")
    scatter = getattr(g, op_type)
    one = g.scalar(1, dtype)
    ones = g.Expand(one, g.int64s(static_shape(g, data)))
    kept = None
    if data in g.active:
        kept = g.like(g.Mul(dy, scatter(ones, index, updates, reduction="mul", **extra)), data)
    if updates not in g.active:
        return [kept, None, None]
    zero = g.scalar(0, dtype)
    is_zero = g.Equal(updates, zero)
    nonzero = g.Where(is_zero, one, updates)
    products = gather(scatter(ones, index, nonzero, reduction="mul", **extra), index, **extra)
    nothing = _zeros(g, static_shape(g, data), dtype)
    zeros = gather(scatter(nothing, index, g.cast(is_zero, dtype), reduction="add", **extra), index, **extra)
    others = g.Where(g.Equal(zeros, zero), g.Div(products, nonzero),
                     g.Where(g.And(is_zero, g.Equal(zeros, one)), products, zero))
    picked = g.like(g.Mul(gather(g.Mul(dy, data), index, **extra), others), updates)
    return [kept, None, picked]


def _scatter(g, node, out_grads, op_type):
    """d data = dy where no update landed (add: dy); d updates = dy gathered at the indices, 0 for updates a later
    duplicate overwrote (reduction none). max, min, mul: _scatter_extremum, _scatter_product."""
    data, indices, updates = node.input
    attrs = g.attrs(node)
    reduction = _text(attrs.get("reduction", "none"))
    if reduction not in ("none", "add", "max", "min", "mul"):
        raise MXNetError("onnxsym differentiates %s with reduction none, add, max, min or mul, not %r (node %s)"
                         % (op_type, reduction, node.name))
    shape, update_shape = static_shape(g, data), static_shape(g, updates)
    dtype = g.dtype(data)
    axis = attrs.get("axis", 0) % len(shape) if op_type == "ScatterElements" else None
    if op_type == "ScatterElements":
        index = _wrapped(g, indices, shape[axis])
        extra = {"axis": axis}
    else:
        index = _nd_index(g, node, indices, shape, 0)[0]
        extra = {}
    if reduction in ("max", "min"):
        return _scatter_extremum(g, node, out_grads, op_type, index, extra)
    if reduction == "mul":
        return _scatter_product(g, node, out_grads, op_type, index, extra)
    gather = g.GatherElements if op_type == "ScatterElements" else g.GatherND
    dy = out_grads[0]
    picked = None
    if updates in g.active:
        picked = g.like(gather(dy, index, **extra), updates)
    if reduction == "add":
        return [dy, None, picked]
    kept = None
    if data in g.active:
        kept = g.like(getattr(g, op_type)(dy, index, _zeros(g, update_shape, dtype), **extra), data)
    if picked is not None and not _distinct_targets(g, op_type, indices, shape, axis):
        last = _last_writes(g, op_type, node, index, update_shape, shape, extra)
        picked = g.like(g.Where(last, picked, g.scalar(0, dtype)), updates)
    return [kept, None, picked]


@rule("ScatterElements")
def _scatter_elements(g, node, out_grads):
    return _scatter(g, node, out_grads, "ScatterElements")


@rule("ScatterND")
def _scatter_nd(g, node, out_grads):
    return _scatter(g, node, out_grads, "ScatterND")


@rule("TopK")
def _top_k(g, node, out_grads):
    """The values' gradient written back at the indices output (distinct positions: a plain scatter)."""
    x = node.input[0]
    if out_grads[0] is None:
        return [None, None]
    shape = static_shape(g, x)
    axis = g.attrs(node).get("axis", -1) % len(shape)
    grad = g.ScatterElements(_zeros(g, shape, g.dtype(x)), node.output[1], out_grads[0], axis=axis)
    return [g.like(grad, x), None]


@rule("OneHot")
def _one_hot(g, node, out_grads):
    """values = [off, on]: d on = sum(dy where hot), d off = sum(dy) - d on."""
    indices, depth, values = node.input
    dy = out_grads[0]
    dtype = g.dtype(values)
    axis = g.attrs(node).get("axis", -1)
    hot = g.OneHot(indices, depth, g.const(np.array([0, 1], dtype)), axis=axis)
    on = g.ReduceSum(g.Mul(dy, hot), keepdims=0)
    off = g.Sub(g.ReduceSum(dy, keepdims=0), on)
    grad = g.Concat(g.Unsqueeze(off, g.int64s([0])), g.Unsqueeze(on, g.int64s([0])), axis=0)
    return [None, None, g.like(grad, values)]


def _pad_operands(g, node):
    attrs = g.attrs(node)
    x = node.input[0]
    rank = len(static_shape(g, x))
    inputs = list(node.input) + ["", "", ""]
    mode = _text(attrs.get("mode", "constant"))
    if "pads" in attrs:     # opset < 11
        return list(attrs["pads"]), "", mode
    pads = g.constant(inputs[1])
    value_name = inputs[2]
    axes = g.constant(inputs[3]) if inputs[3] else None
    if pads is None or (inputs[3] and axes is None):
        return None, value_name, mode
    pads = [int(p) for p in pads]
    axes = [int(a) % rank for a in axes] if axes is not None else list(range(rank))
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
    return full, value_name, mode


@rule("Pad")
def _pad(g, node, out_grads):
    """constant: Pad(dy, -pads) (negative pads crop, so this also undoes a crop; a Slice where nothing was
    cropped), the value gets the sum of dy over the padded positions; edge/reflect/wrap: per padded axis, a
    scatter-add through the axis' index map (numpy's np.pad of arange, the same modes)."""
    x = node.input[0]
    shape = static_shape(g, x)
    rank = len(shape)
    dtype = g.dtype(x)
    pads, value_name, mode = _pad_operands(g, node)
    dy = out_grads[0]
    grads = [None] * len(node.input)
    if mode == "constant":
        if pads is not None and min(pads) >= 0:    # a Slice: ~10% faster than Pad(-pads) (ORT 1.19 CPU)
            axes = [a for a in range(rank) if pads[a] or pads[rank + a]]
            dx = g.Slice(dy, g.int64s([pads[a] for a in axes]), g.int64s([pads[a] + shape[a] for a in axes]),
                         g.int64s(axes)) if axes else dy
        elif pads is not None:
            dx = g.Pad(dy, g.int64s([-p for p in pads]))
        elif len(node.input) < 4 or not node.input[3]:     # pads computed in the graph (imported models)
            dx = g.Pad(dy, g.Neg(node.input[1]))
        else:
            raise MXNetError("the gradient of Pad needs constant axes or pads (node %s)" % node.name)
        grads[0] = g.like(dx, x)
        if value_name and value_name in g.active:
            grads[2] = g.reshape_to(g.Sub(g.ReduceSum(dy, keepdims=0), g.ReduceSum(dx, keepdims=0)),
                                    static_shape(g, value_name))
        return grads
    if pads is None:
        raise MXNetError("the gradient of Pad in %s mode needs constant pads (node %s)" % (mode, node.name))
    current = list(static_shape(g, node.output[0]))
    for axis in range(rank):
        before, after = pads[axis], pads[rank + axis]
        if not before and not after:
            continue
        n = shape[axis]
        positions = np.pad(np.arange(n, dtype=np.int64), (max(before, 0), max(after, 0)),
                           mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])
        positions = positions[max(-before, 0):len(positions) - max(-after, 0)]
        outer, inner = prod(current[:axis]), prod(current[axis + 1:])
        grad = _scatter_rows(g, dy, g.const(positions), outer, n, inner, dtype)
        current[axis] = n
        dy = g.reshape_to(grad, current)
    grads[0] = g.like(dy, x)
    return grads


@rule("Compress")
def _compress(g, node, out_grads):
    """dy written back at the selected positions along the axis (those of the flattened input without one): a
    ScatterND of whole rows at NonZero(condition), whose count is only known at run time."""
    x, condition = node.input
    shape = static_shape(g, x)
    axis = g.attrs(node).get("axis")
    if axis is None:
        outer, n, inner = 1, prod(shape), 1
    else:
        axis %= len(shape)
        outer, n, inner = prod(shape[:axis]), shape[axis], prod(shape[axis + 1:])
    dtype = g.dtype(x)
    rows = g.Transpose(g.NonZero(condition), perm=[1, 0])                     # (selected, 1)
    dy = g.Transpose(g.Reshape(out_grads[0], g.int64s([outer, -1, inner])), perm=[1, 0, 2])
    grad = g.ScatterND(_zeros(g, (n, outer, inner), dtype), rows, dy, reduction="add")
    return [g.reshape_to(g.Transpose(grad, perm=[1, 0, 2]), shape), None]


@rule("Split")
def _split(g, node, out_grads):
    x = node.input[0]
    shape = static_shape(g, x)
    axis = g.attrs(node).get("axis", 0) % len(shape)
    parts = [dy if dy is not None else _zeros(g, static_shape(g, y), g.dtype(x))
             for y, dy in zip(node.output, out_grads)]
    grad = parts[0] if len(parts) == 1 else g.Concat(*parts, axis=axis)
    return [g.like(grad, x)]


@rule("CumSum")
def _cum_sum(g, node, out_grads):
    x, axis = node.input
    attrs = g.attrs(node)
    grad = g.CumSum(out_grads[0], axis, exclusive=attrs.get("exclusive", 0), reverse=1 - attrs.get("reverse", 0))
    return [g.like(grad, x), None]


@rule("Trilu")
def _trilu(g, node, out_grads):
    x = node.input[0]
    k = node.input[1] if len(node.input) > 1 and node.input[1] else None
    inputs = [out_grads[0]] + ([k] if k else [])
    return [g.like(g.Trilu(*inputs, upper=g.attrs(node).get("upper", 1)), x)]


# ---------------------------------------------------------------- reductions (reduce.py has Sum and Mean)
def _kept_shape(g, node, value):
    """A reduced value (output or gradient) with the reduced axes back as 1s (it broadcasts against the input)."""
    shape = static_shape(g, node.input[0])
    axes, keepdims = _reduced_axes(g, node)
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return value if keepdims else g.reshape_to(value, kept)


def _reduce_over(g, op_type, value, axes):
    """A keepdims reduction over `axes` (none: `value`); opset 17: only ReduceSum takes its axes as an input."""
    if not axes:
        return value
    if op_type == "ReduceSum":
        return g.ReduceSum(value, g.int64s(axes), keepdims=1)
    return getattr(g, op_type)(value, axes=list(axes), keepdims=1)


@rule("ReduceMax", "ReduceMin")
def _reduce_extremum(g, node, out_grads):
    """dy to the elements equal to the result, split evenly among ties (as the Max/Min rule)."""
    x = node.input[0]
    axes = _reduced_axes(g, node)[0]
    y, dy = _kept_shape(g, node, node.output[0]), _kept_shape(g, node, out_grads[0])
    mask = g.cast(g.Equal(x, y), g.dtype(x))
    share = g.Div(dy, _reduce_over(g, "ReduceSum", mask, axes))
    return [g.like(g.Mul(mask, share), x)]


@rule("ReduceProd")
def _reduce_prod(g, node, out_grads):
    """dy times the product of the other elements, exact with zeros: y / x without zeros; the product of the
    non-zero elements at the only zero; 0 elsewhere."""
    x = node.input[0]
    dtype = g.dtype(x)
    axes = _reduced_axes(g, node)[0]
    dy = _kept_shape(g, node, out_grads[0])
    zero, one = g.scalar(0, dtype), g.scalar(1, dtype)
    is_zero = g.Equal(x, zero)
    nonzero = g.Where(is_zero, one, x)
    product = _reduce_over(g, "ReduceProd", nonzero, axes)
    zeros = _reduce_over(g, "ReduceSum", g.cast(is_zero, dtype), axes)
    others = g.Where(g.Equal(zeros, zero), g.Div(product, nonzero),
                     g.Where(g.And(is_zero, g.Equal(zeros, one)), product, zero))
    return [g.like(g.Mul(dy, others), x)]


@rule("ReduceL1")
def _reduce_l1(g, node, out_grads):
    x = node.input[0]
    return [g.like(g.Mul(_kept_shape(g, node, out_grads[0]), g.Sign(x)), x)]


@rule("ReduceL2")
def _reduce_l2(g, node, out_grads):
    """dy * x / y (0 where y is 0, the subgradient)."""
    x = node.input[0]
    zero = g.scalar(0, g.dtype(x))
    y, dy = _kept_shape(g, node, node.output[0]), _kept_shape(g, node, out_grads[0])
    return [g.like(g.Where(g.Equal(y, zero), zero, g.Mul(g.Div(dy, y), x)), x)]


@rule("ReduceSumSquare")
def _reduce_sum_square(g, node, out_grads):
    x = node.input[0]
    dy = _kept_shape(g, node, out_grads[0])
    return [g.like(g.Mul(g.Mul(dy, g.scalar(2, g.dtype(x))), x), x)]


@rule("ReduceLogSumExp")
def _reduce_log_sum_exp(g, node, out_grads):
    x = node.input[0]
    y, dy = _kept_shape(g, node, node.output[0]), _kept_shape(g, node, out_grads[0])
    return [g.like(g.Mul(dy, g.Exp(g.Sub(x, y))), x)]


@rule("ReduceLogSum")
def _reduce_log_sum(g, node, out_grads):
    """dy / sum(x) = dy / exp(y), spread over the reduced axes."""
    x = node.input[0]
    shape = static_shape(g, x)
    y, dy = _kept_shape(g, node, node.output[0]), _kept_shape(g, node, out_grads[0])
    return [g.like(g.Expand(g.Div(dy, g.Exp(y)), g.int64s(shape)), x)]


# ---------------------------------------------------------------- Einsum
def _einsum_terms(equation, count):
    """(input terms, output term) of an Einsum equation, the implicit output made explicit (the ellipsis, then
    the labels used once, sorted). Terms keep "..." as one item: lists of labels."""
    equation = equation.replace(" ", "")
    left, arrow, right = equation.partition("->")
    split = lambda term: ["..."] + split(term[3:]) if term.startswith("...") else \
        ([term[0]] + split(term[1:]) if term else [])
    terms = [split(t) for t in left.split(",")]
    if len(terms) != count:
        raise MXNetError("Einsum: equation %r names %d operands, the node has %d" % (equation, len(terms), count))
    if arrow:
        return terms, split(right)
    labels = [label for term in terms for label in term if label != "..."]
    once = sorted(label for label in set(labels) if labels.count(label) == 1)
    return terms, (["..."] if any("..." in t for t in terms) else []) + once


@rule("Einsum")
def _einsum(g, node, out_grads):
    """d operand_i = einsum(dy, the other operands -> term_i): labels repeated in term_i (a diagonal) renamed and
    tied by an identity operand, labels summed in operand i alone restored by Unsqueeze + Expand, ellipsis dims
    broadcast against other operands summed back."""
    equation = _text(g.attrs(node)["equation"])
    terms, output = _einsum_terms(equation, len(node.input))
    shapes = [static_shape(g, x) for x in node.input]
    if all(len(shape) == len(t) - ("..." in t) for t, shape in zip(terms, shapes)):     # empty ellipses
        terms, output = [[label for label in t if label != "..."] for t in terms], \
            [label for label in output if label != "..."]
    used = set(equation)
    fresh = (c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used)
    text = lambda term: "".join(term)
    sizes = {}
    for term, shape in zip(terms, shapes):
        ellipsis_rank = len(shape) - (len(term) - ("..." in term))
        dims = list(shape)
        for label in term:
            if label == "...":
                del dims[:ellipsis_rank]
            else:
                sizes[label] = dims.pop(0)
    dy = out_grads[0]
    grads = []
    for i, (x, term) in enumerate(zip(node.input, terms)):
        if x not in g.active:
            grads.append(None)
            continue
        others = [(text(t), name) for j, (t, name) in enumerate(zip(terms, node.input)) if j != i]
        elsewhere = set(output) | {label for t, _ in others for label in t}
        target, operands = [], [(text(output), dy)] + others
        for label in term:
            if label in target:          # a diagonal: a fresh label tied to `label` by an identity matrix
                tied = next(fresh)
                operands.append((label + tied, g.const(np.eye(sizes[label], dtype=g.dtype(x)))))
                target.append(tied)
            else:
                target.append(label)
        summed = [k for k, label in enumerate(target) if label != "..." and label not in elsewhere
                  and term.count(label) == 1]
        kept = [label for k, label in enumerate(target) if k not in summed]
        if "..." in term and "..." not in output:
            raise MXNetError("Einsum: the gradient needs the ellipsis in the output (node %s)" % node.name)
        out_rank = len(static_shape(g, node.output[0]))
        ellipsis_rank = out_rank - (len(output) - ("..." in output))
        # ORT wants an ellipsis in the output when an input has one: the ellipsis dims, then summed here
        extra = "..." not in term and "..." in output
        equation_i = ",".join(t for t, _ in operands) + "->" + ("..." if extra else "") + text(kept)
        grad = g.Einsum(*[name for _, name in operands], equation=equation_i)
        if extra:
            grad = g.ReduceSum(grad, g.int64s(list(range(ellipsis_rank))), keepdims=0)
        x_ellipsis = len(shapes[i]) - (len(term) - ("..." in term))
        if summed:
            positions, full, offset = [], [], 0
            for k, label in enumerate(target):
                if label == "...":
                    full.extend(static_shape(g, node.output[0])[output.index("..."):][:ellipsis_rank])
                    offset += ellipsis_rank - 1
                    continue
                if k in summed:
                    positions.append(k + offset)
                full.append(sizes[label])
            grad = g.Expand(g.Unsqueeze(grad, g.int64s(positions)), g.int64s(full))
        if "..." in term:
            start = output.index("...")
            broadcast = static_shape(g, node.output[0])[start:start + ellipsis_rank]
            before = term.index("...")
            full_shape = tuple(shapes[i][:before]) + tuple(broadcast) + tuple(shapes[i][before + x_ellipsis:])
            g.set_info(grad, full_shape, g.dtype(x))
            grad = g.unbroadcast(grad, x)
        grads.append(g.like(grad, x))
    return grads
