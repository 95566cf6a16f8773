"""The `onnxsym` command line: convert MXNet checkpoints to ONNX (verified); inspect, plot, run and benchmark models
(any .onnx; --input-shape sizes dynamic dimensions); list the supported MXNet operators; pack images into RecordIO
files (MXNet's tools/im2rec.py).

    onnxsym convert model 10 -o model.onnx --input-shape data:1,3,224,224
    onnxsym info model.onnx
    onnxsym plot model-symbol.json -o model.svg --input-shape data:1,3,224,224
    onnxsym run model.onnx --input data=image.npy -o outputs.npz
    onnxsym bench model.onnx --batch 8
    onnxsym ops
    onnxsym im2rec data/train images --list --recursive
    onnxsym launch -n 2 -- python train.py --kv-store dist_sync
    onnxsym --version

Failures print one line on stderr and exit non-zero (2 for usage errors, 1 otherwise); --debug shows the traceback.
"""
import argparse
import contextlib
import importlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter

import numpy as np

__all__ = ["main", "build_parser", "CommandError"]

RENDERED = (".svg", ".png", ".pdf")
DOT_SOURCE = (".dot", ".gv")


class CommandError(Exception):
    """A failure the command reports as one line on stderr, without a traceback."""

    exit_code = 1


class UsageError(CommandError):
    """A malformed command line (argparse's errors): exit code 2."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors raised to main() instead of usage text and sys.exit."""

    def error(self, message):
        raise UsageError("%s: error: %s (see '%s --help')" % (self.prog, message, self.prog))


# ----- argument types -----

def input_shape(text):
    """'data:1,3,224,224' -> ('data', (1, 3, 224, 224))."""
    name, _, dims = text.rpartition(":")
    dims = dims.strip().strip("()[]")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = None
    if not name or shape is None or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError("expected NAME:D1,D2,... with positive dimensions, such as "
                                          "data:1,3,224,224; got '%s'" % text)
    return name, shape


def named_file(text):
    """'data=file.npy' -> ('data', 'file.npy')."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=FILE.npy, such as data=image.npy; got '%s'" % text)
    return name, path


def dtype(text):
    try:
        return np.dtype(text)
    except TypeError:
        raise argparse.ArgumentTypeError("unknown dtype '%s' (such as float32, float16, int64)" % text) from None


def positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got '%s'" % text)
    return value


def _shape_dict(pairs):
    shapes = {}
    for name, shape in pairs or ():
        if name in shapes:
            raise CommandError("--input-shape gives '%s' twice" % name)
        shapes[name] = shape
    return shapes


# ----- shared helpers -----

@contextlib.contextmanager
def stage(label):
    """One progress line per long step: 'label ... done (0.12 s)', then the step's warnings as indented lines."""
    print("%s ..." % label, end="", flush=True)
    start = time.perf_counter()
    result = "failed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
            result = "done (%.2f s)" % (time.perf_counter() - start)
        finally:
            print(" " + result, flush=True)
            for item in caught:
                print("  warning: %s" % _one_line(item.message), flush=True)


def _fmt_shape(shape):
    if shape is None:
        return "(unknown rank)"
    return "(%s)" % ", ".join(str(d) for d in shape) if len(shape) != 1 else "(%s,)" % shape[0]


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024


def _histogram(ops):
    """Lines 'count  op', most frequent first."""
    return ["  %5d  %s" % (count, op) for op, count in sorted(Counter(ops).items(), key=lambda kv: (-kv[1], kv[0]))]


def _load_onnx(path):
    from onnxsym.converters.onnx_import import load_model  # lazy: CLI start-up time
    return load_model(path)


def _value_info(value):
    """(name, shape, kind) of an ONNX graph input/output: the shape has dim_param names (or '?') for symbolic
    dimensions and is None when the rank is not declared; kind is a numpy dtype for a tensor, else the value's
    type in words (a sequence, a map; a tensor of an element type numpy lacks)."""
    import onnx  # lazy: CLI start-up time
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return value.name, None, (kind or "value of no type").replace("_type", "").replace("_", " ")
    tensor = value.type.tensor_type
    shape = None
    if tensor.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    try:
        return value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except (KeyError, TypeError):
        return value.name, shape, "tensor of ONNX element type %d" % tensor.elem_type


def _graph_inputs(model):
    initializers = {t.name for t in model.graph.initializer}
    return [_value_info(v) for v in model.graph.input if v.name not in initializers]


def _input_shapes(declared, given, batch=None, hint=lambda name, axis: "", new_batch=False):
    """{name: static shape} of a .onnx model's inputs ((name, shape, dtype) triples, symbolic dimensions as
    strings): --input-shape's where `given` has the input, else the declared shape with its first dimension
    replaced by `batch` (when given). Static dimensions must stay, but for the first one when `new_batch` (bench
    exports the model again). A dimension left unknown is an error naming it; `hint(name, axis)` ends it."""
    _check_names(given, [name for name, _, _ in declared], "--input-shape")
    shapes = {}
    for name, shape, kind in declared:
        if not isinstance(kind, np.dtype):
            raise CommandError("input '%s' is a %s: the command line gives tensors of numpy dtypes only" % (name, kind))
        if shape is None and name not in given:
            raise CommandError("input '%s' declares no shape: give it with --input-shape %s:D1,D2,..." % (name, name))
        if shape is None:
            shape = ("?",) * len(given[name])
        if name in given:
            wanted = given[name]
            if len(wanted) != len(shape):
                raise CommandError("--input-shape %s:%s has %d dimensions; input '%s' has %d %s"
                                   % (name, ",".join(map(str, wanted)), len(wanted), name, len(shape),
                                      _fmt_shape(shape)))
            if batch is not None and wanted and wanted[0] != batch:
                raise CommandError("--batch %d but --input-shape %s:%s: the first dimension is the batch; give "
                                   "one of them" % (batch, name, ",".join(map(str, wanted))))
        elif batch is not None and shape:
            wanted = (batch,) + tuple(shape[1:])
        elif batch is not None:
            raise CommandError("input '%s' is a scalar: it has no batch dimension to set" % name)
        else:
            wanted = shape
        first = 1 if new_batch else 0
        for axis, (declared_dim, dim) in enumerate(zip(shape, wanted)):
            if isinstance(dim, int) and isinstance(declared_dim, int) and dim != declared_dim and axis >= first:
                raise CommandError("--input-shape %s:%s: dimension %d is %d but the model's input '%s' %s has %d"
                                   % (name, ",".join(map(str, wanted)), axis, dim, name, _fmt_shape(shape),
                                      declared_dim))
            if not isinstance(dim, int):
                example = ",".join(str(d) if isinstance(d, int) else "1" for d in wanted)
                raise CommandError("input '%s' %s has the dynamic dimension '%s' (axis %d): give its size with "
                                   "--input-shape %s:%s%s" % (name, _fmt_shape(shape), dim, axis, name, example,
                                                             hint(name, axis)))
        shapes[name] = tuple(wanted)
    return shapes


def _import_onnx(path, model, given, new_batch=False):
    """(sym, arg_params, aux_params, shapes) of any .onnx (mx.onnx.import_model). onnxsym's own files keep their
    Symbol; other models are imported at the shapes --input-shape gives, `shapes` then being every input's."""
    from .onnx import import_model  # lazy: CLI start-up time
    if _is_onnxsym_model(model):
        _check_names(given, [name for name, _, _ in _graph_inputs(model)], "--input-shape")
        return import_model(path) + (dict(given),)
    shapes = _input_shapes(_graph_inputs(model), given, new_batch=new_batch)
    return import_model(path, input_shapes=shapes) + (shapes,)


