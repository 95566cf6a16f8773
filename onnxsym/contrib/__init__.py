"""`mx.contrib`: the experimental namespaces of MXNet 1.x that onnxsym provides (`autograd`, the legacy imperative
autograd API)."""
from . import autograd

__all__ = ["autograd"]
