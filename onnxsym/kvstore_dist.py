"""Distributed key-value stores on MPI: `mx.kv.create('dist_sync')`, `'dist_device_sync'` and `'horovod'`.

MXNet 1.9.1's dist_sync runs parameter servers (ps-lite): each worker pushes its devices' summed gradient, the
servers sum the workers' pushes and, with an optimizer set, update the weights; pulls return the same summed value
(or weight) to every worker. onnxsym has no servers: every worker is an MPI process (COMM_WORLD, through mpi4py) and
the sum over workers is an allreduce, after which every worker applies the same update to the same summed value, so
all hold identical weights. What a program sees is MXNet's dist_sync:

- `rank`, `num_workers`, `barrier()`;
- `init` stores rank 0's value on every worker (MXNet's servers keep the first worker's init);
- `push` sums the values given for a key (its devices', as the local store does) and then across workers; `pull`
  gives that sum, or the updated weight when an optimizer is set (`set_optimizer`);
- the keys of one push call travel in one allreduce per dtype (one fused buffer), not one call per key.

'dist_async' has no honest equivalent without servers and is refused (kvstore.create). Gradient compression is
accepted and ignored: the workers exchange full-precision sums. 'horovod' is the allreduce store MXNet's
kvstore/horovod.py defines (pushpull sums, broadcast from rank 0, no optimizer on the store), run on MPI too.

mpi4py is imported here only, when such a store is made, so `import onnxsym` never loads MPI. Start the workers with
`onnxsym launch -n 2 -- python train.py` (or mpiexec, srun); a program started alone is one worker of one.
"""
import os
import warnings

import numpy as np

from .base import MXNetError
from .kvstore import KVStore, _capable, _pairs, _TwoBit
from .runtime.device import touch
from .runtime.ndarray import NDArray
from .runtime.sparse import RowSparseNDArray, sparse_array

__all__ = ["DistKVStore", "Horovod", "comm_world"]

INSTALL_HINT = "pip install mpi4py mpich"


