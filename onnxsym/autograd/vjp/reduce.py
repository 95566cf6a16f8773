"""VJP rules of reductions, softmax and matrix products."""
from itertools import combinations
from math import prod

from ...base import MXNetError
from .registry import FUNCTION_BODY_SCOPE, rule
from .shape import static_rank, static_shape


def _reduced_axes(g, node):
    """(axes, keepdims) of a Reduce* node (opset 13+: ReduceSum's axes is an input; opset 18+: all of them)."""
    attrs = g.attrs(node)
    rank = static_rank(g, node.input[0])
    axes = attrs.get("axes")
    keepdims = attrs.get("keepdims", 1)
    if len(node.input) > 1 and node.input[1]:
        axes = g.constant(node.input[1])
        if axes is None:        # computed in the graph: read off the shapes
            return _axes_from_shapes(g, node, keepdims), keepdims
    if axes is None or len(axes) == 0:
        axes = [] if attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(a) % rank for a in axes), keepdims


def _axes_from_shapes(g, node, keepdims):
    """The reduced axes of a Reduce* node whose axes input is computed, from its input and output shapes. Axes of
    size 1 count as kept (reducing them changes nothing); a keepdims=0 reduction whose dropped axes the shapes do not
    tell apart is refused."""
    x_shape, y_shape = static_shape(g, node.input[0]), static_shape(g, node.output[0])
    if keepdims:
        return [a for a, (n, m) in enumerate(zip(x_shape, y_shape)) if m == 1 and n != 1]
    candidates = [axes for axes in combinations(range(len(x_shape)), len(x_shape) - len(y_shape))
                  if tuple(d for a, d in enumerate(x_shape) if a not in axes) == tuple(y_shape)]
    kept = {tuple(a for a in axes if x_shape[a] != 1) for axes in candidates}
    if len(kept) != 1:
        raise MXNetError("the gradient of %s needs constant axes: its input %s and output %s shapes do not tell which "
                         "axes it reduced (node %s)" % (node.op_type, x_shape, y_shape, node.name))
    return list(candidates[0])


def _kept(g, node, dy):
    """dy with the reduced axes back as 1s, then broadcast to the input's shape."""
    x = node.input[0]
    axes, keepdims = _reduced_axes(g, node)
    if not keepdims and axes:
        dy = g.Unsqueeze(dy, g.int64s(axes))
    return g.like(g.Expand(dy, g.shape_of(x)), x), axes


@rule("ReduceSum")
def _reduce_sum(g, node, out_grads):
    return [_kept(g, node, out_grads[0])[0]]


@rule("ReduceMean")
def _reduce_mean(g, node, out_grads):
    x = node.input[0]
    spread, axes = _kept(g, node, out_grads[0])
    shape = g.known_shape(x)
    if shape is not None:
        count = g.scalar(prod(shape[a] for a in axes), g.dtype(x))
    else:
        count = g.cast(g.ReduceProd(g.Gather(g.Shape(x), g.int64s(axes)), keepdims=0), g.dtype(x))
    return [g.Div(spread, count)]


def _defined(g, node, y):
    """y with NaN as 0 inside an ONNX function body (Attention: ORT's fused kernel gives a fully masked row 0, its
    body a NaN softmax row that nothing reads): its gradient is then 0, not 0 * NaN. Elsewhere y as it is: the
    guard doubles a softmax backward's time (16x8x128x128: 5 -> 12 ms), and a NaN there is the forward's."""
    if FUNCTION_BODY_SCOPE not in node.name:
        return y
    return g.Where(g.IsNaN(y), g.scalar_like(0, y), y)


@rule("Softmax")
def _softmax(g, node, out_grads):
    """y * (dy - sum(dy * y, axis))."""
    y, dy = _defined(g, node, node.output[0]), out_grads[0]
    axis = g.attrs(node).get("axis", -1)
    inner = g.ReduceSum(g.Mul(dy, y), g.int64s([axis]), keepdims=1)
    return [g.Mul(y, g.Sub(dy, inner))]


@rule("LogSoftmax")
def _log_softmax(g, node, out_grads):
    """dy - softmax * sum(dy, axis)."""
    y, dy = node.output[0], out_grads[0]
    axis = g.attrs(node).get("axis", -1)
    total = g.ReduceSum(dy, g.int64s([axis]), keepdims=1)
    return [g.Sub(dy, g.Mul(_defined(g, node, g.Exp(y)), total))]


def _swap_last(g, value):
    rank = len(static_shape(g, value))
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return g.Transpose(value, perm=perm)


@rule("MatMul")
def _matmul(g, node, out_grads):
    """da = dy @ b^T, db = a^T @ dy; 1-D operands promoted as numpy's matmul, broadcast batches summed back."""
    a, b = node.input
    dy = out_grads[0]
    a_shape, b_shape = static_shape(g, a), static_shape(g, b)
    y_shape = static_shape(g, node.output[0])
    a2 = a if len(a_shape) > 1 else g.reshape_to(a, (1,) + a_shape)
    b2 = b if len(b_shape) > 1 else g.reshape_to(b, b_shape + (1,))
    if len(a_shape) == 1 and len(b_shape) == 1:
        dy_shape = (1, 1)
    elif len(a_shape) == 1:
        dy_shape = y_shape[:-1] + (1, y_shape[-1])
    elif len(b_shape) == 1:
        dy_shape = y_shape + (1,)
    else:
        dy_shape = y_shape
    dy2 = dy if dy_shape == y_shape else g.reshape_to(dy, dy_shape)
    da = g.MatMul(dy2, _swap_last(g, b2))
    g.set_info(da, dy_shape[:-2] + (dy_shape[-2], static_shape(g, b2)[-2]), g.dtype(a))
    db = g.MatMul(_swap_last(g, a2), dy2)
    g.set_info(db, dy_shape[:-2] + (static_shape(g, a2)[-1], dy_shape[-1]), g.dtype(b))
    return [_fold(g, da, a, a2), _fold(g, db, b, b2)]


def _fold(g, grad, original, promoted):
    """A gradient in the promoted (2-D or broadcast) shape summed back to `original`'s shape."""
    grad = g.unbroadcast(grad, promoted)
    shape = static_shape(g, original)
    return grad if static_shape(g, promoted) == shape else g.reshape_to(grad, shape)


@rule("Gemm")
def _gemm(g, node, out_grads):
    """Y = alpha * A' B' + beta * C with A' = A or A^T, B' = B or B^T."""
    attrs = g.attrs(node)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    a, b = node.input[:2]
    dy = out_grads[0]
    if alpha != 1.0:
        dy_scaled = g.Mul(dy, g.scalar(alpha, g.dtype(dy)))
    else:
        dy_scaled = dy
    # dA' = dY B'^T; dB' = A'^T dY
    if trans_a:
        da = g.Gemm(b, dy_scaled, transA=trans_b, transB=1)      # dA = B' dY^T
    else:
        da = g.Gemm(dy_scaled, b, transB=0 if trans_b else 1)    # dA = dY B'^T
    if trans_b:
        db = g.Gemm(dy_scaled, a, transA=1, transB=trans_a)      # dB = dY^T A'
    else:
        db = g.Gemm(a, dy_scaled, transA=0 if trans_a else 1)    # dB = A'^T dY
    grads = [g.like(da, a), g.like(db, b)]
    if len(node.input) > 2 and node.input[2]:
        c = node.input[2]
        dc = dy if beta == 1.0 else g.like(g.Mul(dy, g.scalar(beta, g.dtype(dy))), dy)
        grads.append(g.unbroadcast(dc, c))
    return grads
