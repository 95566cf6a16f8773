"""Shape and dtype inference over a graph: a fixpoint of the per-op rules, in both directions.

As in MXNet (src/executor/infer_graph_attr_pass.cc), passes alternate forward and backward over the nodes until
nothing new is learnt; an op rule sees what is known of its inputs and outputs and fills in the rest, so parameter
shapes follow from data shapes and an input's shape can follow from a known output. Shapes may be partial
(see _shapes.py): knowledge is merged dimension by dimension, and a contradiction raises MXNetError naming the node,
the operator, the input and both shapes.
"""
import numpy as np

from .._shapes import ShapeMismatch, fmt, from_mxnet, is_complete, merge
from ..base import MXNetError, normalize_dtype
from ..util import is_np_shape
from ..ops.params import parse_shape
from .node import topo_order

__all__ = ["infer_graph_shapes", "infer_graph_types", "known_shape", "check_float_inputs"]

_MAX_PASSES = 64


def known_shape(shape):
    """A shape is known when it is a tuple with no unknown (0 or None) dimension."""
    return shape is not None and all(d is not None and d > 0 for d in shape)


def _describe_input(node, index):
    names = node.op.input_names()
    return names[index] if index < len(names) else "input %d" % index


class _Contradiction(Exception):
    """Two values of one entry disagree."""


def _run_rules(heads, seed, rule, merge_value, done, describe, what):
    """Generic fixpoint. `rule(node, in_values, out_values)` -> (in_values, out_values) or None; `merge_value(old,
    new)` combines two values of an entry (raising _Contradiction when they disagree); `done(value)` says the value
    is final; `describe(value)` formats it for messages; `what` is "Shape" or "Type"."""
    nodes = topo_order(heads)
    values = {}
    for node in nodes:
        if node.is_variable:
            value = seed(node)
            if value is not None:
                values[(id(node), 0)] = value
    operators = [node for node in nodes if not node.is_variable]

    def store(key, value, where):
        old = values.get(key)
        try:
            new = merge_value(old, value)
        except _Contradiction:
            raise MXNetError("%s: provided %s, inferred %s" % (where, describe(old), describe(value))) from None
        if new is not None and (old is None or new != old):     # (a numpy dtype equals None: float64)
            values[key] = new
            return True
        return False

    for step in range(_MAX_PASSES):
        changed = False
        for node in operators if step % 2 == 0 else reversed(operators):
            ins = [values.get((id(src), idx)) for src, idx in node.inputs]
            outs = [values.get((id(node), i)) for i in range(node.num_outputs)]
            if all(done(v) for v in ins) and all(done(v) for v in outs):
                continue
            try:
                result = rule(node, ins, outs)
            except (MXNetError, IndexError, TypeError, ValueError, ZeroDivisionError) as err:
                # a rule meeting inputs it was not written for (a () shape where it needs a rank) says so too
                reason = err if isinstance(err, MXNetError) else "%s inference failed for these inputs (%s: %s)" % (
                    what.lower(), type(err).__name__, err)
                known = ", ".join("%s=%s %s" % (_describe_input(node, i), src.output_name(idx), describe(v))
                                  for i, ((src, idx), v) in enumerate(zip(node.inputs, ins)))
                raise MXNetError("Error in operator %s (%s): %s [inputs: %s]"
                                 % (node.name, node.op.op_name, reason, known)) from None
            if result is None:
                continue
            new_ins, new_outs = result
            for i, ((src, idx), value) in enumerate(zip(node.inputs, new_ins)):
                where = ("Error in operator %s (%s): %s inconsistent for input '%s' (%s)"
                         % (node.name, node.op.op_name, what, _describe_input(node, i), src.output_name(idx)))
                changed |= store((id(src), idx), value, where)
            for i, value in enumerate(list(new_outs)[: node.num_outputs]):
                where = ("Error in operator %s (%s): %s inconsistent for output %d (%s)"
                         % (node.name, node.op.op_name, what, i, node.output_name(i)))
                changed |= store((id(node), i), value, where)
        if not changed and step > 0:
            break
    return nodes, values


# ---------------------------------------------------------------- shapes
def _declared_shape(node):
    declared = node.attrs.get("__shape__")
    if declared is None:
        return None
    try:
        return from_mxnet(parse_shape(declared))
    except ValueError:
        raise MXNetError("Variable '%s': invalid shape attribute __shape__=%s: expected a tuple of ints"
                         % (node.name, declared)) from None


def _shape_rule(node, ins, outs):
    op = node.op
    if getattr(op.infer_shape, "partial_shapes", False):
        return op.infer_shape(*ins, out_shapes=tuple(outs))
    # A rule written for complete shapes sees only those; what it returns is merged with the partial knowledge.
    return op.infer_shape(*[s if is_complete(s) else None for s in ins])


