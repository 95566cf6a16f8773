"""The `onnxsym` command line: convert MXNet checkpoints to ONNX (verified), and inspect, plot, run and benchmark models.

    onnxsym convert model 10 -o model.onnx --input-shape data:1,3,224,224
    onnxsym info model.onnx
    onnxsym plot model-symbol.json -o model.svg --input-shape data:1,3,224,224
    onnxsym run model.onnx --input data=image.npy -o outputs.npz
    onnxsym bench model.onnx --batch 8

Failures print one line on stderr and exit non-zero (2 for usage errors, 1 otherwise); --debug shows the traceback.
"""
import argparse
import contextlib
import importlib
import io
import json
import os
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
    from onnxsym.converters.onnx_import import load_model
    return load_model(path)


def _value_info(value):
    """(name, shape with dim_param names for symbolic dims, numpy dtype) of an ONNX graph input/output."""
    import onnx
    tensor = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    return value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))


def _graph_inputs(model):
    initializers = {t.name for t in model.graph.initializer}
    return [_value_info(v) for v in model.graph.input if v.name not in initializers]


def _symbol_of_onnx(model, path):
    from onnxsym.converters.onnx_export import METADATA_SYMBOL
    from .symbol import load_json
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_SYMBOL not in meta:
        raise CommandError("%s was not exported by onnxsym (no MXNet symbol in its metadata)" % path)
    return load_json(meta[METADATA_SYMBOL])


def _label_inputs(sym):
    """Inputs that only loss heads read (softmax_label): exported models drop them."""
    from onnxsym.converters.onnx_export import data_inputs
    return [n for n in sym.list_inputs() if n not in data_inputs(sym, {})]


def _has_python_ops(model):
    from .lower.builder import PYTHON_DOMAIN
    return any(n.domain == PYTHON_DOMAIN for n in model.graph.node)


def _plain_session(path, model):
    """A plain ORT InferenceSession on the checked model (`load_model` inlined its external data; the file is not
    read again, and its metadata's `ort_config`, which ORT applies when ORT_LOAD_CONFIG_FROM_MODEL=1 and which can
    make it write profiles, is dropped); models with onnxsym's Python custom ops go through onnxsym's session
    creation, which registers their op types."""
    from .runtime.ort import create_session, ort, ort_message
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
    from .runtime.ort import run_error
    from .runtime.pyops import raise_pending
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


def _bind(sym, params, inputs):
    """An inference Executor of `sym` with `params` and `inputs` copied in (labels stay zero)."""
    from .context import cpu
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
    from onnxsym.converters.onnx_export import data_inputs
    from .module.model import load_checkpoint
    from .onnx import export_model
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
    worst = 0.0
    for name, a, b in zip(sym.list_outputs(), ours, theirs):
        if a.shape != b.shape:
            raise CommandError("output '%s': onnxsym shape %s, ONNX Runtime shape %s"
                               % (name, _fmt_shape(a.shape), _fmt_shape(b.shape)))
        diff = _max_difference(a, b)
        worst = max(worst, diff)
        print("  %s %s: max abs difference %.3g" % (name, _fmt_shape(a.shape), diff))
    print("max abs difference: %.3g (tolerance %g)" % (worst, args.tolerance))
    if not worst <= args.tolerance:
        raise CommandError("verification failed: max abs difference %.3g exceeds the tolerance %g (%s is kept)"
                           % (worst, args.tolerance, args.output))
    print("wrote %s" % args.output)


# ----- info -----

def cmd_info(args):
    """Describe a .onnx model or an MXNet -symbol.json."""
    if args.file.endswith(".onnx"):
        if args.params or args.input_shape:
            raise CommandError("--params and --input-shape apply to -symbol.json files only")
        return _info_onnx(args.file)
    if args.file.endswith(".json"):
        return _info_symbol(args.file, args.params, _shape_dict(args.input_shape))
    raise CommandError("%s: expected a .onnx model or an MXNet -symbol.json" % args.file)


def _info_onnx(path):
    import onnx
    model = _load_onnx(path)
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


def _info_symbol(path, params_path, shapes):
    from .ndarray import load
    from .symbol import load as load_symbol
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
    from .symbol import load as load_symbol
    from .symbol.serialize import atomic_write
    from .viz import plot_network
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
        sym = _symbol_of_onnx(model, args.file)
        if not shapes:
            shapes = {name: shape for name, shape, _ in _graph_inputs(model)
                      if all(isinstance(d, int) for d in shape)}
    elif args.file.endswith(".json"):
        sym = load_symbol(args.file)
    else:
        raise CommandError("%s: expected an MXNet -symbol.json or a .onnx exported by onnxsym" % args.file)
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


