"""The operators of MXNet's sparse storage types: cast_storage, _sparse_retain, _square_sum, SparseEmbedding.

Values are computed densely (runtime/sparse.py keeps sparse arrays over dense buffers); the storage types of
imperative results follow MXNet's (runtime/sparse.result_stype).
"""
import numpy as np

from .._shapes import same_shape_rule
from ..base import MXNetError
from .indexing import Embedding
from .params import param
from .reduce import _Reduce
from .registry import OpDef, register


@register
class cast_storage(OpDef):
    """out = data in storage type `stype` (the values are unchanged). Mirrors MXNet cast_storage."""
    stype: str = param(choices=("default", "row_sparse", "csr"), doc="Output storage type.")
    fluent = ()
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return g.Identity(data)


@register(name="_sparse_retain")
class sparse_retain(OpDef):
    """out = the rows of data listed in indices, every other row zero (MXNet _sparse_retain; the gradient
    reaches the kept rows of data only)."""
    inputs = ("data", "indices")

    def infer_shape(self, data, indices):
        if data is None:
            return None
        if indices is not None and len(indices) != 1:
            raise MXNetError("_sparse_retain: indices must be 1-D, got shape %s" % (tuple(indices),))
        return [data, indices], [data]

    def infer_type(self, data, indices):
        return [data, indices if indices is not None else np.dtype(np.int64)], [data]

    def lower(self, g, data, indices):
        rows = g.shape(data)[0]
        ids = g.Reshape(g.cast(indices, np.int64), g.int64s([-1, 1]))
        count = g.Shape(ids, start=0, end=1)
        dtype = g.dtype(data)
        mask = g.ScatterND(g.Expand(g.scalar(0, dtype), g.int64s([rows])), ids,
                           g.Expand(g.scalar(1, dtype), count))
        keep = g.Reshape(mask, g.int64s([rows] + [1] * (len(g.shape(data)) - 1)))
        return g.Mul(data, keep)


@register(name="_square_sum")
class square_sum(_Reduce):
    """out = sum(data ** 2) over `axis` (MXNet _square_sum, the sparse reduction of squares)."""
    _onnx = "ReduceSum"
    fluent = ()

    def lower(self, g, data):
        squared = g.Mul(data, data)
        g.set_info(squared, g.shape(data), g.dtype(data))
        return super().lower(g, squared)


@register(name="_contrib_SparseEmbedding")
class SparseEmbedding(Embedding):
    """Embedding whose weight gradient is row_sparse (MXNet _contrib_SparseEmbedding); the values are
    Embedding's."""
    aliases = ()
    fluent = ()
