"""`mx.contrib`: the experimental namespaces of MXNet 1.x that onnxsym provides (`autograd`, the legacy imperative
autograd API; `amp`, automatic mixed precision for symbols)."""
from . import amp, autograd

__all__ = ["amp", "autograd"]
