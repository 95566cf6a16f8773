"""ONNX Runtime sessions: providers, options, loading a lowered model, and ORT's errors in onnxsym's words.

Sessions run with intra-op spinning off, because onnxsym keeps several sessions per process (forward, gradient,
imperative one-op graphs) and spinning idle threads slow the others down (ORT_NOTES.md §4); and without ORT's
memory patterns: with them, a session's second run allocates one block for the whole plan while the arena keeps the
first run's blocks, so the process peaks at about twice the graph's working memory (ResNet-18 training at batch 16:
2083 MiB with them, 1408 without, same step time; serving it: 810 vs 658 MiB; bench/README.md).
"""
import contextlib
import os
import re
import sys

import numpy as np
import onnx

from ..base import MXNetError, MXNetIndexError
from ..lower.builder import PYTHON_DOMAIN, ir_version_for, lift_to_opset
from ..lower.dtype_passes import has_elem_type
from . import pyops, rng
from .library import C, cuda_available, gpu_emulation, gpu_unavailable, ort

__all__ = ["ort", "C", "create_session", "external_data_in_memory", "external_initializer", "cuda_available",
           "providers_for", "set_num_threads", "threads_from_environment", "shrink_arena", "run_error",
           "quiet_logging", "ort_message"]

def threads_from_environment(environ=os.environ):
    """Threads per session as MXNet 1.9.1 sizes its OpenMP pool at library load: OMP_NUM_THREADS where it is set,
    else MXNET_OMP_MAX_THREADS, else 0 (ONNX Runtime's default, one per physical core: MXNet's default too).
    A value that is not a positive integer is ignored, as OpenMP ignores it."""
    for key in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS"):
        value = environ.get(key, "").strip()
        if value:
            head = value.split(",")[0].strip()      # OpenMP allows a per-nesting-level list: the first level counts
            if head.isdigit() and int(head) > 0:
                return int(head)
            return 0
    return 0


_config = {"intra_op_num_threads": threads_from_environment()}


def set_num_threads(n):
    """Threads per ORT session (0 = ORT's default, one per core). The starting value comes from OMP_NUM_THREADS or
    MXNET_OMP_MAX_THREADS (threads_from_environment)."""
    _config["intra_op_num_threads"] = int(n)


def providers_for(ctx):
    if ctx is None or ctx.device_type in ("cpu", "cpu_pinned", "cpu_shared"):
        return ["CPUExecutionProvider"]
    if ctx.device_type == "gpu":
        if not cuda_available():
            raise MXNetError(gpu_unavailable(ctx))
        if gpu_emulation():
            return ["CPUExecutionProvider"]
        return [("CUDAExecutionProvider", {"device_id": ctx.device_id}), "CPUExecutionProvider"]
    raise MXNetError("unsupported context %s" % ctx)


def session_options():
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = _config["intra_op_num_threads"]
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_mem_pattern = False
    return so


# ORT's graph fusions that emit com.microsoft ops with float32 kernels only, and fire on float64 graphs too
# (x * sigmoid(a * x) -> QuickGelu, Transpose -> MatMul -> FusedMatMul): "Failed to find kernel" at load time.
_FLOAT32_ONLY_FUSIONS = ["QuickGeluFusion", "MatmulTransposeFusion"]


def external_data_in_memory():
    """Whether this onnxruntime takes initializer bytes from memory
    (SessionOptions.add_external_initializers_from_files_in_memory: 1.32 has it, 1.23 and the training build 1.19.2
    do not)."""
    return hasattr(ort.SessionOptions, "add_external_initializers_from_files_in_memory")


