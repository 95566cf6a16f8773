"""Lowering of Symbol graphs to ONNX models."""
