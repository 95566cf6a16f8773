"""Shape and dtype inference over a graph: a fixpoint of the per-op rules, in both directions.

Op rules fill unknown input shapes from known ones (FullyConnected's weight from data), so parameter shapes are
deduced from data shapes as in MXNet. A rule that contradicts a known shape raises MXNetError naming the node,
the operator, the input and both shapes.
"""
import numpy as np

from ..base import MXNetError
from .node import topo_order

__all__ = ["infer_graph_shapes", "infer_graph_types", "known_shape"]

_MAX_PASSES = 8


def known_shape(shape):
    """A shape is known when it is a tuple with no unknown (0 or None) dimension."""
    return shape is not None and all(d is not None and d > 0 for d in shape)


def _normalize(shape):
    if shape is None:
        return None
    shape = tuple(int(d) if d is not None else None for d in shape)
    return shape if known_shape(shape) or shape == () else None


def _describe_input(node, index):
    names = node.op.input_names()
    return names[index] if index < len(names) else "input %d" % index


def _run_rules(heads, seeds, rule, merge, what):
    """Generic fixpoint: `rule(node, in_values)` -> (in_values, out_values) or None."""
    nodes = topo_order(heads)
    values = {}
    for node in nodes:
        if node.is_variable and seeds(node) is not None:
            values[(id(node), 0)] = seeds(node)
    for _ in range(_MAX_PASSES):
        changed = False
        for node in nodes:
            if node.is_variable:
                continue
            ins = [values.get((id(src), idx)) for src, idx in node.inputs]
            outs = [values.get((id(node), i)) for i in range(node.num_outputs)]
            if all(v is not None for v in ins) and all(v is not None for v in outs):
                continue
            try:
                result = rule(node, ins)
            except MXNetError as err:
                known = ", ".join("%s=%s %s" % (_describe_input(node, i), src.output_name(idx),
                                                "?" if v is None else _fmt(v))
                                  for i, ((src, idx), v) in enumerate(zip(node.inputs, ins)))
                raise MXNetError("Error in operator %s (%s): %s [inputs: %s]"
                                 % (node.name, node.op.op_name, err, known)) from None
            if result is None:
                continue
            new_ins, new_outs = result
            for i, ((src, idx), value) in enumerate(zip(node.inputs, new_ins)):
                old = values.get((id(src), idx))
                value = merge(value)
                if value is None:
                    continue
                if old is None:
                    values[(id(src), idx)] = value
                    changed = True
                elif old != value:
                    raise MXNetError(
                        "%s inconsistent in operator %s (%s), input '%s' (from %s): expected %s, got %s"
                        % (what, node.name, node.op.op_name, _describe_input(node, i), src.output_name(idx),
                           _fmt(value), _fmt(old)))
            for i, value in enumerate(new_outs[: node.num_outputs]):
                value = merge(value)
                if value is None:
                    continue
                old = values.get((id(node), i))
                if old is None:
                    values[(id(node), i)] = value
                    changed = True
                elif old != value:
                    raise MXNetError("%s inconsistent in operator %s (%s), output %d: %s vs %s"
                                     % (what, node.name, node.op.op_name, i, _fmt(value), _fmt(old)))
        if not changed:
            break
    return nodes, values


def _fmt(value):
    return str(tuple(value)) if isinstance(value, tuple) else str(np.dtype(value).name)


def infer_graph_shapes(heads, known):
    """{(id(node), index): shape} for every entry that can be decided; `known` maps input names to shapes."""

    def seed(node):
        shape = _normalize(known.get(node.name))
        declared = node.attrs.get("__shape__")
        if declared is not None:
            from ..ops.params import parse_shape
            declared_shape = _normalize(parse_shape(declared))
            if shape is not None and declared_shape is not None and shape != declared_shape:
                raise MXNetError("Shape inconsistent for variable '%s': declared %s, given %s"
                                 % (node.name, declared_shape, shape))
            shape = shape or declared_shape
        return shape

    return _run_rules(heads, seed, lambda node, ins: node.op.infer_shape(*ins), _normalize, "Shape")


def infer_graph_types(heads, known):
    """{(id(node), index): numpy dtype}; `known` maps input names to dtypes."""
    from ..base import normalize_dtype

    def seed(node):
        dtype = known.get(node.name)
        if dtype is None and "__dtype__" in node.attrs:
            dtype = normalize_dtype(int(node.attrs["__dtype__"]))
        return None if dtype is None else normalize_dtype(dtype)

    def merge(value):
        return None if value is None else normalize_dtype(value)

    return _run_rules(heads, seed, lambda node, ins: node.op.infer_type(*ins), merge, "Type")
