"""`mx.io`: data iterators of MXNet 1.9.1 (python/mxnet/io/io.py); CSVIter and MNISTIter read files with numpy.

    it = mx.io.NDArrayIter(np.zeros((10, 3)), np.arange(10), batch_size=4, last_batch_handle='pad')
    for batch in it:
        batch.data[0].shape, batch.pad      # (4, 3), then 2 on the last batch
"""
import gzip
import logging
import os
import struct
import threading
from collections import OrderedDict, namedtuple

import numpy as np

from ..base import MXNetError, normalize_dtype
from ..ndarray import array
from ..runtime.ndarray import NDArray
from ..runtime.sparse import CSRNDArray

__all__ = ["DataDesc", "DataBatch", "DataIter", "ResizeIter", "PrefetchingIter", "NDArrayIter", "CSVIter",
           "MNISTIter", "seed"]

class DataDesc(namedtuple("DataDesc", ["name", "shape"])):
    """Name and shape of one input, plus its `dtype` and `layout` ('N' marks the batch axis).

    >>> mx.io.DataDesc('data', (32, 3, 224, 224))
    DataDesc[data,(32, 3, 224, 224),<class 'numpy.float32'>,NCHW]
    """

    def __new__(cls, name, shape, dtype=np.float32, layout="NCHW"):
        desc = super().__new__(cls, name, shape)
        desc.dtype = dtype
        desc.layout = layout
        return desc

    def __repr__(self):
        return "DataDesc[%s,%s,%s,%s]" % (self.name, self.shape, self.dtype, self.layout)

    @staticmethod
    def get_batch_axis(layout):
        """The axis of 'N' in `layout` (0 when layout is None, -1 when there is no batch axis)."""
        return 0 if layout is None else layout.find("N")

    @staticmethod
    def get_list(shapes, types):
        """DataDescs from [(name, shape)] and optionally [(name, dtype)]."""
        if types is None:
            return [DataDesc(name, shape) for name, shape in shapes]
        type_dict = dict(types)
        return [DataDesc(name, shape, type_dict[name]) for name, shape in shapes]


class DataBatch:
    """One batch: lists of data and label NDArrays, the padded example count and optional descriptors."""

    def __init__(self, data, label=None, pad=None, index=None, bucket_key=None, provide_data=None,
                 provide_label=None):
        if data is not None and not isinstance(data, (list, tuple)):
            raise TypeError("Data must be list of NDArrays")
        if label is not None and not isinstance(label, (list, tuple)):
            raise TypeError("Label must be list of NDArrays")
        self.data = data
        self.label = label
        self.pad = pad
        self.index = index
        self.bucket_key = bucket_key
        self.provide_data = provide_data
        self.provide_label = provide_label

    def __str__(self):
        label_shapes = [lab.shape for lab in self.label] if self.label else None
        return "%s: data shapes: %s label shapes: %s" % (type(self).__name__, [d.shape for d in self.data],
                                                         label_shapes)


class DataIter:
    """Base data iterator: `next()` returns a DataBatch until the epoch ends (StopIteration); `reset()`."""

    def __init__(self, batch_size=0):
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def reset(self):
        """Go back to the beginning of the data."""

    def next(self):
        """The next DataBatch; StopIteration at the end of the epoch."""
        if self.iter_next():
            return DataBatch(data=self.getdata(), label=self.getlabel(), pad=self.getpad(), index=self.getindex())
        raise StopIteration

    def __next__(self):
        return self.next()

    def iter_next(self):
        """Advance to the next batch; False at the end of the epoch."""

    def getdata(self):
        """The data NDArrays of the current batch."""

    def getlabel(self):
        """The label NDArrays of the current batch."""

    def getindex(self):
        """The example indices of the current batch (None when unknown)."""
        return None

    def getpad(self):
        """How many examples at the end of the current batch are padding."""


class _HeldBatchIter(DataIter):
    """An iterator whose iter_next() sets `current_batch`, which the accessors read."""
    current_batch = None

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad


