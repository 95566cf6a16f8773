"""Symbol + parameters -> a standard `.onnx` file that plain ONNX Runtime serves (MXNet's mx.onnx.export_model).

The inference graph only: loss heads become their forward outputs, BlockGrad/Dropout identities, BatchNorm uses
its moving statistics (fix_gamma honoured). Parameters that the graph reads become initializers; inputs that
inference does not read (the labels of loss heads) are dropped. The file holds no initializer that no node reads
(plain ONNX Runtime warns "Removing initializer ..." on every load otherwise): parameters the inference graph
ignores (fix_gamma's gamma, inputs read only for their shape, as broadcast_like's rhs) travel in the metadata
instead, with the MXNet JSON, so `import_model` gives back the identical Symbol and every parameter. Custom Python
ops stay nodes of the `ai.onnx.contrib` domain whose `key` attribute names the op type and its arguments (the
export warns how plain ONNX Runtime loads them); composite ops (register_function) become ONNX functions.
"""
import base64
import json
import os
import sys
import warnings

import numpy as np
import onnx

from onnxsym import ndarray as nd
from onnxsym._files import atomic_write
from onnxsym.base import MXNetError, __version__ as onnxsym_version
from onnxsym.context import cpu
from onnxsym.lower.builder import PYTHON_DOMAIN, GraphBuilder
from onnxsym.lower.to_onnx import lower_symbol
from onnxsym.runtime.rng import has_sampling
from onnxsym.runtime.ort import create_session
from onnxsym.runtime.pyops import raise_pending
from onnxsym.symbol import Symbol, load as load_symbol
from onnxsym.symbol.node import topo_order

__all__ = ["export_model", "METADATA_SYMBOL", "METADATA_UNUSED_PARAMS", "data_inputs"]

METADATA_SYMBOL = "mxnet_symbol"
# {name: {"shape": [...], "dtype": "float32", "fill" or "data": base64}}: the parameters that no node reads, exactly
# ("fill": one little-endian element that every element equals; "data": all of them, C order, little-endian)
METADATA_UNUSED_PARAMS = "mxnet_unused_params"


def _load_inputs(sym, params):
    if isinstance(sym, (str, os.PathLike)):
        sym = load_symbol(sym)
    if isinstance(params, (str, os.PathLike)):
        params = nd.load(params)
    if not isinstance(params, dict):
        raise TypeError("params must be a dict of name -> NDArray or the path of a .params file")
    clean = {}
    for key, value in params.items():
        name = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
        clean[name] = value if isinstance(value, nd.NDArray) else nd.array(value, dtype=np.asarray(value).dtype)
    return sym, clean


def strip_amp_cast(sym):
    """A copy of `sym` without amp_cast / amp_multicast nodes (MXNet strips them when saving for deployment):
    their consumers read the original values."""
    import copy
    if not any(not n.is_variable and n.op.op_name in ("amp_cast", "amp_multicast") for n in topo_order(sym.outputs)):
        return sym
    sym = copy.deepcopy(sym)

    def source(entry):
        node, index = entry
        while not node.is_variable and node.op.op_name in ("amp_cast", "amp_multicast"):
            node, index = node.inputs[index if node.op.op_name == "amp_multicast" else 0]
        return node, index

    for node in topo_order(sym.outputs):
        node.inputs = tuple(source(e) for e in node.inputs)
    return Symbol([source(e) for e in sym.outputs])


def data_inputs(sym, params):
    """The inputs a user feeds: not parameters, not the labels that only loss heads read."""
    label_only = set()
    readers = {}
    for node in topo_order(sym.outputs):
        if node.is_variable:
            continue
        data_slot = node.op.input_names()[0] if node.op.input_names() else None
        for name, (src, _) in zip(node.op.input_names(), node.inputs):
            if src.is_variable:
                readers.setdefault(src.name, []).append(node.op.is_loss and name != data_slot)
    for name, flags in readers.items():
        if flags and all(flags):
            label_only.add(name)
    return [n for n in sym.list_inputs() if n not in params and n not in label_only]