def _is_onnxsym_model(model):
    """A .onnx onnxsym exported: its MXNet Symbol is in the metadata."""
    from onnxsym.converters.onnx_export import METADATA_SYMBOL  # lazy: CLI start-up time
    return METADATA_SYMBOL in {p.key for p in model.metadata_props}


def _label_inputs(sym):
    """Inputs that only loss heads read (softmax_label): exported models drop them."""
    from onnxsym.converters.onnx_export import data_inputs  # lazy: CLI start-up time
    return [n for n in sym.list_inputs() if n not in data_inputs(sym, {})]


def _has_python_ops(model):
    from .lower.builder import PYTHON_DOMAIN  # lazy: CLI start-up time
    return any(n.domain == PYTHON_DOMAIN for n in model.graph.node)


def _plain_session(path, model):
    """A plain ORT InferenceSession on the checked model (`load_model` inlined its external data; the file is not
    read again, and its metadata's `ort_config`, which ORT applies when ORT_LOAD_CONFIG_FROM_MODEL=1 and which can
    make it write profiles, is dropped); models with onnxsym's Python custom ops go through onnxsym's session
    creation, which registers their op types."""
    from .runtime.ort import create_session, ort, ort_message  # lazy: CLI start-up time
    if _has_python_ops(model):
        return create_session(model)
    plain = type(model)()
    plain.CopyFrom(model)
    kept = [p for p in plain.metadata_props if p.key != "ort_config"]
    del plain.metadata_props[:]
    plain.metadata_props.extend(kept)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(plain.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT's own exception types
        raise CommandError("ONNX Runtime cannot load %s: %s" % (path, ort_message(err))) from None


def _run_session(session, feeds):
    """session.run, with ORT's and custom ops' errors as MXNetError."""
    from .runtime.ort import run_error  # lazy: CLI start-up time
    from .runtime.pyops import raise_pending  # lazy: CLI start-up time
    try:
        outputs = session.run(None, feeds)
    except Exception as err:  # ORT's own exception types, or a custom op's
        raise run_error(err) from None
    raise_pending()           # a custom op's exception, caught inside the run
    return outputs


def _random_inputs(shapes, dtypes, seed):
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in shapes.items():
        kind = dtypes[name]
        if np.issubdtype(kind, np.floating):
            arrays[name] = rng.uniform(-1.0, 1.0, shape).astype(kind)
        else:
            arrays[name] = rng.integers(0, 2 if kind == np.bool_ else 10, shape).astype(kind)
    return arrays


def _scalar_shapes(params):
    """{name: ()} of the 0-d parameters (imported ONNX scalars): shape inference takes an undeclared shape as
    unknown, as MXNet does, unless () is given."""
    return {name: () for name, value in params.items() if not value.shape}


def _bind(sym, params, inputs):
    """An inference Executor of `sym` with `params` and `inputs` copied in (labels stay zero)."""
    from .context import cpu  # lazy: CLI start-up time
    from .ndarray import NDArray  # lazy: CLI start-up time
    arrays = {**params, **inputs}
    args, auxs = sym.list_arguments(), sym.list_auxiliary_states()
    if _scalar_shapes(params) and all(n in arrays for n in args + auxs):
        # 0-d parameters (imported ONNX scalars): simple_bind cannot allocate them (MXNet reads () as unknown)
        return sym.bind(cpu(), {n: NDArray(np.array(arrays[n])) for n in args}, grad_req="null",
                        aux_states={n: NDArray(np.array(arrays[n])) for n in auxs})
    exe = sym.simple_bind(cpu(), grad_req="null", type_dict={n: a.dtype for n, a in inputs.items()},
                          **{n: a.shape for n, a in inputs.items()})
    for group in (exe.arg_dict, exe.aux_dict):
        for name, array in group.items():
            value = inputs.get(name, params.get(name))
            if value is None:
                continue
            if tuple(value.shape) != tuple(array.shape):
                raise CommandError("parameter '%s' has shape %s but the graph needs %s for these input shapes"
                                   % (name, _fmt_shape(value.shape), _fmt_shape(array.shape)))
            array[:] = value
    return exe


def _max_difference(a, b):
    """max |a - b| (0 when empty); equal NaNs and infinities count as equal, a lone NaN as infinitely far."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    return float(np.nan_to_num(diff, nan=np.inf, posinf=np.inf).max()) if diff.size else 0.0


def _check_names(given, known, what):
    unknown = [n for n in given if n not in known]
    if unknown:
        raise CommandError("unknown input '%s' in %s; the model's inputs are: %s"
                           % (unknown[0], what, ", ".join(known) or "(none)"))


# ----- convert -----

def cmd_convert(args):
    """MXNet checkpoint -> .onnx, then the same seeded input through onnxsym and ONNX Runtime."""
    from onnxsym.converters.onnx_export import data_inputs  # lazy: CLI start-up time
    from .module.model import load_checkpoint  # lazy: CLI start-up time
    from .onnx import export_model  # lazy: CLI start-up time
    with stage("[1/3] loading checkpoint %s-symbol.json, %s-%04d.params" % (args.prefix, args.prefix, args.epoch)):
        sym, arg_params, aux_params = load_checkpoint(args.prefix, args.epoch)
    params = {**arg_params, **aux_params}
    names = data_inputs(sym, params)
    shapes = _shape_dict(args.input_shape)
    labels = set(_label_inputs(sym))
    for name in shapes:
        if name in labels:
            raise CommandError("'%s' is a label that only loss layers read; the exported model has no such input "
                               "(drop its --input-shape)" % name)
    _check_names(shapes, names, "--input-shape")
    missing = [n for n in names if n not in shapes]
    if missing:
        raise CommandError("no --input-shape for input '%s' (give NAME:D1,D2,...; inputs: %s)"
                           % (missing[0], ", ".join(names)))
    wanted = set(sym.list_arguments()) - set(names) - labels | set(sym.list_auxiliary_states())
    absent = sorted(wanted - set(params))
    if absent:
        raise CommandError("%s-%04d.params has no values for %s" % (args.prefix, args.epoch, ", ".join(absent)))
    dtypes = {n: args.dtype for n in names}
    if args.training:
        return _convert_training(args, sym, params, names, shapes, dtypes)
    with stage("[2/3] exporting %s" % args.output):
        export_model(sym, params, [shapes[n] for n in names], [args.dtype] * len(names),
                     onnx_file_path=args.output)
    with stage("[3/3] verifying: onnxsym forward vs ONNX Runtime on %s (seed %d)" % (args.output, args.seed)):
        inputs = _random_inputs({n: shapes[n] for n in names}, dtypes, args.seed)
        params_np = {n: v.asnumpy() for n, v in params.items()}
        ours = [o.asnumpy() for o in _bind(sym, params_np, inputs).forward(is_train=False)]
        session = _plain_session(args.output, _load_onnx(args.output))
        feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
        theirs = _run_session(session, feeds)
    if len(ours) != len(theirs):
        raise CommandError("onnxsym gives %d outputs, the .onnx %d" % (len(ours), len(theirs)))
    for name, a, b in zip(sym.list_outputs(), ours, theirs):
        if a.shape != b.shape:
            raise CommandError("output '%s': onnxsym shape %s, ONNX Runtime shape %s"
                               % (name, _fmt_shape(a.shape), _fmt_shape(b.shape)))
    _verify(zip(sym.list_outputs(), ours, theirs), args)
    print("wrote %s" % args.output)


def _verify(compared, args):
    """Print each (name, onnxsym's array, ONNX Runtime's) max abs difference; CommandError over --tolerance."""
    worst = 0.0
    for name, a, b in compared:
        diff = _max_difference(a, b)
        worst = max(worst, diff)
        print("  %s %s: max abs difference %.3g" % (name, _fmt_shape(a.shape), diff))
    print("max abs difference: %.3g (tolerance %g)" % (worst, args.tolerance))
    if not worst <= args.tolerance:
        raise CommandError("verification failed: max abs difference %.3g exceeds the tolerance %g (%s is kept)"
                           % (worst, args.tolerance, args.output))


def _convert_training(args, sym, params, names, shapes, dtypes):
    """--training: the training graph (gradients, or gradients and an SGD or Adam update), then one step of onnxsym
    and of ONNX Runtime on the same seeded batch (labels: class 0), gradient by gradient."""
    from .context import cpu  # lazy: CLI start-up time
    from .onnx import export_training_model  # lazy: CLI start-up time
    optimizer = None if args.training == "grad" else args.training
    with stage("[2/3] exporting the training graph %s (%s)" % (args.output, args.training)):
        export_training_model(sym, params, [shapes[n] for n in names], [args.dtype] * len(names),
                              onnx_file_path=args.output, optimizer=optimizer)
    state_file = os.path.splitext(args.output)[0] + ".npz"
    with stage("[3/3] verifying: onnxsym gradients vs ONNX Runtime on %s (seed %d)" % (args.output, args.seed)):
        inputs = _random_inputs({n: shapes[n] for n in names}, dtypes, args.seed)
        exe = sym.simple_bind(cpu(), grad_req="write", type_dict=dtypes, **{n: shapes[n] for n in names})
        for group in (exe.arg_dict, exe.aux_dict):
            for name, array in group.items():
                value = inputs.get(name, params[name].asnumpy() if name in params else None)
                if value is not None:
                    array[:] = value
        labels = {n: exe.arg_dict[n].asnumpy() for n in exe.arg_dict if n not in inputs and n not in params}
        exe.forward(is_train=True)
        exe.backward()
        session = _plain_session(args.output, _load_onnx(args.output))
        with np.load(state_file) as saved:
            feeds = dict(saved, **inputs, **labels)
        feeds["learning_rate"] = np.array(0.0, args.dtype)
        feeds["step"] = np.array(1.0, args.dtype)
        theirs = dict(zip([o.name for o in session.get_outputs()],
                          _run_session(session, {i.name: feeds[i.name] for i in session.get_inputs()})))
    _verify([(name + "_grad", grad.asnumpy(), theirs[name + "_grad"]) for name, grad in exe.grad_dict.items()
             if name + "_grad" in theirs], args)
    print("wrote %s and its starting parameters %s" % (args.output, state_file))


# ----- info -----

def cmd_info(args):
    """Describe a .onnx model or an MXNet -symbol.json."""
    if args.file.endswith(".onnx"):
        if args.params:
            raise CommandError("--params applies to -symbol.json files only (a .onnx holds its parameters)")
        return _info_onnx(args.file, _shape_dict(args.input_shape))
    if args.file.endswith(".json"):
        return _info_symbol(args.file, args.params, _shape_dict(args.input_shape))
    raise CommandError("%s: expected a .onnx model or an MXNet -symbol.json" % args.file)


def _info_onnx(path, shapes):
    import onnx  # lazy: CLI start-up time
    model = _load_onnx(path)
    _check_names(shapes, [name for name, _, _ in _graph_inputs(model)], "--input-shape")
    opsets = ", ".join("%s %d" % (o.domain or "ai.onnx", o.version) for o in model.opset_import)
    print("model: %s" % path)
    print("  ir_version %d, producer %s %s" % (model.ir_version, model.producer_name or "?",
                                              model.producer_version))
    print("  opsets: %s" % opsets)
    for title, values in (("inputs", _graph_inputs(model)), ("outputs", [_value_info(v) for v in model.graph.output])):
        print("%s (%d):" % (title, len(values)))
        for name, shape, kind in values:
            print("  %s  %s  %s" % (name, kind, _fmt_shape(shape)))
    count = size = 0
    for tensor in model.graph.initializer:
        n = int(np.prod(tensor.dims, dtype=np.int64))
        count += n
        size += n * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    print("parameters: %d in %d initializers (%s)" % (count, len(model.graph.initializer), _fmt_bytes(size)))
    ops = ["%s.%s" % (n.domain, n.op_type) if n.domain not in ("", "ai.onnx") else n.op_type
           for n in model.graph.node]
    print("ops (%d nodes):" % len(ops))
    print("\n".join(_histogram(ops)))
    if model.functions:
        print("functions: %s" % ", ".join(f.name for f in model.functions))
    print("metadata keys: %s" % (", ".join(p.key for p in model.metadata_props) or "(none)"))
    print("onnxsym: %s" % _import_summary(path, model, shapes))


def _import_summary(path, model, shapes):
    """How mx.onnx.import_model reads the model: onnxsym's own Symbol, or one `_onnx` op per ONNX node (or why
    it cannot, as one line)."""
    from .base import MXNetError  # lazy: CLI start-up time
    if _is_onnxsym_model(model):
        sym = _import_onnx(path, model, {})[0]
        ops = [n["op"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]
        return "exported by onnxsym %s; imports as its MXNet symbol (%d ops: %s)" % (
            {p.key: p.value for p in model.metadata_props}.get("onnxsym_version", "?"), len(ops),
            ", ".join(sorted(set(ops))))
    try:
        used = _import_onnx(path, model, shapes)[3]
    except (CommandError, MXNetError) as err:
        return "cannot import it: %s" % _one_line(err)
    # the ONNX nodes (small integer initializers become Constant ops of the symbol too: settings, not nodes)
    count = len(model.graph.node)
    return "imports at %s as %d `_onnx` ops (ONNX nodes kept as they are: they run, export and train)" % (
        ", ".join("%s %s" % (n, _fmt_shape(s)) for n, s in used.items()) or "no inputs", count)


def _info_symbol(path, params_path, shapes):
    from .ndarray import load  # lazy: CLI start-up time
    from .symbol import load as load_symbol  # lazy: CLI start-up time
    sym = load_symbol(path)
    args, auxs, outs = sym.list_arguments(), sym.list_auxiliary_states(), sym.list_outputs()
    known = {}
    params = None
    if params_path:
        saved = load(params_path)
        if not isinstance(saved, dict):
            raise CommandError("%s holds an unnamed list of arrays, not a checkpoint" % params_path)
        params = {k.split(":", 1)[-1]: v for k, v in saved.items()}
        known.update({n: tuple(v.shape) for n, v in params.items()})
    out_shapes = {}
    if shapes:
        _check_names(shapes, sym.list_inputs(), "--input-shape")
        arg_shapes, output_shapes, aux_shapes = sym.infer_shape_partial(**shapes)
        known.update({n: tuple(s) for n, s in zip(args + auxs, list(arg_shapes) + list(aux_shapes)) if s})
        out_shapes = {n: tuple(s) for n, s in zip(outs, output_shapes) if s}
    print("symbol: %s" % path)
    for title, names, table in (("arguments", args, known), ("aux states", auxs, known),
                                ("outputs", outs, out_shapes)):
        print("%s (%d):" % (title, len(names)))
        for name in names:
            print("  %s%s" % (name, "  " + _fmt_shape(table[name]) if name in table else ""))
    nodes = json.loads(sym.tojson())["nodes"]
    ops = [n["op"] for n in nodes if n["op"] != "null"]
    print("ops (%d nodes):" % len(ops))
    print("\n".join(_histogram(ops)))
    labels = set(_label_inputs(sym))
    if params is not None:
        count = sum(int(np.prod(v.shape)) for v in params.values())
        size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in params.values())
        print("parameters: %d in %d arrays (%s) from %s" % (count, len(params), _fmt_bytes(size), params_path))
        absent = [n for n in args + auxs if n not in params and n not in labels]
        print("inputs not in the params: %s" % (", ".join(absent) or "(none)"))
    elif shapes:
        names = [n for n in args if n not in shapes and n not in labels] + auxs
        unknown = [n for n in names if n not in known]
        if unknown:
            print("parameters: unknown (cannot infer the shapes of %s)" % ", ".join(unknown))
        else:
            print("parameters: %d in %d arrays" % (sum(int(np.prod(known[n])) for n in names), len(names)))
    else:
        print("parameters: give --params or --input-shape to count them")


# ----- plot -----

def cmd_plot(args):
    """Draw the network with mx.viz.plot_network: DOT source, or an image through Graphviz's dot."""
    from .symbol import load as load_symbol  # lazy: CLI start-up time
    from ._files import atomic_write  # lazy: CLI start-up time
    from .viz import plot_network  # lazy: CLI start-up time
    extension = os.path.splitext(args.output)[1].lower()
    if extension not in RENDERED + DOT_SOURCE:
        raise CommandError("cannot write '%s': -o must end with %s" % (args.output, ", ".join(DOT_SOURCE + RENDERED)))
    dot = shutil.which("dot")
    if extension in RENDERED and dot is None:
        raise CommandError("writing %s needs Graphviz's `dot` program (apt-get install graphviz), or write the "
                           "DOT source with -o %s.dot" % (extension, os.path.splitext(args.output)[0]))
    shapes = _shape_dict(args.input_shape)
    if args.file.endswith(".onnx"):
        model = _load_onnx(args.file)
        declared = _graph_inputs(model)
        unknown = {name: shape for name, shape, _ in declared
                   if name not in shapes and shape is not None and not all(isinstance(d, int) for d in shape)}
        if _is_onnxsym_model(model):
            sym = _import_onnx(args.file, model, shapes)[0]
            if not shapes:
                shapes = {name: shape for name, shape, _ in declared if name not in unknown}
        elif unknown:
            # The graph is the same at any size: import at size 1 to draw it, without shapes on the edges.
            placeholder = {name: tuple(d if isinstance(d, int) else 1 for d in shape)
                           for name, shape in unknown.items()}
            sym = _import_onnx(args.file, model, {**shapes, **placeholder})[0]
            print("edges carry no shapes: input '%s' %s has dynamic dimensions (give --input-shape for them)"
                  % (next(iter(unknown)), _fmt_shape(next(iter(unknown.values())))))
            shapes = {}
        else:
            sym, arg_params, _, shapes = _import_onnx(args.file, model, shapes)
            shapes.update(_scalar_shapes(arg_params))
    elif args.file.endswith(".json"):
        sym = load_symbol(args.file)
    else:
        raise CommandError("%s: expected an MXNet -symbol.json or a .onnx model" % args.file)
    _check_names(shapes, sym.list_inputs(), "--input-shape")
    title = os.path.basename(args.file).rsplit(".", 1)[0]
    graph = plot_network(sym, title=title, save_format=extension[1:], shape=shapes or None,
                         hide_weights=not args.show_weights)
    if extension in DOT_SOURCE:
        atomic_write(args.output, graph.source)
    else:
        done = subprocess.run([dot, "-T" + extension[1:]], input=graph.source.encode(), capture_output=True,
                              check=False)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip() or "exit code %d" % done.returncode
            raise CommandError("Graphviz's dot failed: %s" % reason)
        atomic_write(args.output, done.stdout, mode="wb")
    print("wrote %s" % args.output)


