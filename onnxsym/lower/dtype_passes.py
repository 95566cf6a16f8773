"""Training graphs, before the gradient build: rewrites around onnxruntime-training 1.19.2's kernels that are
missing or wrong for a dtype. One place for them, each a pass over the lowered model (in place).

- float16: the gradient kernels are incomplete (a broadcast Add's gradient fails with "Tensor type mismatch" in
  ReduceSum) and some give wrong numbers. MXNet computes float16 ops with float32 accumulation, so holding every
  float16 value in float32 gives MXNet's numbers within float16 precision: float16 graph inputs are cast to
  float32 on entry, float16 outputs (and so the gradients of float16 inputs) are cast back on exit, and a Cast to
  float16 inside the graph keeps its rounding (Cast to float16, then back to float32).
- float64: no Concat gradient kernel (SplitTraining) and no ReluGrad kernel: Concat becomes zero-padded inputs
  added up (Pad's gradient is a Slice), Relu becomes x * (x > 0) (the same derivative, 0 at 0).
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from .builder import PYTHON_DOMAIN, aten_python_ops

__all__ = ["float16_as_float32", "float64_without_missing_kernels"]

_HALF, _FLOAT = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


def _as_float(tensor):
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _has_half(model):
    graph = model.graph
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    return any(v.type.tensor_type.elem_type == _HALF for v in values) or \
        any(t.data_type == _HALF for t in graph.initializer) or \
        any(a.name == "to" and a.i == _HALF for n in graph.node for a in n.attribute)


def float16_as_float32(model, keep_outputs=()):
    """In place: every float16 value of `model` becomes float32 inside the graph; graph inputs and outputs keep
    their float16 types through Casts, except the outputs named in `keep_outputs` (the training objective), which
    become float32. Graphs with Python ops (their kernels are typed) are left as they are."""
    graph = model.graph
    if not _has_half(model) or aten_python_ops(model) or any(n.domain == PYTHON_DOMAIN for n in graph.node):
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
    """Each float64 Concat becomes its inputs zero-padded to the full size and added (Pad + Add); Concats whose
    input shapes are not all static stay. Each float64 Relu becomes x * Cast(x > 0)."""
    graph, double = model.graph, onnx.TensorProto.DOUBLE
    has_double = any(v.type.tensor_type.elem_type == double
                     for v in list(graph.input) + list(graph.value_info) + list(graph.output)) or \
        any(t.data_type == double for t in graph.initializer) or \
        any(n.op_type == "Cast" and any(a.name == "to" and a.i == double for a in n.attribute) for n in graph.node)
    if not has_double or not any(n.op_type in ("Concat", "Relu") and n.domain in ("", "ai.onnx") for n in graph.node):
        return model        # (shape inference below costs a full pass over the graph)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    known = {t.name: (t.data_type, list(t.dims)) for t in inferred.initializer}
    for value in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        tensor = value.type.tensor_type
        if all(d.HasField("dim_value") for d in tensor.shape.dim):
            known[value.name] = (tensor.elem_type, [d.dim_value for d in tensor.shape.dim])
        else:
            known[value.name] = (tensor.elem_type, None)
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Relu" and node.domain in ("", "ai.onnx") and known.get(node.input[0], (None,))[0] == double:
            nodes.extend(_relu_as_mul(node))
            continue
        infos = [known.get(name) for name in node.input] if node.op_type == "Concat" else [None]
        if node.domain not in ("", "ai.onnx") or any(i is None or i[0] != double or i[1] is None for i in infos):
            nodes.append(node)
            continue
        rank = len(infos[0][1])
        axis = next(a.i for a in node.attribute if a.name == "axis") % rank
        sizes = [shape[axis] for _, shape in infos]
        total, start, parts = sum(sizes), 0, []
        for k, (name, size) in enumerate(zip(node.input, sizes)):
            pads = [0] * (2 * rank)
            pads[axis], pads[rank + axis] = start, total - start - size
            start += size
            prefix = "%s/as_pad%d" % (node.name, k)
            nodes.append(helper.make_node("Constant", [], [prefix + "/pads"], name=prefix + "/pads",
                                          value=numpy_helper.from_array(np.array(pads, np.int64))))
            nodes.append(helper.make_node("Pad", [name, prefix + "/pads"], [prefix], name=prefix))
            parts.append(prefix)
        for k in range(1, len(parts)):      # (Sum has no gradient builder)
            out = node.output[0] if k == len(parts) - 1 else "%s/as_sum%d" % (node.name, k)
            nodes.append(helper.make_node("Add", [parts[0], parts[k]], [out], name="%s/as_add%d" % (node.name, k)))
            parts[0] = out
        if len(parts) == 1:
            nodes.append(helper.make_node("Identity", [parts[0]], [node.output[0]], name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _relu_as_mul(node):
    """Relu(x) as x * Cast(x > 0) (float64): ORT has the float64 kernels of these gradients."""
    x, prefix = node.input[0], node.name or node.output[0]
    return [helper.make_node("Constant", [], [prefix + "/zero"], name=prefix + "/zero",
                             value=numpy_helper.from_array(np.zeros((), np.float64))),
            helper.make_node("Greater", [x, prefix + "/zero"], [prefix + "/positive"], name=prefix + "/positive"),
            helper.make_node("Cast", [prefix + "/positive"], [prefix + "/mask"], to=onnx.TensorProto.DOUBLE,
                             name=prefix + "/mask"),
            helper.make_node("Mul", [x, prefix + "/mask"], [node.output[0]], name=prefix)]
