"""Automatic names and attribute scopes, as MXNet's `mxnet.name` and `mxnet.attribute`.

An op created without `name=` is named `hint + counter` (`fullyconnected0`, `_plus1`); counters live in the
current `NameManager` (per thread, per `with` scope). `Prefix('p_')` prepends a prefix to every op name.

MXNet's C API renames the keys of some attributes to hidden `__key__` names, with two different rules:
`op_attr_key` for the keywords of an op call, `set_attr_key` for `Variable` and `Symbol._set_attr`.
"""
import threading

import numpy as np

from .base import MXNetError

__all__ = ["NameManager", "Prefix", "AttrScope", "op_attr_key", "set_attr_key", "format_value", "HIDDEN_KEYS",
           "hidden_key"]

# Attributes MXNet stores as `__key__` (c_api_symbolic.cc kHiddenKeys; the order matters to op_attr_key).
# MXNet 1.9.1 has no profiler_scope among them: relu(x, profiler_scope='a') stores 'profiler_scope'.
HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")


def hidden_key(key):
    """'lr_mult' -> '__lr_mult__'; other keys unchanged."""
    return "__%s__" % key if key in HIDDEN_KEYS else key


class _Scoped(type):
    """Gives a class a `current` property: the innermost active `with` instance of this thread."""

    @property
    def current(cls):
        value = getattr(cls._current, "value", None)
        if value is None:
            value = cls._current.value = cls()
        return value

    @current.setter
    def current(cls, value):
        cls._current.value = value


def format_value(value):
    """The string MXNet's Python front-end stores for a user-given value: `str(value)` as MXNet 1.9.1 prints it.

    MXNet 1.9.1 runs numpy < 1.24, where a numpy scalar prints as a plain number also inside a tuple or list
    (`(3, 4)`, not numpy 2's `(np.int64(3), 4)`); a numpy array prints as numpy prints it (`[1 0]`, which MXNet's
    parser then refuses for a shape, as here).
    """
    if _is_container(value):
        return _legacy_repr(value)
    return str(value)


def _is_container(value):
    return (isinstance(value, (tuple, list)) and type(value).__repr__ in (tuple.__repr__, list.__repr__)) \
        or (isinstance(value, dict) and type(value).__repr__ is dict.__repr__)


def _legacy_repr(value):
    """repr() as numpy < 1.24 gives it: numpy scalars without their `np.int64(...)` wrapper."""
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        return str(value)
    if isinstance(value, np.generic):
        return repr(value.item())
    if not _is_container(value):
        return repr(value)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s: %s" % (_legacy_repr(k), _legacy_repr(v)) for k, v in value.items())
    items = ", ".join(_legacy_repr(item) for item in value)
    if isinstance(value, list):
        return "[%s]" % items
    return "(%s,)" % items if len(value) == 1 else "(%s)" % items


def _deprecated(key, hidden, value, pos):
    return MXNetError("setting variable attributes with %s is deprecated. please instead use\nw = Variable(%s=%s)\n"
                      "sym = YourSymbolName(%s=w)" % (key, hidden, value, key[:pos - 1]))


def op_attr_key(key, value):
    """The key an op-call keyword is stored under (MXSymbolCreateAtomicSymbol): a key that *starts* with a hidden
    key is wrapped (`lr_mult` -> `__lr_mult__`, `lr_mult_x` -> `__lr_mult_x__`); one that ends with it
    (`weight_lr_mult`) is MXNet's deprecated per-input form and an error; `__lr_mult__` itself stays as is."""
    for hidden in HIDDEN_KEYS:
        pos = key.rfind(hidden)
        if pos == 0:
            return "__%s__" % key
        if pos > 0 and pos == len(key) - len(hidden):
            raise _deprecated(key, hidden, value, pos)
    return key


def set_attr_key(key, value):
    """The key `Variable(attr=...)` and `Symbol._set_attr` store under (MXSymbolSetAttr): only an exact hidden key
    is wrapped (`lr_mult_x` stays); a key ending with one (`weight_lr_mult`) is an error, as for op calls."""
    for hidden in HIDDEN_KEYS:
        pos = key.rfind(hidden)
        if pos == 0 and len(key) == len(hidden):
            return "__%s__" % key
        if pos >= 0 and pos == len(key) - len(hidden):
            raise _deprecated(key, hidden, value, pos)
    return key


class NameManager(metaclass=_Scoped):
    """Hands out `hint%d` names with one counter per hint."""

    _current = threading.local()

    def __init__(self):
        self._counter = {}
        self._old_manager = None

    def get(self, name, hint):
        """`name` itself when given, else the next `hint<N>`."""
        if name:
            return name
        count = self._counter.get(hint, 0)
        self._counter[hint] = count + 1
        return "%s%d" % (hint, count)

    def __enter__(self):
        self._old_manager = NameManager.current
        NameManager.current = self
        return self

    def __exit__(self, *exc):
        NameManager.current = self._old_manager


class Prefix(NameManager):
    """A NameManager that prepends `prefix` to every op name, given or automatic."""

    def __init__(self, prefix):
        super().__init__()
        self._prefix = prefix

    def get(self, name, hint):
        return self._prefix + super().get(name, hint)


class AttrScope(metaclass=_Scoped):
    """Attributes (strings) attached to every symbol created inside `with AttrScope(ctx_group='dev1'):`."""

    _current = threading.local()

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            if not isinstance(value, str):
                raise ValueError("Attributes need to be string: %s=%r" % (key, value))
        self._attr = kwargs
        self._old_scope = None

    def get(self, attr):
        """The scope's attributes updated with `attr` (the explicit ones win)."""
        merged = dict(self._attr)
        merged.update(attr or {})
        return merged

    def __enter__(self):
        self._old_scope = AttrScope.current
        merged = dict(self._old_scope._attr)
        merged.update(self._attr)
        self._attr = merged
        AttrScope.current = self
        return self

    def __exit__(self, *exc):
        AttrScope.current = self._old_scope
