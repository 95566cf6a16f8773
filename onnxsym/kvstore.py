"""`mx.kv` / `mx.kvstore`: MXNet's single-process key-value store ('local', 'device').

onnxsym runs on one device, so a store holds one array per key: `push` sums the values given for a key (MXNet's
reduction over devices) and either applies the optimizer's updater to the stored array (after `set_optimizer`) or
replaces it; `pull` copies the stored array out. Distributed types (dist_*, horovod, byteps) and NCCL are refused
with an MXNetError, as an MXNet build without them refuses them.
"""
from ._files import atomic_write
from .base import MXNetError
from .runtime.ndarray import NDArray

__all__ = ["KVStore", "create"]

_LOCAL_TYPES = ("local", "device", "local_update_cpu", "local_allreduce_cpu", "local_allreduce_device")


def _pairs(key, value, what):
    """[(key, [arrays])] for one key (value: an array, or a list of arrays, one per device) or a list of keys."""
    if isinstance(key, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(key):
            raise MXNetError("KVStore.%s: %d keys need a list of %d values, got %r"
                             % (what, len(key), len(key), type(value).__name__))
        return [(k, v if isinstance(v, (list, tuple)) else [v]) for k, v in zip(key, value)]
    return [(key, list(value) if isinstance(value, (list, tuple)) else [value])]


def _check_key(key):
    if not isinstance(key, (int, str)) or isinstance(key, bool):
        raise TypeError("KVStore keys are ints or strings, got %r" % (key,))
    return key


def _arrays(key, values, what):
    for value in values:
        if not isinstance(value, NDArray):
            raise TypeError("KVStore.%s: the value for key %r must be an NDArray, got %s"
                            % (what, key, type(value).__name__))
    return values


class KVStore:
    """A single-process key-value store (create it with `mx.kv.create`)."""

    def __init__(self, kv_type="local"):
        self._type = kv_type
        self._store = {}
        self._updater = None

    @property
    def type(self):
        return self._type

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    def init(self, key, value):
        """Store a copy of `value` (the first array when a list is given) under each key; keys are set once."""
        for k, values in _pairs(key, value, "init"):
            _check_key(k)
            _arrays(k, values, "init")
            if k in self._store:
                raise MXNetError("KVStore.init: key %r is already initialized" % (k,))
            self._store[k] = values[0].copy()

    def push(self, key, value, priority=0):
        """Sum the values of each key; apply the updater to the stored array, or store the sum."""
        for k, values in _pairs(key, value, "push"):
            stored = self._stored(k, "push")
            _arrays(k, values, "push")
            for v in values:
                if v.shape != stored.shape:
                    raise MXNetError("KVStore.push: key %r holds shape %s, got a value of shape %s"
                                     % (k, stored.shape, v.shape))
            merged = values[0].copy()
            for v in values[1:]:
                merged += v
            if self._updater is not None:
                self._updater(k, merged, stored)
            else:
                stored[:] = merged

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        """Copy each key's stored array into `out` (an NDArray, or a list of them, one per device)."""
        if out is None:
            raise MXNetError("KVStore.pull needs `out` arrays to copy into")
        for k, targets in _pairs(key, out, "pull"):
            stored = self._stored(k, "pull")
            for target in _arrays(k, targets, "pull"):
                if target.shape != stored.shape:
                    raise MXNetError("KVStore.pull: key %r holds shape %s, `out` has shape %s"
                                     % (k, stored.shape, target.shape))
                target[:] = stored

    def pushpull(self, key, value, out=None, priority=0):
        """push, then pull into `out` (into `value` when out is None)."""
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        raise MXNetError("KVStore.row_sparse_pull: onnxsym has no sparse storage")

    def set_gradient_compression(self, compression_params):
        raise MXNetError("KVStore.set_gradient_compression only applies to distributed stores, which onnxsym "
                         "does not have")

    def set_optimizer(self, optimizer):
        """Apply `optimizer` to the stored arrays at every push."""
        from .module.optimizer import Optimizer, get_updater  # lazy: MXNet's API; mx.mod imports kvstore
        if not isinstance(optimizer, Optimizer):
            raise TypeError("set_optimizer needs an mx.optimizer.Optimizer, got %s" % type(optimizer).__name__)
        self._updater = get_updater(optimizer)

    def _set_updater(self, updater):
        self._updater = updater

    def save_optimizer_states(self, fname, dump_optimizer=False):
        """Write the updater's states (onnxsym's safe format) atomically."""
        if self._updater is None:
            raise MXNetError("KVStore.save_optimizer_states: no optimizer set (call set_optimizer first)")
        atomic_write(fname, self._updater.get_states(dump_optimizer), mode="wb")

    def load_optimizer_states(self, fname):
        if self._updater is None:
            raise MXNetError("KVStore.load_optimizer_states: no optimizer set (call set_optimizer first)")
        self._updater._load_file(fname, self._store)

    def _barrier(self):
        """Nothing to wait for in one process."""

    def _stored(self, key, what):
        _check_key(key)
        if key not in self._store:
            raise MXNetError("KVStore.%s: key %r was not initialized (call init first)" % (what, key))
        return self._store[key]


def create(name="local"):
    """A KVStore of type `name`: 'local' or 'device' (one process, one device)."""
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    if name not in _LOCAL_TYPES:
        raise MXNetError("KVStore type '%s' is not available in onnxsym: it runs in one process on one device, so "
                         "only %s are supported" % (name, ", ".join(repr(t) for t in _LOCAL_TYPES)))
    return KVStore(name)
