"""Any standard ONNX graph (opsets 13-21) -> Symbol, one `_onnx` op per ONNX node (ops/onnx_node.py).

The model is converted to onnxsym's opset first, shapes and dtypes come from ONNX shape inference (inputs with
dynamic dimensions need `input_shapes`), initializers become parameters (arg_params), and graph inputs become
data variables. The Symbol binds, runs, exports and trains like any other.
"""
import base64
import json

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.lower.builder import OPSET

__all__ = ["graph_to_symbol"]


def _convert_opset(model):
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if version == OPSET:
        return model
    if not 7 <= version <= 21:
        raise MXNetError("ONNX opset %d is not supported (13-21 are)" % version)
    try:
        return version_converter.convert_version(model, OPSET)
    except Exception as err:
        raise MXNetError("cannot convert the model from opset %d to opset %d: %s" % (version, OPSET, err)) from None


def _fix_inputs(model, input_shapes):
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        given = (input_shapes or {}).get(value.name)
        if given is not None:
            if len(given) != len(dims):
                raise MXNetError("input_shapes['%s'] has %d dimensions, the model's input has %d"
                                 % (value.name, len(given), len(dims)))
            for dim, size in zip(dims, given):
                dim.Clear()
                dim.dim_value = int(size)
        elif any(not d.HasField("dim_value") for d in dims):
            raise MXNetError("input '%s' has a dynamic shape %s: import it with input_shapes={'%s': (...)}"
                             % (value.name, [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                                             for d in dims], value.name))


def _value_types(model):
    types = {}
    for value in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim] \
            if tensor.HasField("shape") else None
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else None
        types[value.name] = (shape, dtype)
    for tensor in model.graph.initializer:
        types[tensor.name] = (list(tensor.dims), helper.tensor_dtype_to_np_dtype(tensor.data_type).name)
    return types


def graph_to_symbol(model, input_shapes=None):
    """(sym, arg_params, aux_params) of an ONNX ModelProto."""
    model = _convert_opset(model)
    _fix_inputs(model, input_shapes)
    try:
        model = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as err:
        raise MXNetError("ONNX shape inference failed on the model: %s" % err) from None
    types = _value_types(model)
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    entries = {}
    for value in model.graph.input:
        if value.name not in initializers:
            shape, dtype = types[value.name]
            entries[value.name] = mx.sym.Variable(value.name, shape=tuple(shape), dtype=dtype)
    for name, array in initializers.items():
        entries[name] = mx.sym.Variable(name, shape=array.shape, dtype=array.dtype)
    used_names = set()
    for index, node in enumerate(model.graph.node):
        missing = [i for i in node.input if i and i not in entries]
        if missing:
            raise MXNetError("ONNX node %s (%s) reads %s, which no earlier node or input defines"
                             % (node.name or index, node.op_type, missing))
        out_info = [types.get(o, (None, None)) for o in node.output]
        holder = helper.make_node(node.op_type, [], [])
        holder.attribute.extend(node.attribute)
        name = node.name or "%s%d" % (node.op_type.lower(), index)
        while name in used_names:
            name += "_"
        used_names.add(name)
        sym = mx.sym.create_symbol(
            "_onnx", *[entries[i] for i in node.input if i], name=name, op_type=node.op_type,
            domain=node.domain, node_attributes=base64.b64encode(holder.SerializeToString()).decode(),
            input_slots="".join("1" if i else "0" for i in node.input), output_count=len(node.output),
            out_shapes=json.dumps([s for s, _ in out_info]), out_types=json.dumps([t for _, t in out_info]))
        for i, output in enumerate(node.output):
            entries[output] = sym[i] if len(node.output) > 1 else sym
    outputs = [entries[o.name] for o in model.graph.output]
    sym = outputs[0] if len(outputs) == 1 else mx.sym.Group(outputs)
    # NDArray itself, not mx.nd.array: ONNX scalars (0-d initializers) must stay 0-d
    arg_params = {n: mx.nd.NDArray(np.array(a, order="C")) for n, a in initializers.items()
                  if n in sym.list_arguments()}
    return sym, arg_params, {}
