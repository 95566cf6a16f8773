"""`mx.nd` / `mx.ndarray`: NDArray creation and one function per registered op (run imperatively on ORT)."""
import ctypes
import warnings

import numpy as np

from . import contrib, random, sparse  # noqa: F401  (mx.nd.contrib, mx.nd.random, mx.nd.sparse)
from .cached_op import CachedOp
from ..base import MXNetError, normalize_dtype
from ..runtime.imperative import invoke
from ..runtime.device import share_externally
from ..runtime.ndarray import NDArray, as_ndarray, creation_shape, raise_any_pending
from .functions import (add, divide, equal, eye, greater, greater_equal, histogram, lesser, lesser_equal,
                        linspace, logical_and, logical_or, logical_xor, maximum, minimum, modulo, moveaxis, multiply,
                        not_equal, onehot_encode, power, split_v2, subtract, true_divide)
from .serialization import load, load_frombuffer, save

__all__ = ["NDArray", "array", "empty", "zeros", "ones", "full", "arange", "zeros_like", "ones_like", "waitall",
           "concatenate", "save", "load", "load_frombuffer", "add", "subtract", "multiply", "divide", "true_divide",
           "modulo", "power", "maximum", "minimum", "equal", "not_equal", "greater", "greater_equal", "lesser",
           "lesser_equal", "logical_and", "logical_or", "logical_xor", "moveaxis", "onehot_encode", "eye",
           "linspace", "histogram", "split_v2", "from_numpy", "CachedOp", "to_dlpack_for_read",
           "to_dlpack_for_write", "from_dlpack"]




def from_numpy(ndarray, zero_copy=True, array_cls=NDArray):
    """An NDArray of a numpy array. zero_copy (c-contiguous arrays only, else ValueError): the NDArray uses the
    numpy array's memory, which becomes read-only for numpy (writes go through the NDArray), as MXNet's DLPack
    path; otherwise a copy in the array's own dtype."""
    if not zero_copy:
        return array(ndarray, dtype=ndarray.dtype)
    if not ndarray.flags["C_CONTIGUOUS"]:
        raise ValueError("Only c-contiguous arrays are supported for zero-copy")
    if ndarray.size:
        # a writable array over the same memory (numpy views follow their base's read-only flag, so through a
        # ctypes buffer over the address, which keeps the numpy array alive)
        memory = (ctypes.c_char * ndarray.nbytes).from_address(ndarray.ctypes.data)
        memory.owner = ndarray
        view = np.frombuffer(memory, dtype=ndarray.dtype).reshape(ndarray.shape)
    else:
        view = ndarray.copy()
    ndarray.flags["WRITEABLE"] = False
    return array_cls(view)


def to_dlpack_for_read(data):
    """mx.nd.to_dlpack_for_read(x): x.to_dlpack_for_read()."""
    return data.to_dlpack_for_read()


def to_dlpack_for_write(data):
    """mx.nd.to_dlpack_for_write(x): x.to_dlpack_for_write()."""
    return data.to_dlpack_for_write()


class _Capsule:
    """A DLPack capsule as numpy's from_dlpack takes it (an object with __dlpack__)."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, stream=None, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)       # kDLCPU


def from_dlpack(dlpack):
    """An NDArray over the memory of a DLPack capsule (or of an object with __dlpack__), as MXNet's from_dlpack:
    no copy, writes go to the producer's memory."""
    source = np.from_dlpack(dlpack if hasattr(dlpack, "__dlpack__") else _Capsule(dlpack))
    if not source.size:
        return NDArray(source.copy())
    memory = (ctypes.c_char * source.nbytes).from_address(source.ctypes.data)
    memory.owner = source
    result = NDArray(np.frombuffer(memory, dtype=source.dtype).reshape(source.shape))
    share_externally(result._data)      # the producer writes it without onnxsym knowing: never a folded constant
    return result


def array(source_array, ctx=None, dtype=None):
    """An NDArray copy of `source_array` (float32 unless `dtype` says otherwise or it is an NDArray); a sparse
    array or a scipy.sparse.csr_matrix gives a sparse copy (mx.nd.sparse.array)."""
    if isinstance(source_array, sparse.BaseSparseNDArray) or sparse._is_scipy_csr(source_array):
        return sparse.array(source_array, ctx, dtype)
    return as_ndarray(source_array, ctx, dtype)


def empty(shape, ctx=None, dtype=None, stype=None):
    """An uninitialised array (zero-filled here, so results are reproducible); `stype` 'row_sparse'/'csr' gives
    an empty sparse array."""
    if stype not in (None, "default"):
        return sparse.empty(stype, creation_shape(shape, "empty", allow_zero=True), ctx, dtype)
    return NDArray(np.zeros(creation_shape(shape, "empty", allow_zero=True), normalize_dtype(dtype)), ctx)


def zeros(shape, ctx=None, dtype=None, stype=None, out=None, **kwargs):
    """An all-zero array; `stype` 'row_sparse'/'csr' gives a sparse one (nothing stored)."""
    if stype not in (None, "default"):
        return sparse.zeros(stype, creation_shape(shape, "zeros"), ctx, dtype)
    return _filled(shape, 0, ctx, dtype, out, "zeros")


def ones(shape, ctx=None, dtype=None, out=None, **kwargs):
    return _filled(shape, 1, ctx, dtype, out, "ones")


def full(shape, val, ctx=None, dtype=np.float32, out=None):
    return _filled(shape, val, ctx, dtype, out, "full")


def _filled(shape, val, ctx, dtype, out, func):
    """A new array of `shape` filled with `val`, or `out` filled (its shape must be `shape`, as MXNet's)."""
    shape = creation_shape(shape, func)
    if out is not None:
        if tuple(out.shape) != shape:
            raise MXNetError("mx.nd.%s: out has shape %s, the requested shape is %s" % (func, out.shape, shape))
        out[:] = val
        return out
    return NDArray(np.full(shape, val, normalize_dtype(dtype)), ctx)


def arange(start, stop=None, step=1.0, repeat=1, infer_range=None, ctx=None, dtype=np.float32):
    """Evenly spaced values in [start, stop), each repeated `repeat` times (MXNet's arange; op _arange, whose
    kernel computes start + (i // repeat) * step in the output dtype)."""
    if infer_range is not None:
        warnings.warn("`infer_range` argument has been deprecated", DeprecationWarning)
    return invoke("_arange", (), dict(start=start, stop=stop, step=step, repeat=repeat, infer_range=False,
                                      dtype=dtype), None, ctx=ctx)


def concatenate(arrays, axis=0, always_copy=True):
    return NDArray(np.asarray(np.concatenate([a._data for a in arrays], axis=axis), order="C"), arrays[0].context)


def waitall():
    """Wait for all operations (they finish before they return here) and raise the first run-time error still
    waiting for a read (MXNet's engine delivers an op's errors at the next read or waitall)."""
    raise_any_pending()