def _merge_shape(old, new):
    if new is not None:     # rules say an unknown size with None; a 0 they compute is a zero-size dimension
        new = tuple(None if d is None or int(d) < 0 else int(d) for d in new)
    try:
        return merge(old, new)
    except ShapeMismatch:
        raise _Contradiction() from None


def _array_shape(shape):
    """A shape of an actual array: () is a scalar; a 0 dimension stays unknown (zero-size arrays are not run),
    except under NumPy shape semantics (mx.np_shape), where it is a zero-size dimension."""
    if shape is None:
        return None
    if is_np_shape():
        return tuple(None if d is None or int(d) < 0 else int(d) for d in shape)
    return tuple(None if d is None or int(d) <= 0 else int(d) for d in shape)


def infer_graph_shapes(heads, known, partial=False, mxnet_notation=False):
    """(nodes, {(id(node), index): shape}) for the entries reachable from `heads`. `known` maps input names to
    shapes: of arrays (bind, lowering: () is a scalar), or with `mxnet_notation` as MXNet 1.x's infer_shape reads
    them (0 = unknown dimension, () = unknown shape). A given shape that is complete replaces the variable's
    `__shape__` attribute; an incomplete one is replaced by the attribute, as in MXNet. With `partial=False` only
    complete shapes are returned (tuples of ints); with `partial=True` every entry something is known about,
    unknown dimensions as None.

    onnxsym has 0-d arrays (imported ONNX models), MXNet 1.x does not: in MXNet notation a shape given as () that
    nothing else decides (no `__shape__` but (), no op rule) is taken as a scalar in a second round, so that MXNet's
    answers stay the same and check_numeric_gradient-style calls with array shapes still work."""
    convert = from_mxnet if mxnet_notation else _array_shape
    scalars = set()

    def seed(node):
        given = convert(known.get(node.name))
        if is_complete(given):
            return given
        declared = _declared_shape(node)
        if declared is not None:
            return declared
        return () if node.name in scalars else given

    nodes, values = _run_rules(heads, seed, _shape_rule, _merge_shape, is_complete, fmt, "Shape")
    if mxnet_notation:
        scalars.update(node.name for node in nodes if node.is_variable and (id(node), 0) not in values
                       and known.get(node.name) is not None and len(known[node.name]) == 0
                       and _declared_shape(node) is None)
        if scalars:
            nodes, values = _run_rules(heads, seed, _shape_rule, _merge_shape, is_complete, fmt, "Shape")
    if not partial:
        values = {key: value for key, value in values.items() if is_complete(value)}
    return nodes, values


# ---------------------------------------------------------------- dtypes
def _fmt_type(value):
    return "?" if value is None else str(np.dtype(value).name)


def infer_graph_types(heads, known):
    """{(id(node), index): numpy dtype}; `known` maps input names to dtypes."""
    def seed(node):
        dtype = known.get(node.name)
        if dtype is None and "__dtype__" in node.attrs:
            dtype = normalize_dtype(int(node.attrs["__dtype__"]))
        return None if dtype is None else normalize_dtype(dtype)

    def merge_type(old, new):
        if new is None:
            return old
        new = normalize_dtype(new)
        if old is not None and old != new:
            raise _Contradiction()
        return new

    return _run_rules(heads, seed, lambda node, ins, outs: node.op.infer_type(*ins), merge_type,
                      lambda value: value is not None, _fmt_type, "Type")


def check_float_inputs(heads, known):
    """MXNetError naming the node and input where an op that computes in floating point only (OpDef.float_only)
    gets another dtype: MXNet's kernels refuse it when they run ("Unsupported type 4", "This operation only
    support floating point types"), ONNX Runtime has no kernel for it. `known`: input name -> dtype. As in MXNet,
    the first input's dtype decides (softmax's `length` is an integer input)."""
    nodes, values = infer_graph_types(heads, known)
    for node in nodes:
        if node.is_variable or not getattr(node.op, "float_only", False) or not node.inputs:
            continue
        for i, (src, idx) in enumerate(node.inputs[:1]):
            dtype = values.get((id(src), idx))
            if dtype is not None and np.dtype(dtype).kind != "f":
                raise MXNetError("Error in operator %s (%s): input '%s' (%s) is %s, but %s computes in float16, "
                                 "float32 or float64 only; cast it first (astype('float32'))"
                                 % (node.name, node.op.op_name, _describe_input(node, i), src.output_name(idx),
                                    np.dtype(dtype).name, node.op.op_name))
