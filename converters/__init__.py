"""Format converters: MXNet symbol JSON / .params and ONNX import/export (built on onnxsym's public API)."""
