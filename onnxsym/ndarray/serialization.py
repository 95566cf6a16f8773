"""`mx.nd.save` / `mx.nd.load`: MXNet's `.params` binary container, byte-compatible with MXNet 1.9.1.

Layout (MXNet `src/ndarray/ndarray.cc`, all integers little-endian)::

    u64 0x112 | u64 0 | u64 n | NDArray x n | u64 n_names (0 or n) | (u64 len, utf-8 bytes) x n_names

Each array is written as V2 (magic 0xF993FAC9, dense storage, cpu(0)); V1, V3 (np-shape) and pre-V1 legacy
arrays are read too. Parsing uses `struct` and `numpy.frombuffer` only, never pickle.
"""
import math
import os
import struct

import numpy as np

from .._files import atomic_save
from ..base import DTYPE_NAMES, STYPE_CODES, STYPE_NAMES, MXNetError
from ..runtime.ndarray import NDArray
from ..runtime.sparse import BaseSparseNDArray
from . import sparse
from ..util import is_np_shape

__all__ = ["save", "load", "load_frombuffer", "array_to_bytes", "array_from_bytes"]

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_TYPE_FLAGS = {np.dtype(name): flag for flag, name in enumerate(DTYPE_NAMES)}
_CPU = 1
_SPARSE_DENSE_LIMIT = 1 << 38     # sparse arrays are kept densely (runtime/sparse.py): refuse what cannot fit


# ----- writing -----
def _encode_array(array, label, scalar_ok=False):
    """The V2 record of one dense array (cpu(0), stype 0); with `scalar_ok`, a 0-d array as a V3 (np-shape)
    record, which MXNet 1.9 reads too."""
    if isinstance(array, BaseSparseNDArray):
        return _encode_sparse(array, label)
    data = array._data
    flag = _TYPE_FLAGS.get(data.dtype)
    if flag is None:
        raise MXNetError("cannot save %s: dtype %s has no MXNet type flag" % (label, data.dtype))
    numpy_shape = is_np_shape()     # MXNet writes V3 records under NumPy shape semantics (0-d arrays exist there)
    if data.ndim == 0 and not (scalar_ok or numpy_shape):
        # In MXNet 1.x files ndim 0 marks a 'none' array, so a 0-d value cannot be represented.
        raise MXNetError("cannot save %s: 0-d arrays have no MXNet 1.x .params encoding; reshape it to (1,)"
                         % label)
    magic = V3_MAGIC if numpy_shape or data.ndim == 0 else V2_MAGIC
    header = struct.pack("<Iii", magic, 0, data.ndim) + struct.pack("<%dq" % data.ndim, *data.shape)
    header += struct.pack("<iii", _CPU, 0, flag)
    return header + np.asarray(data, order="C").astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def _shape_bytes(shape):
    return struct.pack("<i", len(shape)) + struct.pack("<%dq" % len(shape), *shape)


def _encode_sparse(array, label):
    """The V2 record of a row_sparse or csr array: storage shape, shape, cpu(0), type, aux types and shapes,
    the stored values, then the aux arrays (row indices; indptr and column indices)."""
    if is_np_shape():
        raise MXNetError("cannot save %s: MXNet saves sparse arrays only outside NumPy shape semantics" % label)
    values, aux = array.data._data, array._aux()
    flag = _TYPE_FLAGS.get(values.dtype)
    if flag is None:
        raise MXNetError("cannot save %s: dtype %s has no MXNet type flag" % (label, values.dtype))
    header = struct.pack("<Ii", V2_MAGIC, STYPE_CODES[array.stype]) + _shape_bytes(values.shape)
    header += _shape_bytes(array.shape) + struct.pack("<iii", _CPU, 0, flag)
    for part in aux:
        header += struct.pack("<i", _TYPE_FLAGS[np.dtype(np.int64)]) + _shape_bytes(part.shape)
    return header + b"".join(np.ascontiguousarray(p).astype(p.dtype.newbyteorder("<"), copy=False).tobytes()
                             for p in (values,) + tuple(aux))