class ResizeIter(_HeldBatchIter):
    """Makes `data_iter` yield exactly `size` batches per epoch, restarting it when it runs out.

    >>> it = mx.io.ResizeIter(mx.io.NDArrayIter(mx.nd.ones((100, 10)), batch_size=25), 2)
    """

    def __init__(self, data_iter, size, reset_internal=True):
        super().__init__()
        self.data_iter = data_iter
        self.size = size
        self.reset_internal = reset_internal
        self.cur = 0
        self.current_batch = None
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.batch_size = data_iter.batch_size
        if hasattr(data_iter, "default_bucket_key"):
            self.default_bucket_key = data_iter.default_bucket_key

    def reset(self):
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self):
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self.current_batch = self.data_iter.next()
        self.cur += 1
        return True


class _Prefetcher:
    """The background thread of PrefetchingIter: on each request, the next batch of every iterator.

    It holds no reference to the PrefetchingIter, so an iterator nobody uses any more is collected and
    its `__del__` stops the thread.
    """

    def __init__(self, iters):
        self.iters = iters
        self.cond = threading.Condition()
        self.wanted = False   # guarded by cond: the consumer asked for the next batches
        self.ready = False    # guarded by cond: `fetched` answers that request
        self.fetched = None   # (list of batches or None per iterator, exception or None)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="PrefetchingIter", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.wanted or self.closed)
                if self.closed:
                    return
                self.wanted = False
            batches, error = [], None
            try:
                for it in self.iters:
                    try:
                        batches.append(it.next())
                    except StopIteration:
                        batches.append(None)
            except BaseException as err:  # handed to the consumer thread, which raises it
                error = err
            with self.cond:
                self.fetched, self.ready = (batches, error), True
                self.cond.notify_all()

    def request(self):
        with self.cond:
            self.wanted = True
            self.cond.notify_all()

    def take(self):
        with self.cond:
            self.cond.wait_for(lambda: self.ready or self.closed)
            if self.closed:
                raise MXNetError("PrefetchingIter is closed")
            self.ready = False
            return self.fetched

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)


class PrefetchingIter(_HeldBatchIter):
    """Reads the next batch of every iterator in `iters` on a background thread; batches are concatenated.

    `rename_data` / `rename_label`: one {old_name: new_name} dict per iterator. An exception raised by an
    inner iterator on the thread is raised again in the consumer's `next()`.

    >>> it = mx.io.PrefetchingIter([it1, it2], rename_data=[{'data': 'data_1'}, {'data': 'data_2'}])
    """

    def __init__(self, iters, rename_data=None, rename_label=None):
        super().__init__()
        self.iters = iters if isinstance(iters, list) else [iters]
        if not self.iters:
            raise ValueError("PrefetchingIter needs at least one iterator")
        self.n_iter = len(self.iters)
        self.rename_data = rename_data
        self.rename_label = rename_label
        self.batch_size = self.provide_data[0][1][0]
        self.current_batch = None
        self._worker = _Prefetcher(self.iters)
        self._pending = False    # a request is out and its answer not yet taken
        self._exhausted = False  # the epoch ended; nothing is fetched until reset()
        self._request()

    def _request(self):
        self._worker.request()
        self._pending = True

    def _take(self):
        self._pending = False
        return self._worker.take()

    def close(self):
        """Stop the prefetching thread."""
        self._worker.close()

    def __del__(self):
        if getattr(self, "_worker", None) is not None:
            self._worker.close()

    def _renamed(self, renames, attr):
        descs = [getattr(it, attr) for it in self.iters]
        if renames is None:
            return sum(descs, [])
        return sum([[DataDesc(r[x.name], x.shape, x.dtype) if isinstance(x, DataDesc) else DataDesc(*x)
                     for x in d] for r, d in zip(renames, descs)], [])

    @property
    def provide_data(self):
        return self._renamed(self.rename_data, "provide_data")

    @property
    def provide_label(self):
        return self._renamed(self.rename_label, "provide_label")

    def reset(self):
        if self._pending:
            self._take()  # let the fetch in flight finish (its result is dropped) before the iterators move
        for it in self.iters:
            it.reset()
        self._exhausted = False
        self._request()

    def iter_next(self):
        if self._exhausted:
            return False
        if not self._pending:  # the previous fetch failed: try again
            self._request()
        batches, error = self._take()
        if error is not None:
            raise error
        if batches[0] is None:
            self._exhausted = True
            if any(b is not None for b in batches):
                raise MXNetError("Number of entry mismatches between iterators")
            return False
        if any(b is None or b.pad != batches[0].pad for b in batches):
            raise MXNetError("Number of entry mismatches between iterators")
        self.current_batch = DataBatch(sum([list(b.data) for b in batches], []),
                                       sum([list(b.label or []) for b in batches], []),
                                       batches[0].pad, batches[0].index, provide_data=self.provide_data,
                                       provide_label=self.provide_label)
        self._request()
        return True

    def next(self):
        if self.iter_next():
            return self.current_batch
        raise StopIteration


