"""Shape manipulation: reshape, transpose, concat/split, slicing, tiling, broadcasting, casts and the *_like ops.

Mirrors MXNet src/operator/tensor/matrix_op*, broadcast_reduce_op*, elemwise_unary_op_basic.cc, slice_channel,
swapaxis and concat. Shapes are static when lowering, so every target shape is computed here and emitted as an
int64 constant. Lowerings avoid what onnxruntime-training cannot differentiate: Slice with a negative step (a
Gather of explicit indices instead), Split (one Slice per output), DepthToSpace/SpaceToDepth (Reshape+Transpose).
"""
import dataclasses
import math
from typing import Optional

import numpy as np

from .._shapes import fmt, is_complete, merge, merge_all, partial_rule, same_shape_rule
from ..base import MXNetError
from .params import Dtype, OptShape, Shape, param
from .registry import OpDef, register

__all__ = ["reshape_target"]


# ---------------------------------------------------------------- helpers
def _prod(dims):
    return int(math.prod(dims))


def _axis(op, axis, ndim, name="axis", extra=0):
    """`axis` (negative counts from the end) of an ndim-array, where `extra` more positions are allowed."""
    real = axis + ndim + extra if axis < 0 else axis
    if not 0 <= real < ndim + extra:
        raise MXNetError("%s: %s=%d is out of range for an input with %d dimensions"
                         % (op.op_name, name, axis, ndim))
    return real


def _reshape(g, x, shape):
    return g.Reshape(x, g.int64s(list(shape)))


def _unary_shape(rule, partial=False, backward=None):
    """infer_shape for one-input ops from `rule(self, data) -> output shape`. With `partial`, the rule also takes
    shapes with unknown (None) dimensions; `backward(self, out) -> data shape` deduces data from a known output
    (its rank may be all that is known of data)."""
    if not partial:
        def infer_shape(self, data):
            if data is None:
                return None
            return [data], [tuple(rule(self, tuple(data)))]
        return infer_shape

    @partial_rule
    def infer_partial(self, data, out_shapes=None):
        out = out_shapes[0] if out_shapes else None
        if backward is not None and out is not None:
            data = merge(data, backward(self, tuple(out), data))
        if data is None:
            return None
        return [data], [tuple(rule(self, tuple(data)))]
    return infer_partial


# ---------------------------------------------------------------- Reshape and its codes
def reshape_target(in_shape, spec, reverse=False):
    """The output shape of MXNet Reshape(shape=spec, reverse) on `in_shape` (InferReshapeShape).

    Codes: 0 copies an input dim, -1 infers one dim, -2 copies all remaining dims, -3 merges the next two input
    dims, -4 splits one input dim into the two values that follow it (one may be -1); with reverse=True both the
    input dims and the codes are read right to left.
    """
    in_shape, spec = tuple(int(d) for d in in_shape), tuple(int(c) for c in spec)

    def fail(reason):
        return MXNetError("Reshape: cannot reshape an input of shape %s with shape=%s%s: %s"
                          % (in_shape, spec, ", reverse=True" if reverse else "", reason))

    dims, codes = (in_shape[::-1], spec[::-1]) if reverse else (in_shape, spec)
    out, infer, i, j = [], None, 0, 0           # i walks the codes, j the input dims
    while i < len(codes):
        code = codes[i]
        if code == 0:
            if j >= len(dims):
                raise fail("code 0 has no input dimension left to copy")
            out.append(dims[j])
            j += 1
        elif code == -1:
            if infer is not None:
                raise fail("only one dimension can be -1")
            infer = len(out)
            out.append(1)
            j += 1
        elif code == -2:
            out.extend(dims[j:])
            j = len(dims)
        elif code == -3:
            if j + 1 >= len(dims):
                raise fail("code -3 needs two input dimensions left to merge")
            out.append(dims[j] * dims[j + 1])
            j += 2
        elif code == -4:
            if i + 2 >= len(codes):
                raise fail("code -4 must be followed by the two dimensions to split into")
            if j >= len(dims):
                raise fail("code -4 has no input dimension left to split")
            d0, d1, d2 = dims[j], codes[i + 1], codes[i + 2]
            if d1 == -1 and d2 == -1:
                raise fail("the two dimensions after -4 cannot both be -1")
            if (d1 < 1 and d1 != -1) or (d2 < 1 and d2 != -1):
                raise fail("the dimensions after -4 must be positive or -1")
            d1 = d0 // d2 if d1 == -1 else d1
            d2 = d0 // d1 if d2 == -1 else d2
            if d1 * d2 != d0:
                raise fail("split dims %d, %d do not divide input dim %d" % (d1, d2, d0))
            out.extend((d1, d2))
            i += 2
            j += 1
        elif code > 0:
            out.append(code)
            j += 1
        else:
            raise fail("%d is not a valid dimension or special code (0, -1, -2, -3, -4)" % code)
        i += 1
    total = _prod(in_shape)
    if infer is not None:
        rest = _prod(out)
        if rest == 0 or total % rest:
            raise fail("the -1 dimension cannot be inferred: %d elements do not divide by %d" % (total, rest))
        out[infer] = total // rest
    out = tuple(out[::-1] if reverse else out)
    if _prod(out) != total:
        raise fail("the result %s has %d elements, the input %d" % (out, _prod(out), total))
    return out