def _as_entries(data):
    """(names or None, arrays) for MXNet's accepted `save` inputs; TypeError/ValueError as MXNet raises."""
    if isinstance(data, NDArray):
        return None, [data]
    if isinstance(data, dict):
        if any(not isinstance(k, str) for k in data) or any(not isinstance(v, NDArray) for v in data.values()):
            raise TypeError("save only accept dict str->NDArray or list of NDArray")
        return list(data.keys()), list(data.values())
    if isinstance(data, (list, tuple)):
        if any(not isinstance(v, NDArray) for v in data):
            raise TypeError("save only accept dict str->NDArray or list of NDArray")
        return None, list(data)
    raise ValueError("data needs to either be a NDArray, dict of str, NDArray pairs or a list of NDarrays.")


def dumps(data):
    """The bytes `save(fname, data)` writes."""
    names, arrays = _as_entries(data)
    labels = names if names is not None else ["#%d" % i for i in range(len(arrays))]
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    parts += [_encode_array(a, "array %r" % label) for a, label in zip(arrays, labels)]
    parts.append(struct.pack("<Q", len(names or ())))
    for name in names or ():
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(parts)


def _path(fname):
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname required to be a string or os.PathLike, got %s" % type(fname).__name__)
    return os.fspath(fname)


def save(fname, data):
    """Save an NDArray, a list of NDArrays or a dict str->NDArray to `fname` in MXNet's `.params` format.

    The file is written atomically (see `onnxsym._files`), with the permissions `open` would give it.

    >>> mx.nd.save('my_dict', {'x': mx.nd.zeros((2, 3)), 'y': mx.nd.ones((1, 4))})
    """
    path = _path(fname)
    atomic_save(path, dumps(data))


# ----- reading -----
class _Reader:
    """A bounds-checked little-endian cursor over the file bytes."""

    def __init__(self, buf):
        self.buf = memoryview(buf)
        self.pos = 0
        self.where = "the file header"

    def take(self, size, what):
        if size < 0 or self.pos + size > len(self.buf):
            raise MXNetError("truncated .params data in %s: %s needs %d bytes at offset %d, only %d left"
                             % (self.where, what, size, self.pos, len(self.buf) - self.pos))
        chunk = self.buf[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt, what):
        values = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))
        return values[0] if len(values) == 1 else values

    def shape(self, dim_format="q"):
        ndim = self.unpack("<i", "the shape's ndim")
        if ndim < -1 or ndim > 32:
            raise MXNetError("corrupt .params data in %s: shape ndim %d" % (self.where, ndim))
        dims = self.unpack("<%d%s" % (ndim, dim_format), "a shape of %d dims" % ndim) if ndim > 0 else ()
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if any(d < 0 for d in dims):
            raise MXNetError("corrupt .params data in %s: negative dimension in shape %s" % (self.where, dims))
        return ndim, dims


def _dtype(flag, where):
    if not 0 <= flag < len(DTYPE_NAMES):
        name = "bfloat16" if flag == 12 else "unknown"
        raise MXNetError("cannot load %s: %s dtype flag %d (supported: %s)"
                         % (where, name, flag, ", ".join("%d %s" % kv for kv in enumerate(DTYPE_NAMES))))
    return np.dtype(DTYPE_NAMES[flag]).newbyteorder("<")


def _read_payload(reader, dims):
    """Context, type flag and data that follow a shape (every format version shares this tail)."""
    reader.unpack("<ii", "the context")  # saved device is ignored: everything loads on cpu, as MXNet does
    dtype = _dtype(reader.unpack("<i", "the dtype flag"), reader.where)
    return _read_values(reader, dims, dtype, "the data")


def _read_array(reader, check_semantics=True):
    """One array record. With `check_semantics` (files), MXNet's rule between the record's shape semantics and
    the current ones: a V3 (NumPy shape) record loads only inside mx.np_shape(), an older one only outside it."""
    magic = reader.unpack("<I", "the array magic")
    numpy_shape = is_np_shape()
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = reader.unpack("<i", "the storage type")
        if stype != 0:
            if stype not in STYPE_NAMES or magic != V2_MAGIC:
                raise MXNetError("cannot load %s: storage type %d in a 0x%08X record (sparse arrays are V2 records "
                                 "of type 1 row_sparse or 2 csr)" % (reader.where, stype, magic))
            return _read_sparse(reader, STYPE_NAMES[stype], check_semantics and numpy_shape)
        ndim, dims = reader.shape()
        if ndim == -1 or (ndim == 0 and magic == V2_MAGIC):
            raise MXNetError("cannot load %s: it is a 'none' array with no shape or data" % reader.where)
        if check_semantics and magic == V3_MAGIC and not numpy_shape:
            raise _SemanticsError("cannot load %s: it was saved under NumPy shape semantics; load it inside "
                                  "`with mx.np_shape():`" % reader.where)
        _check_legacy(reader, magic != V3_MAGIC and check_semantics and numpy_shape)
        return _read_payload(reader, dims)
    if magic == V1_MAGIC:
        ndim, dims = reader.shape()
    else:  # pre-V1: the magic word is the ndim, followed by uint32 dims
        if magic > 32:
            raise MXNetError("cannot load %s: unknown array magic 0x%08X" % (reader.where, magic))
        dims = reader.unpack("<%dI" % magic, "a legacy shape of %d dims" % magic) if magic else ()
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        ndim = magic
    if ndim == 0:
        raise MXNetError("cannot load %s: it is a 'none' array with no shape or data" % reader.where)
    _check_legacy(reader, check_semantics and numpy_shape)
    return _read_payload(reader, dims)