def _init_data(data, allow_empty, default_name):
    """MXNet's canonical form: sorted [(name, NDArray)]; one array -> default_name, a list -> _i_default_name."""
    if data is None:
        if not allow_empty:
            raise ValueError("data must not be None")
        data = []
    if isinstance(data, (np.ndarray, NDArray)):
        data = [data]
    if isinstance(data, list):
        if not data and not allow_empty:
            raise ValueError("data must not be an empty list")
        if len(data) == 1:
            data = OrderedDict([(default_name, data[0])])
        else:
            data = OrderedDict([("_%d_%s" % (i, default_name), d) for i, d in enumerate(data)])
    if not isinstance(data, dict):
        raise TypeError("Input must be NDArray, numpy.ndarray, a list of them or dict with them as values")
    converted = {}
    for name, value in data.items():
        if isinstance(value, NDArray):
            converted[name] = value
            continue
        try:
            converted[name] = array(value)
        except TypeError:
            raise TypeError("Invalid type '%s' for %s, should be NDArray or numpy.ndarray"
                            % (type(value), name)) from None
    return sorted(converted.items())


def _take_rows(arr, idx):
    """`arr` re-ordered by the row indices `idx` (a csr array stays csr, its stored entries moving with them)."""
    if isinstance(arr, CSRNDArray):
        return arr._take_rows(idx)
    return NDArray(arr._data[idx], arr.context)


def _slice(arr, start, end, axis):
    """A batch of `arr`: a view when contiguous (batches along axis 0, as MXNet's NDArray slices), else a copy;
    a csr array's batches are csr arrays (rows start:end)."""
    if isinstance(arr, CSRNDArray):
        return arr[start:end]
    index = [slice(None)] * arr.ndim
    index[axis] = slice(start, end)
    view = arr._data[tuple(index)]
    return NDArray(view if view.flags.c_contiguous else np.asarray(view, order="C"), arr.context)


def _join(first, second, axis):
    return NDArray(np.concatenate([first._data, second._data], axis=axis), first.context)


