"""One VJP rule per ONNX operator, written as standard ONNX nodes (registry.py says how a rule looks)."""
from . import custom, elementwise, indexing, loss, math, nn, rearrange, reduce, shape  # noqa: F401  (their rules)
from .registry import registered, rule_for

__all__ = ["registered", "rule_for"]
