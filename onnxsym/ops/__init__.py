"""Operator definitions, one family per module; importing this package registers them all, except `Custom`, which
onnxsym.custom registers (its lowering needs the Symbol API and the custom-op kernels, layers above ops)."""
from . import (arrays, attention, contrib, contrib_math, conv, creation, ctc, deformable, detection, elemwise,  # noqa: F401
               indexing, linalg, loss, nn, onnx_node, random, reduce, shape, sparse, spatial, statistics,
               updates)  # (side effects)
from .registry import all_ops, fluent_methods, get_op, names

__all__ = ["get_op", "all_ops", "names", "fluent_methods"]
