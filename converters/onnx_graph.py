"""Any standard ONNX graph -> Symbol, one `_onnx` op per ONNX node (ops/onnx_node.py).

Nodes keep their opset from 17 up to the newest the installed onnx and onnxruntime run (the lowered graph
declares it: lower/builder.lift_to_opset); older models are converted up to 17 first. Shapes and dtypes come from
ONNX shape inference (inputs with dynamic dimensions need `input_shapes`), initializers become parameters
(arg_params), and graph inputs become data variables. The Symbol binds, runs, exports and trains like any other.
"""
import base64
import json
import os
from math import prod

import numpy as np
import onnx
from onnx import helper, inliner, numpy_helper, shape_inference, version_converter

from onnxsym.base import MXNetError
from onnxsym.lower.builder import OPSET, PYTHON_DOMAIN
from onnxsym.runtime.ndarray import NDArray
from onnxsym.runtime.ort import max_opset, ort
from onnxsym.symbol import Group, Variable, create_symbol

__all__ = ["graph_to_symbol"]


def _convert_opset(model):
    """(model, opset): a model of opset 17 or newer (up to what the installed onnxruntime runs) keeps its opset;
    an older one is converted up to 17 with onnx's version converter."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if version >= OPSET:
        newest = max_opset()
        if version > newest:
            raise MXNetError("ONNX opset %d is newer than the installed onnx and onnxruntime %s run (up to %d): "
                             "pip install -U onnxruntime onnx" % (version, ort.__version__, newest))
        return model, version
    try:
        return version_converter.convert_version(model, OPSET), OPSET
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


def _dtype_name(elem_type, name):
    if elem_type == onnx.TensorProto.STRING:
        raise MXNetError("value '%s' is a string tensor: onnxsym's arrays, as MXNet's, hold numbers only (run a "
                         "model with string inputs or outputs with onnxruntime itself)" % name)
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else None
    except KeyError:
        raise MXNetError("value '%s' has an unknown element type (%d)" % (name, elem_type)) from None


def _value_types(model):
    """{name: (shape, dtype name)} of the graph's values; a value larger than this machine's memory is refused
    here, before ONNX Runtime tries to allocate it."""
    types = {}
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for value in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim] \
            if tensor.HasField("shape") else None
        dtype = _dtype_name(tensor.elem_type, value.name)
        known = [d for d in shape or [] if d is not None]
        if any(d < 0 for d in known):
            raise MXNetError("value '%s' has negative dimensions %s" % (value.name, shape))
        if prod(known) * (np.dtype(dtype).itemsize if dtype else 1) > memory:
            raise MXNetError("value '%s' of shape %s is larger than this machine's memory (%d bytes)"
                             % (value.name, shape, memory))
        types[value.name] = (shape, dtype)
    for tensor in model.graph.initializer:
        types[tensor.name] = (list(tensor.dims), helper.tensor_dtype_to_np_dtype(tensor.data_type).name)
    return types


def _captured(node, entries):
    """The outer values `node`'s subgraphs read (If/Loop/Scan bodies, at any depth), in a stable order."""
    from onnx import AttributeProto
    stack = [a.g for a in node.attribute if a.type == AttributeProto.GRAPH] + \
        [g for a in node.attribute if a.type == AttributeProto.GRAPHS for g in a.graphs]
    defined, read = set(), []
    while stack:
        graph = stack.pop()
        defined.update(v.name for v in graph.input)
        defined.update(t.name for t in graph.initializer)
        for inner in graph.node:
            defined.update(inner.output)
            read.extend(i for i in inner.input if i)
            stack.extend(a.g for a in inner.attribute if a.type == AttributeProto.GRAPH)
            stack.extend(g for a in inner.attribute if a.type == AttributeProto.GRAPHS for g in a.graphs)
        read.extend(o.name for o in graph.output)
    return sorted({name for name in read if name not in defined and name in entries})


# Integer and boolean initializers up to this size (shapes, axes, pads, indices: settings, not parameters) are
# Constant nodes of the Symbol, as MXNet's importer reads them into attributes: they are not trained, and the
# gradient rules that need their values (Pad, Slice, Tile, ...) see them. Larger ones, and initializers the graph
# also lists as inputs (overridable defaults), stay parameters.
SETTING_SIZE = 4096


def _constant(name, array, opset):
    holder = helper.make_node("Constant", [], [])
    holder.attribute.extend([helper.make_attribute("value", numpy_helper.from_array(np.asarray(array), name))])
    return create_symbol(
        "_onnx", name=name, op_type="Constant", domain="", input_slots="", output_count=1,
        node_attributes=base64.b64encode(holder.SerializeToString()).decode(),
        out_shapes=json.dumps([list(array.shape)]), out_types=json.dumps([array.dtype.name]),
        **({"opset": opset} if opset > OPSET else {}))


