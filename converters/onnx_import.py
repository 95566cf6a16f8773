"""`.onnx` -> (Symbol, arg_params, aux_params) (MXNet's mx.onnx.import_model), safely.

Models exported by onnxsym carry their MXNet JSON in the metadata and come back as the identical Symbol (custom
ops included: their op type must be registered, i.e. the module that registers it imported) with every
parameter: the initializers, and from the metadata those the inference graph does not read (fix_gamma's gamma). A model file only
describes a model: it is read without pickle, and every tensor in it (initializers, sparse tensors, node
attributes, subgraphs, function bodies) passes one check before onnx or ONNX Runtime sees it: its declared size
matches the data it holds, and external data is a regular file inside the model's own folder, read here and
inlined (ONNX Runtime would resolve it against the working directory). Anything malformed is an MXNetError
naming the file.
"""
import base64
import json
import os
import stat
from math import prod

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxsym import ndarray as nd
from onnxsym.base import MXNetError
from onnxsym.ops.onnx_node import tensor_protos
from onnxsym.symbol import load_json

from .onnx_export import METADATA_SYMBOL, METADATA_UNUSED_PARAMS
from .onnx_graph import graph_to_symbol

__all__ = ["import_model", "get_model_metadata", "load_model"]

# Sub-byte types, packed in raw data; every other type takes its numpy itemsize.
_BITS = {getattr(TensorProto, name): bits for name, bits in
         (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)) if hasattr(TensorProto, name)}
# The typed fields (float_data, ...) take at least one byte per value and hold at most 8 bytes of data per value.
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def load_model(model):
    """The ModelProto of the file `model` (a path; or the model's bytes, which may not use external data), every
    tensor checked and external data inlined."""
    source = "<bytes>" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    try:
        if isinstance(model, (bytes, bytearray)):
            proto = onnx.load_model_from_string(bytes(model))
        else:
            proto = onnx.load(source, load_external_data=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # protobuf's DecodeError, RecursionError on deep nesting, IsADirectoryError, ...
        raise MXNetError("%s is not a readable ONNX model (truncated or corrupt?): %s"
                         % (source, str(err).splitlines()[0] if str(err) else type(err).__name__)) from None
    if not proto.HasField("graph"):
        raise MXNetError("%s is not an ONNX model: it has no graph" % source)
    folder = None if source == "<bytes>" else os.path.realpath(os.path.dirname(os.path.abspath(source)))
    for tensor in tensor_protos(proto):
        check_tensor(tensor, source, folder)
    return proto


def check_tensor(tensor, source, folder):
    """Raise unless `tensor` (of the model `source`) declares a known type, non-negative dims and no more data
    than it holds; inline its external data, which must lie in `folder` (None: no external data allowed)."""
    name = "tensor '%s' of %s" % (tensor.name, source)
    if tensor.data_type == TensorProto.UNDEFINED and not tensor.dims and not tensor.ListFields():
        return  # an empty placeholder message (an unset optional field)
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise MXNetError("%s has an unknown data type (%d)" % (name, tensor.data_type)) from None
    if any(d < 0 for d in tensor.dims):
        raise MXNetError("%s has negative dimensions %s" % (name, list(tensor.dims)))
    count = prod(tensor.dims)
    size = (count * _BITS.get(tensor.data_type, 8 * itemsize) + 7) // 8
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        _inline_external_data(tensor, name, size, folder)
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != size:
            raise MXNetError("%s declares dims %s (%d bytes) but holds %d bytes"
                             % (name, list(tensor.dims), size, len(tensor.raw_data)))
    elif tensor.data_type == TensorProto.STRING:
        if len(tensor.string_data) != count:
            raise MXNetError("%s declares %d strings but holds %d" % (name, count, len(tensor.string_data)))
    elif size > 8 * sum(len(getattr(tensor, field)) for field in _TYPED_FIELDS):
        raise MXNetError("%s declares dims %s (%d bytes), more than the data it holds"
                         % (name, list(tensor.dims), size))


def _inline_external_data(tensor, name, size, folder):
    """Read the external data of `tensor` into raw_data: only a regular file inside `folder`, symlinks resolved,
    offset and length within the file and equal to the size the dims declare."""
    if folder is None:
        raise MXNetError("%s refers to external data, which a model given as bytes may not" % name)
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    target = os.path.realpath(os.path.join(folder, location))
    if not location or os.path.isabs(location) or os.path.commonpath([folder, target]) != folder:
        raise MXNetError("%s points outside the model's folder (%r): refusing to read it" % (name, location))
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", size))
    except ValueError:
        raise MXNetError("%s has a malformed external data offset or length" % name) from None
    if offset < 0 or length != size:
        raise MXNetError("%s: external data offset %d, length %d; its dims need %d bytes" % (name, offset, length, size))
    try:
        # O_NONBLOCK: opening a FIFO must not hang; O_NOFOLLOW: the path was resolved, a symlink now is a swap
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as err:
        raise MXNetError("%s: cannot open its external data %r: %s" % (name, location, err.strerror)) from None
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise MXNetError("%s: its external data %r is not a regular file" % (name, location))
        if offset + length > status.st_size:
            raise MXNetError("%s: external data offset %d + length %d is beyond the end of %r (%d bytes)"
                             % (name, offset, length, location, status.st_size))
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise MXNetError("%s: %r changed while being read" % (name, location))
    tensor.raw_data = data
    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT


def _metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def get_model_metadata(model_file):
    """{'input_tensor_data': [(name, shape)], 'output_tensor_data': [(name, shape)]} as MXNet returns it."""
    model = load_model(model_file)
    initializers = {t.name for t in model.graph.initializer}

    def shape(value):
        return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim)

    return {"input_tensor_data": [(i.name, shape(i)) for i in model.graph.input if i.name not in initializers],
            "output_tensor_data": [(o.name, shape(o)) for o in model.graph.output]}


