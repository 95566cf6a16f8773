"""VJP rules of ONNX ops that rearrange, fold, normalise or deduplicate elements (imported models' ops).

Permutations (DepthToSpace, SpaceToDepth, ReverseSequence) differentiate into their inverse permutation; copies
(Col2Im's sums, Unique, TensorScatter) into the matching gathers or scatters; CumProd into an exact sum of products
that never divides by the input (zeros are common in masks)."""
from itertools import product
from math import prod

import numpy as np

from ...base import MXNetError
from .indexing import _scatter_rows, _wrapped
from .registry import rule
from .shape import static_shape


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _constant(g, node, position, what):
    """The value of the node's constant input `position`, or an MXNetError saying it must be constant."""
    value = g.constant(node.input[position]) if len(node.input) > position and node.input[position] else None
    if value is None:
        raise MXNetError("the gradient of %s needs a constant %s (node %s)" % (node.op_type, what, node.name))
    return value


def _unpermute(g, dy, x, folded, perm):
    """The gradient of Reshape(x, folded) -> Transpose(perm) -> Reshape: dy unfolded, inversely transposed, and
    reshaped back to x's shape."""
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    moved = g.Reshape(dy, g.int64s([folded[p] for p in perm]))
    return g.reshape_to(g.Transpose(moved, perm=inverse), static_shape(g, x))


@rule("DepthToSpace")
def _depth_to_space(g, node, out_grads):
    """DCR: x (N, b, b, C', H, W) moved to (N, C', H, b, W, b); CRD: x (N, C', b, b, H, W), the same target."""
    x = node.input[0]
    n, c, h, w = static_shape(g, x)
    attrs = g.attrs(node)
    b = attrs["blocksize"]
    mode = _text(attrs.get("mode", "DCR"))
    if mode == "DCR":
        return [_unpermute(g, out_grads[0], x, (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2))]
    if mode == "CRD":
        return [_unpermute(g, out_grads[0], x, (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3))]
    raise MXNetError("the gradient of DepthToSpace knows modes DCR and CRD, not %r (node %s)" % (mode, node.name))