def external_initializer(name, array, location):
    """A TensorProto naming `array` (numeric, C-contiguous) as initializer `name` whose bytes create_session hands
    to ONNX Runtime from memory as the file `location` (a plain file name; `external=[(location, array)]`): the
    model then carries no copy of them, and ORT makes the only one."""
    tensor = onnx.TensorProto(name=name, dims=list(array.shape), data_type=onnx.helper.np_dtype_to_tensor_dtype(
        array.dtype), data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def create_session(model, ctx=None, external=(), keep_identities=False):
    """An InferenceSession for an onnx.ModelProto; custom ops' Python nodes are made available first. Sampling
    nodes get seeds from mx.random.seed's stream (`rng.is_stale(session)` tells when to make a new one).
    `external`: [(location, array)] of the model's external_initializer entries. keep_identities: the graph's
    Identity nodes stay (ORT's EliminateIdentity off): a training graph's then run in an order that keeps fewer
    values alive (ResNet-18 training at batch 16: peak 1017 -> 933 MiB, the same step time)."""
    lift_to_opset(model)        # (passes after lowering write opset-17 nodes too)
    model, epoch = rng.seeded_model(model)
    options = session_options()
    if external:
        names, arrays = [n for n, _ in external], [a.reshape(-1).view(np.uint8) for _, a in external]
        options.add_external_initializers_from_files_in_memory(names, arrays, [a.nbytes for a in arrays])
    python_ops = {n.op_type for n in model.graph.node if n.domain == PYTHON_DOMAIN}
    if python_ops:
        for op_type in sorted(python_ops):
            pyops.ensure_registered(op_type)
        options.register_custom_ops_library(pyops.library_path())
        pyops.session_uses_library()
    disabled = _FLOAT32_ONLY_FUSIONS if has_elem_type(model, onnx.TensorProto.DOUBLE) else []
    if keep_identities:
        disabled = disabled + ["EliminateIdentity"]
    try:
        return rng.mark(ort.InferenceSession(model.SerializeToString(), options, providers=providers_for(ctx),
                                             disabled_optimizers=disabled), epoch)
    except MXNetError:
        raise
    except Exception as err:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        raise MXNetError("ONNX Runtime could not load the lowered graph: %s" % ort_message(err)) from None


_SHRINK = []


def shrink_arena():
    """RunOptions under which a run gives the CPU arena's free memory back at its end."""
    if not _SHRINK:
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        _SHRINK.append(options)
    return _SHRINK[0]


_MAX_OPSET = []


def max_opset():
    """The newest ai.onnx opset both onnx and the installed onnxruntime know (probed once with an Identity model)."""
    if not _MAX_OPSET:
        from onnx import defs  # lazy: only imports of newer models ask
        graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "probe",
                                       [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                       [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
        found = 17
        for opset in range(defs.onnx_opset_version(), 17, -1):
            model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                           ir_version=ir_version_for(opset))
            try:
                with quiet_logging():
                    ort.InferenceSession(model.SerializeToString(), session_options(),
                                         providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - too new for this runtime
                continue
            found = opset
            break
        _MAX_OPSET.append(found)
    return _MAX_OPSET[0]


def ort_message(err):
    """ORT's own words without its source-file prefix ('/onnxruntime_src/...cc:141 Func(...) message')."""
    text = str(err)
    match = re.search(r"\[ONNXRuntimeError\] : \d+ : \w+ : (.*)", text, re.S)
    if match:
        return match.group(1).strip()
    match = re.match(r"\s*/\S+:\d+ .*?\) (.*)", text, re.S)
    return match.group(1).strip() if match else text


def run_error(err):
    """The error to raise for a failed run: a custom op's own exception first (chained), else ORT's."""
    pyops.raise_pending()
    message = ort_message(err)
    kind = MXNetIndexError if _INDEX_ERRORS.search(message) else MXNetError
    return kind("ONNX Runtime failed while running the graph: %s" % message)


# ORT's messages for an index outside its axis (Gather, GatherND, GatherElements, ScatterND, ScatterElements)
_INDEX_ERRORS = re.compile(r"out of (data )?bounds|invalid ind(ex|ice)|out of range value in index", re.IGNORECASE)


@contextlib.contextmanager
def quiet_logging():
    """Hide what ORT's gradient builders print to stderr (warnings about nodes that only feed BlockGrad):
    OrtModuleGraphBuilder takes no session options and ignores the default logger's severity. Errors still
    arrive as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
