"""`mx.util`: MXNet's switches for NumPy semantics (`mx.np`) and environment helpers.

onnxsym implements MXNet's legacy semantics: shapes where 0 means an unknown dimension, and no `mx.np` arrays.
The NumPy switches therefore read as off, and turning one on is an MXNetError (a program that needs them would
otherwise get legacy semantics without a word); turning them off, or scopes and decorators that ask for off, work."""
import contextlib
import functools
import os

from .base import MXNetError
from .context import num_gpus

__all__ = ["is_np_shape", "set_np_shape", "np_shape", "use_np_shape", "is_np_array", "np_array", "use_np_array",
           "use_np", "set_np", "reset_np", "getenv", "setenv", "get_gpu_count"]


def _refuse(what):
    raise MXNetError("%s: onnxsym implements MXNet's legacy semantics (shapes with 0 as an unknown dimension, "
                     "NDArray rather than mx.np arrays); NumPy semantics are not available" % what)


def is_np_shape():
    """False: shapes follow MXNet's legacy convention (0 = unknown)."""
    return False


def set_np_shape(active):
    """Turning NumPy shape semantics off is accepted (returns the previous state, False); on is an MXNetError."""
    if active:
        _refuse("set_np_shape(True)")
    return False


@contextlib.contextmanager
def np_shape(active=True):
    """`with mx.np_shape(False):` runs the block as it is; `np_shape(True)` is an MXNetError."""
    set_np_shape(active)
    yield


def use_np_shape(func):
    """A function (or class: each method) that needs NumPy shape semantics: calling it is an MXNetError."""
    return _needs("use_np_shape", func)


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
    if shape or array:
        _refuse("set_np(shape=%s, array=%s)" % (shape, array))


def reset_np():
    """Back to legacy semantics: already there."""


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
