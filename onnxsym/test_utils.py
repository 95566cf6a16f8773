"""MXNet's `mx.test_utils` helpers (same names, signatures and meaning), used by onnxsym's own tests."""
import numbers

import numpy as np

from .base import MXNetError
from .context import cpu
from .runtime.ndarray import NDArray

__all__ = ["default_context", "set_default_context", "assert_almost_equal", "almost_equal", "same",
           "check_symbolic_forward", "default_rtols", "default_atols", "lowered_model"]

_DEFAULT_CTX = [cpu()]


def default_context():
    return _DEFAULT_CTX[0]


def set_default_context(ctx):
    _DEFAULT_CTX[0] = ctx


def default_rtols():
    return {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-5,
            np.dtype(np.bool_): 0, np.dtype(np.int8): 0, np.dtype(np.uint8): 0, np.dtype(np.int32): 0,
            np.dtype(np.int64): 0}


def default_atols():
    return {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-20,
            np.dtype(np.bool_): 0, np.dtype(np.int8): 0, np.dtype(np.uint8): 0, np.dtype(np.int32): 0,
            np.dtype(np.int64): 0}


def _as_numpy(value):
    if isinstance(value, NDArray):
        return value.asnumpy()
    return np.asarray(value)


def same(a, b):
    return np.array_equal(_as_numpy(a), _as_numpy(b))


def _tols(a, b, rtol, atol):
    dtypes = [np.dtype(a.dtype), np.dtype(b.dtype)]
    rtol = max(default_rtols().get(d, 1e-5) for d in dtypes) if rtol is None else rtol
    atol = max(default_atols().get(d, 1e-20) for d in dtypes) if atol is None else atol
    return rtol, atol


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True):
    a, b = _as_numpy(a), _as_numpy(b)
    rtol, atol = _tols(a, b, rtol, atol)
    return np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def assert_almost_equal(a, b, rtol=None, atol=None, names=("a", "b"), equal_nan=False, use_broadcast=True,
                        mismatches=(10, 10)):
    """Raise AssertionError with the worst mismatches when |a-b| > atol + rtol*|b| anywhere."""
    a, b = _as_numpy(a), _as_numpy(b)
    if not use_broadcast and a.shape != b.shape:
        raise AssertionError("Shape mismatch: %s %s vs %s %s" % (names[0], a.shape, names[1], b.shape))
    rtol, atol = _tols(a, b, rtol, atol)
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    a64, b64 = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    err = np.abs(a64 - b64) / (atol + rtol * np.abs(b64))
    err = np.where(np.isnan(err), np.inf, err)
    index = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
    raise AssertionError("Items are not equal (rtol=%g, atol=%g): worst relative error %g at %s: %s=%r %s=%r\n"
                         "%s: %s\n%s: %s" % (rtol, atol, float(err.max()), index, names[0], a64[index], names[1],
                                             b64[index], names[0], a, names[1], b))


def _arrays_for(names, values, what, ctx, dtype):
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError("%s is missing %s" % (what, ", ".join(missing)))
        values = [values[n] for n in names]
    if len(values) != len(names):
        raise ValueError("%s: %d arrays for %d names (%s)" % (what, len(values), len(names), ", ".join(names)))
    out = {}
    for name, value in zip(names, values):
        arr = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)
        if dtype is not None and np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(dtype)
        out[name] = NDArray(np.ascontiguousarray(arr), ctx)
    return out


def check_symbolic_forward(sym, location, expected, rtol=None, atol=None, aux_states=None, ctx=None,
                           equal_nan=False, dtype=np.float32):
    """Bind `sym` to `location` (list in list_arguments order or dict), run forward and compare each output
    with `expected` (list or dict by output name). Returns the outputs as numpy arrays."""
    ctx = ctx or default_context()
    args = _arrays_for(sym.list_arguments(), location, "location", ctx, dtype)
    aux = _arrays_for(sym.list_auxiliary_states(), aux_states or {}, "aux_states", ctx, dtype)
    executor = sym.bind(ctx, args=args, aux_states=aux)
    outputs = [o.asnumpy() for o in executor.forward(is_train=False)]
    if isinstance(expected, dict):
        expected = [expected[n] for n in sym.list_outputs()]
    if len(expected) != len(outputs):
        raise AssertionError("%d expected arrays for %d outputs" % (len(expected), len(outputs)))
    for name, out, exp in zip(sym.list_outputs(), outputs, expected):
        exp = _as_numpy(exp)
        if out.shape != exp.shape:
            raise AssertionError("output %s: shape %s, expected %s" % (name, out.shape, exp.shape))
        assert_almost_equal(out, exp, rtol, atol, ("output " + name, "expected"), equal_nan=equal_nan)
    return outputs


def lowered_model(sym, shapes, dtypes=None):
    """The ONNX model onnxsym runs for `sym` with input `shapes` (for checks with onnx.checker / plain ORT)."""
    from .lower.to_onnx import lower_symbol
    return lower_symbol(sym, shapes, dtypes or {})


def _is_number(x):
    return isinstance(x, numbers.Number)


MXNetError = MXNetError