def export_model(sym, params, in_shapes=None, in_types=np.float32, onnx_file_path="model.onnx", verbose=False,
                 dynamic=None, dynamic_input_shapes=None, run_shape_inference=False, input_type=None,
                 input_shape=None, large_model=False):
    """Write `sym` with `params` as an ONNX model to onnx_file_path (returns the path).

    in_shapes / in_types: one shape / dtype per data input (the symbol's inputs that are neither parameters nor
    labels), in list_inputs order. The batch (first) dimension is symbolic ('N') whenever the exported graph is
    checked to give onnxsym's numbers at two other batch sizes (up to 1e-4 of each output's largest magnitude,
    `batch_difference`); dynamic=None (default) falls back to static shapes with a warning otherwise,
    dynamic=True makes that an error, dynamic=False keeps static shapes. Parameters that no node of the inference
    graph reads (fix_gamma's gamma) are written to the metadata, not as initializers. A graph with custom Python
    ops warns (UserWarning) how plain ONNX Runtime must register them to load the file."""
    if input_shape is not None:
        in_shapes = input_shape
    if input_type is not None:
        in_types = input_type
    if dynamic_input_shapes:
        raise MXNetError("export_model: dynamic_input_shapes is not supported; the batch dimension is made "
                         "symbolic automatically (dynamic=True/None)")
    sym, params = _load_inputs(sym, params)
    sym = strip_amp_cast(sym)
    names = data_inputs(sym, params)
    if in_shapes is None:
        raise MXNetError("export_model needs in_shapes for the inputs %s" % names)
    in_shapes = [tuple(s) for s in in_shapes]
    if len(in_shapes) != len(names):
        raise MXNetError("export_model: %d shapes given for the %d data inputs %s" % (len(in_shapes), len(names),
                                                                                      names))
    in_types = in_types if isinstance(in_types, (list, tuple)) else [in_types] * len(names)
    shapes = dict(zip(names, in_shapes))
    dtypes = {n: np.dtype(t) for n, t in zip(names, in_types)}
    for name, value in params.items():
        if name in sym.list_inputs():
            shapes[name] = tuple(value.shape)
            dtypes[name] = np.dtype(value.dtype)
    builder = GraphBuilder()
    builder.export_functions = True
    lowered = lower_symbol(sym, shapes, dtypes, builder=builder)
    model = lowered.model
    _inputs_to_initializers(model, params)
    unused = {name: params[name] for name in drop_unused_initializers(model) if name in params}
    if dynamic is not False:
        model = _with_symbolic_batch(model, sym, params, names, shapes, dtypes, strict=bool(dynamic))
    model.producer_name, model.producer_version = "onnxsym", onnxsym_version
    props = {METADATA_SYMBOL: sym.tojson(), "onnxsym_version": onnxsym_version, "data_inputs": json.dumps(names)}
    if unused:
        props[METADATA_UNUSED_PARAMS] = json.dumps({n: encode_array(v.asnumpy()) for n, v in sorted(unused.items())})
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    _warn_python_ops(model)
    atomic_write(onnx_file_path, model.SerializeToString(), mode="wb")
    if verbose:
        print("exported %s: inputs %s, outputs %s" % (onnx_file_path, [i.name for i in model.graph.input],
                                                     [o.name for o in model.graph.output]))
    return onnx_file_path


def _inputs_to_initializers(model, params):
    """Parameters become initializers; other inputs no node reads (labels of loss heads) are dropped."""
    used = _names_read(model.graph)
    keep = []
    for value in model.graph.input:
        if value.name in params:    # all of them here: drop_unused_initializers then moves the unread ones out
            array = params[value.name].asnumpy()
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(array, order="C"), value.name))
        elif value.name in used:
            keep.append(value)
    del model.graph.input[:]
    model.graph.input.extend(keep)


def _subgraphs(node):
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _names_read(graph):
    """The value names that the nodes of `graph` and of its subgraphs (If/Loop/Scan bodies, which may read the
    outer graph's values) read, and those the graphs output."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for subgraph in _subgraphs(node):
            names |= _names_read(subgraph)
    return names


def drop_unused_initializers(model):
    """Remove from `model` every initializer (and its graph input, if any) that no node reads; return their names
    in file order. Function bodies do not count: an ONNX function sees only its formal inputs, never the
    graph's initializers (the node calling it does, and counts)."""
    used = _names_read(model.graph)
    dropped = [t.name for t in model.graph.initializer if t.name not in used]
    if dropped:
        gone = set(dropped)
        kept = [t for t in model.graph.initializer if t.name not in gone]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        inputs = [v for v in model.graph.input if v.name not in gone]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
    return dropped


