"""Errors and dtype tables shared by every layer (MXNet's `mxnet.base`)."""
import ctypes
import warnings

import numpy as np

__all__ = ["MXNetError", "NotImplementedForSymbol", "numeric_types", "integer_types", "string_types", "mx_real_t",
           "py_str", "DTYPE_NAMES", "normalize_dtype", "dtype_name", "__version__", "NDArrayHandle"]

__version__ = "0.1.0"       # onnxsym's version (mx.__version__), here so that every layer can read it


class MXNetError(RuntimeError):
    """Graph, shape, type and operator errors: the exception type MXNet 1.x raises (a RuntimeError)."""


class MXNetForwardError(MXNetError):
    """An error MXNet's kernels raise when they run (a sampling op's parameter check): with mx.nd it is deferred,
    as MXNet's asynchronous engine defers it, to the first read of the result (asnumpy, wait_to_read, waitall)."""


class MXNetIndexError(MXNetError, IndexError):
    """An index out of bounds at run time (gather_nd, take with mode='raise', ...): MXNet raises it as IndexError,
    which this is too."""


class NotImplementedForSymbol(MXNetError):
    """An NDArray-only operation used on a Symbol (`bool(sym)`, `sym += 1`); MXNet's message, naming the function,
    the operator and the argument types."""

    def __init__(self, function, alias, *args):
        super().__init__()
        self.function = function.__name__
        self.alias = alias
        self.args = [str(type(a)) for a in args]

    def __str__(self):
        msg = "Function {}".format(self.function)
        if self.alias:
            msg += ' (namely operator "{}")'.format(self.alias)
        if self.args:
            msg += " with arguments ({})".format(", ".join(self.args))
        return msg + " is not implemented for Symbol and only available in NDArray."


numeric_types = (float, int, np.generic)
integer_types = (int, np.integer)
string_types = (str,)
mx_real_t = np.float32      # MXNet's default real type


# MXNet's C handle type: onnxsym's NDArrays have no C handles, but pass through ctypes as one (an NDArray's
# `_as_parameter_`), and NDArray(handle) gives the array back: what MXNet's monitor callbacks do with their arguments
NDArrayHandle = ctypes.c_void_p


# MXNet's storage types and their codes (NDArrayStorageType: .params records, a variable's __storage_type__)
STYPE_CODES = {"default": 0, "row_sparse": 1, "csr": 2}
STYPE_NAMES = {code: name for name, code in STYPE_CODES.items()}


def register_class(registry, klass, kind, error=TypeError):
    """MXNet's registries of optimizers and kvstores: `klass` under its lower-cased name in `registry`, warning
    when it replaces another class (`error` when klass is not a class)."""
    if not isinstance(klass, type):
        raise error("register expects %s class, got %r" % (kind, klass))
    name = klass.__name__.lower()
    if name in registry:
        old = registry[name]
        warnings.warn("WARNING: New %s %s.%s is overriding existing %s %s.%s"
                      % (kind.split()[-1], klass.__module__, klass.__name__, kind.split()[-1], old.__module__,
                         old.__name__))
    registry[name] = klass
    return klass


def py_str(value):
    """UTF-8 bytes as a str (MXNet's `base.py_str`, which its programs use on C strings)."""
    return value.decode("utf-8")


def _as_list(obj):
    """`obj` if it is a list or tuple, else [obj] (MXNet's `base._as_list`)."""
    return obj if isinstance(obj, (list, tuple)) else [obj]

# MXNet's type flags, in mshadow order (type_flag in .params, __dtype__ in JSON).
DTYPE_NAMES = ("float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool", "int16", "uint16",
               "uint32", "uint64")


def normalize_dtype(dtype):
    """numpy dtype for an MXNet/numpy dtype spec ('float32', np.float32, 0, ...); TypeError when unknown."""
    if dtype is None:
        return np.dtype(np.float32)
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        if 0 <= int(dtype) < len(DTYPE_NAMES):
            return np.dtype(DTYPE_NAMES[int(dtype)])
        raise TypeError("unknown MXNet dtype flag %r" % (dtype,))
    try:
        result = np.dtype(dtype)
    except TypeError as err:
        raise TypeError("unknown dtype %r" % (dtype,)) from err
    if result.name not in DTYPE_NAMES:
        raise TypeError("dtype %s is not supported (supported: %s)" % (result.name, ", ".join(DTYPE_NAMES)))
    return result


def dtype_name(dtype):
    """The MXNet dtype name ('float32') of any dtype spec."""
    return normalize_dtype(dtype).name
