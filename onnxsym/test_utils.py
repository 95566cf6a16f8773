"""MXNet's `mx.test_utils` helpers (same names, signatures and meaning), used by onnxsym's own tests."""
import numbers
import os

import numpy as np

from .base import MXNetError
from .context import cpu
from .lower.to_onnx import lower_symbol
from .module.io import MNISTIter
from .runtime.ndarray import NDArray
from .symbol.symbol import Variable, create_symbol

__all__ = ["default_context", "set_default_context", "assert_almost_equal", "almost_equal", "same",
           "check_symbolic_forward", "check_symbolic_backward", "check_numeric_gradient", "numeric_grad",
           "default_rtols", "default_atols", "lowered_model", "random_projection", "get_mnist_iterator"]

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
        out[name] = NDArray(np.array(arr, order="C"), ctx)
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


def check_symbolic_backward(sym, location, out_grads, expected, rtol=None, atol=None, aux_states=None,
                            grad_req="write", ctx=None, grad_stypes=None, equal_nan=False, dtype=np.float32):
    """Bind with gradient arrays, forward(is_train=True), backward(out_grads) and compare the gradients with
    `expected` (list in list_arguments order or dict by name). With grad_req='add' the gradient arrays start from
    random values that `expected` must not include (they are added here). Returns the gradients (numpy)."""
    ctx = ctx or default_context()
    names = sym.list_arguments()
    args = _arrays_for(names, location, "location", ctx, dtype)
    aux = _arrays_for(sym.list_auxiliary_states(), aux_states or {}, "aux_states", ctx, dtype)
    if isinstance(expected, (list, tuple)):
        expected = dict(zip(names, expected))
    rng = np.random.RandomState(0)
    initial = {n: (rng.normal(size=args[n].shape).astype(args[n].dtype) if grad_req == "add"
                   else np.zeros(args[n].shape, args[n].dtype)) for n in expected}
    grads = {n: NDArray(initial[n].copy(), ctx) for n in expected}
    reqs = {n: (grad_req if isinstance(grad_req, str) else grad_req.get(n, "null")) for n in expected}
    executor = sym.bind(ctx, args=args, args_grad=grads, grad_req=reqs, aux_states=aux)
    executor.forward(is_train=True)
    if out_grads is not None:
        if isinstance(out_grads, dict):
            out_grads = [out_grads[n] for n in sym.list_outputs()]
        out_grads = [g if isinstance(g, NDArray) else NDArray(np.asarray(g, dtype, order="C"), ctx)
                     for g in (out_grads if isinstance(out_grads, (list, tuple)) else [out_grads])]
    executor.backward(out_grads)
    results = {}
    for name, exp in expected.items():
        got = grads[name].asnumpy()
        want = np.asarray(exp) + (initial[name] if reqs[name] == "add" else 0)
        if reqs[name] == "null":
            want = initial[name]
        assert_almost_equal(got, want, rtol, atol, ("gradient of " + name, "expected"), equal_nan=equal_nan)
        results[name] = got
    return results


def random_projection(shape, seed=0):
    """A random head gradient `uniform + 0.1` (away from zero) used by check_numeric_gradient."""
    return np.random.RandomState(seed).uniform(size=shape) + 0.1


def numeric_grad(executor, location, aux_states=None, eps=1e-4, use_forward_train=True, dtype=np.float32,
                 names=None):
    """Central differences of sum(outputs) with respect to each array of `location` ({name: numpy})."""
    grads = {}
    for name in names or location:
        array = executor.arg_dict[name]
        flat = array.handle.reshape(-1)
        result = np.zeros(flat.shape, np.float64)
        for i in range(flat.size):
            original = flat[i].copy()
            array[np.unravel_index(i, array.shape)] = original + eps / 2
            plus = sum(float(o.asnumpy().astype(np.float64).sum()) for o in executor.forward(use_forward_train))
            array[np.unravel_index(i, array.shape)] = original - eps / 2
            minus = sum(float(o.asnumpy().astype(np.float64).sum()) for o in executor.forward(use_forward_train))
            array[np.unravel_index(i, array.shape)] = original
            result[i] = (plus - minus) / eps
        grads[name] = result.reshape(array.shape)
    return grads


