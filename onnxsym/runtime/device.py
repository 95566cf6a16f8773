"""Device copies of host arrays, for sessions on an accelerator (ONNX Runtime's CUDA execution provider).

An NDArray's values live in its host (numpy) buffer, which everything in onnxsym reads and writes. A session on a
GPU reads its inputs from device buffers (OrtValues) bound once through IOBinding; each device copy remembers the
write count of the host buffer it was taken from and is uploaded again only after that buffer was written. So
parameters stay on the device across forward and backward runs until something changes them (an optimizer step,
`arr[:] = ...`, `set_params`), and a data batch is uploaded once per batch. Outputs come back to host buffers after
each run (the host stays the one truth: no read anywhere can see stale values).

Every writer of a host buffer that a session may read calls `touch(array)`: NDArray's `__setitem__` and in-place
operators, `copyto`, the optimizers, Module's batch loading and parameter copies, the training graphs' gradient and
auxiliary-state writes, and every session run for its outputs. A view's write counts for its whole buffer.
`ONNXSYM_DEVICE_CHECK=1` (tests) compares each unchanged device copy with its host buffer before a run and raises
on any difference: a writer that forgot `touch`. `ONNXSYM_GPU_EMULATION` (library.py) gives the device path on a
machine without a GPU: device memory is then separate host memory.
"""
import os
import weakref

import numpy as np

from ..base import MXNetError
from .library import gpu_emulation, ort

__all__ = ["touch", "DeviceCopy", "device_of"]

_writes = {}          # id(root buffer) -> write count, for buffers that have a device copy
_finalizers = {}


def device_of(ctx):
    """(ONNX Runtime device name, device id) of the memory sessions for `ctx` read their inputs from, or None for
    sessions that read host buffers directly (the CPU provider, zero-copy)."""
    emulation = gpu_emulation()
    if ctx is not None and ctx.device_type == "gpu":
        return ("cpu", 0) if emulation else ("cuda", ctx.device_id)
    return ("cpu", 0) if emulation == "all" else None


def _root(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def touch(array):
    """Note that host buffer `array` (a numpy array, or a view of one) was written."""
    if _writes:
        key = id(_root(array))
        if key in _writes:
            _writes[key] += 1


def _track(root):
    key = id(root)
    if key not in _writes:
        _writes[key] = 0
        _finalizers[key] = weakref.finalize(root, _forget, key)
    return key


def _forget(key):
    _writes.pop(key, None)
    _finalizers.pop(key, None)


class DeviceCopy:
    """The device buffer a session reads for host buffer `host` (C-contiguous), refreshed before each run."""

    __slots__ = ("host", "value", "_key", "_seen", "_root")

    def __init__(self, host, device):
        if not host.flags.c_contiguous:
            raise MXNetError("a device copy needs a C-contiguous host buffer")
        self.host = host
        self._root = _root(host)          # kept alive: its id is the key
        self._key = _track(self._root)
        self._seen = None
        self.value = ort.OrtValue.ortvalue_from_shape_and_type(list(host.shape), host.dtype.type, device[0],
                                                              device[1])

    def refresh(self):
        """Upload the host buffer if it was written since the last upload."""
        count = _writes[self._key]
        if count != self._seen:
            self.value.update_inplace(self.host)
            self._seen = count
        elif _CHECK and not _same(self.value.numpy(), self.host):
            raise MXNetError("device copy out of date: a host buffer of shape %s was written without "
                             "onnxsym.runtime.device.touch (a missing touch is a bug in onnxsym)" % (self.host.shape,))


def _same(a, b):
    return a.shape == b.shape and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind in "fc"
                                   else np.array_equal(a, b))


_CHECK = os.environ.get("ONNXSYM_DEVICE_CHECK", "") == "1"
