"""`mx.onnx`: export Symbols to `.onnx` and import `.onnx` files as Symbols (MXNet's mx.onnx API).

The work is done in onnxsym.converters (converters/onnx_export.py, converters/onnx_import.py), imported at the
first call: `import onnxsym` does not pay for the ONNX converters a program may never use."""

import numpy as np
from onnx.defs import onnx_opset_version

from .lower.builder import OPSET
from .ops.onnx_node import ONNXNode
from .ops.registry import all_ops

__all__ = ["export_model", "export_training_model", "import_model", "get_model_metadata", "get_operator_support"]


def export_model(*args, **kwargs):
    from .converters.onnx_export import export_model as export  # lazy: start-up time
    return export(*args, **kwargs)


def export_training_model(sym, params, in_shapes, in_types=np.float32, onnx_file_path="train.onnx",
                          optimizer=None, optimizer_params=None):
    """The forward, onnxsym's backward and optionally an SGD or Adam update as one plain ONNX model that any ONNX
    Runtime 1.17+ trains with (see converters/onnx_training_export.py for its inputs and outputs)."""
    from .converters.onnx_training_export import export_training_model as export  # lazy: start-up time
    return export(sym, params, in_shapes, in_types, onnx_file_path, optimizer, optimizer_params)


def import_model(model_file, input_shapes=None):
    """(sym, arg_params, aux_params) of an .onnx file (see converters/onnx_import.py)."""
    from .converters.onnx_import import import_model as load  # lazy: start-up time
    return load(model_file, input_shapes)


def get_model_metadata(model_file):
    from .converters.onnx_import import get_model_metadata as metadata  # lazy: start-up time
    return metadata(model_file)


def get_operator_support(opset_version=None):
    """Sorted names of the MXNet operators onnxsym supports, as MXNet's `mx.onnx.get_operator_support` lists the
    operators its exporter converts.

    The names are the operators' canonical names, as MXNet JSON files store them (each op once; aliases such as
    `_Plus` for `elemwise_add` are not listed, as MXNet lists none); onnxsym's own `_onnx` (an imported ONNX node)
    is not an MXNet operator and is left out. onnxsym writes opset 17 models: `opset_version` (default: onnx's
    newest) below 17 gives an empty list, as MXNet's gives for opsets it has no converters for.

    >>> 'FullyConnected' in mx.onnx.get_operator_support()
    True
    """
    if opset_version is None:
        opset_version = onnx_opset_version()
    if opset_version < OPSET:
        return []
    return sorted(name for name, opdef in all_ops().items() if opdef is not ONNXNode)
