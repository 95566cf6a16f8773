"""MXNet's sparse storage types, 'row_sparse' (RowSparseNDArray) and 'csr' (CSRNDArray), over dense buffers.

ONNX Runtime computes on dense tensors, so a sparse array here keeps its values in the dense buffer every NDArray
has (`_data`: zero outside the stored entries) together with the entries it stores explicitly (`_stored`: a
RowSparseNDArray's row indices, a CSRNDArray's (indptr, indices); None when nothing beyond the non-zeros is
stored). What MXNet shows of a sparse array follows: `indices`/`indptr`/`data` list the stored entries (those kept
explicitly, plus any non-zero a dense write put elsewhere), `asnumpy()` and every operator read the dense values,
and the operators that keep MXNet's sparse output storage type (`result_stype`) return sparse arrays. Values
are MXNet's; memory is that of the dense array.
"""
import numbers
import warnings

import numpy as np

from ..base import STYPE_CODES, STYPE_NAMES, MXNetError, normalize_dtype
from ..context import Context
from .device import touch
from .ndarray import NDArray, _check_ctx

__all__ = ["BaseSparseNDArray", "RowSparseNDArray", "CSRNDArray", "NotSupportedForSparseNDArray", "STYPES",
           "is_sparse", "stype_of", "sparse_array", "cast_storage", "retain_rows", "result_stype", "sparse_result",
           "argument_stypes", "gradient_stypes"]

STYPES = tuple(STYPE_CODES)
_AUX_TYPES = {"row_sparse": [np.int64], "csr": [np.int64, np.int64]}


class NotSupportedForSparseNDArray(MXNetError):
    """An NDArray method a sparse array does not have (MXNet's exception of that name)."""

    def __init__(self, function, alias, *args):
        name = getattr(function, "__name__", str(function))
        call = "%s(%s)" % (alias or name, ", ".join(str(a) for a in args))
        super().__init__("Function %s (namely operator \"%s\") is not supported for SparseNDArray and only "
                         "available in NDArray." % (name, call))


def check_stype(stype):
    if stype not in STYPES:
        raise MXNetError("unknown storage type '%s' (MXNet's are %s)" % (stype, ", ".join(STYPES)))
    return stype


def is_sparse(array):
    return isinstance(array, BaseSparseNDArray)


def stype_of(array):
    return array.stype if isinstance(array, NDArray) else "default"


