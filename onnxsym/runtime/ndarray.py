"""NDArray: an MXNet-style array that owns a contiguous numpy buffer, bound zero-copy to ONNX Runtime."""
import ctypes
import numbers
import weakref

import numpy as np

from ..base import MXNetError, normalize_dtype
from ..context import Context, current_context
from ..util import is_np_shape
from ..ops.shape import reshape_target
from .device import emulating_all, share_externally, sync_host, touch
from .library import cuda_available, gpu_unavailable

__all__ = ["NDArray", "DeviceNDArray", "host_buffer", "as_ndarray", "creation_shape"]

_EMULATE_ALL = emulating_all()      # ONNXSYM_GPU_EMULATION=all: every array a device array (testing aid)


def _check_ctx(ctx):
    ctx = Context(ctx) if ctx is not None else current_context()
    if ctx.device_type == "gpu":
        if not cuda_available():
            raise MXNetError(gpu_unavailable(ctx))
    return ctx



def _scalar_type(dtype):
    """numpy's canonical scalar type of `dtype` (int64, not longlong: arrays ORT returns may carry the 'q' alias,
    which compares equal to int64 but is another class, and MXNet code tests `x.dtype == np.int64` or prints it)."""
    return np.dtype(dtype.name).type

_HANDLES = weakref.WeakValueDictionary()      # id -> NDArray, for the handles _as_parameter_ gives


