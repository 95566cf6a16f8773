"""`mx.nd.random`: sampling on NDArrays (MXNet python/mxnet/ndarray/random.py); see onnxsym/_random_api.py."""
from .._random_api import FUNCTIONS, LIKE_OPS, random_functions
from ..runtime.imperative import invoke
from ..runtime.ndarray import NDArray

__all__ = list(FUNCTIONS) + [dist + "_like" for dist in LIKE_OPS]


def _call(op_name, args, kwargs, out, ctx):
    kwargs.pop("name", None)
    return invoke(op_name, args, kwargs, out, ctx=ctx)


globals().update(random_functions(_call, NDArray, imperative=True))
