"""Training graphs, before the gradient build: rewrites around onnxruntime-training 1.19.2's kernels that are
missing or wrong for a dtype. One place for them, each a pass over the lowered model (in place).

- float16: the gradient kernels are incomplete (a broadcast Add's gradient fails with "Tensor type mismatch" in
  ReduceSum) and some give wrong numbers. MXNet computes float16 ops with float32 accumulation, so holding every
  float16 value in float32 gives MXNet's numbers within float16 precision: float16 graph inputs are cast to
  float32 on entry, float16 outputs (and so the gradients of float16 inputs) are cast back on exit, and a Cast to
  float16 inside the graph keeps its rounding (Cast to float16, then back to float32).
- float64: no gradient kernels for Concat (SplitTraining), Relu, LeakyRelu, Softmax and LogSoftmax: they become
  equivalent ops that have them (`_FLOAT64_REWRITES`).
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from .builder import ATEN_DOMAIN, PYTHON_DOMAIN, STOP_GRADIENT_OPERATOR, aten_python_ops

__all__ = ["float16_as_float32", "float64_without_missing_kernels", "float64_unfused", "has_elem_type"]

_HALF, _FLOAT = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


def _as_float(tensor):
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def has_elem_type(model, elem_type):
    """Whether any graph input, output, annotated value, initializer or Cast target of `model` has `elem_type`."""
    graph = model.graph
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    return any(v.type.tensor_type.elem_type == elem_type for v in values) or \
        any(t.data_type == elem_type for t in graph.initializer) or \
        any(a.name == "to" and a.i == elem_type for n in graph.node if n.op_type == "Cast" for a in n.attribute)


def float16_as_float32(model, keep_outputs=()):
    """In place: every float16 value of `model` becomes float32 inside the graph; graph inputs and outputs keep
    their float16 types through Casts, except the outputs named in `keep_outputs` (the training objective), which
    become float32. Graphs with Python ops (their kernels are typed) are left as they are."""
    graph = model.graph
    if not has_elem_type(model, _HALF) or aten_python_ops(model) or any(n.domain == PYTHON_DOMAIN for n in graph.node):
        return model
    renames = {}
    entry = []
    for value in graph.input:
        if value.type.tensor_type.elem_type == _HALF:
            renames[value.name] = value.name + "/as_float"
            entry.append(helper.make_node("Cast", [value.name], [renames[value.name]], to=_FLOAT,
                                          name=value.name + "/as_float"))
    exits, half_values = [], []
    for value in graph.output:
        if value.type.tensor_type.elem_type != _HALF:
            continue
        if value.name in keep_outputs:
            value.type.tensor_type.elem_type = _FLOAT
            continue
        inner = value.name + "/float"
        renames[value.name] = inner
        exits.append(helper.make_node("Cast", [inner], [value.name], to=_HALF, name=value.name + "/as_half"))
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == _HALF:
            graph.initializer[index].CopyFrom(_as_float(tensor))
    nodes = list(entry)
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == _HALF:
                attribute.t.CopyFrom(_as_float(attribute.t))
            elif attribute.name in ("dtype", "to") and attribute.type == onnx.AttributeProto.INT \
                    and attribute.i == _HALF and node.op_type != "Cast":
                attribute.i = _FLOAT
        cast_to_half = node.op_type == "Cast" and any(a.name == "to" and a.i == _HALF for a in node.attribute)
        nodes.append(node)
        if cast_to_half:        # keep the rounding to float16, then go on in float32
            rounded = node.output[0] + "/half"
            half_values.append(rounded)
            nodes.append(helper.make_node("Cast", [rounded], [node.output[0]], to=_FLOAT,
                                          name=node.name + "/back_to_float"))
            node.output[0] = rounded
    nodes.extend(exits)
    del graph.node[:]
    graph.node.extend(nodes)
    for value in graph.value_info:
        value.name = renames.get(value.name, value.name)
        if value.type.tensor_type.elem_type == _HALF:
            value.type.tensor_type.elem_type = _FLOAT
    graph.value_info.extend(helper.make_tensor_value_info(name, _HALF, None) for name in half_values)
    return model


def float64_without_missing_kernels(model):
    """Each float64 node whose kernel (or gradient kernel) onnxruntime-training 1.19.2 lacks becomes equivalent
    ops that have float64 kernels (`_FLOAT64_REWRITES`). Concats whose input shapes are not all static stay."""
    graph, double = model.graph, onnx.TensorProto.DOUBLE
    if not has_elem_type(model, double) or not any(n.op_type in _FLOAT64_REWRITES and n.domain in ("", "ai.onnx") for n in graph.node):
        return model        # (shape inference below costs a full pass over the graph)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    known = {t.name: (t.data_type, list(t.dims)) for t in inferred.initializer}
    for value in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        tensor = value.type.tensor_type
        static = all(d.HasField("dim_value") for d in tensor.shape.dim)
        known[value.name] = (tensor.elem_type, [d.dim_value for d in tensor.shape.dim] if static else None)
    nodes = []
    for node in graph.node:
        rewrite = _FLOAT64_REWRITES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        infos = [known.get(name) for name in node.input]
        replaced = rewrite(node, infos) if rewrite and infos and infos[0] and infos[0][0] == double else None
        nodes.extend(replaced if replaced is not None else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    stopped = [n.output[0] for n in nodes if n.op_type == "ATen" and n.name.endswith("/float64_stop")]
    graph.value_info.extend(helper.make_tensor_value_info(name, double, None) for name in stopped)
    if stopped and not any(o.domain == ATEN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ATEN_DOMAIN, 1))
    return model


def _constant(name, value):
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.asarray(value)))


def _attribute(node, name, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _concat_as_pads(node, infos):
    """Concat as its inputs zero-padded to the full size and added (Pad's gradient is a Slice; Sum has none)."""
    if any(i is None or i[1] is None for i in infos):
        return None
    rank = len(infos[0][1])
    axis = _attribute(node, "axis", 0) % rank
    sizes = [shape[axis] for _, shape in infos]
    total, start, parts, nodes = sum(sizes), 0, [], []
    for k, (name, size) in enumerate(zip(node.input, sizes)):
        pads = [0] * (2 * rank)
        pads[axis], pads[rank + axis] = start, total - start - size
        start += size
        prefix = "%s/as_pad%d" % (node.name, k)
        nodes.append(_constant(prefix + "/pads", np.array(pads, np.int64)))
        nodes.append(helper.make_node("Pad", [name, prefix + "/pads"], [prefix], name=prefix))
        parts.append(prefix)
    for k in range(1, len(parts)):
        out = node.output[0] if k == len(parts) - 1 else "%s/as_sum%d" % (node.name, k)
        nodes.append(helper.make_node("Add", [parts[0], parts[k]], [out], name="%s/as_add%d" % (node.name, k)))
        parts[0] = out
    if len(parts) == 1:
        nodes.append(helper.make_node("Identity", [parts[0]], [node.output[0]], name=node.name))
    return nodes


def _leaky_relu_as_mul(node, infos):
    """LeakyRelu(x) (Relu: alpha 0) as x * (alpha + (1 - alpha) * Cast(x > 0)): the same derivative, alpha at 0."""
    x, prefix = node.input[0], node.name or node.output[0]
    alpha = _attribute(node, "alpha", 0.01) if node.op_type == "LeakyRelu" else 0.0
    return [_constant(prefix + "/zero", np.zeros((), np.float64)),
            _constant(prefix + "/alpha", np.asarray(alpha, np.float64)),
            _constant(prefix + "/rest", np.asarray(1.0 - alpha, np.float64)),
            helper.make_node("Greater", [x, prefix + "/zero"], [prefix + "/positive"], name=prefix + "/positive"),
            helper.make_node("Cast", [prefix + "/positive"], [prefix + "/mask"], to=onnx.TensorProto.DOUBLE,
                             name=prefix + "/mask"),
            helper.make_node("Mul", [prefix + "/mask", prefix + "/rest"], [prefix + "/scaled"], name=prefix + "/scaled"),
            helper.make_node("Add", [prefix + "/scaled", prefix + "/alpha"], [prefix + "/slope"],
                             name=prefix + "/slope"),
            helper.make_node("Mul", [x, prefix + "/slope"], [node.output[0]], name=prefix)]


def _softmax_as_exp(node, infos):
    """(Log)Softmax over one axis from Exp, ReduceSum and Log. The shift by the maximum is a constant for the
    gradient (its exact derivative cancels), so it goes through a stop-gradient (ReduceMax has no gradient)."""
    x, prefix = node.input[0], node.name or node.output[0]
    axis = _attribute(node, "axis", -1)
    axes = prefix + "/axes"
    nodes = [_constant(axes, np.array([axis], np.int64)),
             helper.make_node("ReduceMax", [x], [prefix + "/max"], axes=[axis], keepdims=1, name=prefix + "/max"),
             helper.make_node("ATen", [prefix + "/max"], [prefix + "/shift"], domain=ATEN_DOMAIN,
                              operator=STOP_GRADIENT_OPERATOR, name=prefix + "/float64_stop"),
             helper.make_node("Sub", [x, prefix + "/shift"], [prefix + "/shifted"], name=prefix + "/shifted"),
             helper.make_node("Exp", [prefix + "/shifted"], [prefix + "/exp"], name=prefix + "/exp"),
             helper.make_node("ReduceSum", [prefix + "/exp", axes], [prefix + "/sum"], keepdims=1,
                              name=prefix + "/sum")]
    if node.op_type == "Softmax":
        return nodes + [helper.make_node("Div", [prefix + "/exp", prefix + "/sum"], [node.output[0]], name=prefix)]
    return nodes + [helper.make_node("Log", [prefix + "/sum"], [prefix + "/log_sum"], name=prefix + "/log_sum"),
                    helper.make_node("Sub", [prefix + "/shifted", prefix + "/log_sum"], [node.output[0]],
                                     name=prefix)]


# ONNX op -> rewrite(node, [(elem type, static shape or None) of each input]) -> nodes, or None to keep the node
_FLOAT64_REWRITES = {"Concat": _concat_as_pads, "Relu": _leaky_relu_as_mul, "LeakyRelu": _leaky_relu_as_mul,
                     "Softmax": _softmax_as_exp, "LogSoftmax": _softmax_as_exp}


def float64_unfused(model):
    """After the gradient build: OrtModuleGraphBuilder fuses x * sigmoid(a * x) into com.microsoft QuickGelu (and
    its gradient QuickGeluGrad), which have float32 kernels only, also in float64 graphs; they go back to standard
    ops (sessions of float64 graphs run without that fusion, onnxsym/runtime/ort.py). In place."""
    graph = model.graph
    if not any(n.op_type in ("QuickGelu", "QuickGeluGrad") for n in graph.node) or \
            not has_elem_type(model, onnx.TensorProto.DOUBLE):
        return model
    nodes = []
    for node in graph.node:
        if node.domain != "com.microsoft" or node.op_type not in ("QuickGelu", "QuickGeluGrad"):
            nodes.append(node)
            continue
        grad = node.op_type == "QuickGeluGrad"
        x = node.input[1] if grad else node.input[0]
        prefix = node.name or node.output[0]
        alpha = _attribute(node, "alpha", 1.702)
        nodes += [_constant(prefix + "/alpha", np.asarray(alpha, np.float64)),
                  helper.make_node("Mul", [x, prefix + "/alpha"], [prefix + "/ax"], name=prefix + "/ax"),
                  helper.make_node("Sigmoid", [prefix + "/ax"], [prefix + "/s"], name=prefix + "/s")]
        if not grad:        # y = x * s
            nodes.append(helper.make_node("Mul", [x, prefix + "/s"], [node.output[0]], name=prefix))
            continue
        # dx = dy * (s + a * x * s * (1 - s))
        nodes += [_constant(prefix + "/one", np.ones((), np.float64)),
                  helper.make_node("Sub", [prefix + "/one", prefix + "/s"], [prefix + "/1-s"], name=prefix + "/1-s"),
                  helper.make_node("Mul", [prefix + "/s", prefix + "/1-s"], [prefix + "/ds"], name=prefix + "/ds"),
                  helper.make_node("Mul", [prefix + "/ax", prefix + "/ds"], [prefix + "/axds"],
                                   name=prefix + "/axds"),
                  helper.make_node("Add", [prefix + "/s", prefix + "/axds"], [prefix + "/dydx"],
                                   name=prefix + "/dydx"),
                  helper.make_node("Mul", [node.input[0], prefix + "/dydx"], [node.output[0]], name=prefix)]
    del graph.node[:]
    graph.node.extend(nodes)
    return model