class NDArray:
    """An n-dimensional array on a device. Operators run as cached one-op ORT graphs; the buffer stays in
    place, so executors that bound it see every in-place write (`arr[:] = batch`). On a device context (a GPU) the
    array is a DeviceNDArray: its newest values may be on the device (runtime/device.py)."""

    # (_host: a DeviceNDArray's host buffer; _ag: what autograd's tape knows of it, runtime/tape.py)
    __slots__ = ("_data", "_ctx", "_host", "_ag", "_pending", "__weakref__")
    __array_priority__ = 1000.0

    def __init__(self, data, ctx=None, writable=True):
        if isinstance(data, ctypes.c_void_p):       # MXNet's NDArray(handle): the array a handle was made from
            source = _HANDLES.get(data.value)
            if source is None:
                raise MXNetError("NDArray(handle): %s is no handle of a live onnxsym NDArray (onnxsym's arrays have "
                                 "no C handles; only ctypes.cast(ndarray, NDArrayHandle) makes one)" % data)
            data, ctx = source._data, source._ctx
        if not isinstance(data, np.ndarray):
            raise TypeError("NDArray wraps a numpy array, got %s" % type(data).__name__)
        if isinstance(ctx, Context) and ctx.device_type != "gpu" and not _EMULATE_ALL:
            self._ctx = ctx
        else:
            self._ctx = _check_ctx(ctx)
            if self._ctx.device_type == "gpu" or _EMULATE_ALL:
                self.__class__ = DeviceNDArray
        self._data = data

    @property
    def _as_parameter_(self):
        """A ctypes handle of this array (ctypes.cast(array, NDArrayHandle)); NDArray(handle) views it again."""
        _HANDLES[id(self)] = self
        return ctypes.c_void_p(id(self))

    # ----- properties -----
    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return _scalar_type(self._data.dtype)

    @property
    def size(self):
        return int(self._data.size)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def context(self):
        return self._ctx

    ctx = context

    @property
    def stype(self):
        return "default"

    @property
    def T(self):
        if self.ndim != 2:
            raise ValueError("Only 2D matrix is allowed to be transposed")
        return self.transpose()

    @property
    def handle(self):
        return self._data

    # ----- conversion -----
    def asnumpy(self):
        """A numpy copy of the data."""
        raise_pending(self)
        return self._data.copy()

    def __array__(self, dtype=None, copy=None):
        """numpy's conversion (np.asarray(x), np.all(x == 1)): a copy of the data. MXNet 1.x has none, so numpy
        walked its arrays element by element into deeply nested object arrays (an error under numpy 2); numpy's
        binary operators still defer to NDArray's (__array_priority__)."""
        raise_pending(self)
        data = self._data.copy()
        return data if dtype is None else data.astype(dtype, copy=False)

    def asscalar(self):
        raise_pending(self)
        if self.size != 1:
            raise ValueError("The current array is not a scalar")
        return self._data.reshape(-1)[0]

    def copy(self):
        return _carry(self, NDArray(self._data.copy(), self._ctx))

    def copyto(self, other):
        """Copy into another NDArray (same shape) or to a new array on a Context."""
        if isinstance(other, NDArray):
            if other is self:
                return other
            if other.shape != self.shape:
                raise ValueError("copyto: shape mismatch, source %s vs destination %s" % (self.shape, other.shape))
            other._copy_from(self)
            return _carry(self, other)
        if isinstance(other, Context):
            return _carry(self, NDArray(self._data.copy(), _check_ctx(other)))
        raise TypeError("copyto does not support type %s" % type(other).__name__)

    def _copy_from(self, source):
        """copyto's write into this array (a sparse array also takes the source's stored entries)."""
        self._data[...] = source._data
        touch(self._data)

    def as_in_context(self, context):
        return self if self._ctx == context else self.copyto(context)

    def astype(self, dtype, copy=True):
        dtype = normalize_dtype(dtype)
        if not copy and dtype == self._data.dtype:
            return self
        return NDArray(self._data.astype(dtype), self._ctx)

    def tolist(self):
        raise_pending(self)
        return self._data.tolist()

    def wait_to_read(self):
        raise_pending(self)

    def wait_to_write(self):
        return None

    def reshape(self, *shape, **kwargs):
        """A view with a new shape; MXNet's special codes 0, -1, -2, -3, -4 and `reverse` are understood."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        shape = kwargs.pop("shape", shape)
        reverse = kwargs.pop("reverse", False)
        if kwargs:
            raise TypeError("reshape() got unexpected keyword arguments %s" % sorted(kwargs))
        try:
            target = reshape_target(self.shape, tuple(shape), reverse)
        except MXNetError:
            # MXNet's C reshape takes a smaller target (a view of the first elements), then its Python layer
            # refuses the size change with a ValueError; a larger one fails in C (MXNetError)
            if all(isinstance(d, (int, np.integer)) and d > 0 for d in shape) and int(np.prod(shape)) < self.size:
                raise ValueError("Cannot reshape array of size %d into shape %s" % (self.size, tuple(shape))) from None
            raise
        if self._on_tape():
            from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
            return invoke("Reshape", (self,), {"shape": target})
        return NDArray(self._data.reshape(target), self._ctx)

    # MXNet's NDArray methods with `inplace`: a view of the same buffer (reshape) instead of an op's new array
    def flatten(self, inplace=False):
        return self.reshape((0, -1)) if inplace else self._op("Flatten")

    def expand_dims(self, axis, inplace=False):
        if not inplace:
            return self._op("expand_dims", axis=axis)
        shape = list(self.shape)
        shape.insert(axis if axis >= 0 else axis + self.ndim + 1, 1)
        return self.reshape(shape)

    def squeeze(self, axis=None, inplace=False):
        if not inplace:
            return self._op("squeeze", axis=axis)
        axes = range(self.ndim) if axis is None else [axis] if isinstance(axis, int) else axis
        axes = {a % self.ndim for a in axes}
        return self.reshape([d for i, d in enumerate(self.shape) if not (i in axes and d == 1)] or [1])

    def to_dlpack_for_read(self):
        """A DLPack capsule of this array's memory (to read; mx.nd.from_dlpack, torch.utils.dlpack.from_dlpack)."""
        return np.ascontiguousarray(self._data).__dlpack__()

    def to_dlpack_for_write(self):
        """A DLPack capsule of this array's memory (a consumer may write into it)."""
        if not self._data.flags.c_contiguous:
            self._data = np.ascontiguousarray(self._data)
        share_externally(self._data)     # (its writes happen outside onnxsym: never folded as a constant)
        return self._data.__dlpack__()

    @staticmethod
    def _basic_indexing_slice_is_contiguous(slc_key, shape):
        """Whether slicing an array of `shape` with `slc_key` (one slice per axis) gives contiguous memory: going
        from the last axis to the first, once an axis keeps a proper subset, every axis before it keeps at most
        one element; a multi-element slice with a step other than 1 is never contiguous (MXNet's rule)."""
        lengths = [len(range(*s.indices(n))) for s, n in zip(slc_key, shape)]
        if int(np.prod(lengths)) <= 1:
            return True
        narrowed = False
        for s, n, count in zip(reversed(slc_key), reversed(shape), reversed(lengths)):
            if count > 1 and s.indices(n)[2] != 1:
                return False
            if narrowed and count > 1:
                return False
            narrowed = narrowed or count < n
        return True

    def broadcast_to(self, shape):
        """This array broadcast to `shape` (any sequence of ints; leading axes are added as MXNet's method adds them:
        only size-1 axes broadcast, else ValueError)."""
        shape = tuple(int(d) for d in shape)
        error = ("operands could not be broadcast together with remapped shapes[original->remapped]: %s and "
                 "requested shape %s" % (self.shape, shape))
        if len(shape) < self.ndim:
            raise ValueError(error)
        padded = (1,) * (len(shape) - self.ndim) + self.shape
        if any(have != want and have != 1 for have, want in zip(padded, shape)):
            raise ValueError(error)
        source = self if padded == self.shape else self.reshape(padded)
        return source._op("broadcast_to", shape=shape)

    def split_v2(self, indices_or_sections, axis=0, squeeze_axis=False):
        """mx.nd.split_v2(self, ...): parts along `axis` (int: that many; tuple: at those indices)."""
        from ..ops.shape import split_v2_params  # lazy: start-up time (runtime.ndarray loads before the ops)
        from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
        return invoke("_split_v2", (self,), split_v2_params(indices_or_sections, axis, squeeze_axis))

    def _op(self, name, **params):
        from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
        return invoke(name, (self,), params)

    def _on_tape(self):
        """Whether autograd records what is computed from this array (runtime/tape.py)."""
        if getattr(self, "_ag", None) is None:
            return False
        from . import tape  # lazy: NDArray's autograd methods are MXNet's API on a lower layer
        return tape.is_recording()

    def _fresh(self, data):
        return NDArray(np.asarray(data, order="C"), self._ctx)

    # ----- autograd (runtime/tape.py) -----
    def attach_grad(self, grad_req="write", stype=None):
        """Make this array a variable of mx.autograd: `grad` (zeros) receives its gradient at backward."""
        from . import tape  # lazy: NDArray's autograd methods are MXNet's API on a lower layer
        from .sparse import sparse_array  # lazy: sparse arrays are NDArray subclasses
        tape.mark_variables([self], [sparse_array(stype or "default", np.zeros_like(self._data), self._ctx)],
                            grad_req)

    @property
    def grad(self):
        """The gradient buffer of a variable (attach_grad), or None."""
        mark = getattr(self, "_ag", None)
        return getattr(mark, "grad", None)

    def detach(self):
        """The same data, outside the recorded graph."""
        return NDArray(self._data, self._ctx)

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        """Gradients of this array (times out_grad) into the variables it was computed from."""
        from . import tape  # lazy: NDArray's autograd methods are MXNet's API on a lower layer
        tape.backward([self], None if out_grad is None else [out_grad], retain_graph, train_mode)

    def tostype(self, stype):
        """A copy in storage type `stype` ('default', 'row_sparse' or 'csr'; runtime/sparse.py)."""
        from .sparse import cast_storage  # lazy: sparse arrays are NDArray subclasses
        return self.copy() if stype == "default" else cast_storage(self, stype)

    # ----- indexing -----
    def __getitem__(self, key):
        if self._on_tape():
            return self._recorded_getitem(key)
        if isinstance(key, NDArray):
            key = key._data.astype(np.int64)
        elif isinstance(key, tuple):
            key = tuple(k._data.astype(np.int64) if isinstance(k, NDArray) else k for k in key)
        view = self._data[key]
        if view.ndim == 0:
            view = view.reshape(1) if np.shares_memory(view, self._data) else np.asarray([view])
        if isinstance(view, np.ndarray) and view.flags.c_contiguous and np.shares_memory(view, self._data):
            return _carry(self, NDArray(view, self._ctx))
        return _carry(self, self._fresh(view))

    def _recorded_getitem(self, key):
        """Basic indexing (ints, slices) as recorded ops: slice, then Reshape for the int axes."""
        from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
        keys = key if isinstance(key, tuple) else (key,)
        if not all(isinstance(k, (numbers.Integral, slice)) for k in keys) or len(keys) > self.ndim:
            raise MXNetError("autograd: only basic indexing (integers and slices) of a recorded array is "
                             "differentiable here, got %r" % (key,))
        begin, end, step, dropped = [], [], [], []
        for axis, k in enumerate(keys):
            if isinstance(k, slice):
                start, stop, stride = k.indices(self.shape[axis])
                begin.append(start)
                end.append(stop if stop >= 0 else None)
                step.append(stride)
            else:
                index = int(k) + (self.shape[axis] if k < 0 else 0)
                if not 0 <= index < self.shape[axis]:
                    raise IndexError("index %d is out of bounds for axis %d with size %d" % (k, axis, self.shape[axis]))
                begin.append(index)
                end.append(index + 1)
                step.append(1)
                dropped.append(axis)
        out = invoke("slice", (self,), {"begin": tuple(begin), "end": tuple(end), "step": tuple(step)})
        if dropped:
            shape = tuple(d for axis, d in enumerate(out.shape) if axis not in dropped) or (1,)
            out = invoke("Reshape", (out,), {"shape": shape})
        return out

    def __setitem__(self, key, value):
        if getattr(self, "_ag", None) is not None:
            from . import tape  # lazy: NDArray's autograd methods are MXNet's API on a lower layer
            tape.check_in_place(self)
        if isinstance(value, NDArray):
            value = value._data
        elif not isinstance(value, (numbers.Number, np.ndarray, np.generic)):
            value = np.asarray(value)
        if isinstance(key, NDArray):
            key = key._data.astype(np.int64)
        try:
            self._data[key] = value
        except ValueError as err:
            # MXNet's legacy indexing: x[0] of a 1-D array is a (1,) slot, so a (1,) value fits a scalar position
            target = np.shape(self._data[key])
            if np.size(value) != int(np.prod(target)) or not np.size(value):
                raise ValueError("cannot assign a value of shape %s to NDArray[%r] of shape %s: %s"
                                 % (np.shape(value), key, self.shape, err)) from None
            self._data[key] = np.reshape(value, target)
        touch(self._data)

    def __len__(self):
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self):
        if self.size == 1:
            return bool(self._data.reshape(-1)[0])
        if self.size == 0:
            return False
        raise ValueError("The truth value of an NDArray with multiple elements is ambiguous.")

    def __repr__(self):
        shape_info = "x".join("%d" % x for x in self.shape)
        return "\n%s\n<NDArray %s @%s>" % (str(self._data), shape_info, self._ctx)

    __str__ = __repr__

    def __hash__(self):
        return id(self)

    def __getstate__(self):
        """MXNet's pickle state: {'handle': the array's raw bytes in MXNet's NDArray format}."""
        from ..ndarray.serialization import array_to_bytes  # lazy: MXNet's pickle API on a lower layer
        return {"handle": bytearray(array_to_bytes(self))}

    def __setstate__(self, state):
        """MXNet's pickle state (arrays pickled by MXNet too, whatever device they were on), or the numpy state
        older onnxsym versions wrote."""
        from ..ndarray.serialization import array_from_bytes  # lazy: MXNet's pickle API on a lower layer
        self._data = state["data"] if "data" in state else array_from_bytes(state["handle"])
        self._ctx = current_context()

    # ----- arithmetic: every operator runs a registered op -----
    def _binary(self, other, tensor_op, scalar_op, out=None):
        from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
        if isinstance(other, NDArray):
            return invoke(tensor_op, (self, other), {}, out)
        if isinstance(other, (numbers.Number, np.generic)):
            return invoke(scalar_op, (self,), {"scalar": other}, out)
        raise TypeError("type %s not supported" % type(other).__name__)

    def __add__(self, o):
        return self._binary(o, "broadcast_add", "_plus_scalar")

    __radd__ = __add__

    def __iadd__(self, o):
        return self._binary(o, "broadcast_add", "_plus_scalar", out=self)

    def __sub__(self, o):
        return self._binary(o, "broadcast_sub", "_minus_scalar")

    def __rsub__(self, o):
        return self._binary(o, "broadcast_sub", "_rminus_scalar") if not isinstance(o, NDArray) else o - self

    def __isub__(self, o):
        return self._binary(o, "broadcast_sub", "_minus_scalar", out=self)

    def __mul__(self, o):
        return self._binary(o, "broadcast_mul", "_mul_scalar")

    __rmul__ = __mul__

    def __imul__(self, o):
        return self._binary(o, "broadcast_mul", "_mul_scalar", out=self)

    def __truediv__(self, o):
        return self._binary(o, "broadcast_div", "_div_scalar")

    def __rtruediv__(self, o):
        return self._binary(o, "broadcast_div", "_rdiv_scalar") if not isinstance(o, NDArray) else o / self

    def __itruediv__(self, o):
        return self._binary(o, "broadcast_div", "_div_scalar", out=self)

    def __mod__(self, o):
        return self._binary(o, "broadcast_mod", "_mod_scalar")

    def __rmod__(self, o):
        return self._binary(o, "broadcast_mod", "_rmod_scalar") if not isinstance(o, NDArray) else o % self

    def __pow__(self, o):
        return self._binary(o, "broadcast_power", "_power_scalar")

    def __rpow__(self, o):
        return self._binary(o, "broadcast_power", "_rpower_scalar") if not isinstance(o, NDArray) else o ** self

    def __neg__(self):
        return self._binary(-1.0, None, "_mul_scalar")

    def __abs__(self):
        from .imperative import invoke  # lazy: NDArray's operators are MXNet's API on a lower layer
        return invoke("abs", (self,), {})

    def __eq__(self, o):
        return self._binary(o, "broadcast_equal", "_equal_scalar")

    def __ne__(self, o):
        return self._binary(o, "broadcast_not_equal", "_not_equal_scalar")

    def __gt__(self, o):
        return self._binary(o, "broadcast_greater", "_greater_scalar")

    def __ge__(self, o):
        return self._binary(o, "broadcast_greater_equal", "_greater_equal_scalar")

    def __lt__(self, o):
        return self._binary(o, "broadcast_lesser", "_lesser_scalar")

    def __le__(self, o):
        return self._binary(o, "broadcast_lesser_equal", "_lesser_equal_scalar")


