"""Builds `mx.sym.<Op>`, `mx.nd.<Op>`, their `_internal`/`contrib` namespaces and the fluent methods from the
operator registry (one definition per op; nothing here is written per op)."""
import dataclasses
import types

from .ops.registry import fluent_methods, names
from .runtime.imperative import invoke
from .runtime.ndarray import NDArray
from .symbol.symbol import Symbol, create_symbol


def _doc(opcls, func_name):
    lines = [(opcls.__doc__ or opcls.op_name).strip(), "", "Parameters", "----------"]
    for name in opcls.input_names.__defaults__ or ():
        lines.append(name)
    for field in dataclasses.fields(opcls):
        default = "required" if field.default is dataclasses.MISSING else "default=%r" % (field.default,)
        lines.append("%s : %s, %s" % (field.name, opcls._kinds[field.name], default))
        if field.metadata.get("doc"):
            lines.append("    " + field.metadata["doc"])
    lines.append("name : str, optional (automatic: '%s0', '%s1', ...)" % (func_name.lower(), func_name.lower()))
    return "\n".join(lines)


def symbol_function(func_name, opcls):
    def creator(*args, name=None, attr=None, **kwargs):
        return create_symbol(func_name, *args, name=name, attr=attr, **kwargs)
    creator.__name__ = creator.__qualname__ = func_name
    creator.__doc__ = _doc(opcls, func_name)
    return creator


def ndarray_function(func_name, opcls):
    def invoke_op(*args, out=None, name=None, **kwargs):
        return invoke(func_name, args, kwargs, out)
    invoke_op.__name__ = invoke_op.__qualname__ = func_name
    invoke_op.__doc__ = _doc(opcls, func_name)
    return invoke_op


def _fill(module, make):
    internal = getattr(module, "_internal", None) or types.ModuleType(module.__name__ + "._internal")
    contrib = getattr(module, "contrib", None) or types.ModuleType(module.__name__ + ".contrib")
    for func_name, opcls in names().items():
        fn = make(func_name, opcls)
        if func_name.startswith("_contrib_"):
            setattr(contrib, func_name[len("_contrib_"):], fn)
        if func_name.startswith("_"):
            setattr(internal, func_name, fn)
        if not hasattr(module, func_name) or getattr(getattr(module, func_name), "__module__", "") == __name__:
            setattr(module, func_name, fn)
    module._internal, module.contrib = internal, contrib


def _fluent(cls, make):
    for method, op_name in fluent_methods().items():
        if method in cls.__dict__:
            continue
        func_name = method if method in names() else op_name
        fn = make(func_name)
        fn.__name__ = method
        setattr(cls, method, fn)


def populate(sym_module, nd_module):
    _fill(sym_module, symbol_function)
    _fill(nd_module, ndarray_function)

    def sym_method(func_name):
        def method(self, *args, **kwargs):
            return create_symbol(func_name, self, *args, **kwargs)
        return method

    def nd_method(func_name):
        def method(self, *args, **kwargs):
            out = kwargs.pop("out", None)
            return invoke(func_name, (self,) + args, kwargs, out)
        return method

    _fluent(Symbol, sym_method)
    _fluent(NDArray, nd_method)