def _feeds(model, pairs):
    """{input name: array} from NAME=FILE.npy pairs, checked against the model's inputs and cast to their dtypes."""
    inputs = {name: (shape, kind) for name, shape, kind in _graph_inputs(model)}
    given = {}
    for name, path in pairs or ():
        if name in given:
            raise CommandError("--input gives '%s' twice" % name)
        given[name] = path
    _check_names(given, list(inputs), "--input")
    missing = [n for n in inputs if n not in given]
    if missing:
        raise CommandError("no --input for '%s' (give NAME=FILE.npy; inputs: %s)" % (missing[0], ", ".join(inputs)))
    feeds = {}
    for name, path in given.items():
        array = _load_npy(name, path)
        shape, kind = inputs[name]
        if len(shape) != array.ndim or any(isinstance(d, int) and d != a for d, a in zip(shape, array.shape)):
            raise CommandError("input '%s' from %s has shape %s; the model expects %s"
                               % (name, path, _fmt_shape(array.shape), _fmt_shape(shape)))
        if array.dtype != kind:
            if not np.can_cast(array.dtype, kind, casting="same_kind"):
                raise CommandError("input '%s' from %s is %s; the model expects %s" % (name, path, array.dtype, kind))
            array = array.astype(kind)
        feeds[name] = np.ascontiguousarray(array)
    return feeds


def _summary(array):
    if array.size == 0 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        return ""
    values = array.astype(np.float64)
    return "  min %.6g  max %.6g  mean %.6g" % (values.min(), values.max(), values.mean())


def cmd_run(args):
    """Run a .onnx model with ONNX Runtime through onnxsym's session creation (custom ops included)."""
    from .onnx import import_model
    from .runtime.ort import create_session
    from .symbol.serialize import atomic_write
    if args.output and not args.output.endswith(".npz"):
        raise CommandError("-o must name a .npz file, got '%s'" % args.output)
    model = _load_onnx(args.model)
    feeds = _feeds(model, args.input)
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
    for name, array in zip(names, outputs):
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
        if all(isinstance(d, int) for d in shape):
            out = np.empty(shape, kind)
            binding.bind_output(name, "cpu", 0, kind, list(shape), out.ctypes.data)
            outputs.append(out)
        else:
            binding.bind_output(name, "cpu")
            outputs.append(None)

    def run():
        session.run_with_iobinding(binding)

    def results():
        from .runtime.pyops import raise_pending
        raise_pending()
        return [o if o is not None else got for o, got in zip(outputs, binding.copy_outputs_to_cpu())]
    return run, results


def cmd_bench(args):
    """Median latency and throughput through onnxsym (import_model + bind + forward) and through raw ORT."""
    import tempfile

    from onnxsym.converters.onnx_export import data_inputs
    from .onnx import export_model, import_model
    with stage("[1/3] loading %s" % args.model):
        model = _load_onnx(args.model)
        sym, arg_params, aux_params = import_model(args.model)
    params = {**arg_params, **aux_params}
    declared = {name: (shape, kind) for name, shape, kind in _graph_inputs(model)}
    shapes, dtypes = {}, {}
    for name, (shape, kind) in declared.items():
        if not shape:
            raise CommandError("input '%s' is a scalar: it has no batch dimension to set" % name)
        symbolic = [d for d in shape[1:] if not isinstance(d, int)]
        if symbolic:
            raise CommandError("input '%s' has the symbolic dimension '%s'; bench needs static shapes apart from "
                               "the batch" % (name, symbolic[0]))
        shapes[name], dtypes[name] = (args.batch,) + tuple(shape[1:]), kind
    inputs = _random_inputs(shapes, dtypes, 0)
    print("batch %d, %d iterations after %d warm-up; inputs: %s" % (
        args.batch, args.iterations, args.warmup,
        ", ".join("%s %s %s" % (n, _fmt_shape(s), dtypes[n]) for n, s in shapes.items())))
    with stage("[2/3] onnxsym: bind + Executor.forward"):
        exe = _bind(sym, {n: v.asnumpy() for n, v in params.items()}, inputs)
        ours = _timed(lambda: exe.forward(is_train=False), args.iterations, args.warmup)
    # A symbolic batch dimension (dim_param) takes any batch, so the file itself runs; Python-op nodes name
    # kernels of the exporting process, so such files are exported again here.
    same_batch = all(declared[n][0][0] == args.batch or isinstance(declared[n][0][0], str) for n in shapes)
    reuse = same_batch and not _has_python_ops(model)
    with tempfile.TemporaryDirectory() as folder, stage("[3/3] ONNX Runtime: InferenceSession + IOBinding%s" % (
            "" if reuse else " (model exported again here at batch %d)" % args.batch)):
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
        print("%-13s median %.4g ms, %.1f samples/s" % (label, seconds * 1e3, args.batch / seconds))
    print("onnxsym / ONNX Runtime latency: %.2fx (outputs agree within %.3g)" % (ours / theirs, diff))


