"""Python custom operators (`mx.operator`): CustomOp / CustomOpProp / register, and composite ops defined from
symbols (`register_function`). Importing this package registers the `Custom` operator (op.py)."""
from . import op  # noqa: F401  (registers Custom: mx.sym.Custom / mx.nd.Custom)
from .introspection import OperatorArguments, get_all_registered_operators, get_operator_arguments
from .legacy import NDArrayOp, NumpyOp, PythonOp
from .operator import CustomOp, CustomOpProp, get_function, get_prop, register, register_function

__all__ = ["CustomOp", "CustomOpProp", "register", "register_function", "get_prop", "get_function",
           "get_all_registered_operators", "get_operator_arguments", "OperatorArguments", "PythonOp", "NumpyOp",
           "NDArrayOp"]
