"""Device buffers of NDArrays, for sessions on an accelerator (ONNX Runtime's CUDA execution provider).

An NDArray on a device context has a host (numpy) buffer and, once a session has used it, a device buffer (an
OrtValue) kept with its root host buffer: its *home copy*. Either side can hold the newest values:
- the host, after a write through onnxsym (every writer calls `touch(array)`: NDArray's `__setitem__`, in-place
  operators and `copyto`, the optimizers' host updates, Module's batch loading and parameter copies, the training
  graphs' gradient and auxiliary-state writes, every host-bound session output); the next run that reads the array
  uploads it once;
- the device, after a session wrote the home copy (executor outputs, gradients, device optimizer updates:
  `written(copy)`); a read of the array on the host (`NDArray._data` of a device array, so `asnumpy`, indexing,
  the optimizers' host paths, checkpoints) downloads it first (`sync_host`).
So parameters, gradients and optimizer states stay on the device between training steps (optimizers with a device
kernel: SGD, Adam, see module/device_updates.py), and only data batches go up and what the program reads comes down.

A session input that is a view (not a whole root buffer) gets a copy of its own, refreshed from the host.
`ONNXSYM_DEVICE_CHECK=1` (tests) compares every unchanged device copy whose host side is current with its host
buffer before each run and raises on any difference: a writer that forgot `touch`. `ONNXSYM_GPU_EMULATION`
(library.py) gives the device path on a machine without a GPU: device memory is then separate host memory.
"""
import os
import weakref

import numpy as np

from ..base import MXNetError
from .library import gpu_emulation, ort

__all__ = ["touch", "DeviceCopy", "device_of", "home_copy", "written", "sync_host", "swap", "emulating_all",
           "version", "version_key", "versions", "watch", "share_externally", "externally_shared"]

_writes = {}          # id(root buffer) -> write count, for buffers that have a device copy
_owners = {}          # id(root buffer) -> the home copy holding newer values than the host
_homes = {}           # id(root buffer) -> its home copy
_finalizers = {}
_external = set()     # id(root buffer) of buffers shared for writing outside onnxsym (DLPack)


def device_of(ctx):
    """(ONNX Runtime device name, device id) of the memory sessions for `ctx` read their inputs from, or None for
    sessions that read host buffers directly (the CPU provider, zero-copy)."""
    emulation = gpu_emulation()
    if ctx is not None and ctx.device_type == "gpu":
        return ("cpu", 0) if emulation else ("cuda", ctx.device_id)
    return ("cpu", 0) if emulation == "all" else None


def emulating_all():
    """ONNXSYM_GPU_EMULATION=all (read once: it must hold for the whole process)."""
    return _ALL


_ALL = os.environ.get("ONNXSYM_GPU_EMULATION", "") == "all"


def _root(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def touch(array):
    """Note that host buffer `array` (a numpy array, or a view of one) was written: the host is newest."""
    if _writes:
        key = id(_root(array))
        if key in _writes:
            _writes[key] += 1
            _owners.pop(key, None)


def sync_host(array):
    """Bring the newest values of `array`'s root buffer to the host (a download when a session wrote it last)."""
    if _owners:
        owner = _owners.pop(id(_root(array)), None)
        if owner is not None:
            owner.host[...] = owner.value.numpy()


def version(array):
    """The write count of `array`'s root buffer (None when it has no device copy and is not watched): equal
    counts, same values."""
    return _writes.get(id(_root(array)))


def version_key(array):
    """The key of `array`'s root buffer in the write counts, for `versions`."""
    return id(_root(array))


def versions(keys):
    """The write counts of the buffers with these `version_key`s (a fast `version` of many arrays)."""
    return [_writes.get(key) for key in keys]


def share_externally(array):
    """Note that code outside onnxsym may write `array`'s root buffer (DLPack): its writes are not counted, so
    nothing may take its values as constants (`externally_shared`)."""
    _external.add(_track(_root(array)))


def externally_shared(key):
    """Whether the buffer with this `version_key` was shared for writing outside onnxsym."""
    return key in _external


def watch(array):
    """Count the writes of `array`'s root buffer from now on (`version`), as for buffers with a device copy."""
    _track(_root(array))


def written(copy):
    """A session wrote `copy`: for a home copy the device is now newest (other copies of the buffer are stale);
    a copy of a view is brought to the host at once (the newest-values mark is per whole buffer)."""
    _writes[copy._key] += 1
    copy._seen = _writes[copy._key]
    if copy.is_home:
        _owners[copy._key] = copy
    else:
        sync_host(copy.host)
        copy.host[...] = copy.value.numpy()
        _owners.pop(copy._key, None)


def swap(home, scratch):
    """Give `home` the device buffer `scratch` was written into (and `scratch` home's old one): a device update
    without a copy. Sessions that bound either rebind before their next run (BoundRun)."""
    home.value, scratch.value = scratch.value, home.value
    scratch._seen = None
    written(home)


def _track(root):
    key = id(root)
    if key not in _writes:
        _writes[key] = 0
        _finalizers[key] = weakref.finalize(root, _forget, key)
    return key


def _forget(key):
    for table in (_writes, _owners, _homes, _finalizers):
        table.pop(key, None)
    _external.discard(key)


def home_copy(host, device):
    """The home copy of root buffer `host` on `device`, made at its first use; a view gets a copy of its own."""
    if _root(host) is not host:
        return DeviceCopy(host, device)
    copy = _homes.get(id(host))
    if copy is None or copy.device != device:
        copy = _homes[id(host)] = DeviceCopy(host, device, home=True)
    return copy


class DeviceCopy:
    """The device buffer sessions read (and may write) for host buffer `host` (C-contiguous). A home copy holds
    its root buffer weakly (the tables here keep home copies; they go when the array's buffer goes); any other
    copy holds its host buffer, as the session binding it does."""

    __slots__ = ("_host", "_weak", "value", "device", "scratch", "_key", "_seen")

    def __init__(self, host, device, home=False):
        if not host.flags.c_contiguous:
            raise MXNetError("a device copy needs a C-contiguous host buffer")
        self._weak = home
        self._host = weakref.ref(host) if home else host
        self.device = device
        self.scratch = None               # the buffer a device update writes into (module/device_updates.py)
        self._key = _track(_root(host))
        self._seen = None
        self.value = ort.OrtValue.ortvalue_from_shape_and_type(list(host.shape), host.dtype.type, device[0],
                                                              device[1])

    @property
    def host(self):
        return self._host() if self._weak else self._host

    @property
    def is_home(self):
        return self._weak

    def refresh(self):
        """Make the device buffer current before a session reads it."""
        owner = _owners.get(self._key)
        if owner is self:
            return
        if owner is not None:           # another copy of the same buffer was written on the device
            sync_host(self.host)
        count = _writes[self._key]
        if count != self._seen or self._key in _external:   # (writes through DLPack are not counted)
            self.value.update_inplace(self.host)
            self._seen = count
        elif _CHECK and not _same(self.value.numpy(), self.host):
            raise MXNetError("device copy out of date: a host buffer of shape %s was written without "
                             "onnxsym.runtime.device.touch (a missing touch is a bug in onnxsym)" % (self.host.shape,))


def _same(a, b):
    return a.shape == b.shape and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind in "fc"
                                   else np.array_equal(a, b))


_CHECK = os.environ.get("ONNXSYM_DEVICE_CHECK", "") == "1"