class DeviceNDArray(NDArray):
    """An NDArray whose device buffer may hold newer values than its host buffer: reading `_data` brings them to
    the host first (`sync_host`); `_host` is the host buffer as it is (for binding, no transfer)."""

    __slots__ = ()

    @property
    def _data(self):
        host = self._host
        sync_host(host)
        return host

    @_data.setter
    def _data(self, value):
        self._host = value

    @property
    def shape(self):
        return self._host.shape

    @property
    def dtype(self):
        return _scalar_type(self._host.dtype)

    @property
    def size(self):
        return int(self._host.size)

    @property
    def ndim(self):
        return self._host.ndim


def host_buffer(array):
    """The host buffer of an NDArray as it is, without bringing a device's newer values (for binding)."""
    return array._host if isinstance(array, DeviceNDArray) else array._data


def as_ndarray(value, ctx=None, dtype=None):
    """An NDArray from an NDArray, numpy array, list or scalar (MXNet's `mx.nd.array` dtype rules)."""
    if isinstance(value, NDArray):
        data = value._data if dtype is None else value._data.astype(normalize_dtype(dtype))
        return NDArray(np.array(data, copy=True, order="C"), ctx or value.context)
    # MXNet 1.x: anything but an NDArray becomes float32 unless a dtype is given (numpy arrays included).
    try:
        data = np.array(value, dtype=normalize_dtype(dtype), copy=True, order="C")
    except (TypeError, ValueError) as err:
        raise TypeError("source_array must be array like object: %s" % err) from None
    return NDArray(data, ctx)       # a 0-d source gives a 0-d array, as in MXNet 1.9.1 (mx.nd.array(2.0).shape == ())


