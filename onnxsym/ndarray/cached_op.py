"""`mx.nd.CachedOp`: a Symbol called like a function on NDArrays (MXNet's imperative cached graph). It runs as one
composite operator (the graph compiled once per input shapes, differentiable under mx.autograd.record())."""
import inspect
import itertools

from ..custom.operator import register_function
from ..runtime.imperative import invoke

__all__ = ["CachedOp"]

_COUNTER = itertools.count()


class CachedOp:
    """CachedOp(sym, flags=()): call it with the symbol's inputs (sym.list_inputs() order: arguments, then auxiliary
    states) as NDArrays; returns the output NDArray, or a list when the symbol has several. `out=` writes into
    given arrays. `flags` (MXNet's static_alloc, ...) are accepted: the graph is always compiled."""

    def __init__(self, sym, flags=()):
        self._sym = sym
        self._names = sym.list_inputs()
        self._flags = dict(flags)
        self._op_type = "_cached_op_%d" % next(_COUNTER)
        names = self._names

        def body(*inputs):
            return sym(**dict(zip(names, inputs)))
        body.__signature__ = inspect.Signature(
            [inspect.Parameter("arg%d" % i, inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(len(names))])
        register_function(self._op_type)(body)

    def __call__(self, *args, out=None, **kwargs):
        if kwargs:
            raise TypeError("CachedOp takes its inputs by position (%s), got keywords %s"
                            % (", ".join(self._names), sorted(kwargs)))
        if len(args) != len(self._names):
            raise ValueError("CachedOp of a symbol with inputs %s takes %d arrays, got %d"
                             % (", ".join(self._names), len(self._names), len(args)))
        result = invoke("Custom", args, {"op_type": self._op_type}, out)
        return result