# ----- run -----

def _load_npy(name, path):
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError) as err:
        raise CommandError("cannot read %s (for input '%s') as a .npy array: %s" % (path, name, err)) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise CommandError("%s (for input '%s') is an .npz archive; give one array as a .npy file" % (path, name))
    return array


def _feeds(model, pairs, shapes, seed):
    """{input name: array} from NAME=FILE.npy pairs, checked against the model's inputs and cast to their dtypes;
    the other inputs random (seeded) of their declared shape or --input-shape's, each announced on stdout."""
    declared = _graph_inputs(model)
    inputs = {name: (shape, kind) for name, shape, kind in declared}
    given = {}
    for name, path in pairs or ():
        if name in given:
            raise CommandError("--input gives '%s' twice" % name)
        given[name] = path
    _check_names(given, list(inputs), "--input")
    both = [n for n in given if n in shapes]
    if both:
        raise CommandError("input '%s' has both --input and --input-shape; give one" % both[0])
    random_shapes = _input_shapes([d for d in declared if d[0] not in given], shapes,
                                  hint=lambda name, axis: " (or its array with --input %s=FILE.npy)" % name)
    feeds = {}
    for name, path in given.items():
        array = _load_npy(name, path)
        shape, kind = inputs[name]
        if not isinstance(kind, np.dtype):
            raise CommandError("input '%s' is a %s: --input gives tensors only" % (name, kind))
        if shape is not None and (len(shape) != array.ndim
                                  or any(isinstance(d, int) and d != a for d, a in zip(shape, array.shape))):
            raise CommandError("input '%s' from %s has shape %s; the model expects %s"
                               % (name, path, _fmt_shape(array.shape), _fmt_shape(shape)))
        if array.dtype != kind:
            if not np.can_cast(array.dtype, kind, casting="same_kind"):
                raise CommandError("input '%s' from %s is %s; the model expects %s" % (name, path, array.dtype, kind))
            array = array.astype(kind)
        feeds[name] = np.asarray(array, order="C")
    randoms = _random_inputs(random_shapes, {n: inputs[n][1] for n in random_shapes}, seed)
    for name, array in randoms.items():
        print("input %s: random %s %s (seed %d)" % (name, _fmt_shape(array.shape), array.dtype, seed))
    feeds.update(randoms)
    return {name: feeds[name] for name in inputs}


