"""`mx.contrib`: the experimental namespaces of MXNet 1.x that onnxsym provides (`autograd`, the legacy imperative
autograd API; `ndarray` and `symbol`, MXNet's names for mx.nd.contrib and mx.sym.contrib)."""
from . import autograd
from .. import ndarray as _ndarray, symbol as _symbol

__all__ = ["autograd", "ndarray", "symbol"]


def __getattr__(name):
    # (looked up at use: the contrib op namespaces are generated after onnxsym imports this package)
    if name == "ndarray":
        return _ndarray.contrib
    if name == "symbol":
        return _symbol.contrib
    raise AttributeError("module 'onnxsym.contrib' has no attribute '%s'" % name)