class BaseSparseNDArray(NDArray):
    """What RowSparseNDArray and CSRNDArray share (MXNet's base class of that name)."""

    __slots__ = ("_stored",)
    _stype = None

    def __init__(self, *args, **kwargs):
        raise TypeError("create sparse arrays with mx.nd.sparse.row_sparse_array / csr_matrix / zeros, or "
                        "NDArray.tostype('%s')" % self._stype)

    @classmethod
    def _make(cls, dense, ctx=None, stored=None):
        """A sparse array over the dense values `dense` (taken, not copied) with explicitly stored entries."""
        array = object.__new__(cls)
        array._ctx = ctx if isinstance(ctx, Context) and ctx.device_type != "gpu" else _check_ctx(ctx)
        array._data = dense
        array._stored = stored
        return array

    @property
    def stype(self):
        return self._stype

    @property
    def size(self):
        raise NotImplementedError()     # MXNet: the size of a sparse array is ambiguous

    def __repr__(self):
        return "\n<%s %s @%s>" % (type(self).__name__, "x".join("%d" % x for x in self.shape), self._ctx)

    __str__ = __repr__

    @property
    def _num_aux(self):
        return len(_AUX_TYPES[self._stype])

    @property
    def _aux_types(self):
        return list(_AUX_TYPES[self._stype])

    def _aux_data(self, i):
        return NDArray(self._aux()[i], self._ctx)

    def check_format(self, full_check=True):
        """Nothing can be malformed: the stored entries are checked when an array is made (MXNetError there)."""

    def asnumpy(self):
        return self._data.copy()

    def astype(self, dtype, copy=True):
        dtype = normalize_dtype(dtype)
        if not copy and dtype == self._data.dtype:
            return self
        return type(self)._make(self._data.astype(dtype), self._ctx, self._stored)

    def copy(self):
        return type(self)._make(self._data.copy(), self._ctx, self._stored)

    def copyto(self, other):
        if isinstance(other, Context):
            return type(self)._make(self._data.copy(), _check_ctx(other), self._stored)
        if isinstance(other, NDArray):
            if other.stype not in ("default", self._stype):
                raise TypeError("copyto does not support destination NDArray stype " + str(other.stype))
            if other is self:
                warnings.warn("You are attempting to copy an array to itself", RuntimeWarning)
                return False
            return super().copyto(other)
        raise TypeError("copyto does not support type " + str(type(other)))

    def _copy_from(self, source):
        """copyto's write: the values, and the source's stored entries when it has this storage type."""
        super()._copy_from(source)
        self._stored = source._stored if type(source) is type(self) else None

    def tostype(self, stype):
        check_stype(stype)
        if stype == self._stype:
            return self.copy()
        if stype != "default":
            raise ValueError("cast_storage from %s to %s is not supported" % (self._stype, stype))
        return NDArray(self._data.copy(), self._ctx)

    def reshape(self, *shape, **kwargs):
        raise NotSupportedForSparseNDArray(self.reshape, None, shape)

    def _at(self, idx):
        raise NotSupportedForSparseNDArray(self._at, "[idx]", idx)

    def _slice(self, start, stop):
        raise NotSupportedForSparseNDArray(self._slice, None, start, stop)

    def __setitem__(self, key, value):
        if not isinstance(key, slice):
            raise TypeError("%s only supports [:] for assignment" % type(self).__name__)
        if key.start is not None or key.stop is not None or key.step is not None:
            raise ValueError("Assignment with slice for %s is not implemented yet." % type(self).__name__)
        if isinstance(value, NDArray):
            if value is not self:
                if value.shape != self.shape:
                    raise MXNetError("cannot assign an array of shape %s to a %s of shape %s"
                                     % (value.shape, type(self).__name__, self.shape))
                value.copyto(self)
        elif isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray):
            self._set_scalar(value)
        elif isinstance(value, np.ndarray):
            self._assign_dense(value)
        else:
            raise TypeError("type %s not supported" % str(type(value)))

    def _assign_dense(self, values):
        """Write dense values (broadcast to the shape); the entries stored become the non-zeros."""
        self._data[...] = values
        self._stored = None
        touch(self._data)

    def _set_scalar(self, value):
        raise ValueError("Assigning numeric types to %s is not implemented yet." % type(self).__name__)

    # MXNet's in-place arithmetic of a sparse array: compute, then copy the result into it
    def __iadd__(self, other):
        (self + other).copyto(self)
        return self

    def __isub__(self, other):
        (self - other).copyto(self)
        return self

    def __imul__(self, other):
        (self * other).copyto(self)
        return self

    def __itruediv__(self, other):
        (self / other).copyto(self)
        return self

    __idiv__ = __itruediv__

    def __getstate__(self):
        from ..ndarray.serialization import array_to_bytes  # lazy: MXNet's pickle API on a lower layer
        return {"handle": bytearray(array_to_bytes(self))}

    def __setstate__(self, state):
        from ..ndarray.serialization import array_from_bytes  # lazy: MXNet's pickle API on a lower layer
        loaded = array_from_bytes(state["handle"])
        self._data, self._stored, self._ctx = loaded._data, loaded._stored, loaded._ctx

    def __reduce__(self):
        return _unpickle, (type(self).__name__,), self.__getstate__()


def _unpickle(name):
    return object.__new__({"RowSparseNDArray": RowSparseNDArray, "CSRNDArray": CSRNDArray}[name])


