"""`mx.random`: seeding, and the sampling functions of `mx.nd.random` (MXNet's mx.random is the same module).
One seed drives every random stream onnxsym uses: ONNX Runtime's sampling nodes (runtime/rng.py), parameter
initialization and data shuffling (numpy generators). MXNet's own random streams are not reproduced bit for bit:
the same seed gives the same draws in onnxsym, other draws than MXNet's."""
import numpy as np

from .base import integer_types
from .module import initializer
from .ndarray.random import *  # noqa: F401,F403  (MXNet: from .ndarray.random import *)
from .ndarray.random import __all__ as _sampling
from .runtime import rng

__all__ = ["seed"] + list(_sampling)


def seed(seed_state, ctx="all"):
    """Seed every random stream onnxsym uses (MXNet's mx.random.seed; `ctx` is accepted: one stream serves every
    device here)."""
    if not isinstance(seed_state, integer_types) or isinstance(seed_state, bool):
        raise ValueError("sd must be int")
    value = int(seed_state) % (2 ** 32)     # MXNet takes any int (its tests seed with negative ones too)
    np.random.seed(value)
    rng.seed(value)
    initializer.seed(value)