class NDArrayIter(DataIter):
    """Batches over in-memory arrays (NDArray, numpy, or a list/dict of them), as MXNet 1.9.1's NDArrayIter.

    `last_batch_handle`: 'pad' fills the last batch from the start of the data (its `pad` says how many),
    'discard' drops it, 'roll_over' carries its examples into the first batch of the next epoch.

    >>> it = mx.io.NDArrayIter(np.arange(40).reshape(10, 4), np.ones(10), batch_size=3)
    >>> [b.pad for b in it]
    [0, 0, 0, 2]
    """

    def __init__(self, data, label=None, batch_size=1, shuffle=False, last_batch_handle="pad", data_name="data",
                 label_name="softmax_label", layout="NCHW"):
        super().__init__(batch_size)
        if last_batch_handle not in ("pad", "discard", "roll_over"):
            raise ValueError("last_batch_handle must be 'pad', 'discard' or 'roll_over', got %r" % (last_batch_handle,))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer, got %r" % (batch_size,))
        if "N" not in layout:
            raise ValueError("layout %r has no batch axis 'N'" % (layout,))
        self.data = _init_data(data, allow_empty=False, default_name=data_name)
        self.label = _init_data(label, allow_empty=True, default_name=label_name)
        if any(isinstance(arr, CSRNDArray) for _, arr in self.data + self.label) and last_batch_handle != "discard":
            raise NotImplementedError("`NDArrayIter` only supports ``CSRNDArray`` with `last_batch_handle` set to "
                                      "`discard`.")
        self.layout = layout
        axis = layout.find("N")
        sizes = [(name, arr.shape[axis] if arr.ndim > axis else None) for name, arr in self.data + self.label]
        if any(size != sizes[0][1] for _, size in sizes):
            raise MXNetError("NDArrayIter: all data and labels need the same number of examples along the batch "
                             "axis %d, got %s" % (axis, ", ".join("%s: %s" % s for s in sizes)))
        self.idx = np.arange(self.data[0][1].shape[0])
        self.shuffle = shuffle
        self.last_batch_handle = last_batch_handle
        self.batch_size = int(batch_size)
        self.cursor = -self.batch_size
        self.num_data = self.idx.shape[0]
        self.reset()
        self.data_list = [x[1] for x in self.data] + [x[1] for x in self.label]
        self.num_source = len(self.data_list)
        self._cache_data = None
        self._cache_label = None

    def _descs(self, source):
        axis = self.layout.find("N")
        return [DataDesc(k, v.shape[:axis] + (self.batch_size,) + v.shape[axis + 1:], v.dtype, layout=self.layout)
                for k, v in source]

    @property
    def provide_data(self):
        """The name and shape of data provided by this iterator."""
        return self._descs(self.data)

    @property
    def provide_label(self):
        """The name and shape of label provided by this iterator."""
        return self._descs(self.label)

    def hard_reset(self):
        """Ignore roll-over data and go back to the start."""
        if self.shuffle:
            self._shuffle_data()
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None

    def reset(self):
        """Back to the beginning; with 'roll_over' the unfinished batch is completed first."""
        if self.shuffle:
            self._shuffle_data()
        if self.last_batch_handle == "roll_over" and \
                self.num_data - self.batch_size < self.cursor < self.num_data:
            self.cursor = self.cursor - self.num_data - self.batch_size
        else:
            self.cursor = -self.batch_size

    def iter_next(self):
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self):
        if not self.iter_next():
            raise StopIteration
        data = self.getdata()
        label = self.getlabel()
        if data[0].shape[self.layout.find("N")] != self.batch_size:
            # incomplete last batch ('discard' or 'roll_over'): keep it for the next epoch
            self._cache_data = data
            self._cache_label = label
            raise StopIteration
        return DataBatch(data=data, label=label, pad=self.getpad(), index=None)

    def _getdata(self, source, start=None, end=None):
        start = 0 if start is None else start
        if end is None:
            end = source[0][1].shape[0] if source else 0
        axis = self.layout.find("N")
        return [_slice(arr, start, end, axis) for _, arr in source]

    def _concat(self, first, second):
        if not first or not second:
            return first if first else second
        axis = self.layout.find("N")
        return [_join(a, b, axis) for a, b in zip(first, second)]

    def _batchify(self, source):
        if self.cursor >= self.num_data:
            raise MXNetError("DataIter needs reset.")
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            # first batch of an epoch after a roll-over: cached tail + head of the data
            if self._cache_data is not None:
                cached, self._cache_data = self._cache_data, None
            else:
                cached, self._cache_label = self._cache_label, None
            return self._concat(cached, self._getdata(source, end=self.cursor + self.batch_size))
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            pad = self.batch_size - self.num_data + self.cursor
            head = self._getdata(source, start=self.cursor)
            whole, rest = divmod(pad, self.num_data)
            filler = []
            for _ in range(whole):
                filler = self._concat(filler, self._getdata(source, end=self.num_data))
            if rest:
                filler = self._concat(filler, self._getdata(source, end=rest))
            return self._concat(head, filler)
        return self._getdata(source, self.cursor, min(self.cursor + self.batch_size, self.num_data))

    def getdata(self):
        return self._batchify(self.data)

    def getlabel(self):
        return self._batchify(self.label)

    def getpad(self):
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            return self.cursor + self.batch_size - self.num_data
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            return -self.cursor
        return 0

    def _shuffle_data(self):
        # MXNet shuffles the index in place with numpy's global RNG (np.random.seed reproduces it; mx.random.seed
        # seeds it too) and re-orders the (already shuffled) arrays by it.
        np.random.shuffle(self.idx)
        self.data = [(k, _take_rows(v, self.idx)) for k, v in self.data]
        self.label = [(k, _take_rows(v, self.idx)) for k, v in self.label]


