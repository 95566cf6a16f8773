"""MXNet's AMP operator lists (`mx.contrib.amp.lists`): float16 only (onnxsym has no bfloat16)."""
from . import symbol_fp16

__all__ = ["symbol_fp16"]
