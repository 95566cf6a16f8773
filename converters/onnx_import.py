"""`.onnx` -> (Symbol, arg_params, aux_params) (MXNet's mx.onnx.import_model), safely.

Models exported by onnxsym carry their MXNet JSON in the metadata and come back as the identical Symbol (custom
ops included: their op type must be registered, i.e. the module that registers it imported). Files are read
without pickle, and external data may only live inside the model's own folder.
"""
import json
import os

import onnx

import onnxsym as mx
from onnxsym.base import MXNetError

from .onnx_export import METADATA_SYMBOL

__all__ = ["import_model", "get_model_metadata", "load_model"]


def load_model(path):
    """The ModelProto of `path`, with external data only from inside the model's folder."""
    path = os.fspath(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise MXNetError("%s is not a readable ONNX model (truncated or corrupt?): %s" % (path, err)) from None
    folder = os.path.dirname(os.path.abspath(path))
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = os.path.abspath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, target]) != folder:
            raise MXNetError("initializer '%s' of %s points outside the model's folder (%s): refusing to read it"
                             % (tensor.name, path, location))
    if external:
        try:
            onnx.load_external_data_for_model(model, folder)
        except Exception as err:
            raise MXNetError("cannot read the external data of %s: %s" % (path, err)) from None
    return model


def _metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def get_model_metadata(model_file):
    """{'input_tensor_data': [(name, shape)], 'output_tensor_data': [(name, shape)]} as MXNet returns it."""
    model = load_model(model_file)
    initializers = {t.name for t in model.graph.initializer}

    def shape(value):
        return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim)

    return {"input_tensor_data": [(i.name, shape(i)) for i in model.graph.input if i.name not in initializers],
            "output_tensor_data": [(o.name, shape(o)) for o in model.graph.output]}


def import_model(model_file, input_shapes=None):
    """(sym, arg_params, aux_params) of an ONNX model file. Files onnxsym wrote come back as the identical
    Symbol; any other model becomes one op per ONNX node (`input_shapes` fixes dynamic input dimensions)."""
    model = load_model(model_file)
    meta = _metadata(model)
    if METADATA_SYMBOL not in meta:
        from .onnx_graph import graph_to_symbol
        return graph_to_symbol(model, input_shapes)
    sym = mx.sym.load_json(meta[METADATA_SYMBOL])
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    args = set(sym.list_arguments())
    aux = set(sym.list_auxiliary_states())
    arg_params = {n: mx.nd.array(a, dtype=a.dtype) for n, a in arrays.items() if n in args}
    aux_params = {n: mx.nd.array(a, dtype=a.dtype) for n, a in arrays.items() if n in aux}
    return sym, arg_params, aux_params


def data_input_names(model):
    meta = _metadata(model)
    return json.loads(meta["data_inputs"]) if "data_inputs" in meta else None