def _read_sparse(reader, stype, numpy_shape):
    """A row_sparse or csr record (after its storage type) as a sparse NDArray; its entries are checked as a
    definition's (mx.nd.sparse), so a damaged file gives an MXNetError."""
    _, storage = reader.shape()
    ndim, dims = reader.shape()
    if ndim <= 0:
        raise MXNetError("cannot load %s: it is a 'none' %s array with no shape or data" % (reader.where, stype))
    _check_legacy(reader, numpy_shape)
    reader.unpack("<ii", "the context")
    dtype = _dtype(reader.unpack("<i", "the dtype flag"), reader.where)
    aux_info = []
    for index in range(2 if stype == "csr" else 1):
        aux_type = _dtype(reader.unpack("<i", "the type of aux array %d" % index), reader.where)
        aux_info.append((aux_type, reader.shape()[1]))
    values = _read_values(reader, storage, dtype, "the stored values")
    aux = [_read_values(reader, shape, aux_type, "aux array %d" % i) for i, (aux_type, shape) in enumerate(aux_info)]
    dense_bytes = math.prod(dims) * dtype.itemsize
    if dense_bytes > _SPARSE_DENSE_LIMIT:
        raise MXNetError("cannot load %s: a %s array of shape %s takes %d bytes densely, more than onnxsym's "
                         "dense-backed sparse arrays allow (%d)" % (reader.where, stype, dims, dense_bytes,
                                                                   _SPARSE_DENSE_LIMIT))
    try:
        if stype == "row_sparse":
            return sparse.row_sparse_array((values, aux[0]), shape=dims)
        return sparse.csr_matrix((values, aux[1], aux[0]), shape=dims)
    except (MXNetError, ValueError) as err:
        raise MXNetError("corrupt .params data in %s: %s" % (reader.where, err)) from None
    except MemoryError:
        raise MXNetError("cannot load %s: no memory for the %d bytes of a dense %s array of shape %s"
                         % (reader.where, dense_bytes, stype, dims)) from None


def _read_values(reader, dims, dtype, what):
    count = math.prod(dims)
    raw = reader.take(count * dtype.itemsize, "%s of shape %s %s" % (what, dims, dtype.name))
    values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)
    try:
        return values.reshape(dims)
    except ValueError:  # a zero-size shape whose other dims overflow numpy's limits
        raise MXNetError("corrupt .params data in %s: shape %s is too large" % (reader.where, dims)) from None


def _check_legacy(reader, numpy_shape):
    if numpy_shape:
        raise _SemanticsError("cannot load %s: it was saved outside NumPy shape semantics (its 0 dimensions mean "
                         "unknown); load it outside mx.np_shape()" % reader.where)


def _read_file(buf):
    """(names or None, numpy arrays) of the bytes of a `.params` file; MXNetError saying what is wrong."""
    reader = _Reader(buf)
    if reader.unpack("<Q", "the file magic") != LIST_MAGIC:
        raise MXNetError("invalid NDArray file format: not an MXNet .params file (magic is not 0x112)")
    reader.unpack("<Q", "the reserved field")
    count = reader.unpack("<Q", "the array count")
    if count > len(reader.buf):
        raise MXNetError("invalid NDArray file format: %d arrays cannot fit in %d bytes" % (count, len(reader.buf)))
    arrays = []
    for index in range(count):
        reader.where = "array %d of %d" % (index, count)
        arrays.append(_read_array(reader))
    reader.where = "the names table"
    n_names = reader.unpack("<Q", "the name count")
    if n_names not in (0, count):
        raise MXNetError("invalid NDArray file format: %d names for %d arrays" % (n_names, count))
    names = []
    for index in range(n_names):
        reader.where = "name %d of %d" % (index, n_names)
        size = reader.unpack("<Q", "the name length")
        try:
            names.append(bytes(reader.take(size, "a name of %d bytes" % size)).decode("utf-8"))
        except UnicodeDecodeError as err:
            raise MXNetError("invalid NDArray file format: name %d is not UTF-8 (%s)" % (index, err)) from None
    return (names or None), arrays


