"""Format converters: ONNX import/export, built on onnxsym's symbol, ndarray, lower and runtime modules (never on
the `import onnxsym as mx` facade, which sits above them; tests/test_layering.py)."""