def _summary(array):
    if array.size == 0 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        return ""
    values = array.astype(np.float64)
    return "  min %.6g  max %.6g  mean %.6g" % (values.min(), values.max(), values.mean())


def cmd_run(args):
    """Run a .onnx model with ONNX Runtime through onnxsym's session creation (custom ops included)."""
    from .onnx import import_model  # lazy: CLI start-up time
    from .runtime.ort import create_session  # lazy: CLI start-up time
    from ._files import atomic_write  # lazy: CLI start-up time
    if args.output and not args.output.endswith(".npz"):
        raise CommandError("-o must name a .npz file, got '%s'" % args.output)
    model = _load_onnx(args.model)
    feeds = _feeds(model, args.input, _shape_dict(args.input_shape), args.seed)
    if _has_python_ops(model):
        # The file's Python-op nodes name kernels of the process that exported it: lower the graph again here.
        sym, arg_params, aux_params = import_model(args.model)
        params = {n: v.asnumpy() for n, v in {**arg_params, **aux_params}.items()}
        names = sym.list_outputs()
        outputs = [o.asnumpy() for o in _bind(sym, params, feeds).forward(is_train=False)]
    else:
        session = create_session(model)
        names = [o.name for o in session.get_outputs()]
        outputs = _run_session(session, feeds)
    others = {name: "sequence" if isinstance(array, list) else "map"        # ONNX sequences (lists), maps (dicts)
              for name, array in zip(names, outputs) if not isinstance(array, np.ndarray)}
    if args.output and others:
        name = next(iter(others))
        raise CommandError("output '%s' is a %s, not a tensor: -o saves tensors only" % (name, others[name]))
    for name, array in zip(names, outputs):
        if name in others:
            print("%s  %s of %d" % (name, others[name], len(array)))
            continue
        print("%s  %s  %s%s" % (name, _fmt_shape(array.shape), array.dtype, _summary(array)))
    if args.output:
        buffer = io.BytesIO()
        np.savez(buffer, **dict(zip(names, outputs)))
        atomic_write(args.output, buffer.getvalue(), mode="wb")
        print("wrote %d outputs to %s" % (len(outputs), args.output))