@rule("SpaceToDepth")
def _space_to_depth(g, node, out_grads):
    """x (N, C, H', b, W', b) moved to (N, b, b, C, H', W')."""
    x = node.input[0]
    n, c, h, w = static_shape(g, x)
    b = g.attrs(node)["blocksize"]
    return [_unpermute(g, out_grads[0], x, (n, c, h // b, b, w // b, b), (0, 3, 5, 1, 2, 4))]


@rule("ReverseSequence")
def _reverse_sequence(g, node, out_grads):
    """Reversing each sequence's first sequence_lens[i] steps is its own inverse: the same op on dy."""
    x, lengths = node.input
    attrs = g.attrs(node)
    grad = g.ReverseSequence(out_grads[0], lengths, batch_axis=attrs.get("batch_axis", 1),
                             time_axis=attrs.get("time_axis", 0))
    return [g.like(grad, x), None]


@rule("CumProd")
def _cum_prod(g, node, out_grads):
    """dx_j = sum over the outputs i whose product holds x_j of dy_i * (that product without x_j), with no
    division: the cumulative products of x with x_j replaced by 1, one row per j (an (n, n) block along the axis,
    n the axis length), masked to the i that hold j and summed over i. O(n) times the input's memory."""
    x = node.input[0]
    shape = static_shape(g, x)
    rank = len(shape)
    axis = int(np.asarray(_constant(g, node, 1, "axis")).reshape(-1)[0]) % rank
    attrs = g.attrs(node)
    exclusive, reverse = attrs.get("exclusive", 0), attrs.get("reverse", 0)
    n, dtype = shape[axis], g.dtype(x)
    trailing = (1,) * (rank - axis - 1)
    # rows j (axis) by terms k (axis + 1): x_k, 1 at k == j
    rows = g.Where(g.const(np.eye(n, dtype=bool).reshape((n, n) + trailing)), g.scalar(1, dtype),
                   g.Unsqueeze(x, g.int64s([axis])))
    without = g.CumProd(rows, g.const(np.asarray(axis + 1, np.int64)), exclusive=exclusive, reverse=reverse)
    j, i = np.indices((n, n))
    holds = (j > i if exclusive else j >= i) if reverse else (j < i if exclusive else j <= i)
    terms = g.Mul(g.Mul(without, g.Unsqueeze(out_grads[0], g.int64s([axis]))),
                  g.const(holds.astype(dtype).reshape((n, n) + trailing)))
    return [g.reshape_to(g.ReduceSum(terms, g.int64s([axis + 1]), keepdims=0), shape), None]


@rule("LpNormalization")
def _lp_normalization(g, node, out_grads):
    """y = x / |x|_p: dx = (dy - d|x|_p/dx * sum(dy * y)) / |x|_p, d|x|_p/dx = y (p=2) or sign(x) (p=1); 0 where
    the norm is 0 (there y is 0 by definition and has no derivative)."""
    x, y = node.input[0], node.output[0]
    attrs = g.attrs(node)
    p = attrs.get("p", 2)
    axis = attrs.get("axis", -1) % len(static_shape(g, x))
    axes = g.int64s([axis])
    if p == 2:
        norm, slope = g.Sqrt(g.ReduceSum(g.Mul(x, x), axes, keepdims=1)), y
    elif p == 1:
        norm, slope = g.ReduceSum(g.Abs(x), axes, keepdims=1), g.Sign(x)
    else:
        raise MXNetError("the gradient of LpNormalization knows p=1 and p=2, not p=%d (node %s)" % (p, node.name))
    dy = out_grads[0]
    zero = g.scalar(0, g.dtype(x))
    empty = g.Equal(norm, zero)
    along = g.ReduceSum(g.Mul(dy, y), axes, keepdims=1)
    grad = g.Div(g.Sub(dy, g.Mul(slope, along)), g.Where(empty, g.scalar(1, g.dtype(x)), norm))
    return [g.like(g.Where(empty, zero, grad), x)]


@rule("Col2Im")
def _col2im(g, node, out_grads):
    """Col2Im sums blocks into an image; its adjoint reads each block back (im2col): dx[n, c*K + k, l] = dy at
    the image position of block offset k at location l, 0 where that falls in the padding. One Gather of constant
    positions from dy flattened per channel with a zero appended (the padding's position)."""
    x = node.input[0]
    image = [int(v) for v in _constant(g, node, 1, "image_shape")]
    block = [int(v) for v in _constant(g, node, 2, "block_shape")]
    rank = len(image)
    attrs = g.attrs(node)
    strides = list(attrs.get("strides") or [1] * rank)
    dilations = list(attrs.get("dilations") or [1] * rank)
    pads = list(attrs.get("pads") or [0] * (2 * rank))
    counts = [(size + pads[d] + pads[rank + d] - dilations[d] * (block[d] - 1) - 1) // strides[d] + 1
              for d, size in enumerate(image)]
    pixels = int(np.prod(image))
    positions = np.full((int(np.prod(block)), int(np.prod(counts))), pixels, np.int64)
    for k, offset in enumerate(product(*(range(b) for b in block))):
        for l, place in enumerate(product(*(range(c) for c in counts))):
            at = [place[d] * strides[d] + offset[d] * dilations[d] - pads[d] for d in range(rank)]
            if all(0 <= a < size for a, size in zip(at, image)):
                positions[k, l] = np.ravel_multi_index(at, image)
    n, channels = static_shape(g, node.output[0])[:2]
    flat = g.Reshape(out_grads[0], g.int64s([n, channels, pixels]))
    padded = g.Concat(flat, g.Expand(g.scalar(0, g.dtype(x)), g.int64s([n, channels, 1])), axis=2)
    return [g.reshape_to(g.Gather(padded, g.const(positions), axis=2), static_shape(g, x)), None, None]


@rule("Unique")
def _unique(g, node, out_grads):
    """dY scatter-added into zeros at the first occurrences (the `indices` output) along the axis, or into the
    flattened X without one. The other outputs are integers: no gradient."""
    x = node.input[0]
    if out_grads[0] is None:
        return [None]
    if len(node.output) < 2 or not node.output[1]:
        raise MXNetError("the gradient of Unique needs its `indices` output (node %s produces only Y): add the "
                         "output to the node" % node.name)
    shape = static_shape(g, x)
    axis = g.attrs(node).get("axis")
    if axis is None:
        outer, n, inner = 1, int(np.prod(shape)), 1
    else:
        axis %= len(shape)
        outer, n, inner = int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:]))
    dtype = g.dtype(x)
    rows = g.Unsqueeze(node.output[1], g.int64s([1]))                          # (unique, 1)
    dy = g.Transpose(g.Reshape(out_grads[0], g.int64s([outer, -1, inner])), perm=[1, 0, 2])
    zeros = g.Expand(g.scalar(0, dtype), g.int64s([n, outer, inner]))
    grad = g.ScatterND(zeros, rows, dy, reduction="add")
    return [g.reshape_to(g.Transpose(grad, perm=[1, 0, 2]), shape)]