class RowSparseNDArray(BaseSparseNDArray):
    """MXNet's row_sparse array: the rows listed in `indices` are stored (as `data`), every other row is zero."""

    __slots__ = ()
    _stype = "row_sparse"

    def _rows(self):
        dense = self._data
        if dense.ndim == 0 or dense.shape[0] == 0:
            rows = np.zeros(0, np.int64)
        else:
            rows = np.flatnonzero(dense.reshape(dense.shape[0], -1).any(axis=1)).astype(np.int64)
        if self._stored is not None:
            rows = np.union1d(rows, self._stored[0]).astype(np.int64)
        return rows

    def _aux(self):
        return (self._rows(),)

    @property
    def indices(self):
        return NDArray(self._rows(), self._ctx)

    @property
    def data(self):
        return NDArray(np.ascontiguousarray(self._data[self._rows()]), self._ctx)

    def __getitem__(self, key):
        if isinstance(key, numbers.Integral):
            raise MXNetError("__getitem__ with int key is not implemented for RowSparseNDArray yet")
        if isinstance(key, slice):
            if key.step is not None or key.start is not None or key.stop is not None:
                raise MXNetError("RowSparseNDArray only supports [:] for __getitem__")
            return self
        if isinstance(key, tuple):
            raise ValueError("Multi-dimension indexing is not supported")
        raise ValueError("Undefined behaviour for {}".format(key))

    def _set_scalar(self, value):
        """MXNet's _set_value on a row_sparse array: every row stored, each set to `value`."""
        self._data[...] = value
        self._stored = (np.arange(self.shape[0], dtype=np.int64),)
        touch(self._data)

    def retain(self, indices):
        """The rows listed in `indices`, each stored (MXNet's sparse.retain; MXNet 1.9.1's method itself drops
        this array from the call and fails)."""
        return self._op("_sparse_retain", indices=indices)


class CSRNDArray(BaseSparseNDArray):
    """MXNet's csr matrix (2-D): row i stores the columns indices[indptr[i]:indptr[i+1]] with those data."""

    __slots__ = ()
    _stype = "csr"

    def _aux(self):
        mask = self._data != 0
        if self._stored is not None:
            indptr, cols = self._stored
            mask[np.repeat(np.arange(self.shape[0]), np.diff(indptr)), cols] = True
        rows, cols = np.nonzero(mask)
        indptr = np.zeros(self.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=self.shape[0]), out=indptr[1:])
        return indptr, cols.astype(np.int64)

    @property
    def indptr(self):
        return NDArray(self._aux()[0], self._ctx)

    @property
    def indices(self):
        return NDArray(self._aux()[1], self._ctx)

    @property
    def data(self):
        indptr, cols = self._aux()
        rows = np.repeat(np.arange(self.shape[0]), np.diff(indptr))
        return NDArray(np.ascontiguousarray(self._data[rows, cols]), self._ctx)

    def __getitem__(self, key):
        if isinstance(key, numbers.Integral):
            begin = self.shape[0] - 1 if key == -1 else int(key)
            return self._rows_slice(begin, begin + 1)
        if isinstance(key, slice):
            if key.step is not None:
                raise ValueError("CSRNDArray only supports continuous slicing on axis 0")
            if key.start is None and key.stop is None:
                return self
            return self._rows_slice(key.start or 0, self.shape[0] if key.stop is None else key.stop)
        if isinstance(key, tuple):
            raise ValueError("Multi-dimension indexing is not supported")
        raise ValueError("Undefined behaviour for {}".format(key))

    def _rows_slice(self, begin, end):
        """Rows [begin, end) as a CSRNDArray (MXNet's slice on axis 0; negative bounds count from the end)."""
        n = self.shape[0]
        begin, end = begin + n if begin < 0 else begin, end + n if end < 0 else end
        if not 0 <= begin < end <= n:
            raise MXNetError("slice [%d, %d) is out of the %d rows of the CSRNDArray (begin < end <= rows)"
                             % (begin, end, n))
        stored = None
        if self._stored is not None:
            indptr, cols = self._stored
            stored = (indptr[begin:end + 1] - indptr[begin], cols[indptr[begin]:indptr[end]])
        return CSRNDArray._make(self._data[begin:end].copy(), self._ctx, stored)

    def _take_rows(self, rows):
        """The rows `rows` (in that order) as a CSRNDArray, each keeping its stored entries."""
        rows = np.asarray(rows, np.int64)
        stored = None
        if self._stored is not None:
            indptr, cols = self._stored
            counts = np.diff(indptr)[rows]
            picked = [cols[indptr[r]:indptr[r + 1]] for r in rows]
            stored = (np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                      np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, np.int64))
        return CSRNDArray._make(np.ascontiguousarray(self._data[rows]), self._ctx, stored)

    def asscipy(self):
        import scipy.sparse  # lazy: optional, as in MXNet
        indptr, cols = self._aux()
        return scipy.sparse.csr_matrix((self.data.asnumpy(), cols, indptr), shape=self.shape, dtype=self.dtype)