def _partial_reshape_target(in_shape, spec, reverse=False):
    """reshape_target for an input with unknown (None) dimensions, as MXNet's InferReshapeShape: what depends on
    an unknown dimension (a -1, a -3 merge, a -4 split) stays unknown."""
    if is_complete(in_shape):
        return reshape_target(in_shape, spec, reverse)
    dims, codes = (tuple(in_shape)[::-1], tuple(spec)[::-1]) if reverse else (tuple(in_shape), tuple(spec))
    out, i, j = [], 0, 0
    while i < len(codes):
        code = codes[i]
        if code == -2:
            out.extend(dims[j:])
            j = len(dims)
        elif code == -3:
            if j + 1 >= len(dims):
                raise MXNetError("Reshape: code -3 in shape=%s needs two input dimensions left to merge (input %s)"
                                 % (tuple(spec), fmt(in_shape)))
            a, b = dims[j], dims[j + 1]
            out.append(None if a is None or b is None else a * b)
            j += 2
        elif code == -4:
            if i + 2 >= len(codes) or j >= len(dims):
                raise MXNetError("Reshape: code -4 in shape=%s must be followed by two dimensions and split an "
                                 "input dimension (input %s)" % (tuple(spec), fmt(in_shape)))
            d0, d1, d2 = dims[j], codes[i + 1], codes[i + 2]
            if d1 == -1 and d2 == -1:
                raise MXNetError("Reshape: the two dimensions after -4 cannot both be -1")
            if d0 is not None:
                d1, d2 = (d0 // d2 if d1 == -1 else d1), (d0 // d1 if d2 == -1 else d2)
            out.extend(None if d == -1 else d for d in (d1, d2))
            i += 2
            j += 1
        elif code == 0:
            if j >= len(dims):
                raise MXNetError("Reshape: code 0 in shape=%s has no input dimension left to copy (input %s)"
                                 % (tuple(spec), fmt(in_shape)))
            out.append(dims[j])
            j += 1
        else:       # -1 needs the input's size; a positive code is the dimension itself
            out.append(None if code == -1 else code)
            j += 1
        i += 1
    return tuple(out[::-1] if reverse else out)


def _fill_one_unknown(shape, other):
    """MXNet's ReverseReshapeInferShape: a shape with one unknown dimension, its size from a complete `other` of
    the same number of elements; otherwise `shape` unchanged."""
    if shape is None or not is_complete(other) or shape.count(None) != 1:
        return shape
    known = _prod(d for d in shape if d is not None)
    return tuple(_prod(other) // known if d is None else d for d in shape)


def _legacy_reshape_target(in_shape, target_shape, keep_highest):
    """Deprecated Reshape(target_shape, keep_highest): one 0 in target_shape is inferred."""
    out = list(target_shape)
    if keep_highest:
        out[0] = in_shape[0]
    zeros = [i for i in range(1 if keep_highest else 0, len(out)) if out[i] == 0]
    total = _prod(in_shape)
    if len(zeros) > 1:
        raise MXNetError("Reshape: target_shape=%s may contain only one 0 (the inferred dim)" % (target_shape,))
    if zeros:
        out[zeros[0]] = 1
        out[zeros[0]] = total // _prod(out)
    if _prod(out) != total:
        raise MXNetError("Reshape: cannot reshape an input of shape %s to target_shape=%s (got %s)"
                         % (tuple(in_shape), tuple(target_shape), tuple(out)))
    return tuple(out)


@register
class Reshape(OpDef):
    """out = data viewed with a new shape (special codes 0, -1, -2, -3, -4). Mirrors MXNet Reshape."""
    aliases = ("reshape",)
    fluent = ("reshape",)
    shape: Shape = param((), doc="The target shape.")
    reverse: bool = param(False, doc="If true then the special values are inferred from right to left.")
    target_shape: Shape = param((), doc="(Deprecated! Use shape instead.) Target new shape; one 0 is inferred.")
    keep_highest: bool = param(False, doc="(Deprecated! Use shape instead.) Keep the first dim of the input.")

    def target(self, data):
        if self.shape:
            return reshape_target(data, self.shape, self.reverse)
        if self.target_shape:
            return _legacy_reshape_target(data, self.target_shape, self.keep_highest)
        raise MXNetError("Reshape: the target shape is missing (give `shape`)")

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        # MXNet's ReshapeShape: forwards from data's known dimensions; then one unknown dimension of data (or of
        # the output) follows from the other side when that one is complete.
        out = out_shapes[0] if out_shapes else None
        if data is None:
            return None
        if is_complete(data) or not self.shape:
            target = self.target(data) if is_complete(data) else None
        else:
            target = _partial_reshape_target(data, self.shape, self.reverse)
        out = merge(out, target)
        return [_fill_one_unknown(data, out)], [_fill_one_unknown(out, data)]

    def lower(self, g, data):
        return _reshape(g, data, self.target(g.shape(data)))


@register
class Flatten(OpDef):
    """(d0, d1, ..., dk) -> (d0, d1*...*dk). Mirrors MXNet Flatten."""
    aliases = ("flatten",)
    fluent = ("flatten",)

    def _out(self, data):
        if not data:
            raise MXNetError("Flatten: the input must have at least one dimension")
        return data[0], _prod(data[1:])

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        return g.Flatten(data, axis=1)


@register
class reshape_like(OpDef):
    """lhs reshaped so that lhs dims [lhs_begin, lhs_end) become rhs dims [rhs_begin, rhs_end). MXNet reshape_like."""
    fluent = ("reshape_like",)
    inputs = ("lhs", "rhs")
    lhs_begin: Optional[int] = param(None, doc="Beginning of the lhs dims to replace (default 0).")
    lhs_end: Optional[int] = param(None, doc="End of the lhs dims to replace (default: ndim).")
    rhs_begin: Optional[int] = param(None, doc="Beginning of the rhs dims to use (default 0).")
    rhs_end: Optional[int] = param(None, doc="End of the rhs dims to use (default: ndim).")

    def _range(self, ndim, side):
        begin, end = getattr(self, side + "_begin"), getattr(self, side + "_end")
        b = 0 if begin is None else begin + ndim if begin < 0 else begin
        e = ndim if end is None else end + ndim if end < 0 else end
        if not 0 <= b < e <= ndim:
            raise MXNetError("reshape_like: invalid %s_begin=%s, %s_end=%s for %s with %d dimensions"
                             % (side, begin, side, end, side, ndim))
        return b, e

    def _out(self, lhs, rhs):
        lb, le = self._range(len(lhs), "lhs")
        rb, re = self._range(len(rhs), "rhs")
        out = tuple(lhs[:lb]) + tuple(rhs[rb:re]) + tuple(lhs[le:])
        if _prod(out) != _prod(lhs):
            raise MXNetError("reshape_like: cannot reshape lhs of shape %s to %s (from rhs of shape %s): "
                             "different sizes" % (tuple(lhs), out, tuple(rhs)))
        return out

    def infer_shape(self, lhs, rhs):
        if lhs is None or rhs is None:
            return None
        return [lhs, rhs], [self._out(lhs, rhs)]

    def infer_type(self, lhs, rhs):
        return None if lhs is None else ([lhs, rhs], [lhs])

    def lower(self, g, lhs, rhs):
        return _reshape(g, lhs, self._out(g.shape(lhs), g.shape(rhs)))


# ---------------------------------------------------------------- axis permutations and size-1 axes
def _unpermute(out, perm):
    """The input shape of a transpose by `perm` whose output has shape `out`."""
    data = [None] * len(out)
    for o, p in zip(out, perm):
        data[p] = o
    return tuple(data)


@register
class transpose(OpDef):
    """out = data with its axes permuted (default: reversed). Mirrors MXNet transpose."""
    fluent = ("transpose",)
    axes: Shape = param((), doc="Target axis order. By default the axes will be inverted.")

    def perm(self, ndim):
        if not self.axes:
            return tuple(range(ndim))[::-1]
        perm = tuple(a + ndim if a < 0 else a for a in self.axes)
        if sorted(perm) != list(range(ndim)):
            raise MXNetError("transpose: axes=%s is not a permutation of the %d input axes" % (self.axes, ndim))
        return perm

    infer_shape = _unary_shape(lambda self, data: tuple(data[a] for a in self.perm(len(data))), partial=True,
                               backward=lambda self, out, data: _unpermute(out, self.perm(len(out))))

    def lower(self, g, data):
        return g.Transpose(data, perm=list(self.perm(len(g.shape(data)))))


@register
class SwapAxis(OpDef):
    """out = data with axes dim1 and dim2 exchanged. Mirrors MXNet SwapAxis."""
    aliases = ("swapaxes",)
    fluent = ("swapaxes",)
    dim1: int = param(0, doc="The first axis to be swapped.")
    dim2: int = param(0, doc="The second axis to be swapped.")

    def perm(self, ndim):
        perm = list(range(ndim))
        a, b = _axis(self, self.dim1, ndim, "dim1"), _axis(self, self.dim2, ndim, "dim2")
        perm[a], perm[b] = perm[b], perm[a]
        return perm

    infer_shape = _unary_shape(lambda self, data: tuple(data[a] for a in self.perm(len(data))), partial=True)

    def lower(self, g, data):
        return g.Transpose(data, perm=self.perm(len(g.shape(data))))


@register
class expand_dims(OpDef):
    """out = data with a new axis of size 1 at `axis` (in [-ndim-1, ndim]). Mirrors MXNet expand_dims."""
    fluent = ("expand_dims",)
    axis: int = param(doc="Position where the new axis is inserted.")

    def _out(self, data):
        axis = _axis(self, self.axis, len(data), extra=1)
        return data[:axis] + (1,) + data[axis:]

    def _back(self, out, data):
        axis = _axis(self, self.axis, len(out) - 1, extra=1)
        return out[:axis] + out[axis + 1:]

    infer_shape = _unary_shape(_out, partial=True, backward=_back)

    def lower(self, g, data):
        return _reshape(g, data, self._out(g.shape(data)))


@register
class squeeze(OpDef):
    """out = data without its size-1 axes (all, or those in `axis`); at least one dim stays. MXNet squeeze."""
    fluent = ("squeeze",)
    axis: Optional[Shape] = param(None, doc="The size-1 axes to remove (None: all of them).")

    def _out(self, data):
        if self.axis is None:
            drop = {i for i, d in enumerate(data) if d == 1}
        else:
            drop = set()
            for a in self.axis:
                real = _axis(self, a, len(data))
                if real in drop:
                    raise MXNetError("squeeze: duplicate value in axis=%s" % (self.axis,))
                if data[real] != 1:
                    raise MXNetError("squeeze: cannot squeeze axis %d of data with shape %s: its size is %d, not 1"
                                     % (a, tuple(data), data[real]))
                drop.add(real)
        return tuple(d for i, d in enumerate(data) if i not in drop) or (1,)

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        return _reshape(g, data, self._out(g.shape(data)))


# ---------------------------------------------------------------- joining and splitting
@register
class Concat(OpDef):
    """out = the inputs joined along `dim`. Mirrors MXNet Concat."""
    aliases = ("concat",)
    variadic = True
    num_args: int = param(min=1, doc="Number of inputs to be concatenated.")
    dim: int = param(1, doc="The dimension to be concatenated.")

    @partial_rule
    def infer_shape(self, *shapes, out_shapes=None):
        # MXNet's ConcatShape: every input and the output agree except on `dim` (also from a known output, so
        # inputs learn their other dimensions backwards); the output's `dim` is the sum once all inputs know
        # theirs. (MXNet 1.9.1 also sums when an input's shape is entirely unknown, skipping it: not copied.)
        out = out_shapes[0] if out_shapes else None
        known = [s for s in list(shapes) + [out] if s is not None]
        if not known:
            return None
        axis = _axis(self, self.dim, len(known[0]), "dim")
        names = self.input_names()
        common = None
        for name, shape in [(n, s) for n, s in zip(names, shapes)] + [("output", out)]:
            if shape is None:
                continue
            masked = tuple(None if k == axis else d for k, d in enumerate(shape))
            try:
                common = merge(common, masked)
            except MXNetError:
                first = next((n, s) for n, s in zip(names, shapes) if s is not None)
                raise MXNetError("Concat: input '%s' has shape %s, but input '%s' has shape %s: they must agree "
                                 "on every axis except dim=%d" % (name, fmt(shape), first[0], fmt(first[1]),
                                                                   self.dim)) from None
        ins = [common[:axis] + ((None if s is None else s[axis]),) + common[axis + 1:] for s in shapes]
        sizes = [s[axis] for s in ins]
        total = None if None in sizes else sum(sizes)
        return ins, [common[:axis] + (total,) + common[axis + 1:]]

    def lower(self, g, *inputs):
        return g.Concat(*inputs, axis=_axis(self, self.dim, len(g.shape(inputs[0])), "dim"))


@register
class SliceChannel(OpDef):
    """num_outputs equal parts of data along `axis` (squeeze_axis drops that axis). Mirrors MXNet SliceChannel."""
    aliases = ("split",)
    fluent = ("split",)
    num_outputs: int = param(min=1, doc="Number of splits.")
    axis: int = param(1, doc="Axis along which to split.")
    squeeze_axis: bool = param(False, doc="If true, removes the split axis (its size must equal num_outputs).")

    def output_names(self):
        return tuple("output%d" % i for i in range(self.num_outputs))

    def _split(self, data):
        axis = _axis(self, self.axis, len(data))
        if data[axis] % self.num_outputs:
            raise MXNetError("SliceChannel: axis %d of data with shape %s (size %d) cannot be split into "
                             "num_outputs=%d equal parts" % (self.axis, fmt(data), data[axis], self.num_outputs))
        part = data[axis] // self.num_outputs
        if self.squeeze_axis and part != 1:
            raise MXNetError("SliceChannel: squeeze_axis=True needs data.shape[%d] == num_outputs, got %d vs %d"
                             % (self.axis, data[axis], self.num_outputs))
        out = list(data)
        if self.squeeze_axis:
            del out[axis]
        else:
            out[axis] = part
        return axis, part, tuple(out)

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        # MXNet's SliceChannel InferShape: unknown dimensions pass through (the split one too), and data learns
        # from the outputs backwards (split axis times num_outputs, or num_outputs itself when squeezed).
        if data is None:
            return None
        data = tuple(data)
        axis = _axis(self, self.axis, len(data))
        if data[axis] is not None:
            out = self._split(data)[2]
        else:
            out = data[:axis] + data[axis + 1:] if self.squeeze_axis else data
        back = []
        for known in out_shapes or ():
            if known is None:
                continue
            if self.squeeze_axis and len(known) == len(data) - 1:
                back.append(known[:axis] + (self.num_outputs,) + known[axis:])
            elif len(known) == len(data):
                back.append(known[:axis] + ((None if known[axis] is None else known[axis] * self.num_outputs),)
                            + known[axis + 1:])
        return [merge_all([data] + back)], [out] * self.num_outputs

    def lower(self, g, data):
        axis, part, _ = self._split(g.shape(data))
        outputs = []
        for i in range(self.num_outputs):
            y = g.Slice(data, g.int64s([i * part]), g.int64s([(i + 1) * part]), g.int64s([axis]))
            outputs.append(g.Squeeze(y, g.int64s([axis])) if self.squeeze_axis else y)
        return tuple(outputs)


@register
class _split_v2(OpDef):
    """data split along `axis` at `indices` (the start of each part, the first 0), or into `sections` parts (the
    first size % sections parts one longer, as numpy.array_split); squeeze_axis drops the axis (parts of size 1).
    Mirrors MXNet _split_v2 (mx.nd.split_v2 / mx.sym.split_v2 pass indices as [0] + the boundaries)."""
    fluent = ()
    indices: Shape = param(doc="Indices of splits: the boundaries at which the split is performed along axis.")
    axis: int = param(1, doc="Axis along which to split.")
    squeeze_axis: bool = param(False, doc="Remove the split axis (every part must have size 1).")
    sections: int = param(0, min=0, doc="Number of (nearly) equal sections; 0: split by indices.")

    def output_names(self):
        return tuple("output%d" % i for i in range(self.sections or len(self.indices)))

    def _bounds(self, data):
        axis = _axis(self, self.axis, len(data))
        size = data[axis]
        if self.sections:
            small, extra = divmod(size, self.sections)
            starts = [i * small + min(i, extra) for i in range(self.sections)]
        else:
            starts = list(self.indices)
        bounds = list(zip(starts, starts[1:] + [size]))
        for i, (start, end) in enumerate(bounds):
            if not 0 <= start <= end <= size:
                raise MXNetError("_split_v2: part %d [%d, %d) does not fit axis %d of size %d (indices %s)"
                                 % (i, start, end, self.axis, size, fmt(self.indices)))
            if self.squeeze_axis and end - start != 1:
                raise MXNetError("_split_v2: squeeze_axis=True needs parts of size 1, part %d has %d"
                                 % (i, end - start))
        return axis, bounds

    def infer_shape(self, data):
        if data is None or not is_complete(data):
            return None
        axis, bounds = self._bounds(tuple(data))
        outs = []
        for start, end in bounds:
            out = list(data)
            if self.squeeze_axis:
                del out[axis]
            else:
                out[axis] = end - start
            outs.append(tuple(out))
        return [data], outs

    def lower(self, g, data):
        axis, bounds = self._bounds(tuple(g.shape(data)))
        outputs = []
        for start, end in bounds:
            y = g.Slice(data, g.int64s([start]), g.int64s([end]), g.int64s([axis]))
            outputs.append(g.Squeeze(y, g.int64s([axis])) if self.squeeze_axis else y)
        return tuple(outputs)


def split_v2_params(indices_or_sections, axis=0, squeeze_axis=False):
    """The attributes of _split_v2 for MXNet's split_v2(ary, indices_or_sections, axis, squeeze_axis): an int is a
    number of sections, a tuple the boundaries (the op takes [0] + boundaries)."""
    if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(indices_or_sections, bool):
        return dict(indices=(), axis=axis, squeeze_axis=squeeze_axis, sections=int(indices_or_sections))
    if isinstance(indices_or_sections, tuple):
        return dict(indices=(0,) + tuple(indices_or_sections), axis=axis, squeeze_axis=squeeze_axis, sections=0)
    raise ValueError("indices_or_sections must either int or tuple of ints")


# ---------------------------------------------------------------- slicing
def _slice_positive(g, data, ranges):
    """One Slice for the (axis, begin, end, step>0) entries that change anything; data itself when none do."""
    shape = g.shape(data)
    ranges = [r for r in ranges if (r[1], r[2], r[3]) != (0, shape[r[0]], 1)]
    if not ranges:
        return data
    axes, begins, ends, steps = zip(*ranges)
    return g.Slice(data, g.int64s(begins), g.int64s(ends), g.int64s(axes), g.int64s(steps))


@register
class slice(OpDef):  # noqa: A001  (MXNet's name; the builtin is not used in this module)
    """out = data[b0:e0:s0, b1:e1:s1, ...], None meaning the default for the step's sign. Mirrors MXNet slice."""
    aliases = ("crop",)
    fluent = ("slice",)
    begin: OptShape = param(doc="Starting indices for the slice operation, supports negative indices.")
    end: OptShape = param(doc="Ending indices for the slice operation, supports negative indices.")
    step: OptShape = param((), doc="Step for the slice operation, supports negative values.")

    def ranges(self, data):
        """[(axis, begin, end, step, length)] with MXNet's defaults and bound checks (GetIndexRange)."""
        if len(self.begin) != len(self.end):
            raise MXNetError("slice: begin=%s and end=%s must have the same length" % (self.begin, self.end))
        if len(self.begin) > len(data):
            raise MXNetError("slice: begin=%s has more axes than data with shape %s" % (self.begin, tuple(data)))
        if self.step and len(self.step) != len(self.begin):
            raise MXNetError("slice: step=%s and begin=%s must have the same length" % (self.step, self.begin))
        result = []
        for i, (b, e) in enumerate(zip(self.begin, self.end)):
            s = self.step[i] if self.step and self.step[i] is not None else 1
            n = data[i]
            if s == 0:
                raise MXNetError("slice: step[%d] cannot be 0" % i)
            if n is None:           # partial shapes: an unknown dimension stays unknown (MXNet's 0)
                result.append((i, b, e, s, None))
                continue
            where = "slice axis %d (size %d) with begin=%s, end=%s, step=%d" % (i, n, b, e, s)
            b = (n - 1 if s < 0 else 0) if b is None else b + n if b < 0 else b
            e = (-1 if s < 0 else n) if e is None else e + n if e < 0 else e
            if not 0 <= b < n or e < -1 or e > n or (e == -1 and self.end[i] is not None):
                raise MXNetError("slice: %s: index out of range" % where)
            if (s > 0 and b >= e) or (s < 0 and e >= b):
                raise MXNetError("slice: %s: empty or invalid range" % where)
            length = (e - b - 1) // s + 1 if s > 0 else (b - e - 1) // -s + 1
            result.append((i, b, e, s, length))
        return result

    def _out(self, data):
        out = list(data)
        for axis, _, _, _, length in self.ranges(data):
            out[axis] = length
        return tuple(out)

    infer_shape = _unary_shape(_out, partial=True)

    def lower(self, g, data):
        ranges = self.ranges(g.shape(data))
        y = _slice_positive(g, data, [r[:4] for r in ranges if r[3] > 0])
        for axis, b, e, s, _ in ranges:
            if s < 0:
                y = g.Gather(y, g.int64s(np.arange(b, e, s)), axis=axis)
        return g.Identity(y) if y is data else y


def _region_indices(op, shape):
    """The indices (k, ndim) of the elements a slice op with op's begin/end/step selects, in the slice's order."""
    grids = [np.arange(shape[i]) for i in range(len(shape))]
    for axis, b, e, s, _ in op.ranges(shape):
        grids[axis] = np.arange(b, e, s)
    mesh = np.meshgrid(*grids, indexing="ij")
    return np.stack(mesh, axis=-1).astype(np.int64), tuple(len(g) for g in grids)


@dataclasses.dataclass(frozen=True)
class _SliceAssignBase(OpDef):
    begin: OptShape = param(doc="Starting indices for the slice operation, supports negative indices.")
    end: OptShape = param(doc="Ending indices for the slice operation, supports negative indices.")
    step: OptShape = param((), doc="Step for the slice operation, supports negative values.")

    def _region(self, shape):
        return _region_indices(slice(begin=self.begin, end=self.end, step=self.step), tuple(shape))


@register
class _slice_assign(_SliceAssignBase):
    """lhs with lhs[begin:end:step] replaced by rhs (the region's shape). MXNet _slice_assign (alias
    _crop_assign: NDArray's slice assignment); lhs's gradient is the head outside the region, rhs's the head's
    region."""
    aliases = ("_crop_assign",)
    inputs = ("lhs", "rhs")

    def infer_shape(self, lhs, rhs):
        if lhs is None:
            return None
        region = self._region(lhs)[1]
        if rhs is not None and tuple(rhs) != region:
            raise MXNetError("_slice_assign: rhs has shape %s, the region [%s:%s:%s] of lhs %s has shape %s"
                             % (fmt(rhs), self.begin, self.end, self.step, fmt(lhs), fmt(region)))
        return [lhs, region], [lhs]

    def lower(self, g, lhs, rhs):
        indices, _ = self._region(g.shape(lhs))
        return g.ScatterND(lhs, g.const(indices), rhs)


@register
class _slice_assign_scalar(_SliceAssignBase):
    """data with data[begin:end:step] set to `scalar`. MXNet _slice_assign_scalar (alias _crop_assign_scalar)."""
    aliases = ("_crop_assign_scalar",)
    scalar: float = param(0.0, doc="The scalar value for assignment.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        indices, region = self._region(g.shape(data))
        values = g.const(np.full(region, self.scalar, np.dtype(g.dtype(data))))
        return g.ScatterND(data, g.const(indices), values)


@register
class fill_element_0index(OpDef):
    """lhs with lhs[i, rhs[i]] = mhs[i] for every row i (lhs (N, M), mhs and rhs (N,)). MXNet
    fill_element_0index."""
    inputs = ("lhs", "mhs", "rhs")

    def infer_shape(self, lhs, mhs, rhs):
        if lhs is None:
            return None
        if len(lhs) != 2:
            raise MXNetError("fill_element_0index: lhs must be 2-D, got shape %s" % fmt(lhs))
        for name, shape in (("mhs", mhs), ("rhs", rhs)):
            if shape is not None and tuple(shape) != (lhs[0],):
                raise MXNetError("fill_element_0index: %s must have shape (%d,), got %s" % (name, lhs[0], fmt(shape)))
        return [lhs, (lhs[0],), (lhs[0],)], [lhs]

    def infer_type(self, lhs, mhs, rhs):
        if lhs is None:
            return None
        return [lhs, mhs or lhs, rhs or lhs], [lhs]

    def lower(self, g, lhs, mhs, rhs):
        rows = lhs_rows = g.shape(lhs)[0]
        columns = g.Unsqueeze(g.stop_gradient(g.cast(rhs, np.int64), np.int64), g.int64s([1]))
        row_index = g.const(np.arange(lhs_rows, dtype=np.int64).reshape(rows, 1))
        indices = g.Concat(row_index, columns, axis=1)
        return g.ScatterND(lhs, indices, g.cast(mhs, g.dtype(lhs)) if g.dtype(mhs) != g.dtype(lhs) else mhs)


@register
class slice_axis(OpDef):
    """out = data[..., begin:end, ...] along `axis` (end None = to the end). Mirrors MXNet slice_axis."""
    fluent = ("slice_axis",)
    axis: int = param(doc="Axis along which to be sliced, supports negative indexes.")
    begin: int = param(doc="The beginning index along the axis to be sliced, supports negative indexes.")
    end: Optional[int] = param(doc="The ending index along the axis to be sliced, supports negative indexes.")

    def _range(self, data):
        axis = _axis(self, self.axis, len(data))
        n = data[axis]
        b = self.begin + n if self.begin < 0 else self.begin
        e = n if self.end is None else self.end + n if self.end < 0 else self.end
        if not 0 <= b < e <= n:
            raise MXNetError("slice_axis: invalid begin=%d, end=%s for axis %d of size %d"
                             % (self.begin, self.end, self.axis, n))
        return axis, b, e

    def _out(self, data):
        axis = _axis(self, self.axis, len(data))
        if data[axis] is None:
            return data
        axis, b, e = self._range(data)
        return data[:axis] + (e - b,) + data[axis + 1:]

    infer_shape = _unary_shape(_out, partial=True)

    def lower(self, g, data):
        y = _slice_positive(g, data, [self._range(g.shape(data)) + (1,)])
        return g.Identity(y) if y is data else y


@register
class slice_like(OpDef):
    """out = data[:s0, :s1, ...] with the sizes of shape_like on `axes` (default all). Mirrors MXNet slice_like."""
    fluent = ("slice_like",)
    inputs = ("data", "shape_like")
    axes: Shape = param((), doc="Axes to slice to the size of shape_like (default: all). Negative axes allowed.")

    def _out(self, data, like):
        if not self.axes:
            if len(data) != len(like):
                raise MXNetError("slice_like: with axes=() data %s and shape_like %s must have the same ndim"
                                 % (tuple(data), tuple(like)))
            axes = range(len(data))
        else:
            axes = [_axis(self, a, len(data), "axes") for a in self.axes]
        out = list(data)
        for a in axes:
            if a >= len(like) or like[a] > data[a]:
                raise MXNetError("slice_like: cannot slice axis %d of data %s to the size of shape_like %s"
                                 % (a, tuple(data), tuple(like)))
            out[a] = like[a]
        return tuple(out)

    def infer_shape(self, data, shape_like):
        if data is None or shape_like is None:
            return None
        return [data, shape_like], [self._out(data, shape_like)]

    def infer_type(self, data, shape_like):
        return None if data is None else ([data, shape_like], [data])

    def lower(self, g, data, shape_like):
        out = self._out(g.shape(data), g.shape(shape_like))
        y = _slice_positive(g, data, [(a, 0, d, 1) for a, d in enumerate(out)])
        return g.Identity(y) if y is data else y


@register
class reverse(OpDef):
    """out = data with the order of elements reversed along `axis`. Mirrors MXNet reverse (alias flip)."""
    aliases = ("flip",)
    fluent = ("flip",)
    axis: Shape = param(doc="The axis which to reverse elements.")

    def _axes(self, data):
        return [_axis(self, a, len(data)) for a in self.axis]

    @partial_rule
    def infer_shape(self, data, out_shapes=None):
        known = merge(data, out_shapes[0] if out_shapes else None)
        if known is not None:
            self._axes(known)
        return same_shape_rule(self, data, out_shapes=out_shapes)

    def lower(self, g, data):
        shape, y = g.shape(data), data
        for axis in self._axes(shape):
            if shape[axis] > 1:      # a Gather of reversed indices: ORT cannot differentiate negative-step Slice
                y = g.Gather(y, g.int64s(np.arange(shape[axis] - 1, -1, -1)), axis=axis)
        return g.Identity(y) if y is data else y


# ---------------------------------------------------------------- tiling and broadcasting
@register
class tile(OpDef):
    """out = data repeated reps times per axis (numpy.tile rank promotion). Mirrors MXNet tile."""
    fluent = ("tile",)
    reps: Shape = param(doc="The number of times for repeating the tensor a, per dimension.")

    def _padded(self, data):
        if any(r <= 0 for r in self.reps):
            raise MXNetError("tile: every entry of reps=%s must be positive" % (self.reps,))
        ndim = max(len(data), len(self.reps))
        return (1,) * (ndim - len(data)) + tuple(data), (1,) * (ndim - len(self.reps)) + tuple(self.reps)

    def _out(self, data):
        if not self.reps:
            return data
        shape, reps = self._padded(data)
        return tuple(d * r for d, r in zip(shape, reps))

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        if not self.reps:
            return g.Identity(data)
        shape, reps = self._padded(g.shape(data))
        x = data if len(shape) == len(g.shape(data)) else _reshape(g, data, shape)
        return g.Tile(x, g.int64s(reps))


@register
class repeat(OpDef):
    """out = each element repeated `repeats` times along `axis` (None: of the flattened data). MXNet repeat."""
    fluent = ("repeat",)
    repeats: int = param(doc="The number of repetitions for each element.")
    axis: Optional[int] = param(None, doc="The axis along which to repeat values (None: flatten first).")

    def _shapes(self, data):
        """(input viewed with a new size-1 axis, that view expanded, the output shape)."""
        if self.repeats < 0:
            raise MXNetError("repeat: repeats=%d cannot be a negative number" % self.repeats)
        if self.repeats == 0:
            raise MXNetError("repeat: repeats=0 gives a zero-size array, which onnxsym does not support")
        r = self.repeats
        if self.axis is None:
            size = _prod(data)
            return (size, 1), (size, r), (size * r,)
        a = _axis(self, self.axis, len(data))
        head, tail = tuple(data[:a + 1]), tuple(data[a + 1:])
        return head + (1,) + tail, head + (r,) + tail, head[:-1] + (head[-1] * r,) + tail

    infer_shape = _unary_shape(lambda self, data: self._shapes(data)[2])

    def lower(self, g, data):
        view, expanded, out = self._shapes(g.shape(data))
        return _reshape(g, g.Expand(_reshape(g, data, view), g.int64s(expanded)), out)


def _broadcast_check(op, data, target, shown):
    for d, t in zip(data, target):
        if d is not None and d != t and d != 1:
            raise MXNetError("%s: an array of shape %s cannot be broadcast to %s" % (op.op_name, fmt(data), shown))


@register
class broadcast_to(OpDef):
    """out = data broadcast to `shape` (0 keeps the input dim). Mirrors MXNet broadcast_to."""
    fluent = ("broadcast_to",)
    shape: Shape = param((), doc="The shape of the desired array; 0 keeps the input's dim.")

    def _out(self, data):
        if len(self.shape) != len(data):
            raise MXNetError("broadcast_to: an array of shape %s cannot be broadcast to %s"
                             % (fmt(data), self.shape))
        out = tuple(d if s == 0 else s for d, s in zip(data, self.shape))
        _broadcast_check(self, data, out, self.shape)
        return out

    infer_shape = _unary_shape(_out, partial=True)

    def lower(self, g, data):
        return g.Expand(data, g.int64s(self._out(g.shape(data))))


@register
class broadcast_axis(OpDef):
    """out = data with its size-1 axes `axis` broadcast to `size`. Mirrors MXNet broadcast_axis."""
    aliases = ("broadcast_axes",)
    fluent = ("broadcast_axes",)
    axis: Shape = param((), doc="The axes to perform the broadcasting.")
    size: Shape = param((), doc="Target sizes of the broadcasting axes.")

    def _out(self, data):
        if len(self.axis) != len(self.size):
            raise MXNetError("broadcast_axis: axis=%s and size=%s must have the same length" % (self.axis, self.size))
        out = list(data)
        for a, s in zip(self.axis, self.size):
            real = _axis(self, a, len(data))
            if data[real] != 1:
                raise MXNetError("broadcast_axis: axis %d of data with shape %s has size %d; broadcasting axes "
                                 "must have size 1" % (a, tuple(data), data[real]))
            out[real] = s
        return tuple(out)

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        return g.Expand(data, g.int64s(self._out(g.shape(data))))


@register
class broadcast_like(OpDef):
    """out = lhs broadcast to rhs's shape (or lhs_axes to the sizes of rhs_axes). Mirrors MXNet broadcast_like."""
    fluent = ("broadcast_like",)
    inputs = ("lhs", "rhs")
    lhs_axes: Optional[Shape] = param(None, doc="Axes to perform broadcast on in the first input array.")
    rhs_axes: Optional[Shape] = param(None, doc="Axes to copy from the second input array.")

    def _out(self, lhs, rhs):
        lhs, rhs = tuple(lhs), tuple(rhs)
        if self.lhs_axes is None or self.rhs_axes is None:
            if len(lhs) != len(rhs):
                raise MXNetError("broadcast_like: lhs of shape %s cannot be broadcast to rhs's shape %s" % (lhs, rhs))
            _broadcast_check(self, lhs, rhs, rhs)
            return rhs
        if len(self.lhs_axes) != len(self.rhs_axes) or not self.lhs_axes:
            raise MXNetError("broadcast_like: lhs_axes=%s and rhs_axes=%s must be non-empty and of equal length"
                             % (self.lhs_axes, self.rhs_axes))
        out = list(lhs)
        for la, ra in zip(self.lhs_axes, self.rhs_axes):
            src, dst = _axis(self, la, len(lhs), "lhs_axes"), _axis(self, ra, len(rhs), "rhs_axes")
            if lhs[src] != 1:
                raise MXNetError("broadcast_like: axis %d of lhs with shape %s has size %d, not 1"
                                 % (la, lhs, lhs[src]))
            out[src] = rhs[dst]
        return tuple(out)

    def infer_shape(self, lhs, rhs):
        if lhs is None or rhs is None:
            return None
        return [lhs, rhs], [self._out(lhs, rhs)]

    def infer_type(self, lhs, rhs):
        # only rhs's shape is read: it may have any dtype (MXNet: out has lhs's dtype)
        if lhs is None:
            return None
        return [lhs, rhs if rhs is not None else lhs], [lhs]

    def lower(self, g, lhs, rhs):
        return g.Expand(lhs, g.int64s(self._out(g.shape(lhs), g.shape(rhs))))


@register
class depth_to_space(OpDef):
    """(N, C, H, W) -> (N, C/b^2, H*b, W*b), DCR order: reshape (N,b,b,C',H,W), transpose (0,3,4,1,5,2).
    Mirrors MXNet depth_to_space."""
    fluent = ("depth_to_space",)
    block_size: int = param(min=1, doc="Blocks of [block_size, block_size] are moved.")

    def _out(self, data):
        b = self.block_size
        if len(data) != 4 or data[1] % (b * b):
            raise MXNetError("depth_to_space: data must be 4-D with channels divisible by block_size^2=%d, got %s"
                             % (b * b, tuple(data)))
        n, c, h, w = data
        return n, c // (b * b), h * b, w * b

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        (n, c, h, w), b = g.shape(data), self.block_size
        x = g.Transpose(_reshape(g, data, (n, b, b, c // (b * b), h, w)), perm=[0, 3, 4, 1, 5, 2])
        return _reshape(g, x, self._out((n, c, h, w)))


@register
class space_to_depth(OpDef):
    """(N, C, H, W) -> (N, C*b^2, H/b, W/b): reshape (N,C,H/b,b,W/b,b), transpose (0,3,5,1,2,4).
    Mirrors MXNet space_to_depth."""
    fluent = ("space_to_depth",)
    block_size: int = param(min=1, doc="Blocks of [block_size, block_size] are moved.")

    def _out(self, data):
        b = self.block_size
        if len(data) != 4 or data[2] % b or data[3] % b:
            raise MXNetError("space_to_depth: data must be 4-D with height and width divisible by block_size=%d, "
                             "got %s" % (b, tuple(data)))
        n, c, h, w = data
        return n, c * b * b, h // b, w // b

    infer_shape = _unary_shape(_out)

    def lower(self, g, data):
        (n, c, h, w), b = g.shape(data), self.block_size
        x = g.Transpose(_reshape(g, data, (n, c, h // b, b, w // b, b)), perm=[0, 3, 5, 1, 2, 4])
        return _reshape(g, x, self._out((n, c, h, w)))


# ---------------------------------------------------------------- values: casts, clip, fills, identity
@register
class Cast(OpDef):
    """out = data converted to `dtype` (C casts: truncation toward zero). Mirrors MXNet Cast.

    Gradient: the head gradient cast back to data's dtype (ORT's Cast gradient). Integer outputs are not
    differentiable in onnxruntime-training, so a cast to an integer dtype gives data a zero gradient (MXNet would
    cast the integer head gradient back)."""
    aliases = ("cast",)
    dtype: Dtype = param(doc="Output data type.")
    infer_shape = same_shape_rule

    def infer_type(self, data):
        return [data], [np.dtype(self.dtype)]

    def lower(self, g, data):
        return g.cast(data, self.dtype)


_AMP_CASTABLE = (np.dtype(np.float32), np.dtype(np.float16))


@register
class amp_cast(OpDef):
    """out = data cast to `dtype` when data is float32/float16, else unchanged. Mirrors MXNet amp_cast."""
    dtype: Dtype = param(doc="Output data type.")
    infer_shape = same_shape_rule

    def infer_type(self, data):
        if data is None:
            return None
        return [data], [np.dtype(self.dtype) if np.dtype(data) in _AMP_CASTABLE else data]

    def lower(self, g, data):
        if g.dtype(data) in _AMP_CASTABLE:
            return g.cast(data, self.dtype)
        return g.Identity(data)


@register
class clip(OpDef):
    """out = min(max(data, a_min), a_max); d out / d data = 1 where a_min <= data <= a_max (bounds included), else 0.
    Mirrors MXNet clip: the bounds are float32 (real_t) and compared in float32 for float16 data."""
    fluent = ("clip",)
    a_min: float = param(doc="Minimum value.")
    a_max: float = param(doc="Maximum value.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        dtype = g.dtype(data)
        lo, hi = np.float32(self.a_min), np.float32(self.a_max)
        if dtype == np.float16:     # float16(0.1) < 0.1f: MXNet zeroes its gradient, a float16 Clip would not
            y = g.Clip(g.cast(data, np.float32), g.scalar(lo, np.float32), g.scalar(hi, np.float32))
            return g.cast(y, np.float16)
        return g.Clip(data, g.scalar(lo, dtype), g.scalar(hi, dtype))


class _FillLike(OpDef):
    """A constant of data's shape and dtype; data's values are never read (NaN/inf stay out)."""
    differentiable = False
    _value = 0
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.ConstantOfShape(g.Shape(data), value=np.array([self._value], dtype=g.dtype(data)))


@register
class zeros_like(_FillLike):
    """out = 0 with data's shape and dtype. Mirrors MXNet zeros_like."""
    fluent = ("zeros_like",)
    _value = 0


@register
class ones_like(_FillLike):
    """out = 1 with data's shape and dtype. Mirrors MXNet ones_like."""
    fluent = ("ones_like",)
    _value = 1


@register
class BlockGrad(OpDef):
    """out = data; the gradient stops here (zero for data). Mirrors MXNet BlockGrad."""
    aliases = ("stop_gradient",)
    differentiable = False      # the training graph puts a stop-gradient marker after it
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.Identity(data)


class _ShapeQuery(OpDef):
    differentiable = False

    def infer_type(self, data):
        return [data], [np.dtype(np.int64)]


@register
class shape_array(_ShapeQuery):
    """out = data's shape as a 1-D int64 array. Mirrors MXNet shape_array."""
    fluent = ("shape_array",)
    infer_shape = _unary_shape(lambda self, data: (len(data),), partial=True)

    def lower(self, g, data):
        return g.Shape(data)


@register
class size_array(_ShapeQuery):
    """out = [data.size] as int64. Mirrors MXNet size_array."""
    fluent = ("size_array",)
    infer_shape = _unary_shape(lambda self, data: (1,), partial=True)

    def lower(self, g, data):
        return _reshape(g, g.Size(data), (1,))
