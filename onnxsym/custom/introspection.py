"""`mx.operator.get_all_registered_operators` / `get_operator_arguments`: what MXNet's operator registry says about
its ops, read from onnxsym's (the names MXNet lists, inputs as 'NDArray-or-Symbol', parameters described as dmlc
describes them: "{'relu', 'sigmoid'}, required", "float, optional, default=0.25")."""
import collections
import dataclasses

from ..base import MXNetError
from ..ops.params import REQUIRED, format_value, type_name
from ..ops.registry import get_op, names, possible_inputs

__all__ = ["get_all_registered_operators", "get_operator_arguments", "OperatorArguments"]

OperatorArguments = collections.namedtuple("OperatorArguments", ["narg", "names", "types"])


def get_all_registered_operators():
    """Every operator name onnxsym registers (MXNet names and aliases)."""
    return sorted(names())


def _describe(field, kind):
    choices = field.metadata.get("choices")
    text = "{%s}" % ", ".join("'%s'" % c for c in sorted(choices, key=str)) if choices else type_name(kind)
    if field.default is REQUIRED and field.default_factory is dataclasses.MISSING:
        return text + ", required"
    default = field.default
    if isinstance(default, bool):
        shown = str(int(default))           # dmlc prints booleans as 0 / 1
    elif isinstance(default, str) or default is None:
        shown = "'%s'" % default
    else:
        shown = format_value(default)
    return "%s, optional, default=%s" % (text, shown)


def get_operator_arguments(op_name):
    """OperatorArguments(narg, names, types) of `op_name`: its inputs, then its parameters."""
    try:
        opcls = get_op(op_name)
    except (KeyError, MXNetError):
        raise MXNetError("Failed to find operator '%s'" % op_name) from None
    if opcls.variadic:
        inputs, input_types = ["data"], ["NDArray-or-Symbol[]"]
    else:
        inputs = list(possible_inputs(opcls))
        input_types = ["NDArray-or-Symbol"] * len(inputs)
    fields = [f for f in dataclasses.fields(opcls) if not (opcls.variadic and f.name == "num_args")]
    arg_names = inputs + [f.name for f in fields]
    arg_types = input_types + [_describe(f, opcls._kinds[f.name]) for f in fields]
    return OperatorArguments(len(arg_names), arg_names, arg_types)