# ----- bench -----

def _timed(run, iterations, warmup):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _iobinding_runner(session, model, inputs):
    """A no-argument function running `session` through an IOBinding with preallocated outputs (when static)."""
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_cpu_input(name, array)
    outputs = []
    for value in model.graph.output:
        name, shape, kind = _value_info(value)
        if shape is not None and isinstance(kind, np.dtype) and all(isinstance(d, int) for d in shape):
            out = np.empty(shape, kind)
            binding.bind_output(name, "cpu", 0, kind, list(shape), out.ctypes.data)
            outputs.append(out)
        else:
            binding.bind_output(name, "cpu")
            outputs.append(None)

    def run():
        session.run_with_iobinding(binding)

    def results():
        from .runtime.pyops import raise_pending  # lazy: CLI start-up time
        raise_pending()
        return [o if o is not None else got for o, got in zip(outputs, binding.copy_outputs_to_cpu())]
    return run, results


def cmd_bench(args):
    """Median latency and throughput through onnxsym (import_model + bind + forward) and through raw ORT."""
    import tempfile  # lazy: CLI start-up time

    from onnxsym.converters.onnx_export import data_inputs  # lazy: CLI start-up time
    from .onnx import export_model  # lazy: CLI start-up time
    with stage("[1/3] loading %s" % args.model):
        model = _load_onnx(args.model)
        declared = _graph_inputs(model)
        shapes = _input_shapes(declared, _shape_dict(args.input_shape), args.batch, new_batch=True,
                               hint=lambda name, axis: " (--batch sets only the first dimension)" if args.batch
                               else " or --batch SIZE" if axis == 0 else "")
        sym, arg_params, aux_params, _ = _import_onnx(args.model, model, shapes, new_batch=True)
    params = {**arg_params, **aux_params}
    dtypes = {name: kind for name, _, kind in declared}
    batch = args.batch or next((s[0] for s in shapes.values() if s), 1)
    inputs = _random_inputs(shapes, dtypes, 0)
    print("batch %d, %d iterations after %d warm-up; inputs: %s" % (
        batch, args.iterations, args.warmup,
        ", ".join("%s %s %s" % (n, _fmt_shape(s), dtypes[n]) for n, s in shapes.items())))
    with stage("[2/3] onnxsym: bind + Executor.forward"):
        exe = _bind(sym, {n: v.asnumpy() for n, v in params.items()}, inputs)
        ours = _timed(lambda: exe.forward(is_train=False), args.iterations, args.warmup)
    # Symbolic dimensions (dim_param) take any size, so the file itself runs at these shapes unless a static
    # dimension changed; Python-op nodes name kernels of the exporting process, so such files are exported again.
    same_shapes = all(d == size or isinstance(d, str) for name, shape, _ in declared
                      for d, size in zip(shape, shapes[name]))
    reuse = same_shapes and not _has_python_ops(model)
    with tempfile.TemporaryDirectory() as folder, stage("[3/3] ONNX Runtime: InferenceSession + IOBinding%s" % (
            "" if reuse else " (model exported again here at batch %d)" % batch)):
        path = args.model
        if not reuse:
            names = data_inputs(sym, params)
            path = export_model(sym, params, [shapes[n] for n in names], [dtypes[n] for n in names],
                                onnx_file_path=os.path.join(folder, "batch.onnx"))
        session = _plain_session(path, _load_onnx(path))
        run, results = _iobinding_runner(session, model if reuse else _load_onnx(path), inputs)
        theirs = _timed(run, args.iterations, args.warmup)
        diff = max((_max_difference(a.asnumpy(), b) for a, b in zip(exe.outputs, results())), default=0.0)
    for label, seconds in (("onnxsym", ours), ("ONNX Runtime", theirs)):
        print("%-13s median %.4g ms, %.1f samples/s" % (label, seconds * 1e3, batch / seconds))
    print("onnxsym / ONNX Runtime latency: %.2fx (outputs agree within %.3g)" % (ours / theirs, diff))


# ----- ops -----

def cmd_ops(args):
    """The MXNet operators onnxsym supports: mx.onnx.get_operator_support(), one per line."""
    from .onnx import get_operator_support  # lazy: CLI start-up time
    from .ops.registry import names  # lazy: CLI start-up time
    supported = get_operator_support()
    if args.count:
        print(len(supported))
        return
    aliases = {}
    for name, opdef in names().items():
        if name != opdef.op_name:
            aliases.setdefault(opdef.op_name, []).append(name)
    for name in supported:
        others = sorted(aliases.get(name, ())) if args.aliases else ()
        print("%s%s" % (name, "  (aliases: %s)" % ", ".join(others) if others else ""))


# ----- im2rec -----

def _list_images(root, recursive, exts):
    """MXNet's im2rec list_image: [(index, path relative to root, label)] and {folder: label} (with --recursive one
    label per folder that holds images, in sorted walk order; else the files of root, label 0)."""
    images, classes = [], {}
    if not recursive:
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if os.path.isfile(path) and os.path.splitext(name)[1].lower() in exts:
                images.append((len(images), os.path.relpath(path, root), 0))
        return images, classes
    seen = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:            # a link back to a folder already walked: MXNet would loop until paths overflow
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and os.path.splitext(name)[1].lower() in exts:
                label = classes.setdefault(folder, len(classes))
                images.append((len(images), os.path.relpath(path, root), label))
    return images, classes


def _write_list(path, images):
    """MXNet's .lst: 'index<TAB>label<TAB>...<TAB>path' per image, labels as %f."""
    from ._files import atomic_write  # lazy: CLI start-up time
    atomic_write(path, "".join("%d\t%s%s\n" % (item[0], "".join("%f\t" % label for label in item[2:]), item[1])
                               for item in images))
    print("wrote %s: %d images" % (path, len(images)))


