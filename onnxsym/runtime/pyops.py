"""Python ops inside ORT graphs (onnxruntime-extensions), for custom operators.

One PyOp type per dtype signature (`MXCustom_<inputs>_<outputs>`, ORT's Python ops have a fixed arity), each
dispatching on its string attribute `key` to a kernel (onnxsym/custom/kernels.py). Each op type is registered once
per process (registering one twice breaks every later session, ORT_NOTES.md §5). The hooker returns arrays (not
lists: 100x faster) and catches exceptions, which otherwise abort the process; they are re-raised after the run.

Registering a new op type after a session has loaded the Python-op library makes that session crash when it runs
or is freed (measured: segfault). So the usual signatures (float32 or float64 throughout, up to 6 arguments, 2
auxiliary states and 3 outputs, forward and backward) are all registered before the first such session; another
signature is accepted only while no such session exists yet.

Errors belong to the thread that ran the graph: ORT runs a node on the thread that called `run` (onnxsym keeps
the default sequential execution mode; intra-op threads only split single kernels), so the kernel of a run is
called on the run's thread, and its exception waits in that thread's list until the run's caller re-raises it
(`raise_pending`). Another thread's run neither raises it nor loses its own
(tests/test_custom_threads.py checks both the thread and the 8-thread case).
"""
import sys
import threading

import numpy as np

from ..base import MXNetError
from ..custom.kernels import get_kernel
from ..lower.builder import PYTHON_GRAD_PREFIX, PYTHON_OP_PREFIX, python_op_dtypes, python_op_name, \
    split_python_grad_key

__all__ = ["ensure_registered", "library_path", "raise_pending", "has_pending"]

_PYOP_TYPES = {"float32": "dt_float", "float64": "dt_double", "float16": "dt_float16", "int64": "dt_int64",
               "int32": "dt_int32", "int8": "dt_int8", "uint8": "dt_uint8", "bool": "dt_bool", "int16": "dt_int16",
               "uint16": "dt_uint16", "uint32": "dt_uint32", "uint64": "dt_uint64"}
_REGISTERED = set()
_LOCK = threading.Lock()
_SESSIONS = []          # set once a session has loaded the Python-op library


class _Pending(threading.local):
    """Per thread: the exceptions custom ops raised during this thread's current run, first first."""

    def __init__(self):
        self.errors = []


_PENDING = _Pending()


def _standard_signatures():
    for dtype in ("float32", "float64"):
        for n_args in range(7):     # (custom ops without arguments too: they have no gradient to give)
            for n_aux in range(3):
                for n_out in range(1, 4):
                    inputs = [dtype] * (n_args + n_aux)
                    yield python_op_name(PYTHON_OP_PREFIX, inputs, [dtype] * (n_out + n_aux))
                    if n_args:
                        yield python_op_name(PYTHON_GRAD_PREFIX, [dtype] * (2 * n_out + n_args + n_aux),
                                             [dtype] * n_args)


def _install_hooker(ocos):
    def hook(op_id, feeds, attributes):
        op = ocos.Opdef._odlist[op_id]
        try:
            result = op.body(*feeds, **op.cast_attributes(attributes))
        except BaseException as err:        # an exception escaping into ORT aborts the process
            _PENDING.errors.append(err)
            result = tuple(np.zeros((0,), np.float32) for _ in op._nativedef.output_types)
        result = result if isinstance(result, tuple) else (result,)
        return (op_id,) + tuple(v for array in result for v in (np.shape(array), np.asarray(array, order="C")))

    ocos.PyCustomOpDef.install_hooker(hook)


def ensure_registered(op_type):
    """Make the PyOp type `op_type` (a signature name) available to the next session."""
    with _LOCK:
        if op_type in _REGISTERED:
            return
        if _SESSIONS:
            raise MXNetError(
                "custom op signature %s (dtypes %s) is not one onnxsym registers up front, and ONNX Runtime cannot "
                "add Python op types once a session uses them: bind graphs with this signature before any other "
                "graph with custom ops in this process" % (op_type, python_op_dtypes(op_type)))
        for name in [op_type] + [n for n in _standard_signatures() if n not in _REGISTERED]:
            _register(name)


def session_uses_library():
    """Called when a session loads the Python-op library: from now on no new op type may be registered."""
    _SESSIONS.append(True)


def _register(op_type):
    """Register one PyOp type whose body dispatches to the kernel named by the node's `key` (under _LOCK)."""
    if op_type in _REGISTERED:
        return
    extensions = _extensions()
    PyOp, onnx_op, ocos = extensions.PyOp, extensions.onnx_op, extensions._ocos
    if not _REGISTERED:
        _install_hooker(ocos)
    forward = op_type.startswith(PYTHON_OP_PREFIX)
    types = [[getattr(PyOp, _PYOP_TYPES[name]) for name in part] for part in python_op_dtypes(op_type)]

    def run(*arrays, key):
        req = None
        if not forward:
            key, req = split_python_grad_key(key)
        kernel = get_kernel(key)
        # Errors of this run so far: set aside while the user's code runs, whose NDArray operations run sessions
        # of their own (each raises its own errors afterwards, and must not raise this run's).
        pending = _PENDING.errors
        outer = pending[:]
        del pending[:]
        try:
            if outer and not forward:       # a forward failed: its error is the one to report, skip the backward
                return kernel.placeholder_outputs(arrays, forward)
            return kernel.forward(*arrays) if forward else kernel.backward(*arrays, req=req)
        except BaseException as err:
            err.onnxsym_custom_op = "%s of custom op '%s'" % ("forward" if forward else "backward", kernel.op_type)
            outer.append(err)
            # Outputs of the expected shapes: ORT aborts the process on a shape it did not plan for.
            return kernel.placeholder_outputs(arrays, forward)
        finally:
            pending[:0] = outer

    onnx_op(op_type=op_type, inputs=types[0], outputs=types[1], attrs={"key": PyOp.dt_string})(run)
    _REGISTERED.add(op_type)


def _extensions():
    """onnxruntime-extensions (Python ops inside ONNX Runtime graphs), or an MXNetError saying how to get it."""
    try:
        import onnxruntime_extensions
        import onnxruntime_extensions._ocos  # noqa: F401
    except ImportError as err:
        raise MXNetError("custom Python operators (mx.operator.CustomOp) run inside ONNX Runtime through "
                         "onnxruntime-extensions, which is not installed (%s): pip install onnxruntime-extensions "
                         "(it has no wheel for Python %d.%d yet; everything else in onnxsym works without it)"
                         % (err, sys.version_info[0], sys.version_info[1])) from None
    return onnxruntime_extensions


def library_path():
    return _extensions().get_library_path()


def has_pending():
    """Whether a custom op raised during this thread's last run."""
    return bool(_PENDING.errors)


def raise_pending():
    """Re-raise the first exception a custom op's Python code raised during this thread's last run (chained)."""
    pending = _PENDING.errors
    if not pending:
        return
    errors = list(pending)
    del pending[:]
    first = errors[0]
    where = getattr(first, "onnxsym_custom_op", "a custom op")
    raise MXNetError("%s raised %s: %s" % (where[0].upper() + where[1:], type(first).__name__, first)) from first
