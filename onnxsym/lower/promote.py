"""Training graphs compute float16 values in float32.

onnxruntime-training 1.19.2's gradient kernels for float16 are incomplete: some are missing (a broadcast Add's
gradient fails with "Tensor type mismatch" in ReduceSum) and some give wrong numbers. MXNet computes float16 ops
with float32 accumulation, so a graph that holds every float16 value in float32 gives MXNet's numbers within
float16 precision: float16 graph inputs are cast to float32 on entry, float16 outputs (and so the gradients of
float16 inputs) are cast back on exit, and a Cast to float16 inside the graph keeps its rounding (Cast to float16
then back to float32).
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from .builder import PYTHON_DOMAIN, aten_python_ops

__all__ = ["float16_as_float32"]

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
