"""Partial shapes, as MXNet 1.x's shape inference knows them.

Inside onnxsym a shape under inference is `None` (nothing known yet) or a tuple whose entries are ints or `None`
(a dimension not known yet); `()` is a known scalar shape. The Symbol API converts at its edges, where MXNet 1.x
(outside numpy-shape mode) writes an unknown dimension as 0 and an unknown shape as `()`:

    from_mxnet((0, 10)) == (None, 10)        to_mxnet((None, 10)) == (0, 10)
    from_mxnet(()) is None                   to_mxnet(None) == ()

Shape rules (`OpDef.infer_shape`) marked with `@partial_rule` receive such shapes for their inputs and, as the
keyword `out_shapes`, for their outputs, and return what they can tell about both; the inference pass merges that
dimension by dimension (`merge`) and reports a contradiction. Unmarked rules see only complete input shapes.
"""
import numbers

from .base import MXNetError
from .util import is_np_shape

__all__ = ["from_mxnet", "to_mxnet", "is_complete", "merge", "merge_all", "partial_rule", "elementwise",
           "same_shape_rule", "ShapeMismatch", "fmt", "user_shape"]


class ShapeMismatch(MXNetError):
    """Two shapes of one entry contradict each other (the inference pass adds the node and input names)."""

    def __init__(self, expected, got):
        super().__init__("expected %s, got %s" % (fmt(expected), fmt(got)))
        self.expected, self.got = expected, got


def from_mxnet(shape):
    """A shape as users, JSON `__shape__` attributes and MXNet write it -> the inference form. Under NumPy shape
    semantics (mx.np_shape) -1 is the unknown dimension, 0 a zero-size one and () a scalar."""
    if shape is None:
        return None
    if is_np_shape():
        return tuple(None if d is None or int(d) < 0 else int(d) for d in shape)
    shape = tuple(None if d is None or int(d) <= 0 else int(d) for d in shape)
    return shape or None


def user_shape(shape, name, where):
    """A shape given by the user for `name` (in call `where`), as a tuple of ints; MXNet's rules for what may be
    one: its Python layer hands shapes to C through ctypes, so a non-integer dimension is a TypeError ("'float'
    object cannot be interpreted as an integer"), and a string an MXNetError of the shape pass."""
    if isinstance(shape, (str, bytes)):
        raise MXNetError("%s: the shape of '%s' must be a tuple of ints, got %r" % (where, name, shape))
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError("%s: the shape of '%s' must be a tuple of ints, got %r" % (where, name, shape)) from None
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims):
        raise TypeError("%s: the shape of '%s' must be a tuple of ints, got %s" % (where, name, dims))
    return tuple(int(d) for d in dims)


def to_mxnet(shape):
    """The inference form -> MXNet's: 0 for an unknown dimension, () for an unknown shape (NumPy shape semantics:
    -1 and None)."""
    if is_np_shape():
        return None if shape is None else tuple(-1 if d is None else d for d in shape)
    return () if shape is None else tuple(0 if d is None else d for d in shape)


def fmt(shape):
    """A shape for messages, in MXNet's notation."""
    return str(to_mxnet(shape))


def is_complete(shape):
    """True when every dimension is known (a shape the runtime can allocate)."""
    return shape is not None and None not in shape


def merge(a, b):
    """The shape that agrees with both `a` and `b` (each None or partial); ShapeMismatch when they contradict."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if len(a) != len(b):
        raise ShapeMismatch(a, b)
    out = []
    for x, y in zip(a, b):
        if x is not None and y is not None and x != y:
            raise ShapeMismatch(a, b)
        out.append(y if x is None else x)
    return tuple(out)


def merge_all(shapes):
    """merge over a list; ShapeMismatch carries the first contradiction."""
    result = None
    for shape in shapes:
        result = merge(result, shape)
    return result


def partial_rule(rule):
    """Mark an `infer_shape(self, *in_shapes, out_shapes=None)` that understands partial shapes."""
    rule.partial_shapes = True
    return rule


def elementwise(op, in_shapes, out_shapes=None, num_outputs=None):
    """Every input and output shares one shape, merged dimension by dimension in both directions (MXNet's
    ElemwiseShape): (0, 3) and (2, 0) give (2, 3) everywhere. None when nothing is known."""
    names = op.input_names()
    shape = None
    entries = [("input", names[i] if i < len(names) else str(i), s) for i, s in enumerate(in_shapes)]
    entries += [("output", str(i), s) for i, s in enumerate(out_shapes or ())]
    for kind, name, other in entries:
        try:
            shape = merge(shape, other)
        except ShapeMismatch:
            raise MXNetError("%s: incompatible shapes: %s '%s' has shape %s, expected %s"
                             % (op.op_name, kind, name, fmt(other), fmt(shape))) from None
    if shape is None:
        return None
    count = op.count_outputs() if num_outputs is None else num_outputs
    return [shape] * len(in_shapes), [shape] * count


@partial_rule
def same_shape_rule(op, *in_shapes, out_shapes=None):
    """`infer_shape = same_shape_rule` on an OpDef whose inputs and outputs all share one shape."""
    return elementwise(op, in_shapes, out_shapes)