def import_model(model_file, input_shapes=None):
    """(sym, arg_params, aux_params) of an ONNX model file (or its bytes). Files onnxsym wrote come back as the
    identical Symbol; any other model becomes one op per ONNX node (`input_shapes` fixes dynamic input
    dimensions). A file that is not a model onnxsym can run raises MXNetError naming it."""
    model = load_model(model_file)
    source = "<bytes>" if isinstance(model_file, (bytes, bytearray)) else os.fspath(model_file)
    try:
        if METADATA_SYMBOL in _metadata(model):
            return _onnxsym_model(model, source)
        try:
            return graph_to_symbol(model, input_shapes)
        except MXNetError as err:      # onnx's and ORT's messages span lines: one line, naming the file
            raise MXNetError("%s: %s" % (source, " ".join(str(err).split()))) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as err:
        # the file is untrusted input: whatever onnx or numpy make of a malformed field is a file error
        raise MXNetError("%s is not a valid ONNX model: %s: %s"
                         % (source, type(err).__name__, " ".join(str(err).split()))) from None


def _onnxsym_model(model, source="<bytes>"):
    """A model onnxsym exported: its Symbol from the MXNet JSON in the metadata, parameters from initializers and,
    for those no node reads (fix_gamma's gamma, shape-only inputs), from the metadata, exactly as exported.
    (The JSON loader's own MXNetErrors pass unchanged: the CLI reports them as they are.)"""
    meta = _metadata(model)
    sym = load_json(meta[METADATA_SYMBOL])
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    if METADATA_UNUSED_PARAMS in meta:
        for name, array in _unused_params(meta[METADATA_UNUSED_PARAMS], source).items():
            if name in arrays or name not in sym.list_inputs():
                raise MXNetError("%s: metadata %s lists '%s', which is %s" % (
                    source, METADATA_UNUSED_PARAMS, name,
                    "an initializer too" if name in arrays else "not an input of the model's symbol"))
            arrays[name] = array
    args = set(sym.list_arguments())
    aux = set(sym.list_auxiliary_states())
    arg_params = {n: nd.array(a, dtype=a.dtype) for n, a in arrays.items() if n in args}
    aux_params = {n: nd.array(a, dtype=a.dtype) for n, a in arrays.items() if n in aux}
    return sym, arg_params, aux_params


def _unused_params(text, source):
    """{name: array} of the metadata entry METADATA_UNUSED_PARAMS (onnx_export.encode_array), every field checked:
    a numeric dtype, non-negative dims, no more bytes than this machine's memory, and data of exactly the
    declared size."""
    def fail(why):
        raise MXNetError("%s: malformed metadata %s: %s" % (source, METADATA_UNUSED_PARAMS, why))
    try:
        entries = json.loads(text)
    except ValueError as err:
        fail("not JSON (%s)" % err)
    if not isinstance(entries, dict):
        fail("not a JSON object")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    arrays = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or set(entry) not in ({"shape", "dtype", "fill"}, {"shape", "dtype", "data"}):
            fail("'%s' is not {shape, dtype, fill or data}" % name)
        shape, dtype_name = entry["shape"], entry["dtype"]
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            fail("'%s' has the shape %r" % (name, shape))
        try:
            dtype = np.dtype(dtype_name) if isinstance(dtype_name, str) else None
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in "biuf" or dtype.name != dtype_name:
            fail("'%s' has the dtype %r" % (name, dtype_name))
        size = prod(shape) * dtype.itemsize
        if size > memory:
            fail("'%s' of shape %s is larger than this machine's memory" % (name, shape))
        payload = entry.get("fill", entry.get("data"))
        try:
            raw = base64.b64decode(payload, validate=True) if isinstance(payload, str) else None
        except ValueError:
            raw = None
        expected = dtype.itemsize if "fill" in entry else size
        if raw is None or len(raw) != expected:
            fail("'%s' holds %s bytes of %s, its shape and dtype need %d"
                 % (name, "no" if raw is None else len(raw), "fill" if "fill" in entry else "data", expected))
        values = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
        arrays[name] = np.repeat(values, prod(shape) if "fill" in entry else 1).reshape(shape)   # bitwise copies
    return arrays


def data_input_names(model):
    meta = _metadata(model)
    return json.loads(meta["data_inputs"]) if "data_inputs" in meta else None
