"""`mx.kv` / `mx.kvstore`: MXNet 1.9.1's single-process key-value store (src/kvstore/kvstore_local.h, comm.h).

A store keeps one array per key. `push` reduces the values given for a key (one per device) and either applies the
updater (after `set_optimizer` / `_set_updater`) to the stored array or stores the reduced value; `pull` copies the
stored array into every `out`. As in MXNet:

- a store takes int keys or str keys, whichever its first call used, and refuses the other kind;
- the reduction is the store type's: types with 'device' in their name sum in the stored dtype from left to right
  (CommDevice), the others as CommCPU does (first value + sums of up to four more), and a single value is not
  copied: without an updater the store keeps that very array;
- `set_gradient_compression({'type': '2bit', 'threshold': t})` ('device' types only) makes every push quantize each
  value on its own residual first (CommDevice::ReduceCompressed, see `_TwoBit`);
- updaters get str keys as UTF-8 bytes (MXNet's C callback).

Distributed types ('dist_sync', 'dist_device_sync', any name with 'dist' but not 'async') and 'horovod' are
kvstore_dist.py's stores on MPI, imported when first made; 'dist_async' and NCCL are refused with an MXNetError;
any other name is a local store, as MXNet's KVStore::Create makes one.
"""
import re
import warnings

import numpy as np

from ._files import atomic_write
from .base import MXNetError, register_class
from .runtime.ndarray import NDArray
from .runtime.sparse import RowSparseNDArray, retain_rows, sparse_array

__all__ = ["KVStoreBase", "KVStore", "create"]


class KVStoreAssertionError(MXNetError, AssertionError):
    """Bad keys or values caught before the store runs: MXNet asserts (AssertionError), which this is too."""


# ----- MXNet's _ctype_key_value: keys and values to (key, array) pairs -----

def _check_key(key):
    if not isinstance(key, (int, str)):
        raise KVStoreAssertionError("unexpected type for keys: " + str(type(key)))
    return key


def _pairs(key, value, what):
    """([(key, array)] with a key repeated for each of its arrays, whether the keys are str) for one key and an
    array or a list of arrays (one per device), or for a list of keys and a list of those."""
    if isinstance(key, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(key):
            raise KVStoreAssertionError("KVStore.%s: %d keys need a list of %d values, got %s"
                                        % (what, len(key), len(key), _describe(value)))
        pairs, use_str = [], None
        for k, v in zip(key, value):
            more, is_str = _pairs(k, v, what)
            if use_str is not None and is_str != use_str:
                raise KVStoreAssertionError("inconsistent types of keys detected.")
            pairs += more
            use_str = is_str
        return pairs, bool(use_str)       # no keys at all: MXNet's int-key call
    _check_key(key)
    values = [value] if isinstance(value, NDArray) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, NDArray) for v in values):
        raise KVStoreAssertionError("KVStore.%s: the value of key %r must be an NDArray or a list of NDArrays, got %s"
                                    % (what, key, _describe(value)))
    return [(key, v) for v in values], isinstance(key, str)


def _describe(value):
    if isinstance(value, (list, tuple)):
        return "a %s of %s" % (type(value).__name__, ", ".join(sorted({type(v).__name__ for v in value})) or "nothing")
    return type(value).__name__


def _shape_text(shape):
    return "[%s]" % ",".join(str(d) for d in shape)


def _check_shape(source, target, what, key):
    if tuple(source.shape) != tuple(target.shape):
        raise MXNetError("KVStore.%s of key %r: operands shape mismatch from.shape = %s to.shape=%s"
                         % (what, key, _shape_text(source.shape), _shape_text(target.shape)))


# ----- 2-bit gradient compression (src/kvstore/gradient_compression*) -----

_FLOAT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


