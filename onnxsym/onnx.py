"""`mx.onnx`: export Symbols to `.onnx` and import `.onnx` files as Symbols (MXNet's mx.onnx API).

The work is done in onnxsym.converters (converters/onnx_export.py, converters/onnx_import.py), imported at the
first call: `import onnxsym` does not pay for the ONNX converters a program may never use."""

__all__ = ["export_model", "import_model", "get_model_metadata"]


def export_model(*args, **kwargs):
    from .converters.onnx_export import export_model as export  # lazy: start-up time
    return export(*args, **kwargs)


def import_model(model_file, input_shapes=None):
    """(sym, arg_params, aux_params) of an .onnx file (see converters/onnx_import.py)."""
    from .converters.onnx_import import import_model as load  # lazy: start-up time
    return load(model_file, input_shapes)


def get_model_metadata(model_file):
    from .converters.onnx_import import get_model_metadata as metadata  # lazy: start-up time
    return metadata(model_file)
