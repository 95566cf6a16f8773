"""`mx.contrib`: the experimental namespaces of MXNet 1.x that onnxsym provides (`autograd`, the legacy imperative
autograd API; `ndarray` and `symbol`, MXNet's names for mx.nd.contrib and mx.sym.contrib)."""
from . import autograd

__all__ = ["autograd", "ndarray", "symbol"]


def __getattr__(name):
    # (lazy: the generated op namespaces are built after this package is imported)
    if name == "ndarray":
        from .. import ndarray
        return ndarray.contrib
    if name == "symbol":
        from .. import symbol
        return symbol.contrib
    raise AttributeError("module 'onnxsym.contrib' has no attribute '%s'" % name)