def comm_world():
    """MPI's COMM_WORLD through mpi4py, or an MXNetError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise MXNetError("distributed kvstores run on MPI through mpi4py, which is not installed (%s): `%s` "
                         "(MPICH from PyPI: no compiler needed), then start the workers with `onnxsym launch -n N "
                         "-- python train.py`" % (err, INSTALL_HINT)) from None
    world = MPI.COMM_WORLD
    for variable in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):     # what MPICH's and Open MPI's mpiexec announce
        launched = os.environ.get(variable, "")
        if launched.isdigit() and int(launched) != world.Get_size():
            raise MXNetError("this worker was started as one of %s processes, but MPI (%s) sees %d: the mpiexec "
                             "that started it belongs to another MPI than the one mpi4py loads; start the workers "
                             "with `onnxsym launch`, which uses the mpiexec beside this Python"
                             % (launched, MPI.Get_library_version().splitlines()[0].strip(), world.Get_size()))
    return world


class DistKVStore(KVStore):
    """MXNet's dist_sync store on MPI: every worker holds every key; sums run over devices, then over workers."""

    def __init__(self, kv_type="dist_sync"):
        super().__init__(kv_type)
        self._comm = comm_world()
        self._compression_params = None

    @property
    def rank(self):
        return self._comm.Get_rank()

    @property
    def num_workers(self):
        return self._comm.Get_size()

    def barrier(self):
        """Wait until every worker gets here (MXNet 1.9.1 names it `_barrier`: both names work)."""
        self._comm.Barrier()

    _barrier = barrier

    def set_gradient_compression(self, compression_params):
        """Checked as MXNet checks it ({'type': '2bit', 'threshold': 0.5}) and then ignored: the workers' sums
        travel uncompressed (an MPI allreduce of 2-bit codes would need a custom reduction, and on one machine or a
        fast network the full sum costs little), so the results are those of training without compression."""
        _TwoBit(compression_params)
        self._compression_params = dict(compression_params)
        warnings.warn("kvstore '%s': gradient compression is accepted and ignored by onnxsym's MPI stores (the "
                      "workers sum full-precision values)" % self._type, stacklevel=2)

    # ----- across workers -----
    def _init(self, pairs):
        super()._init(pairs)
        keys = list(dict.fromkeys(k for k, _ in pairs))
        self.broadcast_arrays([self._store[k] for k in keys])

    def push(self, key, value, priority=0):
        """Sum each key's values over the devices, then over the workers (one allreduce for all keys of a dtype),
        then apply the updater to the stored array, or store the sum."""
        pairs, use_str = _pairs(key, value, "push")
        self._set_key_type(use_str)
        groups = self._grouped(pairs, "push")
        merged = self._allreduce_merged([(k, self._reduce(k, values)) for k, values in groups])
        for (k, _), total in zip(groups, merged):
            if self._updater is not None:
                self._updater(k.encode("utf-8") if isinstance(k, str) else k, total, self._store[k])
            else:
                self._store[k] = total

    def _allreduce_merged(self, merged):
        """[(key, local sum)] -> [sum over the workers] as new NDArrays (the local sums may be the pushed arrays
        themselves, which stay untouched). Dense values of one dtype share one buffer and one allreduce; a
        row_sparse value is summed dense and keeps every row some worker stored."""
        totals = [None] * len(merged)
        dense = [(i, v) for i, (_, v) in enumerate(merged) if not isinstance(v, RowSparseNDArray)]
        arrays = self.allreduce_arrays([v.asnumpy() for _, v in dense])
        for (i, v), total in zip(dense, arrays):
            totals[i] = NDArray(total, v.context)
        for i, (k, v) in enumerate(merged):
            if isinstance(v, RowSparseNDArray):
                total = self.allreduce_arrays([v.asnumpy()])[0]
                rows = np.unique(np.concatenate(self._comm.allgather(np.asarray(v._rows(), np.int64))))
                totals[i] = sparse_array("row_sparse", total, v.context, (rows.astype(np.int64),))
        return totals

    def allreduce_arrays(self, arrays, in_place=False):
        """The sums over the workers of numpy `arrays` (any shapes), one MPI allreduce per dtype over one contiguous
        buffer. With in_place, each array (C-contiguous) receives its sum and is returned."""
        return self._fused(arrays, in_place, self._allreduce_buffer)

    def broadcast_arrays(self, arrays):
        """Overwrite each numpy array (or NDArray) with rank 0's, one MPI broadcast per dtype."""
        buffers = [a._data if isinstance(a, NDArray) else a for a in arrays]
        self._fused(buffers, True, lambda buffer: self._comm.Bcast(buffer, root=0))
        for a in arrays:
            if isinstance(a, NDArray):
                touch(a._data)      # (a device copy must upload the new values)
        return arrays

    def _allreduce_buffer(self, buffer):
        from mpi4py import MPI
        self._comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def _fused(self, arrays, in_place, run):
        """Apply `run` (in place, on one 1-D buffer) to the arrays' values, one buffer per dtype; returns the
        results (the arrays themselves when in_place, else views of the buffers)."""
        results = [None] * len(arrays)
        by_dtype = {}
        for i, a in enumerate(arrays):
            by_dtype.setdefault(np.dtype(a.dtype).str, []).append(i)
        for dtype, indices in sorted(by_dtype.items()):     # the same order on every worker
            if in_place and len(indices) == 1 and arrays[indices[0]].flags.c_contiguous:
                run(arrays[indices[0]].reshape(-1))         # a view: no copy (a Module's gradient arena)
                results[indices[0]] = arrays[indices[0]]
                continue
            buffer = np.concatenate([np.ascontiguousarray(arrays[i], dtype).reshape(-1) for i in indices])
            run(buffer)
            offset = 0
            for i in indices:
                part = buffer[offset:offset + arrays[i].size].reshape(arrays[i].shape)
                offset += arrays[i].size
                if in_place:
                    arrays[i][...] = part
                    part = arrays[i]
                results[i] = part
        return results


class Horovod(DistKVStore):
    """'horovod' as MXNet's kvstore/horovod.py defines it, on MPI: pushpull is an allreduce (sum), broadcast sends
    rank 0's value, and the store takes no optimizer (is_capable(OPTIMIZER) is False, so Module updates locally on
    the summed gradients)."""

    def __init__(self):
        super().__init__("horovod")

    @staticmethod
    def is_capable(capability):
        return _capable(capability, optimizer=False)

    @property
    def local_rank(self):
        """This worker's rank among the workers on its machine."""
        from mpi4py import MPI
        return self._comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()

    def broadcast(self, key, value, out, priority=0):
        """Write rank 0's `value` into every `out` (no key is kept: Horovod has no store)."""
        outs = out if isinstance(out, (list, tuple)) else [out]
        data = self.broadcast_arrays([value.asnumpy().copy()])[0]
        for o in outs:
            o[:] = data.astype(o.dtype, copy=False)

    def pushpull(self, key, value, out=None, priority=0):
        """The sum over the workers of each value, written into `out` (into `value` when out is None)."""
        values = value if isinstance(value, (list, tuple)) else [value]
        outs = values if out is None else out if isinstance(out, (list, tuple)) else [out]
        totals = self.allreduce_arrays([v.asnumpy() for v in values])
        for o, total in zip(outs, totals):
            o[:] = total.astype(o.dtype, copy=False)

    def set_optimizer(self, optimizer):
        """Horovod's store keeps no weights: nothing to do (as in MXNet's horovod.py)."""

    def save_optimizer_states(self, fname, dump_optimizer=False):
        """Nothing to save (no optimizer on the store)."""

    def load_optimizer_states(self, fname):
        """Nothing to load (no optimizer on the store)."""

