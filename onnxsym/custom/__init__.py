"""Python custom operators (`mx.operator`): CustomOp / CustomOpProp / register, and composite ops defined from
symbols (`register_function`). Importing this package registers the `Custom` operator (op.py)."""
import ctypes

from . import op  # noqa: F401  (registers Custom: mx.sym.Custom / mx.nd.Custom)
from ..base import NDArrayHandle, py_str
from ..runtime.ndarray import NDArray
from .introspection import OperatorArguments, get_all_registered_operators, get_operator_arguments
from .legacy import NDArrayOp, NumpyOp, PythonOp
from .operator import CustomOp, CustomOpProp, get_function, get_prop, register, register_function

__all__ = ["CustomOp", "CustomOpProp", "register", "register_function", "get_prop", "get_function",
           "get_all_registered_operators", "get_operator_arguments", "OperatorArguments", "PythonOp", "NumpyOp",
           "NDArrayOp",
           # what MXNet's module exports to `from mxnet.operator import *` (it has no __all__) and programs use with
           # it: monitor callbacks do NDArray(ctypes.cast(handle, NDArrayHandle)) and py_str(name)
           "ctypes", "NDArrayHandle", "NDArray", "py_str"]