def encode_array(array):
    """The metadata entry of a parameter no node reads (METADATA_UNUSED_PARAMS); onnx_import decodes it."""
    array = np.asarray(array)
    data = np.asarray(array, array.dtype.newbyteorder("<"), order="C").tobytes()
    entry = {"shape": list(array.shape), "dtype": array.dtype.name}
    elements = np.frombuffer(data, np.uint8).reshape(array.size, array.dtype.itemsize)
    if array.size and (elements == elements[0]).all():     # bitwise: -0.0 and NaN payloads stay exact
        entry["fill"] = base64.b64encode(data[:array.dtype.itemsize]).decode()
    else:
        entry["data"] = base64.b64encode(data).decode()
    return entry


def _all_nodes(model):
    """Every node of the model: the graph's, its subgraphs' and the function bodies'."""
    def walk(nodes):
        for node in nodes:
            yield node
            for subgraph in _subgraphs(node):
                yield from walk(subgraph.node)
    yield from walk(model.graph.node)
    for function in model.functions:
        yield from walk(function.node)


def _warn_python_ops(model):
    """One UserWarning when the model holds custom Python ops: plain ONNX Runtime loads it only with their node
    types registered (onnxsym/runtime/pyops.py) before the onnxruntime-extensions library joins the session."""
    node_types, op_types = set(), set()
    for node in _all_nodes(model):
        if node.domain == PYTHON_DOMAIN:
            node_types.add(node.op_type)
            key = next((a.s.decode() for a in node.attribute if a.name == "key"), "")
            try:
                op_types.add(json.loads(key)["op_type"])
            except (ValueError, KeyError, TypeError):
                pass
    if not node_types:
        return
    ops = ", ".join("'%s'" % t for t in sorted(op_types)) or "(unnamed)"
    _warn("export_model: the model holds the custom Python op(s) %s as nodes of type %s in the domain '%s'. "
          "Plain ONNX Runtime loads it only with those registered: in the serving process import the module that "
          "registers %s (mx.operator.register), call onnxsym.runtime.pyops.ensure_registered(t) for t in %s, and "
          "only then SessionOptions.register_custom_ops_library(onnxruntime_extensions.get_library_path()) and "
          "create the InferenceSession with those options (onnxsym.runtime.ort.create_session(onnx.load(path)) "
          "does these last steps)" % (ops, ", ".join("'%s'" % t for t in sorted(node_types)), PYTHON_DOMAIN, ops,
                                      sorted(node_types)))


