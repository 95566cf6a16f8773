"""Training graphs: the forward graph in training mode, differentiated by onnxruntime-training."""
from .training import TrainingGraph

__all__ = ["TrainingGraph"]