def check_numeric_gradient(sym, location, aux_states=None, numeric_eps=None, rtol=None, atol=None,
                           grad_nodes=None, use_forward_train=True, ctx=None, grad_stype_dict=None,
                           dtype=np.float32):
    """Compare Executor.backward with central finite differences of sum(sym * projection), as MXNet does:
    `sym` (one output) times a random projection is minimised through MakeLoss, so the symbolic gradient is the
    vector-Jacobian product with that projection. `grad_nodes`: the arguments to check (default: all)."""
    ctx = ctx or default_context()
    if len(sym.list_outputs()) != 1:
        raise ValueError("check_numeric_gradient takes a symbol with one output, got %d" % len(sym.list_outputs()))
    names = sym.list_arguments()
    if not isinstance(location, dict):
        location = dict(zip(names, location))
    location = {k: np.asarray(v.asnumpy() if isinstance(v, NDArray) else v, dtype) for k, v in location.items()}
    _, out_shapes, _ = sym.infer_shape(**{k: v.shape for k, v in location.items()})
    _, out_types, _ = sym.infer_type(**{k: v.dtype for k, v in location.items()})
    out_type = np.dtype(out_types[0] if out_types else dtype)
    if not np.issubdtype(out_type, np.floating):
        raise ValueError("check_numeric_gradient needs a floating-point output, got %s" % out_type.name)
    proj_name = "__random_proj"
    projection = random_projection(out_shapes[0]).astype(out_type)
    loss = create_symbol("MakeLoss", create_symbol("elemwise_mul", sym, Variable(proj_name)))
    grad_nodes = list(grad_nodes or [n for n in names if n in location])
    args = {n: NDArray(np.array(location[n], order="C"), ctx) for n in names}
    args[proj_name] = NDArray(projection, ctx)
    aux = {k: NDArray(np.asarray(v.asnumpy() if isinstance(v, NDArray) else v, dtype, order="C"), ctx)
           for k, v in (aux_states or {}).items()}
    grads = {n: NDArray(np.zeros(location[n].shape, dtype), ctx) for n in grad_nodes}
    executor = loss.bind(ctx, args=args, args_grad=grads, grad_req={n: "write" for n in grad_nodes},
                         aux_states=aux)
    executor.forward(is_train=True)
    executor.backward()
    symbolic = {n: grads[n].asnumpy() for n in grad_nodes}
    eps = numeric_eps if numeric_eps is not None else (1e-2 if np.dtype(dtype) == np.float32 else 1e-4)
    numeric = numeric_grad(executor, location, aux_states, eps=eps, use_forward_train=use_forward_train,
                           dtype=dtype, names=grad_nodes)
    rtol = rtol if rtol is not None else (2e-2 if np.dtype(dtype) == np.float32 else 1e-4)
    atol = atol if atol is not None else (1e-3 if np.dtype(dtype) == np.float32 else 1e-6)
    for name in grad_nodes:
        assert_almost_equal(symbolic[name], numeric[name], rtol, atol,
                            ("symbolic gradient of " + name, "numeric gradient"))
    return symbolic


def get_mnist_iterator(batch_size, input_shape, num_parts=1, part_index=0, path="data"):
    """(train_iter, val_iter) over the MNIST IDX files in `path` (train-images-idx3-ubyte[.gz], ...), as MXNet's
    helper; nothing is downloaded: a clear error says where to put the files when they are absent."""
    flat = len(input_shape) != 3
    train = MNISTIter(image=os.path.join(path, "train-images-idx3-ubyte"),
                      label=os.path.join(path, "train-labels-idx1-ubyte"),
                      batch_size=batch_size, shuffle=True, flat=flat, num_parts=num_parts, part_index=part_index)
    val = MNISTIter(image=os.path.join(path, "t10k-images-idx3-ubyte"),
                    label=os.path.join(path, "t10k-labels-idx1-ubyte"),
                    batch_size=batch_size, flat=flat, num_parts=num_parts, part_index=part_index)
    return train, val


def lowered_model(sym, shapes, dtypes=None):
    """The ONNX model onnxsym runs for `sym` with input `shapes` (for checks with onnx.checker / plain ORT)."""
    return lower_symbol(sym, shapes, dtypes or {})


def _is_number(x):
    return isinstance(x, numbers.Number)


MXNetError = MXNetError
