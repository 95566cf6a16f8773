"""VJP rules of ONNX ops that move or copy elements without arithmetic."""
from math import prod

import numpy as np

from ...base import MXNetError
from .registry import rule


def static_shape(g, value):
    shape = g.known_shape(value)
    if shape is None:
        raise MXNetError("the gradient needs the static shape of %s" % value)
    return shape


def static_rank(g, value):
    rank = g.rank(value)
    if rank is None:
        raise MXNetError("the gradient needs the rank of %s" % value)
    return rank


@rule("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(g, node, out_grads):
    return [g.reshape_like(out_grads[0], node.input[0])]


@rule("Expand")
def _expand(g, node, out_grads):
    return [g.unbroadcast(out_grads[0], node.input[0])]


@rule("Transpose")
def _transpose(g, node, out_grads):
    rank = static_rank(g, node.input[0])
    perm = g.attrs(node).get("perm", list(range(rank))[::-1])
    inverse = [0] * rank
    for i, p in enumerate(perm):
        inverse[p] = i
    return [g.Transpose(out_grads[0], perm=inverse)]


@rule("Concat")
def _concat(g, node, out_grads):
    shapes = [static_shape(g, x) for x in node.input]
    axis = g.attrs(node)["axis"] % len(shapes[0])
    sizes = [s[axis] for s in shapes]
    if len(sizes) == 1:
        return [out_grads[0]]
    parts = g.Split(out_grads[0], g.int64s(sizes), axis=axis, _outputs=len(sizes))
    for part, x in zip(parts, node.input):
        g.like(part, x)
    return list(parts)


@rule("Slice")
def _slice(g, node, out_grads):
    """Zeros with the slice's gradient in place: Pad for unit steps, a scatter of flat indices otherwise."""
    x = node.input[0]
    shape = static_shape(g, x)
    operands = [g.constant(name) if name else None for name in (list(node.input[1:]) + [""] * 4)[:4]]
    starts, ends, axes, steps = operands
    if starts is None or ends is None or (node.input[3:4] and node.input[3] and axes is None) or \
            (node.input[4:5] and node.input[4] and steps is None):
        raise MXNetError("the gradient of Slice needs constant starts/ends/axes/steps (node %s)" % node.name)
    rank = len(shape)
    axes = [int(a) % rank for a in (axes if axes is not None else range(len(starts)))]
    steps = [int(s) for s in (steps if steps is not None else [1] * len(starts))]
    index = [slice(None)] * rank
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[axis] = slice(*slice(int(start), int(end), step).indices(shape[axis]))
    dy = out_grads[0]
    if all(s == 1 for s in steps):
        begin = [index[a].start if isinstance(index[a], slice) and index[a].start is not None else 0
                 for a in range(rank)]
        sizes = np.empty(shape, dtype=bool)[tuple(index)].shape
        pads = begin + [shape[a] - begin[a] - sizes[a] for a in range(rank)]
        return [g.like(g.Pad(dy, g.int64s(pads)), x)]
    flat = np.arange(prod(shape), dtype=np.int64).reshape(shape)[tuple(index)].reshape(-1)
    zeros = g.Expand(g.scalar(0, g.dtype(x)), g.int64s([prod(shape)]))
    scattered = g.ScatterElements(zeros, g.const(flat), g.Reshape(dy, g.int64s([-1])), axis=0)
    return [g.reshape_to(scattered, shape)]


@rule("Tile")
def _tile(g, node, out_grads):
    x, repeats = node.input
    shape = static_shape(g, x)
    repeats = g.constant(repeats)
    if repeats is None:
        raise MXNetError("the gradient of Tile needs constant repeats (node %s)" % node.name)
    split = [d for pair in zip((int(r) for r in repeats), shape) for d in pair]
    folded = g.Reshape(out_grads[0], g.int64s(split))
    summed = g.ReduceSum(folded, g.int64s(list(range(0, 2 * len(shape), 2))), keepdims=0)
    return [g.reshape_to(summed, shape)]