def _make_lists(args, prefix, root):
    """--list: PREFIX.lst (or _train/_val/_test and _<chunk> lists), split as MXNet's make_list does."""
    import random  # lazy: CLI start-up time
    if not 0 < args.train_ratio <= 1 or not 0 <= args.test_ratio < 1 or args.train_ratio + args.test_ratio > 1:
        raise CommandError("--train-ratio must be in (0, 1], --test-ratio in [0, 1) and their sum at most 1; got "
                           "%g and %g" % (args.train_ratio, args.test_ratio))
    images, classes = _list_images(root, args.recursive, args.exts)
    if not images:
        raise CommandError("no files with extension %s in %s%s" % (
            " ".join(args.exts), root, "" if args.recursive else " (--recursive also looks in its subfolders)"))
    for folder, label in sorted(classes.items(), key=lambda kv: kv[1]):
        print("class %d: %s" % (label, os.path.relpath(folder, root)))
    if args.shuffle:
        random.Random(100).shuffle(images)     # MXNet's random.seed(100): the same order as its im2rec
    size = (len(images) + args.chunks - 1) // args.chunks
    for number in range(args.chunks):
        chunk = images[number * size:(number + 1) * size]
        name = prefix + ("_%d" % number if args.chunks > 1 else "")
        train, test = int(size * args.train_ratio), int(size * args.test_ratio)
        if args.train_ratio == 1.0:
            _write_list(name + ".lst", chunk)
            continue
        if args.test_ratio:
            _write_list(name + "_test.lst", chunk[:test])
        if args.train_ratio + args.test_ratio < 1.0:
            _write_list(name + "_val.lst", chunk[test + train:])
        _write_list(name + "_train.lst", chunk[test:test + train])


def _read_list(path):
    """The items [index, path, label, ...] of a .lst file; malformed lines are reported and skipped, as MXNet does."""
    items = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = [field.strip() for field in line.strip().split("\t")]
            try:
                if len(fields) < 3:
                    raise ValueError("expected 'index<TAB>label(s)<TAB>path', got %d fields" % len(fields))
                items.append([int(fields[0]), fields[-1]] + [float(f) for f in fields[1:-1]])
            except ValueError as err:
                print("  warning: %s line %d skipped: %s" % (path, number, err), flush=True)
    return items


def _image_reader(args, root):
    """item -> the packed record (bytes), or raises OSError/MXNetError for an image that cannot be packed."""
    from . import recordio  # lazy: CLI start-up time

    def header(item):
        label = item[2:] if len(item) > 3 and args.pack_label else item[2]
        return recordio.IRHeader(0, label, item[0], 0)

    if args.pass_through:
        def read(item):
            with open(os.path.join(root, item[1]), "rb") as handle:
                return recordio.pack(header(item), handle.read())
        return read
    try:
        import cv2  # lazy: optional dependency, only for re-encoding
    except ImportError:
        raise CommandError("packing without --pass-through decodes and re-encodes the images (--resize, "
                           "--center-crop, --quality, --color, --encoding) with OpenCV: pip install "
                           "opencv-python-headless; --pass-through packs the files' bytes as they are") from None

    def encode(item):
        img = cv2.imread(os.path.join(root, item[1]), args.color)
        if img is None:
            raise OSError("OpenCV cannot read it as an image")
        height, width = img.shape[:2]
        if args.center_crop:
            margin = abs(height - width) // 2
            img = img[margin:margin + width, :] if height > width else img[:, margin:margin + height]
            height, width = img.shape[:2]
        if args.resize:
            size = ((args.resize, height * args.resize // width) if height > width
                    else (width * args.resize // height, args.resize))
            img = cv2.resize(img, size)
        return recordio.pack_img(header(item), img, quality=args.quality, img_fmt=args.encoding)
    return encode


def _pack_list(args, path, folder, root, read):
    """PATH.lst -> .rec and .idx in `folder`, records in list order; progress every 1000 images."""
    from concurrent.futures import ThreadPoolExecutor  # lazy: CLI start-up time
    from itertools import islice  # lazy: CLI start-up time

    from . import recordio  # lazy: CLI start-up time
    items = _read_list(path)
    stem = os.path.join(folder, os.path.splitext(os.path.basename(path))[0])
    print("packing %s -> %s.rec, %s.idx (%d images)" % (path, stem, stem, len(items)), flush=True)

    def attempt(item):
        try:
            return read(item), None
        except (OSError, ValueError) as err:
            return None, err

    start, done, skipped = time.perf_counter(), 0, 0
    record = recordio.MXIndexedRecordIO(stem + ".idx", stem + ".rec", "w")
    try:
        with ThreadPoolExecutor(args.num_thread) as pool:
            pending = iter(items)
            while True:     # a bounded batch at a time: files are read ahead, records written in list order
                batch = list(islice(pending, 64 * args.num_thread))
                if not batch:
                    break
                for item, (packed, err) in zip(batch, pool.map(attempt, batch)):
                    if packed is None:
                        skipped += 1
                        print("  warning: %s skipped: %s" % (item[1], _one_line(err)), flush=True)
                    else:
                        record.write_idx(item[0], packed)
                    done += 1
                    if done % 1000 == 0:
                        print("  %d/%d images, %s, %.1f s" % (done, len(items), _fmt_bytes(record.tell()),
                                                             time.perf_counter() - start), flush=True)
        size = record.tell()
    finally:
        record.close()
    print("done: %d records, %s in %.2f s%s" % (done - skipped, _fmt_bytes(size), time.perf_counter() - start,
                                               ", %d images skipped" % skipped if skipped else ""))


def cmd_im2rec(args):
    """MXNet's tools/im2rec.py: --list writes PREFIX.lst from ROOT's images; otherwise each PREFIX*.lst is packed
    into a .rec and .idx beside it."""
    prefix, root = os.path.abspath(args.prefix), os.path.abspath(args.root)
    if not os.path.isdir(root):
        raise CommandError("ROOT %s is not a folder" % args.root)
    if args.list:
        _make_lists(args, prefix, root)
        return
    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    lists = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if os.path.join(folder, name).startswith(prefix) and name.endswith(".lst")
                   and os.path.isfile(os.path.join(folder, name)))
    if not lists:
        raise CommandError("no list file %s*.lst (make one with: onnxsym im2rec %s %s --list)" % (
            prefix, args.prefix, args.root))
    read = _image_reader(args, root)
    for path in lists:
        _pack_list(args, path, folder, root, read)


# ----- parser and entry point -----

class _Version(argparse.Action):
    """--version: onnxsym's version and the onnx / ONNX Runtime versions it runs on (imported only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import onnx  # lazy: CLI start-up time
        from .base import __version__  # lazy: CLI start-up time
        from .runtime.ort import ort  # lazy: CLI start-up time
        print("onnxsym %s (onnx %s, onnxruntime %s, Python %s)" % (__version__, onnx.__version__, ort.__version__,
                                                                  sys.version.split()[0]))
        parser.exit()


EXAMPLES = {
    None: """examples:
  onnxsym convert resnet 10 -o resnet.onnx --input-shape data:1,3,224,224
  onnxsym info resnet.onnx
  onnxsym plot resnet-symbol.json -o resnet.svg --input-shape data:1,3,224,224
  onnxsym run resnet.onnx --input data=image.npy -o outputs.npz
  onnxsym bench resnet.onnx --batch 8
  onnxsym ops --aliases
  onnxsym im2rec data/train images --list --recursive
  onnxsym --version

'onnxsym COMMAND --help' shows a command's options. Errors are one line on stderr (exit code 2 for usage
errors, 1 otherwise); --debug shows the traceback.""",
    "convert": """examples:
  onnxsym convert resnet 10 -o resnet.onnx --input-shape data:1,3,224,224
      reads resnet-symbol.json and resnet-0010.params, writes resnet.onnx and checks it
  onnxsym convert net 3 -o net.onnx --input-shape data:8,100 --input-shape mask:8,100 --tolerance 1e-3
  onnxsym convert seg 1 -o seg.onnx --input-shape data:1,3,64,64 --import my_custom_ops
      my_custom_ops.py registers the model's custom ops with mx.operator.register
  onnxsym export resnet 10 -o train.onnx --input-shape data:8,3,224,224 --training sgd
      the training graph (forward, backward, SGD update) for plain ONNX Runtime, and train.npz""",
    "info": """examples:
  onnxsym info model.onnx                      (any .onnx: inputs, outputs, parameters, op histogram)
  onnxsym info model.onnx --input-shape data:1,3,224,224
      a model with dynamic dimensions: also checks that onnxsym imports it at this shape
  onnxsym info resnet-symbol.json --params resnet-0010.params
  onnxsym info resnet-symbol.json --input-shape data:1,3,224,224""",
    "plot": """examples:
  onnxsym plot resnet-symbol.json -o resnet.svg --input-shape data:1,3,224,224
  onnxsym plot model.onnx -o model.dot         (any .onnx; DOT source needs no Graphviz)
  onnxsym plot model.onnx -o model.png --input-shape data:1,3,224,224 --show-weights
      the shape fills the model's dynamic dimensions, so edges carry shapes""",
    "run": """examples:
  onnxsym run model.onnx --input data=image.npy -o outputs.npz
  onnxsym run model.onnx --input-shape data:4,3,224,224 --seed 1
      random inputs (uniform in [-1, 1]) where no --input is given; a dynamic dimension needs --input-shape
  onnxsym run custom.onnx --input data=x.npy --import my_custom_ops""",
    "bench": """examples:
  onnxsym bench model.onnx --batch 8           (the first dimension of every input becomes 8)
  onnxsym bench model.onnx --input-shape data:8,3,224,224 --iterations 50
      full shapes: for dynamic dimensions other than the batch""",
    "ops": """examples:
  onnxsym ops                                  (one name per line, as mx.onnx.get_operator_support() lists)
  onnxsym ops --aliases                        (with the other names each operator answers to: mx.sym.<alias>)
  onnxsym ops --count""",
    "im2rec": """examples:
  onnxsym im2rec data/train images --list --recursive
      data/train.lst: the .jpeg/.jpg/.png files under images/, one label per subfolder, shuffled as MXNet does
  onnxsym im2rec data/train images --list --recursive --train-ratio 0.8 --test-ratio 0.1
      data/train_train.lst, data/train_val.lst and data/train_test.lst
  onnxsym im2rec data/train images --pass-through
      packs each data/train*.lst into .rec and .idx files (the image files' bytes as they are)
  onnxsym im2rec data/train images --resize 256 --quality 90
      decodes, resizes and encodes each image again (needs OpenCV: pip install opencv-python-headless)""",
    "launch": """examples:
  onnxsym launch -n 2 -- python train.py --kv-store dist_sync
      two workers on this machine (mpiexec -n 2 python train.py); the program uses mx.kv.create('dist_sync')
  onnxsym launch -n 8 --launcher mpi --hostfile hosts -- python train.py
      eight workers on the machines listed in hosts (mpiexec -n 8 -hostfile hosts ...)
  salloc -N 2 -n 8 onnxsym launch -n 8 --launcher mpi -- python train.py
      inside a Slurm allocation (or run the workers with srun -n 8 python train.py)""",
}


