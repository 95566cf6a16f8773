"""`mx.util`: MXNet's switches for NumPy semantics and environment helpers.

NumPy *shape* semantics (`set_np_shape(True)`, `with mx.np_shape():`, `@mx.use_np_shape`) are MXNet 1.x's: in them
-1 marks an unknown dimension and None an unknown shape, so 0 is a real (zero-size) dimension and () a scalar;
outside them (the default, legacy semantics) 0 is unknown and () an unknown shape. The conversion happens where
shapes enter and leave the Symbol/NDArray API (onnxsym._shapes). NumPy *arrays* (`mx.np`, `use_np_array`,
`set_np(array=True)`) do not exist in onnxsym: asking for them is an MXNetError."""
import contextlib
import functools
import os

from .base import MXNetError
from .context import num_gpus

__all__ = ["is_np_shape", "set_np_shape", "np_shape", "use_np_shape", "is_np_array", "np_array", "use_np_array",
           "use_np", "set_np", "reset_np", "getenv", "setenv", "get_gpu_count"]

_NP_SHAPE = [False]


def _refuse(what):
    raise MXNetError("%s: onnxsym has no mx.np arrays (NumPy array semantics); NumPy shape semantics are "
                     "available (mx.np_shape / set_np_shape / use_np_shape)" % what)


def is_np_shape():
    """Whether NumPy shape semantics are on (-1 unknown, 0 a zero-size dimension, () a scalar)."""
    return _NP_SHAPE[0]


def set_np_shape(active):
    """Turn NumPy shape semantics on or off; returns the previous state."""
    previous, _NP_SHAPE[0] = _NP_SHAPE[0], bool(active)
    return previous


@contextlib.contextmanager
def np_shape(active=True):
    """Run a block with NumPy shape semantics on (or off), restoring the previous state after it."""
    previous = set_np_shape(active)
    try:
        yield
    finally:
        set_np_shape(previous)


def use_np_shape(func):
    """A function (or class: each method) that runs with NumPy shape semantics on."""
    if isinstance(func, type):
        for name, value in list(vars(func).items()):
            if callable(value) and not name.startswith("__"):
                setattr(func, name, use_np_shape(value))
        return func

    @functools.wraps(func)
    def with_np_shape(*args, **kwargs):
        with np_shape(True):
            return func(*args, **kwargs)
    return with_np_shape


def is_np_array():
    """False: arrays are NDArrays (no mx.np)."""
    return False


@contextlib.contextmanager
def np_array(active=True):
    if active:
        _refuse("np_array(True)")
    yield


def use_np_array(func):
    return _needs("use_np_array", func)


def use_np(func):
    return _needs("use_np", func)


def set_np(shape=True, array=True):
    """NumPy shape semantics as asked; NumPy arrays are refused (onnxsym has no mx.np)."""
    if array:
        _refuse("set_np(shape=%s, array=%s)" % (shape, array))
    set_np_shape(shape)


def reset_np():
    """Back to legacy semantics."""
    set_np_shape(False)


def _needs(what, func):
    if isinstance(func, type):
        for name, value in list(vars(func).items()):
            if callable(value) and not name.startswith("__"):
                setattr(func, name, _needs(what, value))
        return func

    @functools.wraps(func)
    def refused(*args, **kwargs):
        _refuse("%s(%s)" % (what, getattr(func, "__name__", "function")))
    return refused


def getenv(name):
    """The environment variable `name` as MXNet's runtime sees it (None when unset)."""
    return os.environ.get(name)


def setenv(name, value):
    """Set (value a string) or unset (None) an environment variable."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def get_gpu_count():
    return num_gpus()
