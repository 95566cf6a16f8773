"""`mx.sym.random`: sampling nodes (MXNet python/mxnet/symbol/random.py); see onnxsym/_random_api.py."""
from .._random_api import FUNCTIONS, LIKE_OPS, random_functions
from ..name import NameManager
from .symbol import Symbol, create_symbol

__all__ = list(FUNCTIONS) + [dist + "_like" for dist in LIKE_OPS]


def _call(op_name, args, kwargs, out, ctx):
    if out is not None:
        raise TypeError("Symbol functions take no `out`")
    name, attr = kwargs.pop("name", None), kwargs.pop("attr", None)
    if op_name.endswith("_like"):       # MXNet's function is random.<dist>_like: automatic names <dist>_like0, ...
        name = NameManager.current.get(name, op_name[len("_random_"):])
    return create_symbol(op_name, *args, name=name, attr=attr, **kwargs)


globals().update(random_functions(_call, Symbol, imperative=False))