@rule("TensorScatter")
def _tensor_scatter(g, node, out_grads):
    """present = past with `update` written along the axis from write_indices[batch] (mod the axis length when
    circular): d past = dy with the written positions zeroed, d update = dy read at them. An update fits in the
    axis, so no position is written twice."""
    past, update = node.input[:2]
    indices = node.input[2] if len(node.input) > 2 and node.input[2] else None
    attrs = g.attrs(node)
    shape, update_shape = static_shape(g, past), static_shape(g, update)
    rank = len(shape)
    axis = attrs.get("axis", -2) % rank
    mode = _text(attrs.get("mode", "linear"))
    if mode not in ("linear", "circular"):
        raise MXNetError("the gradient of TensorScatter knows modes linear and circular, not %r (node %s)"
                         % (mode, node.name))
    if axis == 0:
        raise MXNetError("the gradient of TensorScatter needs the sequence axis after the batch axis (node %s)"
                         % node.name)
    steps = np.arange(update_shape[axis], dtype=np.int64).reshape([-1 if d == axis else 1 for d in range(rank)])
    positions = g.const(steps)
    if indices is not None:
        starts = g.Reshape(g.cast(indices, np.int64), g.int64s([-1] + [1] * (rank - 1)))
        positions = g.Add(starts, positions)
    if mode == "circular":
        positions = g.Mod(positions, g.const(np.asarray(shape[axis], np.int64)))
    positions = g.Expand(positions, g.int64s(update_shape))
    dy = out_grads[0]
    dtype = g.dtype(past)
    grads = [None, None, None][:len(node.input)]
    if past in g.active:
        zeros = g.Expand(g.scalar(0, dtype), g.int64s(update_shape))
        grads[0] = g.like(g.ScatterElements(dy, positions, zeros, axis=axis), past)
    if update in g.active:
        grads[1] = g.like(g.GatherElements(dy, positions, axis=axis), update)
    return grads


@rule("MaxUnpool")
def _max_unpool(g, node, out_grads):
    """Y holds X's values at the flat positions I (over the whole output, as MaxPool's Indices): dX is dY read
    there."""
    x, indices = node.input[:2]
    flat = g.Reshape(out_grads[0], g.int64s([-1]))
    picked = g.Gather(flat, g.Reshape(g.cast(indices, np.int64), g.int64s([-1])), axis=0)
    return [g.reshape_to(picked, static_shape(g, x))]


@rule("OptionalGetElement")
def _optional_get_element(g, node, out_grads):
    """The element of a tensor-valued optional (or the tensor itself): its gradient passes through."""
    return [out_grads[0]]


@rule("ArrayFeatureExtractor", domain="ai.onnx.ml")
def _array_feature_extractor(g, node, out_grads):
    """Y = X[..., indices] along the last axis: dY scatter-added back into zeros there."""
    x, indices = node.input
    shape = static_shape(g, x)
    outer, n = prod(shape[:-1]), shape[-1]
    positions = g.Reshape(_wrapped(g, indices, n), g.int64s([-1]))
    g.set_info(positions, (prod(static_shape(g, indices)),), np.int64)
    return [g.reshape_to(_scatter_rows(g, out_grads[0], positions, outer, n, 1, g.dtype(x)), shape), None]
