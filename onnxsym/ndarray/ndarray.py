"""`mxnet.ndarray.ndarray`: MXNet's module path of the NDArray class, which programs import from."""
from ..runtime.ndarray import NDArray

__all__ = ["NDArray", "py_slice"]

py_slice = slice        # MXNet keeps the builtin under this name (its module shadows `slice` with the op)