class _SingleArrayIter(_HeldBatchIter):
    """MXNet's C++ iterators (MXDataIter: CSVIter, MNISTIter, ImageRecordIter): getdata/getlabel give the one data
    and one label array of the current batch, not lists."""

    def next(self):
        if self.iter_next():
            return self.current_batch
        raise StopIteration

    def getdata(self):
        return self.current_batch.data[0]

    def getlabel(self):
        return self.current_batch.label[0]


class _FileIter(_SingleArrayIter):
    """Batches cut from arrays loaded up front (the shared part of CSVIter and MNISTIter)."""

    def __init__(self, data, label, batch_size, data_name, label_name):
        super().__init__(batch_size)
        self._data, self._label = data, label
        self.provide_data = [DataDesc(data_name, (batch_size,) + data.shape[1:], data.dtype.type)]
        self.provide_label = [DataDesc(label_name, (batch_size,) + label.shape[1:], label.dtype.type)]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError("batch_size must be a positive integer, got %r" % (batch_size,))
    return int(batch_size)


def _csv_values(path, dtype, what):
    """All rows of a CSV file (or of every file in a folder, by name) as a 2-D array of `dtype`."""
    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    rows = []
    for name in files:
        if not os.path.isfile(name):
            raise MXNetError("CSVIter: %s file %r does not exist" % (what, name))
        with open(name) as source:
            for number, line in enumerate(source, 1):
                line = line.strip()
                if line:
                    rows.append((name, number, line.split(",")))
    widths = {len(fields) for _, _, fields in rows}
    if len(widths) > 1:
        name, number, fields = next(r for r in rows if len(r[2]) != len(rows[0][2]))
        raise MXNetError("CSVIter: line %d of %s has %d values, the first line has %d"
                         % (number, name, len(fields), len(rows[0][2])))
    text = np.array([fields for _, _, fields in rows], dtype=str).reshape(len(rows), -1)
    try:
        if np.issubdtype(dtype, np.integer):
            try:
                return text.astype(dtype)
            except ValueError:  # like strtol, "1.5" reads as 1
                return text.astype(np.float64).astype(dtype)
        return text.astype(dtype)
    except ValueError as err:
        raise MXNetError("CSVIter: %s file %r has a value that is not a number: %s" % (what, path, err)) from None