def _add_command(commands, name, common, help, description, aliases=()):
    return commands.add_parser(name, parents=[common], help=help, description=description, epilog=EXAMPLES[name],
                               formatter_class=argparse.RawDescriptionHelpFormatter, aliases=list(aliases))


def build_parser():
    """The argparse parser of `onnxsym` and its subcommands."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    common.add_argument("--import", dest="imports", action="append", default=argparse.SUPPRESS, metavar="MODULE",
                        help="import MODULE first (one that registers custom ops with mx.operator.register); "
                             "repeatable")
    shape_help = "an input's shape, NAME:D1,D2,... such as data:1,3,224,224; repeatable"
    # Options default to SUPPRESS, so `onnxsym --debug run ...` and `onnxsym run ... --debug` both count.
    parser = _Parser(prog="onnxsym", description="onnxsym: MXNet 1.x models on ONNX and ONNX Runtime.",
                     parents=[common], epilog=EXAMPLES[None], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, help="print the versions of onnxsym, onnx and onnxruntime")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    convert = _add_command(commands, "convert", common, "MXNet checkpoint -> verified .onnx (alias: export)",
                           "Export PREFIX-symbol.json + PREFIX-EPOCH.params to ONNX, then run onnxsym and ONNX "
                           "Runtime on the same random input and compare.", aliases=("export",))
    convert.add_argument("prefix", metavar="PREFIX", help="checkpoint prefix (PREFIX-symbol.json)")
    convert.add_argument("epoch", metavar="EPOCH", type=int, help="epoch of PREFIX-%%04d.params")
    convert.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the .onnx file to write")
    convert.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE", required=True,
                         help=shape_help)
    convert.add_argument("--dtype", type=dtype, default=np.dtype(np.float32), help="input dtype (float32)")
    convert.add_argument("--tolerance", type=float, default=1e-4, metavar="TOL",
                         help="largest max abs difference (1e-4)")
    convert.add_argument("--seed", type=int, default=0, help="seed of the random verification input (0)")
    convert.add_argument("--training", choices=["grad", "sgd", "adam"], default=None,
                         help="write the training graph instead: gradients ('grad'), or gradients and an SGD update "
                              "('sgd', input learning_rate) or an Adam update ('adam', inputs learning_rate and "
                              "step), with the starting parameters (and Adam's zero states) in FILE.npz")
    convert.set_defaults(handler=cmd_convert)

    info = _add_command(commands, "info", common, "describe a .onnx or -symbol.json",
                        "Inputs, outputs, parameters, op histogram and metadata of a model: any .onnx, or an "
                        "MXNet -symbol.json.")
    info.add_argument("file", metavar="FILE", help="a .onnx model or an MXNet -symbol.json")
    info.add_argument("--params", metavar="FILE.params",
                      help="the .params file of a -symbol.json (parameter shapes and count)")
    info.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE",
                      help=shape_help + " (a .onnx: sizes of its dynamic dimensions)")
    info.set_defaults(handler=cmd_info)

    plot = _add_command(commands, "plot", common, "draw the network (mx.viz.plot_network)",
                        "Draw a -symbol.json or any .onnx (imported as a Symbol: mx.onnx.import_model). -o .dot/.gv "
                        "writes the DOT source; .svg/.png/.pdf need Graphviz's dot program.")
    plot.add_argument("file", metavar="FILE", help="an MXNet -symbol.json or a .onnx")
    plot.add_argument("-o", "--output", required=True, metavar="FILE", help="graph.svg, .png, .pdf, .dot or .gv")
    plot.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE",
                      help=shape_help + " (shapes on edges)")
    plot.add_argument("--show-weights", action="store_true", help="draw the parameter nodes too")
    plot.set_defaults(handler=cmd_plot)

    run = _add_command(commands, "run", common, "run a .onnx on .npy or random inputs",
                       "Run a .onnx model with ONNX Runtime and print or save its outputs. Inputs without --input "
                       "are random (uniform in [-1, 1], integers in [0, 10)) of their declared shape or "
                       "--input-shape.")
    run.add_argument("model", metavar="MODEL", help="the .onnx model")
    run.add_argument("--input", type=named_file, action="append", metavar="NAME=FILE.npy",
                     help="an input's array; repeatable")
    run.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE",
                     help=shape_help + " (the shape of a random input)")
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    run.add_argument("-o", "--output", metavar="FILE.npz", help="save the outputs to this .npz (keys: output names)")
    run.set_defaults(handler=cmd_run)

    bench = _add_command(commands, "bench", common, "latency/throughput: onnxsym vs raw ORT",
                         "Median latency and throughput of a .onnx through onnxsym (import_model + bind + forward) "
                         "and through a raw ONNX Runtime session with IOBinding, on random inputs.")
    bench.add_argument("model", metavar="MODEL", help="the .onnx model")
    bench.add_argument("--batch", type=positive, help="batch size: replaces the first dimension of every input "
                                                      "without --input-shape")
    bench.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE",
                       help=shape_help + " (the first dimension is the batch)")
    bench.add_argument("--iterations", type=positive, default=20, help="timed runs per path (20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed runs first (3)")
    bench.set_defaults(handler=cmd_bench)

    ops = _add_command(commands, "ops", common, "the MXNet operators onnxsym supports",
                       "The MXNet operators onnxsym supports, by the name MXNet's JSON files use "
                       "(mx.onnx.get_operator_support()).")
    shown = ops.add_mutually_exclusive_group()
    shown.add_argument("--aliases", action="store_true", help="also show each operator's other names")
    shown.add_argument("--count", action="store_true", help="print only how many there are")
    ops.set_defaults(handler=cmd_ops)

    im2rec = _add_command(commands, "im2rec", common, "image folder -> .lst -> RecordIO .rec/.idx",
                          "MXNet's tools/im2rec.py: with --list, write PREFIX.lst listing the images under ROOT; "
                          "otherwise pack every PREFIX*.lst into a .rec and .idx beside it (mx.recordio, "
                          "ImageRecordIter's format).")
    im2rec.add_argument("prefix", metavar="PREFIX", help="prefix of the .lst files to write or read, and of the "
                                                         ".rec/.idx files")
    im2rec.add_argument("root", metavar="ROOT", help="the folder holding the images")
    listing = im2rec.add_argument_group("making image lists (--list)")
    listing.add_argument("--list", action="store_true", help="write PREFIX.lst from the images under ROOT instead "
                                                             "of packing")
    listing.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"], metavar="EXT",
                         help="file extensions of the images (.jpeg .jpg .png)")
    listing.add_argument("--chunks", type=positive, default=1, help="split the list into this many chunks (1)")
    listing.add_argument("--train-ratio", type=float, default=1.0, help="share of the images for PREFIX_train.lst "
                                                                        "(1.0: one PREFIX.lst)")
    listing.add_argument("--test-ratio", type=float, default=0.0, help="share of the images for PREFIX_test.lst "
                                                                       "(0); the rest goes to PREFIX_val.lst")
    listing.add_argument("--recursive", action="store_true",
                         help="walk ROOT's subfolders and give each folder's images their own label (otherwise "
                              "only ROOT's images, label 0)")
    listing.add_argument("--shuffle", dest="shuffle", action="store_true", default=True,
                         help="shuffle the list as MXNet's im2rec does (seed 100; the default)")
    listing.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the sorted order")
    packing = im2rec.add_argument_group("packing (without --list)")
    packing.add_argument("--pass-through", action="store_true",
                         help="pack the image files' bytes as they are (no decoding: needs no image library)")
    packing.add_argument("--pack-label", action="store_true",
                         help="store all labels of a multi-label list (else the first)")
    packing.add_argument("--num-thread", type=positive, default=1, help="threads reading the images (1); "
                                                                        "records keep the list's order")
    packing.add_argument("--resize", type=int, default=0, help="resize the shorter edge to this size (0: keep)")
    packing.add_argument("--center-crop", action="store_true", help="crop the center square")
    packing.add_argument("--quality", type=int, default=95,
                         help="JPEG quality 1-100, or PNG compression 1-9 (95)")
    packing.add_argument("--color", type=int, default=1, choices=[-1, 0, 1],
                         help="1: color, 0: grayscale, -1: as stored, with alpha (1)")
    packing.add_argument("--encoding", default=".jpg", choices=[".jpg", ".png"], help="image encoding (.jpg)")
    im2rec.set_defaults(handler=cmd_im2rec)

    launch = _add_command(commands, "launch", common, "start N workers of a dist_sync training (mpiexec)",
                          "MXNet's tools/launch.py: run N copies of COMMAND as the workers of a distributed job "
                          "(kvstore 'dist_sync', summed over MPI). mpiexec is the one beside this Python (pip install "
                          "mpi4py mpich), else the first on PATH.")
    launch.add_argument("-n", "--num-workers", type=positive, required=True, help="number of worker processes")
    launch.add_argument("-H", "--hostfile", metavar="FILE",
                        help="the machines to run on, one per line (mpiexec's -hostfile; needs --launcher mpi)")
    launch.add_argument("--launcher", choices=["mpi", "local"], default=None,
                        help="'mpi': mpiexec across the hostfile's machines (the default with --hostfile); "
                             "'local': all workers on this machine (the default without)")
    launch.add_argument("worker", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                        help="the command each worker runs, after --")
    launch.set_defaults(handler=cmd_launch)
    return parser


def cmd_launch(args):
    """onnxsym launch: mpiexec -n N [-hostfile FILE] COMMAND; the exit status is mpiexec's."""
    from . import launch as _launch      # lazy: CLI start-up time
    command = args.worker[1:] if args.worker[:1] == ["--"] else args.worker
    launcher = args.launcher or ("mpi" if args.hostfile else "local")
    try:
        return _launch.launch(args.num_workers, command, args.hostfile, launcher)
    except _launch.LaunchError as err:
        raise CommandError(str(err)) from None


