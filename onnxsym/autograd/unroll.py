"""Scan and Loop nodes unrolled into their bodies' nodes, one copy per iteration, for differentiating.

A Scan whose sequence length the shapes tell, and a Loop with a constant trip count whose condition cannot stop it
early (none given, or a constant true passed through unchanged), run their body a known number of times: the
unrolled graph computes the same values with standard nodes the VJP rules differentiate. Each iteration's values
are named under `<node>/iteration<t>/`; names the body reads from outside stay as they are.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..base import MXNetError
from ._renamed import renamed_nodes

__all__ = ["unrolled"]

# Longer sequences would make graphs too large to build and run; such models train with the fused RNN ops.
MAX_ITERATIONS = 4096


def _attribute(node, name, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _local_names(graph):
    """Every name a (sub)graph defines, at any depth."""
    names = set()
    stack = [graph]
    while stack:
        current = stack.pop()
        names.update(v.name for v in current.input)
        names.update(t.name for t in current.initializer)
        for node in current.node:
            names.update(o for o in node.output if o)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    stack.append(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attribute.graphs)
    return names


def _copy(body, prefix, bound):
    """The body's nodes (and initializers as Constant nodes) for one iteration: its inputs read `bound`
    ({body input: value}), its other local names get `prefix`."""
    local = _local_names(body)
    names = dict(bound)

    def rename(name):
        if not name or name not in local:
            return name
        if name not in names:
            names[name] = prefix + name
        return names[name]

    nodes = [helper.make_node("Constant", [], [rename(t.name)], value=t) for t in body.initializer]
    nodes += renamed_nodes(body.node, rename, prefix)
    return nodes, [rename(o.name) for o in body.output]


def _stacked(nodes, parts, axis, output, prefix):
    """`parts` (one value per iteration, in order) stacked along a new `axis` into `output`."""
    expanded = []
    axes = _int64s(nodes, prefix + "axis", [axis])
    for t, part in enumerate(parts):
        name = "%sstack%d" % (prefix, t)
        nodes.append(helper.make_node("Unsqueeze", [part, axes], [name]))
        expanded.append(name)
    nodes.append(helper.make_node("Concat", expanded, [output], axis=axis))


def _int64s(nodes, name, values):
    nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(values, np.int64),
                                                                                         name)))
    return name


def _scan(node, shapes, prefix):
    body = _attribute(node, "body")
    scans = _attribute(node, "num_scan_inputs")
    states = len(node.input) - scans
    if states < 0 or len(body.input) != len(node.input):
        return None
    inputs = list(node.input)
    in_axes = list(_attribute(node, "scan_input_axes", [0] * scans))
    in_reverse = list(_attribute(node, "scan_input_directions", [0] * scans))
    outputs = len(body.output) - states
    out_axes = list(_attribute(node, "scan_output_axes", [0] * outputs))
    out_reverse = list(_attribute(node, "scan_output_directions", [0] * outputs))
    first = inputs[states]
    if first not in shapes:
        return None
    shape = shapes[first]
    length = shape[in_axes[0] % len(shape)]
    if length > MAX_ITERATIONS or length == 0:
        return None
    nodes, current, collected = [], inputs[:states], [[] for _ in range(outputs)]
    for t in range(length):
        step = "%siteration%d/" % (prefix, t)
        bound = dict(zip((v.name for v in body.input[:states]), current))
        for i in range(scans):
            source = inputs[states + i]
            rank = len(shapes.get(source, ())) or 1
            index = length - 1 - t if in_reverse[i] else t
            sliced = "%sscan_input%d" % (step, i)
            nodes.append(helper.make_node("Gather", [source, _int64s(nodes, step + "index%d" % i, index)], [sliced],
                                          axis=in_axes[i] % rank))
            bound[body.input[states + i].name] = sliced
        copied, results = _copy(body, step, bound)
        nodes += copied
        current = results[:states]
        for k in range(outputs):
            collected[k].append(results[states + k])
    for k, name in enumerate(node.output[:states]):
        if name:
            nodes.append(helper.make_node("Identity", [current[k]], [name]))
    for k, name in enumerate(node.output[states:]):
        if not name:
            continue
        parts = collected[k][::-1] if out_reverse[k] else collected[k]
        rank = None if parts[0] not in shapes else len(shapes[parts[0]])
        axis = out_axes[k]
        if axis < 0:
            if rank is None:
                return None
            axis += rank + 1
        _stacked(nodes, parts, axis, name, "%sout%d/" % (prefix, k))
    return nodes


def _loop(node, known, prefix):
    body = _attribute(node, "body")
    trip = known.get(node.input[0]) if node.input[0] else None
    cond = node.input[1] if len(node.input) > 1 else ""
    if trip is None or (cond and not (cond in known and bool(known[cond]))):
        return None
    body_cond_in, body_cond_out = body.input[1].name, body.output[0].name
    passes_through = body_cond_out == body_cond_in or any(
        n.op_type == "Identity" and n.output[0] == body_cond_out and n.input[0] == body_cond_in for n in body.node)
    constant_true = any(n.op_type == "Constant" and n.output[0] == body_cond_out and
                        bool(numpy_helper.to_array(n.attribute[0].t)) for n in body.node
                        if n.attribute and n.attribute[0].name == "value")
    if not (passes_through or constant_true):
        return None
    length = int(trip)
    if length > MAX_ITERATIONS or length <= 0:
        return None
    carried = list(node.input[2:])
    outputs = len(body.output) - 1 - len(carried)
    nodes, current, collected = [], carried, [[] for _ in range(outputs)]
    true_name = _bool_true(nodes, prefix)
    for t in range(length):
        step = "%siteration%d/" % (prefix, t)
        bound = {body.input[0].name: _int64s(nodes, step + "i", t), body.input[1].name: true_name}
        bound.update(zip((v.name for v in body.input[2:]), current))
        copied, results = _copy(body, step, bound)
        nodes += copied
        current = results[1:1 + len(carried)]
        for k in range(outputs):
            collected[k].append(results[1 + len(carried) + k])
    for k, name in enumerate(node.output[:len(carried)]):
        if name:
            nodes.append(helper.make_node("Identity", [current[k]], [name]))
    for k, name in enumerate(node.output[len(carried):]):
        if name:
            _stacked(nodes, collected[k], 0, name, "%sout%d/" % (prefix, k))
    return nodes


def _bool_true(nodes, prefix):
    name = prefix + "true"
    nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(True), name)))
    return name


def unrolled(node, shapes, known, prefix):
    """The nodes of a Scan or Loop `node` unrolled (`shapes`: static shapes by value name; `known`: constant values
    by name), or None where the number of iterations is not known before running."""
    if node.op_type == "Scan":
        if _attribute(node, "num_scan_inputs") is None:
            raise MXNetError("Scan node %s has no num_scan_inputs" % node.name)
        return _scan(node, shapes, prefix)
    if node.op_type == "Loop":
        return _loop(node, known, prefix)
    return None
