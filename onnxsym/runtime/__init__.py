"""ONNX Runtime sessions, NDArray and Executor."""
from .features import Feature, Features, feature_list  # noqa: F401  (mx.runtime.Features, as MXNet's)
