"""Nodes without a VJP rule differentiated through their ONNX function bodies.

Many ONNX operators are defined by a function of simpler operators (Attention, RMSNormalization,
RotaryEmbedding, GroupNormalization, CenterCropPad, AffineGrid, Swish, ...; some bodies depend on the node's
attributes and input types: onnx builds them for the node). Before differentiating, a node on the gradient path
that has no rule of its own is replaced in the forward graph by its body, so the gradient is the chain rule through
standard nodes that have rules; the forward values are the same by the operator's definition. Bodies are expanded
again while they hold such nodes (a body calling another function operator).
"""
import onnx
from onnx import defs, helper

from ..base import MXNetError
from . import vjp

__all__ = ["expand_functions"]

_MAX_DEPTH = 4


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
    """`body`'s nodes computing `node`'s outputs from its inputs; body-internal values named under `prefix`."""
    names = dict(zip(body.input, list(node.input) + [""] * len(body.input)))
    names.update((formal, actual) for formal, actual in zip(body.output, node.output) if actual)
    attributes = {a.name: a for a in filled.attribute}

    def rename(name):
        if not name:
            return name
        if name not in names:
            names[name] = prefix + name
        return names[name]

    nodes = []
    for inner in body.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in inner.attribute):
            return None     # subgraph bodies would need their outer names renamed too: keep the node
        out = onnx.NodeProto()
        out.CopyFrom(inner)
        del out.input[:], out.output[:], out.attribute[:]
        out.input.extend(rename(name) for name in inner.input)
        out.output.extend(rename(name) for name in inner.output)
        out.name = prefix + (inner.name or "%s%d" % (inner.op_type, len(nodes)))
        for attribute in inner.attribute:
            if attribute.ref_attr_name:
                if attribute.ref_attr_name not in attributes:
                    continue
                copied = onnx.AttributeProto()
                copied.CopyFrom(attributes[attribute.ref_attr_name])
                copied.name = attribute.name
                out.attribute.append(copied)
            else:
                out.attribute.append(attribute)
        nodes.append(out)
    return nodes


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


def _fold(model):
    """`model` with the body nodes that compute from constants and static shapes alone (axes, shapes, ranks:
    ONNX shape inference does not see through Range or Size) replaced by Constant nodes holding their values."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator
    import numpy as np
    for _ in range(_MAX_DEPTH):
        known = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        shapes = {}
        for value in list(model.graph.input) + list(model.graph.value_info):
            dims = value.type.tensor_type.shape.dim
            if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                shapes[value.name] = tuple(d.dim_value for d in dims)
        changed, nodes = False, []
        for node in model.graph.node:
            values = None
            inputs = [name for name in node.input if name]
            if node.domain or node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial"):
                pass
            elif node.op_type in ("Shape", "Size") and inputs and inputs[0] in shapes:
                values = ReferenceEvaluator(node).run(None, {inputs[0]: np.empty(shapes[inputs[0]], np.int8)})
            elif all(name in known for name in inputs) and not any(
                    a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                values = ReferenceEvaluator(node).run(None, {name: known[name] for name in inputs})
            if values is None or any(np.asarray(v).size > 4096 for v in values):
                nodes.append(node)
                continue
            for name, value in zip(node.output, values):
                known[name] = np.asarray(value)
                if node.op_type != "Constant":
                    changed = True
                    nodes.append(helper.make_node("Constant", [], [name], name=node.name + "/folded" if node.name else "",
                                                  value=numpy_helper.from_array(np.asarray(value), name)))
            if node.op_type == "Constant":
                nodes.append(node)
        if not changed:
            return model
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - folded as far as shapes are known
            return model
    return model


def expand_functions(model, needs_gradient):
    """`model` (or a copy with the function operators expanded) for which `needs_gradient(node)` says whether a
    node's gradient will be asked for."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    for depth in range(_MAX_DEPTH):
        pending = [i for i, node in enumerate(model.graph.node)
                   if vjp.rule_for(node) is None and not node.domain and needs_gradient(node)]
        if not pending:
            return model
        types = _types(model)
        replaced = {}
        for index in pending:
            node = model.graph.node[index]
            found = _body(node, opset, types)
            if found is None:
                continue
            prefix = "%s/%s/" % (node.name or "%s%d" % (node.op_type, index), "expanded")
            nodes = _inline(node, *found, prefix)
            if nodes is not None:
                replaced[index] = nodes
        if not replaced:
            return model
        if depth == 0:
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            model = copy
        nodes = []
        for index, node in enumerate(model.graph.node):
            nodes.extend(replaced.get(index, [node]))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model = _fold(model)
    raise MXNetError("function operators nested deeper than %d levels cannot be differentiated" % _MAX_DEPTH)