def _warn(message):
    """A UserWarning attributed to the first caller outside onnxsym (mx.onnx.export_model, Module.export_onnx and
    Symbol.export_onnx wrap export_model)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(nd.__file__)))       # onnxsym/ (nd: onnxsym/ndarray/)
    inside = (package + os.sep, os.path.dirname(os.path.abspath(__file__)) + os.sep)
    level, frame = 1, sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _reshape_targets_copy_dim0(model):
    """Reshape targets whose first entry equals the input's first dimension become 0 ('copy that dimension'):
    the same static result, and batch-independent."""
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info):
        shape = value.type.tensor_type.shape.dim
        if shape and shape[0].HasField("dim_value"):
            dims[value.name] = shape[0].dim_value
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers or node.input[0] not in dims:
            continue
        target = onnx.numpy_helper.to_array(initializers[node.input[1]]).copy()
        if target.size and target[0] == dims[node.input[0]] and target[0] > 0:
            target[0] = 0
            name = node.input[1] + "/dim0"
            if name not in initializers:
                initializers[name] = onnx.numpy_helper.from_array(target, name)
                model.graph.initializer.append(initializers[name])
            node.input[1] = name


def _with_symbolic_batch(model, sym, params, names, shapes, dtypes, strict):
    """`model` with a symbolic first dimension on the data inputs and outputs, if the result is checked to
    match onnxsym at two other batch sizes; else the static model (a warning) or an error (strict)."""
    import copy
    import onnxruntime as ort
    candidate = copy.deepcopy(model)
    _reshape_targets_copy_dim0(candidate)
    drop_unused_initializers(candidate)     # reshape targets the copies replaced
    batch = shapes[names[0]][0] if names else None
    for value in list(candidate.graph.input) + list(candidate.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = "N"
    del candidate.graph.value_info[:]
    problem = None
    sampling = has_sampling(candidate)
    try:
        onnx.checker.check_model(candidate, full_check=True)
        for other in (batch + 1, batch + 3):
            rng = np.random.RandomState(other)
            feeds = {n: (rng.uniform(-1, 1, (other,) + tuple(shapes[n][1:]))).astype(dtypes[n]) for n in names}
            session = _session(candidate, ort)
            theirs = session.run(None, feeds)
            raise_pending()     # a custom op's error in this raw run belongs here, not to the next onnxsym run
            exe = sym.bind(cpu(), {**{k: v for k, v in params.items() if k in sym.list_arguments()},
                                      **{n: nd.array(v, dtype=v.dtype) for n, v in feeds.items()},
                                      **_labels(sym, params, names, feeds)},
                           aux_states={k: v for k, v in params.items() if k in sym.list_auxiliary_states()})
            ours = [o.asnumpy() for o in exe.forward()]
            for name, a, b in zip(sym.list_outputs(), ours, theirs):
                # (a graph that samples draws other values each run: only the shapes can agree)
                difference = (None if a.shape == b.shape else "shape %s, onnxsym %s" % (b.shape, a.shape)) \
                    if sampling else batch_difference(a, b)
                if difference:
                    problem = "output %s differs at batch size %d: %s" % (name, other, difference)
                    break
            if problem:
                break
    except Exception as err:        # any failure means the batch is not symbolic-safe for this graph
        problem = "%s: %s" % (type(err).__name__, err)
    if problem is None:
        return candidate
    message = "export_model: the graph does not run with a symbolic batch dimension (%s)" % problem
    if strict:
        raise MXNetError(message)
    _warn(message + "; exported with static shapes")
    return model


def batch_difference(ours, theirs):
    """Why the symbolic-batch graph's output `theirs` is not onnxsym's `ours` at the same batch size, or None.

    Float outputs may differ by rounding: kernels change with the batch size (ORT's GEMM blocking), and the
    difference scales with the output's largest magnitude, near-zero elements included (the logits of a zoo model
    are ~200; a 5e-7 relative change of those is 1e-4 on an element near 0). So the check allows |ours - theirs|
    up to 1e-4 (float32: ~840 ulps; at least 10 eps of the dtype) of max|ours|; measured on models/ at batch
    sizes 2 to 5, the rounding reaches 6e-6 of it (mobilenetv2). A batch size baked into the graph changes a
    result by a whole sample, 1/(batch + 1) of a mean or sum or more, or changes a shape; non-finite values must
    match exactly, and other dtypes exactly."""
    if ours.shape != theirs.shape:
        return "shape %s, onnxsym %s" % (theirs.shape, ours.shape)
    if ours.dtype.kind not in "fc" or ours.size == 0:
        return None if np.array_equal(ours, theirs) else "values differ"
    finite = np.isfinite(ours)
    if not np.array_equal(finite, np.isfinite(theirs)) or \
            not np.array_equal(ours[~finite], theirs[~finite], equal_nan=True):
        return "non-finite values differ"
    if not finite.any():
        return None
    relative = max(1e-4, 10 * float(np.finfo(ours.dtype).eps))
    ours, theirs = ours[finite].astype(np.complex128 if ours.dtype.kind == "c" else np.float64), theirs[finite]
    scale = np.abs(ours).max()
    largest = np.abs(ours - theirs).max()
    if largest <= relative * scale:
        return None
    return "max |difference| %.3g, more than %.0e of max |output| %.3g" % (largest, relative, scale)


def _session(model, ort):
    return create_session(model)


def _labels(sym, params, names, feeds):
    """Label arrays for the loss heads (their values do not matter at inference), shaped for the feeds."""
    labels = [n for n in sym.list_arguments() if n not in params and n not in names]
    if not labels:
        return {}
    arg_shapes, _, _ = sym.infer_shape_partial(**{n: v.shape for n, v in feeds.items()})
    by_name = dict(zip(sym.list_arguments(), arg_shapes))
    return {n: nd.zeros(by_name[n]) for n in labels}
