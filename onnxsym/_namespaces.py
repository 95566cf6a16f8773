"""Builds `mx.sym.<Op>`, `mx.nd.<Op>`, their `_internal`/`contrib`/`linalg` namespaces and the fluent methods
from the operator registry (one definition per op; nothing here is written per op)."""
import dataclasses
import difflib
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


def symbol_function(func_name, opcls, short_name=None):
    """mx.sym.<func_name>, or with `short_name` the function of a submodule (mx.sym.linalg.det of `_linalg_det`),
    which names its nodes after the short name (det0), as MXNet's."""
    def creator(*args, name=None, attr=None, **kwargs):
        return create_symbol(func_name, *args, name=name, attr=attr, _hint=short_name, **kwargs)
    creator.__name__ = creator.__qualname__ = short_name or func_name
    creator.__doc__ = _doc(opcls, short_name or func_name)
    return creator


def ndarray_function(func_name, opcls, short_name=None):
    def invoke_op(*args, out=None, name=None, **kwargs):
        return invoke(func_name, args, kwargs, out)
    invoke_op.__name__ = invoke_op.__qualname__ = short_name or func_name
    invoke_op.__doc__ = _doc(opcls, short_name or func_name)
    return invoke_op


class MissingNameError(AttributeError):
    """A name missing from mx.sym / mx.nd (or their contrib / _internal). Still an AttributeError, so hasattr() and
    getattr(module, name, default) work; the message, which may search for close matches, is built only when the
    error is shown (hasattr never pays for it)."""

    def __init__(self, namespace, module, name):
        super().__init__(name)
        self.name, self._namespace, self._module = name, namespace, module

    def __str__(self):
        return missing_name_message(self._namespace, self._module, self.name)


def missing_name_message(namespace, module, name):
    """What mx.sym.<name> is in MXNet 1.9.1 (an operator, a function, a namespace, nothing) and what to do."""
    from .ops import mxnet_names  # lazy: start-up time (34 KB of MXNet names, read only for this message)
    where = "%s.%s" % (namespace, name)
    see = "see `onnxsym ops` or mx.onnx.get_operator_support() for the operators onnxsym supports"
    if name in mxnet_names.OPERATORS.get(namespace, ()):
        return ("%s is an MXNet operator that onnxsym does not implement yet; %s, or define it as a custom op "
                "(mx.operator.CustomOp + @mx.operator.register('%s'), or @mx.operator.register_function('%s') for a "
                "composite of existing symbols) and call %s.Custom(..., op_type='%s')"
                % (where, see, name, name, ".".join(namespace.split(".")[:2]), name))
    if name in mxnet_names.FUNCTIONS.get(namespace, ()):
        return "%s is an MXNet function that onnxsym does not implement yet; %s" % (where, see)
    if name in mxnet_names.SUBMODULES and namespace.count(".") == 1:
        return "%s is an MXNet namespace that onnxsym does not provide; %s" % (where, see)
    known = set(mxnet_names.OPERATORS.get(namespace, ())) | set(mxnet_names.FUNCTIONS.get(namespace, ()))
    known |= {key for key in vars(module) if not key.startswith("__")}
    if not name.startswith("_"):
        known = {key for key in known if not key.startswith("_")}
    by_lower = {}
    for key in sorted(known):
        by_lower.setdefault(key.lower(), key)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)
    hint = "; did you mean %s?" % " or ".join("'%s'" % by_lower[key] for key in close) if close else ""
    return "no MXNet operator or function named '%s' in %s%s" % (name, namespace, hint)


def _missing_names(namespace, module):
    """PEP 562 `__getattr__` for `module` (called only when normal lookup fails): dunder probes (`__path__`,
    `__wrapped__`, pytest, doctest) get Python's plain AttributeError at once, other names a MissingNameError."""
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError("module '%s' has no attribute '%s'" % (module.__name__, name))
        raise MissingNameError(namespace, module, name)
    return __getattr__


# Operator name prefix -> the submodule of mx.sym / mx.nd that lists those operators without it (MXNet's
# `_contrib_X` is mx.sym.contrib.X, `_linalg_X` is mx.sym.linalg.X).
SUBMODULE_PREFIXES = {"_contrib_": "contrib", "_linalg_": "linalg"}


def _fill(module, make):
    internal = getattr(module, "_internal", None) or types.ModuleType(module.__name__ + "._internal")
    submodules = {prefix: getattr(module, sub, None) or types.ModuleType(module.__name__ + "." + sub)
                  for prefix, sub in SUBMODULE_PREFIXES.items()}
    for func_name, opcls in names().items():
        fn = make(func_name, opcls)
        for prefix, submodule in submodules.items():
            if func_name.startswith(prefix):
                short = func_name[len(prefix):]
                setattr(submodule, short, make(func_name, opcls, short))
        if func_name.startswith("_"):
            setattr(internal, func_name, fn)
        if not hasattr(module, func_name) or getattr(getattr(module, func_name), "__module__", "") == __name__:
            setattr(module, func_name, fn)
    module._internal = internal
    prefix = "mx.sym" if make is symbol_function else "mx.nd"
    targets = [(prefix, module), (prefix + "._internal", internal)]
    for op_prefix, submodule in submodules.items():
        setattr(module, SUBMODULE_PREFIXES[op_prefix], submodule)
        targets.append((prefix + "." + SUBMODULE_PREFIXES[op_prefix], submodule))
    for namespace, target in targets:
        target.__getattr__ = _missing_names(namespace, target)


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
