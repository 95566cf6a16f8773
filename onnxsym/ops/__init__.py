"""Operator definitions, one family per module; importing this package registers them all."""
from . import contrib, conv, custom, elemwise, indexing, loss, nn, onnx_node, reduce, shape  # noqa: F401  (registration side effects)
from .registry import all_ops, fluent_methods, get_op, names

__all__ = ["get_op", "all_ops", "names", "fluent_methods"]
