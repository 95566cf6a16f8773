"""Nodes without a VJP rule differentiated through their ONNX function bodies.

Many ONNX operators are defined by a function of simpler operators (Attention, RMSNormalization,
RotaryEmbedding, GroupNormalization, CenterCropPad, AffineGrid, Swish, ...; some bodies depend on the node's
attributes and input types: onnx builds them for the node). Before differentiating, a node on the gradient path
that has no rule of its own is replaced in the forward graph by its body, so the gradient is the chain rule through
standard nodes that have rules; the forward values are the same by the operator's definition. Bodies are expanded
again while they hold such nodes (a body calling another function operator).
"""
import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from ..base import MXNetError
from . import vjp
from ._renamed import renamed_nodes
from .unroll import unrolled

__all__ = ["expand_functions", "constant_value"]

_MAX_DEPTH = 8
_FOLD_PASSES = 32
_FOLD_SIZE = 4096     # larger results stay computed in the graph


def _schema(node, opset):
    try:
        return defs.get_schema(node.op_type, opset, node.domain or "")
    except Exception:  # noqa: BLE001 - onnx's SchemaError: not a standard operator
        return None


def _body(node, opset, types):
    """The FunctionProto defining `node` at `opset` (input `types`: {name: TypeProto}), or None."""
    schema = _schema(node, opset)
    if schema is None:
        return None
    filled = onnx.NodeProto()
    filled.CopyFrom(node)
    given = {a.name for a in node.attribute}
    for name, attribute in schema.attributes.items():
        if name not in given and attribute.default_value.name:
            filled.attribute.append(attribute.default_value)
    proto = None
    versions = [v for v in schema.function_opset_versions if v <= opset]
    if versions:
        proto = schema.get_function_with_opset_version(max(versions))
    else:
        versions = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
        if versions:
            missing = onnx.TypeProto()
            proto = schema.get_context_dependent_function_with_opset_version(
                max(versions), filled.SerializeToString(),
                [types.get(name, missing).SerializeToString() for name in node.input])
    if not proto:
        return None
    return onnx.FunctionProto.FromString(proto), filled


def _inline(node, body, filled, prefix):
    """`body`'s nodes computing `node`'s outputs from its inputs; body-internal values named under `prefix` (in
    the body's subgraphs too: their outer references and their own names, renamed the same way)."""
    names = dict(zip(body.input, list(node.input) + [""] * len(body.input)))
    names.update((formal, actual) for formal, actual in zip(body.output, node.output) if actual)
    attributes = {a.name: a for a in filled.attribute}

    def rename(name):
        if not name:
            return name
        if name not in names:
            names[name] = prefix + name
        return names[name]

    return renamed_nodes(body.node, rename, prefix, attributes)


def _types(model):
    """{value name: TypeProto} the model declares or ONNX shape inference finds."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - types of the declared values only
        inferred = model
    graph = inferred.graph
    types = {v.name: v.type for v in list(graph.input) + list(graph.value_info) + list(graph.output)}
    for tensor in graph.initializer:
        types[tensor.name] = helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
    return types


def constant_value(node):
    """The value of a Constant node in any of its forms (value, value_int(s), value_float(s)), or None (strings,
    sparse values)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name in ("value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(attribute), np.int64)
        if attribute.name in ("value_float", "value_floats"):
            return np.asarray(helper.get_attribute_value(attribute), np.float32)
    return None


def _static_shapes(graph):
    shapes = {}
    for value in list(graph.input) + list(graph.value_info):
        kind = value.type.tensor_type
        if kind.HasField("shape") and all(d.HasField("dim_value") for d in kind.shape.dim):
            shapes[value.name] = tuple(d.dim_value for d in kind.shape.dim)
    return shapes


def _folded(node, known, shapes):
    """The nodes replacing `node` when its result is known before running (Constant nodes holding its values;
    an If on a known condition: the taken branch's nodes), or None."""
    from onnx.reference import ReferenceEvaluator  # lazy: only function bodies need it
    inputs = [name for name in node.input if name]
    if node.domain or node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial", "Constant"):
        return None
    if node.op_type == "If" and node.input[0] in known:
        branch = next(a.g for a in node.attribute if a.name == ("then_branch" if known[node.input[0]] else
                                                                   "else_branch"))
        return list(branch.node) + [helper.make_node("Identity", [inner.name], [outer])
                                    for inner, outer in zip(branch.output, node.output)]
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return None
    if node.op_type in ("Shape", "Size") and inputs and inputs[0] in shapes:
        values = ReferenceEvaluator(node).run(None, {inputs[0]: np.empty(shapes[inputs[0]], np.int8)})
    elif all(name in known for name in inputs):
        values = ReferenceEvaluator(node).run(None, {name: known[name] for name in inputs})
    else:
        return None
    if any(np.asarray(v).size > _FOLD_SIZE for v in values):
        return None
    return [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))
            for name, v in zip(node.output, values)]


def _fold(model):
    """`model` with the body nodes that compute from constants and static shapes alone (axes, shapes, ranks,
    branch conditions: ONNX shape inference does not see through Range, Size or If) replaced by what they give,
    pass after pass (each pass's shape inference lets the next fold further)."""
    for _ in range(_FOLD_PASSES):
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - folded as far as shapes are known
            return model
        graph = model.graph
        known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        shapes = _static_shapes(graph)
        changed, nodes = False, []
        for node in graph.node:
            if node.op_type == "Constant" and not node.domain:
                value = constant_value(node)
                if value is not None:
                    known[node.output[0]] = value
                nodes.append(node)
                continue
            replacement = _folded(node, known, shapes)
            if replacement is None:
                nodes.append(node)
                continue
            changed = True
            for new in replacement:
                if new.op_type == "Constant" and not new.domain and constant_value(new) is not None:
                    known[new.output[0]] = constant_value(new)
            nodes.extend(replacement)
        if not changed:
            return model
        del graph.node[:]
        graph.node.extend(nodes)
    return model


def expand_functions(model, active_of):
    """`model`, or a copy with the nodes that need a gradient (an output in `active_of(model)`) but have no rule
    expanded: function operators into their bodies, Scan and Loop unrolled (unroll.py)."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    for depth in range(_MAX_DEPTH):
        active = active_of(model)
        pending = [i for i, node in enumerate(model.graph.node)
                   if vjp.rule_for(node) is None and not node.domain and any(o in active for o in node.output)]
        if not pending:
            return model
        if depth == 0:
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            model = _fold(copy)      # trip counts, conditions and shapes the expansions need, as constants
            continue
        types = _types(model)
        shapes = {name: tuple(d.dim_value for d in t.tensor_type.shape.dim) for name, t in types.items()
                  if t.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in t.tensor_type.shape.dim)}
        known = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        known.update((n.output[0], constant_value(n)) for n in model.graph.node
                     if n.op_type == "Constant" and not n.domain and constant_value(n) is not None)
        replaced = {}
        for index in pending:
            node = model.graph.node[index]
            prefix = (node.name or "%s%d" % (node.op_type, index)) + vjp.registry.FUNCTION_BODY_SCOPE
            if node.op_type in ("Scan", "Loop"):
                nodes = unrolled(node, shapes, known, prefix)
            else:
                found = _body(node, opset, types)
                nodes = None if found is None else _inline(node, *found, prefix)
            if nodes is not None:
                replaced[index] = nodes
        if not replaced:
            return model
        nodes = []
        for index, node in enumerate(model.graph.node):
            nodes.extend(replaced.get(index, [node]))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model = _fold(model)
    raise MXNetError("function operators nested deeper than %d levels cannot be differentiated" % _MAX_DEPTH)