# ----- parser and entry point -----

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
                     parents=[common])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    convert = commands.add_parser("convert", parents=[common], help="MXNet checkpoint -> verified .onnx",
                                  description="Export PREFIX-symbol.json + PREFIX-EPOCH.params to ONNX, then run "
                                              "onnxsym and ONNX Runtime on the same random input and compare.")
    convert.add_argument("prefix", metavar="PREFIX", help="checkpoint prefix (PREFIX-symbol.json)")
    convert.add_argument("epoch", metavar="EPOCH", type=int, help="epoch of PREFIX-%%04d.params")
    convert.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the .onnx file to write")
    convert.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE", required=True, help=shape_help)
    convert.add_argument("--dtype", type=dtype, default=np.dtype(np.float32), help="input dtype (float32)")
    convert.add_argument("--tolerance", type=float, default=1e-4, metavar="TOL", help="largest max abs difference (1e-4)")
    convert.add_argument("--seed", type=int, default=0, help="seed of the random verification input (0)")
    convert.set_defaults(handler=cmd_convert)

    info = commands.add_parser("info", parents=[common], help="describe a .onnx or -symbol.json",
                               description="Inputs, outputs, parameters, op histogram and metadata of a model.")
    info.add_argument("file", metavar="FILE", help="a .onnx model or an MXNet -symbol.json")
    info.add_argument("--params", metavar="FILE.params", help="the .params file of a -symbol.json (parameter shapes and count)")
    info.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE", help=shape_help)
    info.set_defaults(handler=cmd_info)

    plot = commands.add_parser("plot", parents=[common], help="draw the network (mx.viz.plot_network)",
                               description="Draw a -symbol.json or a .onnx exported by onnxsym. -o .dot/.gv writes "
                                           "the DOT source; .svg/.png/.pdf need Graphviz's dot program.")
    plot.add_argument("file", metavar="FILE", help="an MXNet -symbol.json or a .onnx exported by onnxsym")
    plot.add_argument("-o", "--output", required=True, metavar="FILE", help="graph.svg, .png, .pdf, .dot or .gv")
    plot.add_argument("--input-shape", type=input_shape, action="append", metavar="NAME:SHAPE", help=shape_help + " (shapes on edges)")
    plot.add_argument("--show-weights", action="store_true", help="draw the parameter nodes too")
    plot.set_defaults(handler=cmd_plot)

    run = commands.add_parser("run", parents=[common], help="run a .onnx on .npy inputs",
                              description="Run a .onnx model with ONNX Runtime and print or save its outputs.")
    run.add_argument("model", metavar="MODEL", help="the .onnx model")
    run.add_argument("--input", type=named_file, action="append", metavar="NAME=FILE.npy",
                     help="an input's array; repeatable")
    run.add_argument("-o", "--output", metavar="FILE.npz", help="save the outputs to this .npz (keys: output names)")
    run.set_defaults(handler=cmd_run)

    bench = commands.add_parser("bench", parents=[common], help="latency/throughput: onnxsym vs raw ORT",
                                description="Median latency and throughput of a .onnx exported by onnxsym, through "
                                            "onnxsym (import_model + bind + forward) and through a raw ONNX Runtime "
                                            "session with IOBinding, on random inputs.")
    bench.add_argument("model", metavar="MODEL", help="the .onnx model")
    bench.add_argument("--batch", type=positive, required=True, help="batch size (replaces the first dimension)")
    bench.add_argument("--iterations", type=positive, default=20, help="timed runs per path (20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed runs first (3)")
    bench.set_defaults(handler=cmd_bench)
    return parser


def _one_line(text):
    return " ".join(str(text).split())


def _describe(err):
    if isinstance(err, CommandError):
        return str(err)
    if isinstance(err, FileNotFoundError):
        return "no such file: %s" % (err.filename or err)
    from .base import MXNetError
    if isinstance(err, MXNetError):
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
        args.handler(args)
        return 0
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