class _TwoBit:
    """MXNet's 2-bit compression as CommDevice::ReduceCompressed applies it: for value i of a key, in float32,
    residual += value; the quantized value is +threshold where residual >= threshold, -threshold where
    residual <= -threshold, else 0; residual -= quantized. Residuals start at 0, one per (key, value position), and
    are never reset; the reduced value is the sum of the quantized values."""

    def __init__(self, params):
        if not isinstance(params, dict):
            raise KVStoreAssertionError("unexpected type for param_dict: " + str(type(params)))
        kwargs = {str(k): str(v) for k, v in params.items()}       # MXNet passes str(value) to the C API
        if "type" not in kwargs:
            raise MXNetError("Required parameter type of string is not presented")
        text = kwargs.get("threshold", "0.5")
        if not _FLOAT.match(text):
            raise MXNetError("Invalid Parameter format for threshold expect float but value='%s'" % text)
        self.threshold = np.float32(float(text))        # a C++ float
        if not self.threshold > 0:
            raise MXNetError("gradient compression: threshold must be greater than 0, got %s" % text)
        if kwargs["type"] != "2bit":
            raise MXNetError("Unknown type for gradient compression %s (MXNet has '2bit')" % kwargs["type"])
        self.residuals = {}

    def reduce(self, key, values, stored, key_dtype):
        """The sum of the quantized `values` of `key` (stored: its array, key_dtype: the dtype it was
        initialized with; MXNet's kernels read float32 only)."""
        for what, got in [("holds", key_dtype)] + [("got a value of", v.dtype) for v in values]:
            if np.dtype(got) != np.float32:
                raise MXNetError("2bit gradient compression: data type do not match: it works on float32 arrays "
                                 "only, and key %r %s dtype %s" % (key, what, np.dtype(got).name))
        threshold = self.threshold
        total = None
        for i, value in enumerate(values):
            residual = self.residuals.setdefault((key, i), np.zeros(stored.shape, np.float32))
            residual += value.asnumpy()
            quantized = np.where(residual >= threshold, threshold,
                                 np.where(residual <= -threshold, -threshold, np.float32(0))).astype(np.float32)
            residual -= quantized
            total = quantized if total is None else total + quantized
        return NDArray(total, stored.context)


# ----- the stores -----

def _capable(capability, optimizer):
    """is_capable's answer for a store that can (`optimizer`) or cannot run an optimizer: KVStoreBase.OPTIMIZER
    is the only capability MXNet names (ValueError for any other, as MXNet)."""
    if capability.lower() == KVStoreBase.OPTIMIZER:
        return optimizer
    raise ValueError("Unknown capability: {}".format(capability))


class KVStoreBase:
    """MXNet's abstract key-value store interface; `register` adds a class that `create` makes by name."""

    OPTIMIZER = "optimizer"
    kv_registry = {}

    def broadcast(self, key, value, out, priority=0):
        raise NotImplementedError()

    def pushpull(self, key, value, out=None, priority=0):
        raise NotImplementedError()

    def set_optimizer(self, optimizer):
        raise NotImplementedError()

    def is_capable(self, capability):
        raise NotImplementedError()

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise NotImplementedError()

    def load_optimizer_states(self, fname):
        raise NotImplementedError()

    @property
    def type(self):
        raise NotImplementedError()

    @property
    def rank(self):
        raise NotImplementedError()

    @property
    def num_workers(self):
        raise NotImplementedError()

    @staticmethod
    def register(klass):
        """Register a KVStoreBase subclass under its lower-case class name (a decorator)."""
        return register_class(KVStoreBase.kv_registry, klass, "a kvstore", KVStoreAssertionError)