def creation_shape(shape, func, allow_zero=False):
    """The shape argument of mx.nd.zeros/ones/full/empty as a tuple of ints, refused as MXNet 1.9.1 refuses it
    (MXNetError): a non-integer entry fails its Shape parameter, a negative one its shape check, and a 0, which
    MXNet 1.x reads as an unknown dimension, its shape inference ("Operator _zeros inferring shapes failed"); only
    mx.nd.empty allocates a zero-size array."""
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        dims = tuple(dims)
        if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims):
            raise TypeError
    except TypeError:
        raise MXNetError("mx.nd.%s: invalid shape %r: expected a tuple of ints" % (func, shape)) from None
    dims = tuple(int(d) for d in dims)
    if is_np_shape():               # NumPy shape semantics: zero-size dimensions and () (a scalar) are real
        allow_zero = True
    elif not dims and not allow_zero:
        raise MXNetError("mx.nd.%s: shape () is an unknown shape in MXNet 1.x's legacy semantics; use shape (1,), or "
                         "a scalar under mx.np_shape()" % func)
    if min(dims, default=1) < 0 or (not allow_zero and min(dims, default=1) == 0):
        raise MXNetError("mx.nd.%s: invalid shape %s: every dimension must be %s (MXNet 1.x reads 0 as an unknown "
                         "dimension)" % (func, dims, "at least 0" if allow_zero else "positive"))
    return dims


