"""Training graphs: the forward graph in training mode, differentiated by onnxruntime-training."""
from .training import make_training

__all__ = ["make_training"]
