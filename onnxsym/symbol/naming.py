"""Automatic names and attribute scopes, as MXNet's `mxnet.name` and `mxnet.attribute`.

An op created without `name=` is named `hint + counter` (`fullyconnected0`, `_plus1`); counters live in the
current `NameManager` (per thread, per `with` scope). `Prefix('p_')` prepends a prefix to every op name.
"""
import threading

__all__ = ["NameManager", "Prefix", "AttrScope"]


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