def _one_line(text):
    return " ".join(str(text).split())


def _describe(err):
    if isinstance(err, CommandError):
        return str(err)
    if isinstance(err, FileNotFoundError):
        return "no such file: %s" % (err.filename or err)
    from .base import MXNetError  # lazy: CLI start-up time
    if isinstance(err, MXNetError):
        unregistered = re.match(r"Custom op_type '(.*)' is not registered", str(err))
        if unregistered:    # the library's hint says "import the module"; on the command line that is --import
            return ("Custom op_type '%s' is not registered: pass --import MODULE, naming the module that registers "
                    "it with mx.operator.register('%s') (MODULE.py in the current folder or on PYTHONPATH)"
                    % (unregistered.group(1), unregistered.group(1)))
        return str(err)
    return "%s: %s" % (type(err).__name__, err)


def main(argv=None):
    """Run the command line (`argv` defaults to sys.argv[1:]) and return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(_one_line(err), file=sys.stderr)
        return err.exit_code
    except SystemExit as done:       # --help
        return done.code if isinstance(done.code, int) else 0
    try:
        imports = getattr(args, "imports", [])
        if imports and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())     # --import mymodule finds ./mymodule.py, as python -m does
        for module in imports:
            importlib.import_module(module)
        status = args.handler(args)
        return status if isinstance(status, int) else 0
    except KeyboardInterrupt:
        print("onnxsym %s: interrupted" % args.command, file=sys.stderr)
        return 130
    except BrokenPipeError:         # `onnxsym info model.onnx | head`: the reader left; stop quietly as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if getattr(args, "debug", False):
            raise
        print(_one_line("onnxsym %s: error: %s" % (args.command, _describe(err))), file=sys.stderr)
        return getattr(err, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