class KVStore(KVStoreBase):
    """A single-process key-value store (create it with `mx.kv.create`)."""

    def __init__(self, kv_type="local"):
        self._type = kv_type
        self._device_comm = "device" in kv_type       # CommDevice, else CommCPU (kvstore.cc)
        self._store = {}
        self._dtypes = {}             # key -> the dtype it was initialized with (MXNet's merge buffers keep it)
        self._ids = {}                # str key -> MXNet's int id (init order); int keys are their own id
        self._key_type = None         # str or int, set by the first call that names keys
        self._compression = None
        self._updater = None
        self._warned = set()          # keys whose sparse pull targets were ignored (MXNet warns once per key)

    @property
    def type(self):
        return self._type

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    def is_capable(self, capability):
        """Whether the store has `capability`: only KVStoreBase.OPTIMIZER is known, and a local store has it."""
        return _capable(capability, optimizer=True)

    def init(self, key, value):
        """Store a copy of each value under its key; each key once (a key with several values is initialized
        twice, an error as in MXNet)."""
        pairs, use_str = _pairs(key, value, "init")
        self._set_key_type(use_str)
        self._init(pairs)

    def push(self, key, value, priority=0):
        """Reduce the values of each key (`_reduce`) and apply the updater to the stored array, or store the result.
        Keys are taken in MXNet's order (int keys ascending, str keys in the order they were initialized)."""
        pairs, use_str = _pairs(key, value, "push")
        self._set_key_type(use_str)
        for k, values in self._grouped(pairs, "push"):
            merged = self._reduce(k, values)
            if self._updater is not None:
                self._updater(k.encode("utf-8") if isinstance(k, str) else k, merged, self._store[k])
            else:
                self._store[k] = merged

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        """Copy each key's stored array into `out` (an NDArray, or a list of them, one per device)."""
        if out is None:
            raise KVStoreAssertionError("KVStore.pull needs `out` arrays to copy into")
        pairs, use_str = _pairs(key, out, "pull")
        self._set_key_type(use_str)
        self._pull(pairs, ignore_sparse)

    def pushpull(self, key, value, out=None, priority=0):
        """push, then pull into `out` (into `value` when out is None)."""
        pairs, use_str = _pairs(key, value, "pushpull")
        out_pairs = pairs if out is None else _pairs(key, out, "pushpull")[0]
        self._set_key_type(use_str)
        self._grouped(out_pairs, "pushpull")        # every key is checked before anything changes
        self.push(key, value, priority)
        self._pull(out_pairs)

    def broadcast(self, key, value, out, priority=0):
        """Initialize each key with its value, then pull it into `out` (a key is broadcast once, as it is
        initialized once)."""
        pairs, use_str = _pairs(key, value, "broadcast")
        out_pairs = _pairs(key, out, "broadcast")[0]
        self._set_key_type(use_str)
        self._init(pairs)
        self._pull(out_pairs)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        """Copy the rows `row_ids` of each key's row_sparse value into `out` (row_sparse arrays; one row_ids
        array for all outs, or one per out)."""
        if out is None or row_ids is None:
            raise KVStoreAssertionError("KVStore.row_sparse_pull needs `out` and `row_ids`")
        if isinstance(row_ids, NDArray):
            row_ids = [row_ids]
        if not isinstance(row_ids, list):
            raise KVStoreAssertionError("row_ids should be NDArray or list of NDArray")
        single = len(row_ids) == 1 and isinstance(out, list)
        pairs, use_str = _pairs(key, [out[0]] if single else out, "row_sparse_pull")
        id_pairs = _pairs(key, row_ids, "row_sparse_pull")[0]
        if len(id_pairs) != len(pairs):
            raise KVStoreAssertionError("the number of row_ids doesn't match the number of values")
        self._set_key_type(use_str)
        targets = dict(self._grouped(pairs, "row_sparse_pull"))
        ids = dict(self._grouped(id_pairs, "row_sparse_pull"))
        for k, outs in targets.items():
            self._row_sparse_copy_out(k, outs, ids[k])
        if single:
            for other in out[1:]:
                out[0].copyto(other)

    def set_gradient_compression(self, compression_params):
        """2-bit gradient compression ({'type': '2bit', 'threshold': 0.5}) of every later push; MXNet's local
        stores compress on 'device' types only (see `_TwoBit`)."""
        if "device" not in self._type and "dist" not in self._type:
            raise MXNetError("Gradient compression is not supported for this type of kvstore ('%s': MXNet "
                             "compresses on types with 'device' or 'dist' in their name)" % self._type)
        compression = _TwoBit(compression_params)
        if self._compression is not None:
            compression.residuals = self._compression.residuals    # MXNet keeps its residual buffers
        self._compression = compression

    def set_optimizer(self, optimizer):
        """Apply `optimizer` to the stored arrays at every push."""
        from .module.optimizer import Optimizer, get_updater  # lazy: MXNet's API; mx.mod imports kvstore
        if not isinstance(optimizer, Optimizer):
            raise TypeError("set_optimizer needs an mx.optimizer.Optimizer, got %s" % type(optimizer).__name__)
        self._set_updater(get_updater(optimizer))

    def _set_updater(self, updater):
        """updater(key, merged value, stored array) runs at every push (str keys come as UTF-8 bytes)."""
        self._updater = updater

    def save_optimizer_states(self, fname, dump_optimizer=False):
        """Write the updater's states (onnxsym's safe format) atomically."""
        if self._updater is None:
            raise KVStoreAssertionError("Cannot save states for distributed training: this store has no optimizer "
                                        "(call set_optimizer first)")
        atomic_write(fname, self._updater.get_states(dump_optimizer), mode="wb")

    def load_optimizer_states(self, fname):
        """Read states `save_optimizer_states` wrote, each checked against its stored array."""
        if self._updater is None:
            raise KVStoreAssertionError("Cannot load states for distributed training: this store has no optimizer "
                                        "(call set_optimizer first)")
        self._updater._load_file(fname, self._store)

    def _barrier(self):
        """Nothing to wait for in one process."""

    def _send_command_to_servers(self, head, body):
        """A local store has no servers: MXNet's KVStoreLocal ignores commands."""

    # ----- the store's steps -----
    def _set_key_type(self, use_str):
        key_type = str if use_str else int
        if self._key_type is None:
            self._key_type = key_type
        if self._key_type is not key_type:
            raise MXNetError("Mixed key types are not allowed: this store uses %s keys, got %s keys"
                             % (self._key_type.__name__, key_type.__name__))

    def _init(self, pairs):
        seen = set()
        for k, v in pairs:
            if k in self._store or k in seen:
                raise MXNetError("duplicate init of key %s. Please double check if you called kv.init or "
                                 "kv.broadcast with this key multiple times" % (k,))
            seen.add(k)
        for k, v in pairs:
            if isinstance(k, str):
                self._ids[k] = len(self._ids)
            self._store[k] = v.copy()
            self._dtypes[k] = np.dtype(v.dtype)

    def _grouped(self, pairs, what):
        """[(key, [arrays])] in MXNet's key order; every key must be initialized."""
        groups = {}
        for k, v in pairs:
            if k not in self._store:
                if isinstance(k, str):
                    raise MXNetError("KVStore.%s: key %s doesn't exist. Did you init?" % (what, k))
                raise MXNetError("KVStore.%s: key %s has not been inited" % (what, k))
            groups.setdefault(k, []).append(v)
        return sorted(groups.items(), key=lambda item: self._ids.get(item[0], item[0]))

    def _pull(self, pairs, ignore_sparse=True):
        """pull into dense targets; sparse ones are skipped (warned once per key) when ignore_sparse, as MXNet's
        pull, pushpull and broadcast do."""
        if ignore_sparse:
            kept = []
            for k, target in pairs:
                if getattr(target, "stype", "default") == "default":
                    kept.append((k, target))
                elif k not in self._warned:
                    self._warned.add(k)
                    warnings.warn("Warning: non-default weights detected during kvstore pull. This call has been "
                                  "ignored. Please make sure to use kv.row_sparse_pull() or module.prepare() with "
                                  "row_ids.")
            pairs = kept
        for k, targets in self._grouped(pairs, "pull"):
            self._copy_out(k, targets)

    def _reduce(self, key, values):
        """The reduction of one key's pushed values (MXNet's Comm::Reduce), as an NDArray."""
        stored = self._store[key]
        for value in values:
            _check_shape(value, stored, "push", key)
        if self._compression is not None and self._device_comm:
            return self._compression.reduce(key, values, stored, self._dtypes[key])
        if len(values) == 1:
            return values[0]            # comm.h: "avoid extra copy for single device"
        dtype = self._dtypes[key]
        arrays = [v.asnumpy() for v in values]
        if isinstance(values[0], RowSparseNDArray):
            # Comm::ReduceRowSparse (the first value decides): the sum, storing every row some value stores
            total = arrays[0].astype(dtype)
            for a in arrays[1:]:
                total = total + a.astype(dtype)
            rows = np.unique(np.concatenate([v._rows() for v in values if isinstance(v, RowSparseNDArray)]))
            return sparse_array("row_sparse", total, stored.context, (rows.astype(np.int64),))
        if self._device_comm:           # CommDevice: cast into the key's dtype, ElementwiseSum left to right
            total = arrays[0].astype(dtype)
            for a in arrays[1:]:
                total = total + a.astype(dtype)
            return NDArray(total, stored.context)
        if arrays[0].dtype != dtype:    # CommCPU sums the first value's dtype into buffers of the key's dtype
            raise MXNetError("KVStore.push of key %r: data type do not match: key %r holds %s, the first value is %s"
                             % (key, key, dtype.name, arrays[0].dtype.name))
        total = arrays[0].copy()
        rest = [a.astype(dtype) for a in arrays[1:]]
        for start in range(0, len(rest), 4):    # ReduceSumCPU: in_0 += in_1 + in_2 + in_3 + in_4
            chunk = rest[start]
            for a in rest[start + 1:start + 4]:
                chunk = chunk + a
            total = total + chunk
        return NDArray(total, stored.context)

    def _copy_out(self, key, targets):
        """Copy the stored array of `key` into each target (MXNet's Comm::Broadcast), cast to its dtype."""
        stored = self._store[key]
        for target in targets:
            _check_shape(stored, target, "pull", key)
            if target is stored:
                continue
            if target.stype == stored.stype != "default" and target.dtype == stored.dtype:
                stored.copyto(target)       # a sparse target takes the stored entries too
            else:
                target[:] = stored.asnumpy().astype(target.dtype, copy=False)

    def _row_sparse_copy_out(self, key, targets, row_ids):
        """row_sparse_pull's copy (MXNet's BroadcastRowSparse), which takes row_sparse targets only."""
        for target in targets:
            stype = getattr(target, "stype", "default")
            if stype != "row_sparse":
                raise MXNetError("KVStore.row_sparse_pull of key %r: Expected row_sparse storage type for "
                                 "row_sparse_pull values, but detected storage type %s" % (key, stype))
        stored = self._store[key]
        if stored.stype != "row_sparse":
            raise MXNetError("KVStore.row_sparse_pull of key %r: PullRowSparse expects row_sparse src NDArray; the "
                             "key holds a %s array" % (key, stored.stype))
        for target, ids in zip(targets, row_ids if len(row_ids) == len(targets) else row_ids * len(targets)):
            _check_shape(stored, target, "row_sparse_pull", key)
            retain_rows(stored, ids).copyto(target)