class CSVIter(_FileIter):
    """Batches from CSV files: one example per line, reshaped to `data_shape` (MXNet's C++ CSVIter).

    Labels come from `label_csv` (all zeros when it is 'NULL'); a label of one value gives a (batch_size,)
    label. With `round_batch` the last batch wraps around to the start, and the next epoch continues after
    the wrapped examples; without it the padding rows keep the previous batch's contents, as in MXNet.

    >>> it = mx.io.CSVIter(data_csv='data.csv', data_shape=(3,), batch_size=2)
    """

    def __init__(self, data_csv, data_shape, label_csv="NULL", label_shape=(1,), batch_size=1, round_batch=True,
                 prefetch_buffer=4, ctx="gpu", dtype=None, data_name="data", label_name="softmax_label"):
        batch_size = _check_batch_size(batch_size)
        dtype = np.dtype(np.float32) if dtype is None else normalize_dtype(dtype)
        data_shape, label_shape = tuple(int(d) for d in data_shape), tuple(int(d) for d in label_shape)
        data = _csv_values(os.fspath(data_csv), dtype, "data_csv")
        if data.shape[0] == 0:
            raise MXNetError("CSVIter: data_csv %r has no rows" % (data_csv,))
        if data.shape[1] != int(np.prod(data_shape)):
            raise MXNetError("CSVIter: rows of %r have %d values but data_shape %s needs %d"
                             % (data_csv, data.shape[1], data_shape, int(np.prod(data_shape))))
        if label_csv is None or label_csv == "NULL":
            label = np.zeros((data.shape[0], int(np.prod(label_shape))), dtype)
        else:
            label = _csv_values(os.fspath(label_csv), dtype, "label_csv")
            if label.shape[0] != data.shape[0]:
                raise MXNetError("CSVIter: label_csv has %d rows but data_csv has %d" % (label.shape[0], data.shape[0]))
            if label.shape[1] != int(np.prod(label_shape)):
                raise MXNetError("CSVIter: rows of %r have %d values but label_shape %s needs %d"
                                 % (label_csv, label.shape[1], label_shape, int(np.prod(label_shape))))
        # MXNet's batch loader flattens a one-value label to a (batch_size,) vector.
        label_shape = () if int(np.prod(label_shape)) == 1 else label_shape
        super().__init__(data.reshape((-1,) + data_shape), label.reshape((-1,) + label_shape), batch_size,
                         data_name, label_name)
        self.round_batch = bool(round_batch)
        # One reused batch buffer: without round_batch, padding rows show what the previous batch left there.
        self._buffers = [np.zeros((batch_size,) + a.shape[1:], a.dtype) for a in (self._data, self._label)]
        self._index = np.zeros(batch_size, np.uint64)
        self._pos = 0
        self._overflow = 0

    def reset(self):
        if not self.round_batch or self._overflow == 0:
            self._pos = 0
        else:
            self._overflow = 0

    def _fill(self, top, start, count):
        for buffer, source in zip(self._buffers, (self._data, self._label)):
            buffer[top:top + count] = source[start:start + count]
        self._index[top:top + count] = np.arange(start, start + count, dtype=np.uint64)

    def iter_next(self):
        if self._overflow:
            return False
        total = self._data.shape[0]
        top = min(self.batch_size, total - self._pos)
        self._fill(0, self._pos, top)
        self._pos += top
        if top == 0:
            return False
        pad = 0
        if top < self.batch_size:
            pad = self.batch_size - top
            if self.round_batch:
                if pad > total:
                    raise MXNetError("CSVIter: number of input must be bigger than batch size (%d rows, a "
                                     "wrapped batch needs %d more)" % (total, pad))
                self._fill(top, 0, pad)
                self._pos, self._overflow = pad, pad
        data, label = (NDArray(b.copy()) for b in self._buffers)
        self.current_batch = DataBatch([data], [label], pad=pad, index=self._index.copy())
        return True


