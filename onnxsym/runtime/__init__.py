"""ONNX Runtime sessions, NDArray and Executor."""