@KVStoreBase.register
class TestStore(KVStoreBase):
    """MXNet's key-value store for testing: broadcast copies, pushpull sums the values; no optimizer."""

    def broadcast(self, key, value, out, priority=0):
        out = out if isinstance(out, list) else [out]
        for o in out:
            o[:] = value

    def pushpull(self, key, value, out=None, priority=0):
        if isinstance(value, NDArray):
            if out is not None:
                out = out if isinstance(out, list) else [out]
                for o in out:
                    o[:] = value
            return
        ctx = value[0].context
        reduced = value[0].as_in_context(ctx).copy()
        for v in value[1:]:
            reduced += v.as_in_context(ctx)
        for o in (value if out is None else out if isinstance(out, list) else [out]):
            o[:] = reduced

    @staticmethod
    def is_capable(capability):
        return _capable(capability, optimizer=False)

    @property
    def type(self):
        return "teststore"

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1


def create(name="local"):
    """A KVStore of type `name`: a registered KVStoreBase class ('teststore'), a store across MPI processes
    ('dist_sync', 'dist_device_sync', 'horovod': kvstore_dist.py), or a local store ('local', 'device', ...: MXNet
    makes any name without 'dist' or 'nccl' a local store, 'device' ones reduce on device)."""
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    name = name.lower()
    if name in KVStoreBase.kv_registry:
        return KVStoreBase.kv_registry[name]()
    if "dist" in name and "async" in name:
        raise MXNetError("KVStore type '%s' is not available in onnxsym: asynchronous updates need parameter "
                         "servers, and onnxsym's workers all-reduce over MPI instead; use 'dist_sync' (or "
                         "'dist_device_sync'), whose results equal one process training the whole batch" % name)
    if "dist" in name or name == "horovod":
        from . import kvstore_dist       # lazy: `import onnxsym` never loads MPI
        return kvstore_dist.Horovod() if name == "horovod" else kvstore_dist.DistKVStore(name)
    if "nccl" in name:
        raise MXNetError("KVStore type '%s' is not available in onnxsym: it has no NCCL; use 'local' or 'device' "
                         "in one process, 'dist_sync' across processes (MPI)" % name)
    return KVStore(name)
