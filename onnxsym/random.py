"""`mx.random`: seeding and sampling. One seed drives parameter initialization, data shuffling and the random
draws here (numpy generators; MXNet's own random streams are not reproduced bit for bit)."""
import numpy as np

from .base import normalize_dtype
from .module import initializer, io
from .ndarray import NDArray

__all__ = ["seed", "uniform", "normal", "randint", "shuffle"]

_STATE = {"rng": np.random.RandomState(0)}


def seed(seed_state, ctx="all"):
    """Seed every random stream onnxsym uses (MXNet's mx.random.seed)."""
    if not isinstance(seed_state, (int, np.integer)):
        raise ValueError("sd must be int")
    np.random.seed(int(seed_state) % (2 ** 32))
    _STATE["rng"] = np.random.RandomState(int(seed_state) % (2 ** 32))
    initializer.seed(int(seed_state))
    io.seed(int(seed_state))


def _out(values, dtype, out):
    values = values.astype(normalize_dtype(dtype))
    if out is not None:
        out[:] = values
        return out
    return NDArray(np.asarray(values, order="C"))


def uniform(low=0, high=1, shape=(1,), dtype=None, ctx=None, out=None, **kwargs):
    return _out(_STATE["rng"].uniform(low, high, size=shape), dtype, out)


def normal(loc=0, scale=1, shape=(1,), dtype=None, ctx=None, out=None, **kwargs):
    return _out(_STATE["rng"].normal(loc, scale, size=shape), dtype, out)


def randint(low, high, shape=(1,), dtype="int32", ctx=None, out=None, **kwargs):
    return _out(_STATE["rng"].randint(low, high, size=shape), dtype, out)


def shuffle(data, **kwargs):
    values = data.asnumpy()
    _STATE["rng"].shuffle(values)
    return NDArray(values)
