"""MXNet's Python custom-operator API (`mx.operator`), unchanged for users.

A `CustomOpProp` subclass registered with `@mx.operator.register(name)` describes the op (argument, output and
auxiliary names, shape and type rules); its `create_operator` returns a `CustomOp` whose `forward`/`backward` run
on NDArrays. onnxsym runs them inside the ONNX Runtime graph as Python ops (see onnxsym/runtime/pyops.py), forward
and backward, so graphs with custom ops bind, train and export like any other.
"""
from ..base import MXNetError

__all__ = ["CustomOp", "CustomOpProp", "register", "register_function", "get_prop", "get_function"]

_PROPS = {}         # op_type -> CustomOpProp subclass
_FUNCTIONS = {}     # op_type -> function(*symbols, **kwargs) -> Symbol


class CustomOp:
    """Base class of a custom operator's computation (MXNet `mx.operator.CustomOp`)."""

    def __init__(self):
        pass

    def forward(self, is_train, req, in_data, out_data, aux):
        """Compute out_data from in_data (lists of NDArrays); write with `self.assign(dst, req[i], src)`."""
        raise NotImplementedError("%s.forward is not implemented" % type(self).__name__)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        """Compute in_grad from out_grad, in_data and out_data."""
        raise NotImplementedError("%s.backward is not implemented" % type(self).__name__)

    @staticmethod
    def assign(dst, req, src):
        """Write `src` into `dst` as `req` says: 'null' skips, 'write'/'inplace' copy, 'add' accumulates."""
        if req == "null":
            return
        if req in ("write", "inplace"):
            dst[:] = src
        elif req == "add":
            dst[:] = dst + src
        else:
            raise MXNetError("CustomOp.assign: unknown req %r (expected 'null', 'write', 'inplace' or 'add')" % req)


class CustomOpProp:
    """Describes a custom operator (MXNet `mx.operator.CustomOpProp`). Keyword arguments of `mx.sym.Custom` reach
    `__init__` as strings, as in MXNet."""

    def __init__(self, need_top_grad=True):
        self.need_top_grad_ = need_top_grad

    def infer_shape(self, in_shape):
        """(input shapes, output shapes, aux shapes); default: every output has the first input's shape."""
        return in_shape, (in_shape[0],) * len(self.list_outputs()), ()

    def infer_type(self, in_type):
        """(input types, output types, aux types); default: everything has the first input's type."""
        return (in_type, [in_type[0]] * len(self.list_outputs()),
                [in_type[0]] * len(self.list_auxiliary_states()))

    def infer_storage_type(self, in_stype):
        return in_stype, ["default"] * len(self.list_outputs()), ["default"] * len(self.list_auxiliary_states())

    def list_outputs(self):
        return ["output"]

    def list_arguments(self):
        return ["data"]

    def list_auxiliary_states(self):
        return []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        """The data backward needs (onnxsym always passes all of it)."""
        deps = []
        if self.need_top_grad_:
            deps.extend(out_grad)
        deps.extend(in_data)
        deps.extend(out_data)
        return deps

    def create_operator(self, ctx, in_shapes, in_dtypes):
        """The CustomOp that computes this op for the given input shapes and dtypes."""
        return CustomOp()


def register(reg_name):
    """Class decorator: register a CustomOpProp subclass as `op_type=reg_name` for mx.sym.Custom / mx.nd.Custom."""
    def do_register(prop_cls):
        if not (isinstance(prop_cls, type) and issubclass(prop_cls, CustomOpProp)):
            raise TypeError("mx.operator.register expects a CustomOpProp subclass, got %r" % (prop_cls,))
        _PROPS[reg_name] = prop_cls
        _FUNCTIONS.pop(reg_name, None)
        return prop_cls
    return do_register


def register_function(reg_name):
    """Decorator (beyond MXNet): define op_type `reg_name` as a composite of existing symbols. The function takes
    the input symbols (and the Custom call's keyword arguments, as strings) and returns a Symbol. Such an op runs
    and trains without Python in the graph, and exports as an ONNX function."""
    def do_register(function):
        if not callable(function):
            raise TypeError("mx.operator.register_function expects a function, got %r" % (function,))
        _FUNCTIONS[reg_name] = function
        _PROPS.pop(reg_name, None)
        return function
    return do_register


def get_prop(op_type):
    """The registered CustomOpProp class for `op_type`, or None."""
    return _PROPS.get(op_type)


def get_function(op_type):
    """The registered composite function for `op_type`, or None."""
    return _FUNCTIONS.get(op_type)