def _read_idx(path, magic, what, param):
    """The payload of an MNIST IDX file (raw or gzip) after checking its magic; the dims from its header."""
    path = os.fspath(path)
    candidates = [path] if path.endswith(".gz") else [path, path + ".gz"]
    found = next((p for p in candidates if os.path.isfile(p)), None)
    if found is None:
        raise MXNetError(
            "MNISTIter: %s file %r not found%s. onnxsym never downloads data: get %s (gzip or uncompressed) from "
            "a MNIST mirror (http://yann.lecun.com/exdb/mnist/) and put it at %s, or pass %s=<path>."
            % (what, path, "" if len(candidates) == 1 else " (nor %r)" % candidates[1],
               os.path.basename(candidates[-1]), os.path.abspath(path), param))
    with open(found, "rb") as source:
        raw = source.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise MXNetError("MNISTIter: %s file %r is a damaged gzip file: %s" % (what, found, err)) from None
    ndim = 3 if magic == 2051 else 1
    header = 4 * (1 + ndim)
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise MXNetError("MNISTIter: %r is not an MNIST %s file (IDX magic %d expected)" % (found, what, magic))
    dims = struct.unpack(">%dI" % ndim, raw[4:header])
    if len(raw) - header < int(np.prod(dims)):
        raise MXNetError("MNISTIter: %s file %r is truncated: %d bytes of pixels/labels, %d expected"
                         % (what, found, len(raw) - header, int(np.prod(dims))))
    return np.frombuffer(raw, np.uint8, int(np.prod(dims)), header).reshape(dims)


class MNISTIter(_FileIter):
    """MNIST batches from local IDX files (MXNet's C++ MNISTIter); nothing is downloaded.

    Images are float32 pixel/256 of shape (batch, 1, rows, cols), or (batch, rows*cols) with `flat`; labels are
    float32 (batch,). `shuffle` permutes the examples once, with numpy seeded by `seed` (MXNet's C++ RNG gives
    a different order). `num_parts`/`part_index` read one contiguous part; an incomplete last batch is dropped.

    >>> it = mx.io.MNISTIter(image='train-images-idx3-ubyte', label='train-labels-idx1-ubyte', batch_size=100)
    """

    def __init__(self, image="./train-images-idx3-ubyte", label="./train-labels-idx1-ubyte", batch_size=128,
                 shuffle=True, flat=False, seed=0, silent=False, num_parts=1, part_index=0, prefetch_buffer=4,
                 ctx="gpu", dtype=None, data_name="data", label_name="softmax_label"):
        batch_size = _check_batch_size(batch_size)
        if dtype is not None and normalize_dtype(dtype) != np.float32:
            raise MXNetError("MNISTIter: only dtype float32 is supported, got %s" % (dtype,))
        if not 0 <= part_index < num_parts:
            raise ValueError("part_index must be in [0, num_parts=%d), got %d" % (num_parts, part_index))
        images = _read_idx(image, 2051, "image", "image")
        labels = _read_idx(label, 2049, "label", "label")
        if images.shape[0] != labels.shape[0]:
            raise MXNetError("MNISTIter: %d images but %d labels" % (images.shape[0], labels.shape[0]))
        total = images.shape[0]
        part = slice(total * part_index // num_parts, total * (part_index + 1) // num_parts)
        images, labels = images[part], labels[part]
        if shuffle:
            order = np.random.RandomState(seed).permutation(images.shape[0])
            images, labels = images[order], labels[order]
        if batch_size > images.shape[0]:
            raise MXNetError("MNISTIter: batch_size %d is larger than the %d images of part %d/%d"
                             % (batch_size, images.shape[0], part_index, num_parts))
        shape = (-1, images.shape[1] * images.shape[2]) if flat else (-1, 1) + images.shape[1:]
        data = (images.astype(np.float32) / np.float32(256.0)).reshape(shape)
        super().__init__(data, labels.astype(np.float32), batch_size, data_name, label_name)
        self._cursor = 0
        if not silent:
            logging.info("MNISTIter: load %d images, shuffle=%d, shape=%s", data.shape[0], int(bool(shuffle)),
                         self.provide_data[0].shape)

    def reset(self):
        self._cursor = 0

    def iter_next(self):
        start = self._cursor
        if start + self.batch_size > self._data.shape[0]:
            return False
        self._cursor += self.batch_size
        stop = self._cursor
        # MXNet's MNISTIter reports an all-zero index.
        self.current_batch = DataBatch([NDArray(self._data[start:stop].copy())], [NDArray(self._label[start:stop].copy())],
                                pad=0, index=np.zeros(self.batch_size, np.uint64))
        return True