_CLASSES = {"row_sparse": RowSparseNDArray, "csr": CSRNDArray}


def sparse_array(stype, dense, ctx=None, stored=None):
    """A `stype` array over the dense numpy values `dense` (taken, not copied); 'default' gives an NDArray."""
    check_stype(stype)
    if stype == "default":
        return NDArray(dense, ctx)
    if stype == "csr" and dense.ndim != 2:
        raise MXNetError("a csr array is 2-D; got shape %s" % (dense.shape,))
    if stype == "row_sparse" and dense.ndim == 0:
        raise MXNetError("a row_sparse array needs at least one dimension")
    return _CLASSES[stype]._make(dense, ctx, stored)


def cast_storage(array, stype):
    """MXNet's cast_storage: the same values in storage type `stype` (a new array; entries stored = non-zeros)."""
    check_stype(stype)
    if isinstance(array, BaseSparseNDArray):
        return array.tostype(stype)
    return sparse_array(stype, array._data.copy(), array.context)


def _row_ids(indices, nrows):
    ids = indices._data if isinstance(indices, NDArray) else np.asarray(indices)
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (not np.all(np.isfinite(ids)) or ids.min() < 0 or ids.max() >= nrows):
        raise MXNetError("row ids must be in [0, %d); got %s" % (nrows, np.unique(ids)))
    return np.unique(ids.astype(np.int64))


def retain_rows(array, indices):
    """MXNet's _sparse_retain (and what KVStore.row_sparse_pull gives): a row_sparse array storing each row
    listed in `indices` (sorted, once), with `array`'s values there, zero elsewhere."""
    if not isinstance(array, RowSparseNDArray):
        raise MXNetError("sparse.retain needs a row_sparse array, got storage type '%s'" % stype_of(array))
    wanted = _row_ids(indices, array.shape[0])
    dense = np.zeros_like(array._data)
    dense[wanted] = array._data[wanted]
    return RowSparseNDArray._make(dense, array.context, (wanted,))


# ----- storage types of operator results (MXNet's FInferStorageType on CPU, for sparse inputs) -----
# unary operators f with f(0) == 0 keep row_sparse and csr
_ZERO_PRESERVING = frozenset("""abs sign round rint ceil floor trunc fix square sqrt sin tan arcsin arctan sinh tanh
    arcsinh arctanh expm1 log1p degrees radians relu negative _copy identity _mul_scalar _div_scalar clip
    zeros_like Cast cast _square""".split())
_SCALAR_OPS = {"_equal_scalar": np.equal, "_not_equal_scalar": np.not_equal, "_greater_scalar": np.greater,
               "_greater_equal_scalar": np.greater_equal, "_lesser_scalar": np.less,
               "_lesser_equal_scalar": np.less_equal, "_plus_scalar": np.add, "_minus_scalar": np.subtract,
               "_rminus_scalar": lambda x, s: s - x, "_power_scalar": np.power,
               "_maximum_scalar": np.maximum, "_minimum_scalar": np.minimum}
_ELEMWISE = frozenset("elemwise_add elemwise_sub _plus _minus _add _sub broadcast_add broadcast_sub broadcast_plus "
                      "broadcast_minus".split())
_MULTIPLY = frozenset("elemwise_mul _mul broadcast_mul".split())


def sparse_result(op_name, params, inputs, result):
    """The (dense) result of an operator on these inputs in MXNet's output storage type: what _sparse_retain
    stores are the rows it was asked for, other sparse results store their non-zeros."""
    stype = result_stype(op_name, params, inputs)
    if stype == "default":
        return result
    if op_name == "_sparse_retain" and isinstance(inputs[0], RowSparseNDArray):
        return RowSparseNDArray._make(result._data, result.context, (_row_ids(inputs[1], result.shape[0]),))
    return sparse_array(stype, result._data, result.context)


