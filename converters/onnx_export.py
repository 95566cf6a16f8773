"""Symbol + parameters -> a standard `.onnx` file that plain ONNX Runtime serves (MXNet's mx.onnx.export_model).

The inference graph only: loss heads become their forward outputs, BlockGrad/Dropout identities, BatchNorm uses
its moving statistics (fix_gamma honoured). Parameters become initializers; inputs that inference does not read
(the labels of loss heads) are dropped. The MXNet JSON travels in the model's metadata, so `import_model` gives
back the identical Symbol. Custom Python ops stay nodes of the `ai.onnx.contrib` domain whose `key` attribute
names the op type and its arguments; composite ops (register_function) become ONNX functions.
"""
import json
import os

import numpy as np
import onnx

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.lower.builder import GraphBuilder
from onnxsym.lower.to_onnx import lower_symbol
from onnxsym.symbol.serialize import atomic_write
from onnxsym.symbol.node import topo_order

__all__ = ["export_model", "METADATA_SYMBOL", "data_inputs"]

METADATA_SYMBOL = "mxnet_symbol"


def _load_inputs(sym, params):
    if isinstance(sym, (str, os.PathLike)):
        sym = mx.sym.load(sym)
    if isinstance(params, (str, os.PathLike)):
        params = mx.nd.load(params)
    if not isinstance(params, dict):
        raise TypeError("params must be a dict of name -> NDArray or the path of a .params file")
    clean = {}
    for key, value in params.items():
        name = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
        clean[name] = value if isinstance(value, mx.nd.NDArray) else mx.nd.array(value, dtype=np.asarray(value).dtype)
    return sym, clean


def data_inputs(sym, params):
    """The inputs a user feeds: not parameters, not the labels that only loss heads read."""
    label_only = set()
    readers = {}
    for node in topo_order(sym.outputs):
        if node.is_variable:
            continue
        data_slot = node.op.input_names()[0] if node.op.input_names() else None
        for name, (src, _) in zip(node.op.input_names(), node.inputs):
            if src.is_variable:
                readers.setdefault(src.name, []).append(node.op.is_loss and name != data_slot)
    for name, flags in readers.items():
        if flags and all(flags):
            label_only.add(name)
    return [n for n in sym.list_inputs() if n not in params and n not in label_only]


def export_model(sym, params, in_shapes=None, in_types=np.float32, onnx_file_path="model.onnx", verbose=False,
                 dynamic=False, dynamic_input_shapes=None, run_shape_inference=False, input_type=None,
                 input_shape=None, large_model=False):
    """Write `sym` with `params` as an ONNX model to onnx_file_path (returns the path).

    in_shapes / in_types: one shape / dtype per data input (the symbol's inputs that are neither parameters nor
    labels), in list_inputs order. dynamic=True is not supported yet (shapes are static, as MXNet's default)."""
    if input_shape is not None:
        in_shapes = input_shape
    if input_type is not None:
        in_types = input_type
    if dynamic or dynamic_input_shapes:
        raise MXNetError("export_model(dynamic=True) is not supported yet: onnxsym exports static shapes")
    sym, params = _load_inputs(sym, params)
    names = data_inputs(sym, params)
    if in_shapes is None:
        raise MXNetError("export_model needs in_shapes for the inputs %s" % names)
    in_shapes = [tuple(s) for s in in_shapes]
    if len(in_shapes) != len(names):
        raise MXNetError("export_model: %d shapes given for the %d data inputs %s" % (len(in_shapes), len(names),
                                                                                      names))
    in_types = in_types if isinstance(in_types, (list, tuple)) else [in_types] * len(names)
    shapes = dict(zip(names, in_shapes))
    dtypes = {n: np.dtype(t) for n, t in zip(names, in_types)}
    for name, value in params.items():
        if name in sym.list_inputs():
            shapes[name] = tuple(value.shape)
            dtypes[name] = np.dtype(value.dtype)
    builder = GraphBuilder()
    builder.export_functions = True
    lowered = lower_symbol(sym, shapes, dtypes, builder=builder)
    model = lowered.model
    _inputs_to_initializers(model, params)
    model.producer_name, model.producer_version = "onnxsym", mx.__version__
    onnx.helper.set_model_props(model, {METADATA_SYMBOL: sym.tojson(), "onnxsym_version": mx.__version__,
                                        "data_inputs": json.dumps(names)})
    onnx.checker.check_model(model, full_check=True)
    atomic_write(onnx_file_path, model.SerializeToString(), mode="wb")
    if verbose:
        print("exported %s: inputs %s, outputs %s" % (onnx_file_path, [i.name for i in model.graph.input],
                                                     [o.name for o in model.graph.output]))
    return onnx_file_path


def _inputs_to_initializers(model, params):
    """Parameters become initializers; other inputs no node reads (labels of loss heads) are dropped."""
    used = {name for node in model.graph.node for name in node.input}
    used.update(o.name for o in model.graph.output)
    keep = []
    for value in model.graph.input:
        if value.name in params:    # all of them, used or not (fix_gamma's gamma): the file keeps every parameter
            array = params[value.name].asnumpy()
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.ascontiguousarray(array), value.name))
        elif value.name in used:
            keep.append(value)
    del model.graph.input[:]
    model.graph.input.extend(keep)
