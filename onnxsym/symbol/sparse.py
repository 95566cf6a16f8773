"""`mx.sym.sparse`: MXNet's sparse namespace of symbol functions: `retain` (the _sparse_retain operator) and every
mx.sym operator function (mx.sym.sparse.dot, .square, ...); storage types only matter to bound arrays."""
from .symbol import create_symbol


def retain(data=None, indices=None, name=None, attr=None, **kwargs):
    """The rows of `data` listed in `indices`, every other row zero (MXNet's sparse.retain)."""
    return create_symbol("_sparse_retain", data=data, indices=indices, name=name, attr=attr, **kwargs)


def __getattr__(name):
    from .. import symbol  # lazy: mx.sym's operator functions are generated after this module is imported
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(symbol, name)