def result_stype(op_name, params, inputs):
    """The storage type MXNet gives the (first) output of `op_name` on these inputs, at least one sparse."""
    if op_name == "cast_storage":
        return params["stype"]
    stypes = [stype_of(a) for a in inputs]
    first = stypes[0] if stypes else "default"
    if op_name in _ZERO_PRESERVING:
        if op_name == "clip" and not float(params.get("a_min", 0)) <= 0 <= float(params.get("a_max", 0)):
            return "default"
        return first
    if op_name in _SCALAR_OPS and "scalar" in params:
        # a scalar operator keeps the storage type where it maps 0 to 0 (MXNet: 1 == rsp is rsp, 0 == rsp dense)
        with np.errstate(all="ignore"):
            zero = _SCALAR_OPS[op_name](np.float64(0), np.float64(params["scalar"]))
        return first if zero == 0 else "default"
    if op_name == "_sparse_retain":
        return "row_sparse" if first == "row_sparse" else "default"
    if op_name in ("_square_sum", "square_sum"):
        axis = params.get("axis")
        axis = axis[0] if isinstance(axis, (tuple, list)) and len(axis) == 1 else axis
        return "row_sparse" if first == "row_sparse" and axis in (1, -1) and params.get("keepdims") else "default"
    if op_name in ("add_n", "ElementWiseSum", "_grad_add") and len(set(stypes)) == 1:
        return first
    if len(inputs) == 2 and inputs[0].shape == inputs[1].shape:
        if op_name in _ELEMWISE and stypes[0] == stypes[1]:
            return first
        if op_name in _MULTIPLY:
            if stypes[0] == stypes[1]:
                return first
            if "default" in stypes:
                return stypes[0] if stypes[0] != "default" else stypes[1]
    if op_name == "dot" and stypes[0] == "csr" and stypes[1] == "default" and params.get("transpose_a") and \
            not params.get("transpose_b"):
        return "row_sparse"
    if op_name == "slice" and first == "csr":
        return "csr"
    return "default"


# ----- storage types of a bound symbol's arrays (MXNet's storage inference for simple_bind) -----


def argument_stypes(symbol, stype_dict=None):
    """{argument: storage type}: `stype_dict`'s, else the variable's `__storage_type__` (mx.sym.var(stype=))."""
    stypes = {}
    for node in symbol._nodes():
        if node.is_variable:
            code = str(node.attrs.get("__storage_type__", "0"))
            stypes[node.name] = check_stype(STYPE_NAMES[int(code)] if code.isdigit() and int(code) in STYPE_NAMES
                                            else code)
    for name, stype in (stype_dict or {}).items():
        if name in stypes:
            stypes[name] = check_stype(stype)
    return stypes


def gradient_stypes(symbol, arg_stypes):
    """{argument: storage type of its gradient}: row_sparse where every use of the argument gives one (the weight
    of SparseEmbedding or of Embedding(sparse_grad=True); the right side of dot(csr, x); a row_sparse input of
    _square_sum), else default (MXNet sums
    gradients of several uses densely and falls back to dense for every other operator)."""
    uses = {}
    for node in symbol._nodes():
        if node.is_variable:
            continue
        names = node.op.input_names()
        for position, (source, _) in enumerate(node.inputs):
            if source.is_variable:
                uses.setdefault(source.name, []).append((node, names[position] if position < len(names) else None,
                                                         node.inputs))
    result = {}
    for name in symbol.list_arguments():
        found = uses.get(name, [])
        result[name] = "row_sparse" if found and all(_sparse_gradient(n, i, inputs, arg_stypes)
                                                     for n, i, inputs in found) else "default"
    return result


def _sparse_gradient(node, input_name, inputs, arg_stypes):
    op = node.op
    if op.op_name in ("Embedding", "_contrib_SparseEmbedding") and input_name == "weight":
        return op.op_name == "_contrib_SparseEmbedding" or bool(op.sparse_grad)
    if op.op_name == "_square_sum" and input_name == "data":
        return arg_stypes.get(node.inputs[0][0].name) == "row_sparse"
    if op.op_name == "dot" and input_name == "rhs" and not op.transpose_a and not op.transpose_b:
        lhs = inputs[0][0]
        return lhs.is_variable and arg_stypes.get(lhs.name) == "csr"
    return False