def _inferred(model):
    """`model` with ONNX shape inference's shapes and types. Where inference disagrees with shapes the file
    declares for intermediate values or outputs (onnx's MaxPool with ceil_mode), the declarations go, inference
    runs again, and a dimension the two disagree on is left to ONNX Runtime to decide at run time; where strict
    inference fails on onnx's own function bodies (MeanVarianceNormalization-13), what lenient inference finds.
    Shapes it leaves unknown are decided at run time too."""
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as err:
        first_error = err
    declared = {v.name: v.type.tensor_type for v in list(model.graph.output) + list(model.graph.value_info)}
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    for value in stripped.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = shape_inference.infer_shapes(stripped, strict_mode=True, data_prop=True)
    except Exception:  # noqa: BLE001 - onnx's own function bodies can fail it (MeanVarianceNormalization-13)
        try:        # what it can infer; the rest ONNX Runtime decides at run time
            inferred = shape_inference.infer_shapes(stripped, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            raise MXNetError("ONNX shape inference failed on the model: %s" % first_error) from None
    for value in list(inferred.graph.output) + list(inferred.graph.value_info):
        mine, theirs = value.type.tensor_type, declared.get(value.name)
        if theirs is None or not theirs.HasField("shape") or not mine.HasField("shape") or \
                len(theirs.shape.dim) != len(mine.shape.dim):
            continue
        for dim, other in zip(mine.shape.dim, theirs.shape.dim):
            if dim.HasField("dim_value") and other.HasField("dim_value") and dim.dim_value != other.dim_value:
                dim.Clear()         # the file and onnx disagree: ONNX Runtime decides
    return inferred


def graph_to_symbol(model, input_shapes=None):
    """(sym, arg_params, aux_params) of an ONNX ModelProto."""
    if model.functions:     # model-local functions: the Symbol keeps nodes, not the model's function table
        try:
            model = inliner.inline_local_functions(model)
        except Exception as err:  # onnx's C++ errors
            raise MXNetError("cannot inline the model's functions: %s" % err) from None
    for index, node in enumerate(model.graph.node):
        if node.domain == PYTHON_DOMAIN:     # onnxsym's Python custom ops: only in the models onnxsym exports
            raise MXNetError("ONNX node %s (%s) is in the domain %s, which onnxsym reserves for its own custom ops"
                             % (node.name or index, node.op_type, PYTHON_DOMAIN))
    model, opset = _convert_opset(model)
    _fix_inputs(model, input_shapes)
    model = _inferred(model)
    types = _value_types(model)
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    entries = {}
    for value in model.graph.input:
        if value.name not in initializers:
            shape, dtype = types[value.name]
            entries[value.name] = Variable(value.name, shape=tuple(shape), dtype=dtype)
    overridable = {value.name for value in model.graph.input}
    used_names = set()
    for name, array in initializers.items():
        if array.dtype.kind in "fc" or array.size > SETTING_SIZE or name in overridable:
            entries[name] = Variable(name, shape=array.shape, dtype=array.dtype)
        else:
            entries[name] = _constant(name, array, opset)
            used_names.add(name)
    domains = {o.domain: o.version for o in model.opset_import if o.domain not in ("", "ai.onnx")}
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
        captured = _captured(node, entries)
        sym = create_symbol(
            "_onnx", *[entries[i] for i in node.input if i], *[entries[c] for c in captured], name=name,
            op_type=node.op_type, **({"captured": json.dumps(captured)} if captured else {}),
            domain=node.domain, node_attributes=base64.b64encode(holder.SerializeToString()).decode(),
            input_slots="".join("1" if i else "0" for i in node.input), output_count=len(node.output),
            out_shapes=json.dumps([s for s, _ in out_info]), out_types=json.dumps([t for _, t in out_info]),
            **({"opset": opset} if opset > OPSET and node.domain in ("", "ai.onnx") else {}),
            **({"domain_opset": domains[node.domain]} if domains.get(node.domain, 1) > 1 else {}))
        for i, output in enumerate(node.output):
            entries[output] = sym[i] if len(node.output) > 1 else sym
    undefined = [o.name for o in model.graph.output if o.name not in entries]
    if undefined or not model.graph.output:
        raise MXNetError("the graph's outputs %s are not defined by any node or input" % undefined if undefined
                         else "the graph has no outputs")
    outputs = [entries[o.name] for o in model.graph.output]
    sym = outputs[0] if len(outputs) == 1 else Group(outputs)
    # NDArray itself, not mx.nd.array: ONNX scalars (0-d initializers) must stay 0-d
    arg_params = {n: NDArray(np.array(a, order="C")) for n, a in initializers.items()
                  if n in sym.list_arguments()}
    return sym, arg_params, {}
