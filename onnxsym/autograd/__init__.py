"""Training graphs: the forward graph in training mode and its gradient (onnxsym's own reverse-mode AD)."""
from .training import make_training

__all__ = ["make_training"]