def _looks_like(buf):
    """What a buffer that is not an MXNet .params file seems to be, from its first bytes (for the message)."""
    head = bytes(buf[:4096])
    known = {b"PK\x03\x04": "it looks like a zip archive (a NumPy .npz or PyTorch file?)",
             b"\x93NUMPY": "it looks like a NumPy .npy file", b"\x89HDF": "it looks like an HDF5 file",
             b"\x1f\x8b": "it looks gzip-compressed; decompress it first"}
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it looks like a Python pickle"
    if head[:1] == b"\x08" and b"onnx" in head.lower():
        return "it looks like an ONNX model; load it with mx.onnx.import_model"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.lstrip().startswith("{") and '"nodes"' in text:
        return "it looks like a symbol JSON file; load it with mx.sym.load"
    if text and all(c.isprintable() or c.isspace() for c in text):
        return "it looks like a text file starting %r" % text[:40]
    return "it starts with the bytes %s" % head[:8].hex(" ")


class _SemanticsError(MXNetError):
    """A sound file saved under the other shape semantics (nothing is damaged)."""


def _explain(buf, err):
    """Why `buf` could not be read, in a newcomer's words, after the reader's precise reason."""
    if isinstance(err, _SemanticsError):
        return str(err)
    if len(buf) == 0:
        return "%s; it is empty, so it is not an MXNet .params file" % err
    if len(buf) < 8:
        return ("%s; %d bytes are too few for an MXNet .params file (it is cut short, or not one: %s)"
                % (err, len(buf), _looks_like(buf)))
    if struct.unpack("<Q", bytes(buf[:8]))[0] != LIST_MAGIC:
        return "%s; %s" % (err, _looks_like(buf))
    if str(err).startswith("truncated"):
        return "%s; the MXNet .params file is cut short (an interrupted download or copy?)" % err
    return "%s; the MXNet .params file is damaged" % err


def array_to_bytes(array):
    """One array as MXNet's MXNDArraySaveRawBytes writes it (what MXNet pickles an NDArray as)."""
    return _encode_array(array, "the array", scalar_ok=True)


def array_from_bytes(buf):
    """The numpy array of MXNet's raw bytes of one NDArray (MXNDArrayLoadFromRawBytes; any saved device)."""
    reader = _Reader(bytes(buf))
    reader.where = "the pickled NDArray"
    values = _read_array(reader, check_semantics=False)
    if reader.pos != len(reader.buf):
        raise MXNetError("corrupt NDArray bytes: %d bytes after the array" % (len(reader.buf) - reader.pos))
    return values


def _load_bytes(buf, source):
    try:
        names, arrays = _read_file(buf)
    except MXNetError as err:
        raise MXNetError("cannot load %s: %s" % (source, _explain(buf, err))) from None
    result = [a if isinstance(a, NDArray) else NDArray(a) for a in arrays]
    return dict(zip(names, result)) if names is not None else result


def load_frombuffer(buf):
    """Load a list or dict of NDArrays from the bytes of a `.params` file; a malformed buffer raises one
    MXNetError saying what is wrong and where."""
    if isinstance(buf, str):
        try:
            buf = buf.encode("latin-1")
        except UnicodeEncodeError:
            raise MXNetError("cannot load the buffer: a str buffer must hold bytes (characters below 256)") from None
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError("buf required to be a string or bytes")
    return _load_bytes(buf, "the buffer")


def load(fname):
    """Load what `save` wrote (or MXNet 1.x's `mx.nd.save`): a list, or a dict when the file has names. A
    malformed file raises one MXNetError naming the file, saying what is wrong and where."""
    path = _path(fname)
    with open(path, "rb") as source:
        return _load_bytes(source.read(), "file '%s'" % path)