# ----- errors MXNet's asynchronous engine delivers at the next read -----
class PendingError:
    """An op's run-time error (MXNetForwardError) waiting for the first read of its result, as MXNet's engine
    delivers it: asnumpy/wait_to_read/asscalar of that result or of anything computed from it, or mx.nd.waitall(),
    raises it once; the arrays read as zeros after that."""
    __slots__ = ("error", "raised", "__weakref__")

    def __init__(self, error):
        self.error, self.raised = error, False


_PENDING = weakref.WeakSet()


def defer(error):
    holder = PendingError(error)
    _PENDING.add(holder)
    return holder


def pending_of(arrays):
    """The first error not yet raised that one of `arrays` carries, or None."""
    for array in arrays:
        holder = getattr(array, "_pending", None)
        if holder is not None and not holder.raised:
            return holder
    return None


def raise_pending(array):
    holder = getattr(array, "_pending", None)
    if holder is not None and not holder.raised:
        holder.raised = True
        raise holder.error


def raise_any_pending():
    """mx.nd.waitall(): the first error still waiting for a read, if any."""
    for holder in list(_PENDING):
        if not holder.raised:
            holder.raised = True
            raise holder.error


def _carry(source, result):
    holder = pending_of([source])
    if holder is not None:
        result._pending = holder
    return result
