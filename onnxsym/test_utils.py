"""MXNet's `mx.test_utils` (MXNet 1.9 names, signatures and meaning): the helpers MXNet's own unit tests import.

Like MXNet's module it has no `__all__`: `from mxnet.test_utils import *` gives every public name here, the modules
MXNet's tests reach through it (np, npt, rnd, sys, os, logging, time) included. The families live in private modules
re-exported here: _test_utils_compare (tolerances, assert_almost_equal), _test_utils_random (random data, checks of
random generators), _test_utils_env (environment variables, stderr, retries, downloads). This file holds the
helpers that run symbols: check_symbolic_forward/backward, check_numeric_gradient, check_consistency, check_speed,
simple_forward and compare_optimizer (sparse storage types too). onnxsym has no gluon and no mx.np, so the helpers
for them (check_gluon_hybridize_consistency, has_tvm_ops, ...) are absent.
"""
import json
import logging  # noqa: F401  (exported: MXNet's tests use it through `import *`)
import numbers  # noqa: F401
import os
import sys  # noqa: F401
import time
import traceback

import numpy as np
import numpy.random as rnd  # noqa: F401
import numpy.testing as npt  # noqa: F401

from ._test_utils_compare import *  # noqa: F401,F403
from ._test_utils_compare import assert_almost_equal, compare_ndarray_tuple, get_tols, same
from ._test_utils_env import *  # noqa: F401,F403
from ._test_utils_random import *  # noqa: F401,F403
from ._test_utils_random import rand_ndarray
from .base import MXNetError  # noqa: F401
from .context import Context, current_context
from .lower.to_onnx import lower_symbol
from .module.io import MNISTIter
from .ndarray import array
from .random import uniform as _random_uniform
from .runtime.ndarray import NDArray
from .symbol.symbol import Symbol, Variable, create_symbol


def default_context():
    """The context tests run on: the current default (cpu(0) unless set_default_context or `with ctx:`)."""
    return current_context()


def set_default_context(ctx):
    """Make `ctx` the default context (of this thread), as `with ctx:` does for a block."""
    Context._default.value = ctx


def _location_array(value, dtype):
    """A location / aux value as numpy, as MXNet's _parse_location reads it: NDArrays keep their dtype, other
    arrays take `dtype` ("asnumpy", or None here: their own)."""
    if isinstance(value, NDArray):
        return value.asnumpy()
    value = np.asarray(value)
    return value if dtype is None or (isinstance(dtype, str) and dtype == "asnumpy") else value.astype(dtype)


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
        out[name] = NDArray(np.array(_location_array(value, dtype), order="C"), ctx)
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
        exp = exp.asnumpy() if isinstance(exp, NDArray) else np.asarray(exp)
        # MXNet compares with broadcasting (assert_almost_equal's use_broadcast=True): an output of shape (3, 1)
        # matches an expected (3,) when every pair agrees (test_laop's sumlogdiag); other shapes are an error
        try:
            np.broadcast_shapes(out.shape, exp.shape)
        except ValueError:
            raise AssertionError("output %s: shape %s, expected %s" % (name, out.shape, exp.shape)) from None
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
        out_grads = [g if isinstance(g, NDArray) else NDArray(np.array(_location_array(g, dtype), order="C"), ctx)
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
    return np.asarray(np.random.RandomState(seed).uniform(size=shape) + 0.1)


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
    location = {k: _location_array(v, dtype) for k, v in location.items()}
    if isinstance(dtype, str) and dtype == "asnumpy":
        dtype = np.result_type(*location.values())
    _, out_shapes, _ = sym.infer_shape(**{k: v.shape for k, v in location.items()})
    _, out_types, _ = sym.infer_type(**{k: v.dtype for k, v in location.items()})
    out_type = np.dtype(out_types[0] if out_types else dtype)
    if not np.issubdtype(out_type, np.floating):
        raise ValueError("check_numeric_gradient needs a floating-point output, got %s" % out_type.name)
    proj_name = "__random_proj"
    projection = np.asarray(random_projection(out_shapes[0]).astype(out_type))
    loss = create_symbol("MakeLoss", create_symbol("elemwise_mul", sym, Variable(proj_name)))
    # grad_nodes: names (req 'write') or, as MXNet's, {name: 'write' | 'add' | 'null'}; 'add' starts from a
    # random gradient and checks the added part, 'null' checks that the gradient array stays as it was
    reqs = dict(grad_nodes) if isinstance(grad_nodes, dict) else \
        {n: "write" for n in (grad_nodes or [n for n in names if n in location])}
    for name, req in reqs.items():
        if req not in ("write", "add", "null"):
            raise ValueError("Invalid grad_req %s for argument %s" % (req, name))
    grad_nodes = list(reqs)
    args = {n: NDArray(np.array(location[n], order="C"), ctx) for n in names}
    args[proj_name] = NDArray(projection, ctx)
    if isinstance(aux_states, (list, tuple)):
        aux_states = dict(zip(sym.list_auxiliary_states(), aux_states))
    aux = {k: NDArray(np.array(_location_array(v, dtype), order="C"), ctx)
           for k, v in (aux_states or {}).items()}
    rng = np.random.RandomState(0)
    initial = {n: (rng.normal(0, 0.01, location[n].shape) if reqs[n] != "write" else np.zeros(location[n].shape))
               .astype(dtype) for n in grad_nodes}
    grads = {n: NDArray(initial[n].copy(), ctx) for n in grad_nodes}
    executor = loss.bind(ctx, args=args, args_grad=grads, grad_req=reqs, aux_states=aux)
    executor.forward(is_train=True)
    executor.backward()
    symbolic = {n: grads[n].asnumpy() - (initial[n] if reqs[n] == "add" else 0) for n in grad_nodes}
    eps = numeric_eps if numeric_eps is not None else (1e-2 if np.dtype(dtype) == np.float32 else 1e-4)
    checked = [n for n in grad_nodes if reqs[n] != "null"]
    numeric = numeric_grad(executor, location, aux_states, eps=eps, use_forward_train=use_forward_train,
                           dtype=dtype, names=checked)
    rtol = rtol if rtol is not None else (2e-2 if np.dtype(dtype) == np.float32 else 1e-4)
    atol = atol if atol is not None else (1e-3 if np.dtype(dtype) == np.float32 else 1e-6)
    for name in grad_nodes:
        if reqs[name] == "null":
            assert_almost_equal(symbolic[name], initial[name], rtol, atol,
                                ("gradient of %s (grad_req 'null')" % name, "its initial value"))
        else:
            assert_almost_equal(symbolic[name], numeric[name], rtol, atol,
                                ("symbolic gradient of " + name, "numeric gradient"))
    return symbolic


def simple_forward(sym, ctx=None, is_train=False, **inputs):
    """Bind `sym` to the numpy `inputs` (by argument name), run forward and return the output as numpy (a list
    when there are several)."""
    ctx = ctx or default_context()
    executor = sym.bind(ctx, args={name: array(value) for name, value in inputs.items()})
    executor.forward(is_train=is_train)
    outputs = [out.asnumpy() for out in executor.outputs]
    return outputs[0] if len(outputs) == 1 else outputs


def check_speed(sym, location=None, ctx=None, N=20, grad_req=None, typ="whole", **kwargs):
    """Seconds per run of `sym`, averaged over N runs after one warm-up: forward+backward (typ='whole', the
    outputs as head gradients) or forward only ('forward'). location: {name: numpy} (random normal inputs of the
    `kwargs` shapes when None)."""
    ctx = ctx or default_context()
    grad_req = grad_req or "write"
    if location is None:
        executor = sym.simple_bind(ctx, grad_req=grad_req, **kwargs)
        location = {k: np.random.normal(size=arr.shape, scale=1.0) for k, arr in executor.arg_dict.items()}
    else:
        assert isinstance(location, dict), 'Expect dict, get "location"=%s' % str(location)
        executor = sym.simple_bind(ctx, grad_req=grad_req, **{k: v.shape for k, v in location.items()})
    for name, value in location.items():
        executor.arg_dict[name][:] = value.astype(executor.arg_dict[name].dtype)
    if typ not in ("whole", "forward"):
        raise ValueError('typ can only be "whole" or "forward".')
    train = typ == "whole"

    def run():
        executor.forward(is_train=train)
        if train:
            executor.backward(out_grads=executor.outputs)

    run()
    tic = time.time()
    for _ in range(N):
        run()
    return (time.time() - tic) / N


def _least_precise(dtype1, dtype2):
    """The dtype with the smaller item size (dtype1 on a tie or when dtype2 is None)."""
    return dtype1 if dtype2 is None or np.dtype(dtype1).itemsize < np.dtype(dtype2).itemsize else dtype2


def _report(error, message, raise_on_err):
    print(message)
    traceback.print_exc()
    if raise_on_err:
        raise error
    print(str(error))


def check_consistency(sym, ctx_list, scale=1.0, grad_req="write", arg_params=None, aux_params=None, rtol=None,
                      atol=None, raise_on_err=True, ground_truth=None, equal_nan=False, use_uniform=False,
                      rand_type=np.float64):
    """Check that `sym` (or one symbol per entry) gives the same outputs and gradients on every entry of
    `ctx_list`: dicts of simple_bind arguments, e.g. {'ctx': mx.cpu(0), 'data': (2, 3), 'type_dict': {'data':
    np.float16}}. Inputs are random normal (std `scale`; uniform in +-0.92 scale with use_uniform) unless in
    arg_params; aux states are 0 unless in aux_params. The executor with the most precise output[0] dtype is the
    ground truth; each other one is compared with tolerances from the less precise dtype (get_tols) unless
    rtol/atol are given. The backward pass uses the first executor's outputs, cast to the least precise output
    dtype, as head gradients. Returns the ground truth {name: NDArray} (outputs, then gradients)."""
    assert len(ctx_list) > 1
    symbols = [sym] * len(ctx_list) if isinstance(sym, Symbol) else list(sym)
    assert len(symbols) == len(ctx_list)
    output_names, arg_names = symbols[0].list_outputs(), symbols[0].list_arguments()
    executors = []
    for s, bind_args in zip(symbols, ctx_list):
        assert s.list_arguments() == arg_names and s.list_outputs() == output_names
        bind_args = dict(bind_args)
        executors.append(s.simple_bind(bind_args.pop("ctx", default_context()), grad_req=grad_req, **bind_args))

    arg_params = {} if arg_params is None else arg_params
    aux_params = {} if aux_params is None else aux_params
    for name, arr in sorted(executors[0].arg_dict.items()):    # sorted: reproducible draws
        if name not in arg_params:
            values = (np.random.uniform(-0.92 * scale, 0.92 * scale, size=arr.shape) if use_uniform
                      else np.random.normal(size=arr.shape, scale=scale))
            arg_params[name] = values.astype(rand_type)
    for name in executors[0].aux_dict:
        aux_params.setdefault(name, 0)
    for executor in executors:
        for name, arr in executor.arg_dict.items():
            arr[:] = arg_params[name]
        for name, arr in executor.aux_dict.items():
            arr[:] = aux_params[name]
        if grad_req == "add":
            for arr in executor.grad_arrays:
                if arr is not None:
                    arr[:] = 0

    dtypes = [np.dtype(executor.outputs[0].dtype) for executor in executors]
    gt_index = int(np.argmax(dtypes))
    truth = ground_truth
    if truth is None:
        truth = dict(executors[gt_index].output_dict)
        if grad_req != "null":
            truth.update(executors[gt_index].grad_dict)

    for executor in executors:
        executor.forward(is_train=False)
    for i, executor in enumerate(executors):
        if i == gt_index:
            continue
        for name, arr in zip(output_names, executor.outputs):
            try:
                assert_almost_equal(arr, truth[name], rtol=rtol, atol=atol, equal_nan=equal_nan)
            except AssertionError as error:
                _report(error, "Predict Err: ctx %d vs ctx %d at %s" % (i, gt_index, name), raise_on_err)

    if grad_req == "null":
        return truth
    for executor in executors:
        executor.forward(is_train=True)
    head_dtypes = [out.dtype for out in executors[0].outputs]
    for executor in executors:
        head_dtypes = [_least_precise(out.dtype, dt) for out, dt in zip(executor.outputs, head_dtypes)]
    heads = [out.asnumpy().astype(dt) for out, dt in zip(executors[0].outputs, head_dtypes)]
    for executor in executors:
        executor.backward([array(h, ctx=out.context, dtype=out.dtype) for h, out in zip(heads, executor.outputs)])
    for i, executor in enumerate(executors):
        if i == gt_index:
            continue
        for name, arr in zip(output_names + arg_names, executor.outputs + executor.grad_arrays):
            expected = truth[name]
            if expected is None:
                assert arr is None
                continue
            rt, at = rtol, atol
            # A float32 gradient (BatchNorm's gamma) of a float16 model gets float16 tolerances.
            arr_dtype, expected_dtype = _least_precise(arr.dtype, dtypes[i]), _least_precise(expected.dtype,
                                                                                             dtypes[gt_index])
            if arr_dtype != arr.dtype or expected_dtype != expected.dtype:
                rt, at = get_tols(arr.astype(arr_dtype), expected.astype(expected_dtype), rtol, atol)
            try:
                assert_almost_equal(arr, expected, rtol=rt, atol=at, equal_nan=equal_nan)
            except AssertionError as error:
                _report(error, "Train Err: %s %s ctx %d vs %s %s ctx %d at %s"
                        % (np.dtype(arr.dtype).name, arr.context, i, np.dtype(expected.dtype).name,
                           expected.context, gt_index, name), raise_on_err)
    return truth


def compare_optimizer(opt1, opt2, shape, dtype, w_stype="default", g_stype="default", rtol=1e-4, atol=1e-5,
                      compare_states=True, ntensors=1):
    """Apply opt1 and opt2 to the same random weights and gradients (uniform [0, 1)) and compare their states and
    updated weights. `shape` a list: opt2 updates `ntensors` tensors in one multi-tensor call, opt1 one by one.
    A sparse `w_stype`/`g_stype` gives opt2 a sparse weight (all rows stored) or gradient (random rows) and opt1
    their dense copies, as MXNet's helper."""
    ctx = default_context()
    if not isinstance(shape, list):
        assert ntensors == 1
        w2 = _compared_array(shape, ctx, dtype, w_stype, density=1)
        g2 = _compared_array(shape, ctx, dtype, g_stype, density=None)
        w1, g1 = w2.copyto(ctx).tostype("default"), g2.copyto(ctx).tostype("default")
        state1 = opt1.create_state_multi_precision(0, w1)
        state2 = opt2.create_state_multi_precision(0, w2)
        if compare_states:
            compare_ndarray_tuple(state1, state2)
        opt1.update_multi_precision(0, w1, g1, state1)
        opt2.update_multi_precision(0, w2, g2, state2)
        if compare_states:
            compare_ndarray_tuple(state1, state2, rtol=rtol, atol=atol)
        assert_almost_equal(w1, w2, rtol=rtol, atol=atol)
        return
    w1 = tuple(_random_uniform(shape=s, ctx=ctx, dtype=dtype) for s in shape)
    g1 = tuple(_random_uniform(shape=s, ctx=ctx, dtype=dtype) for s in shape)
    w2, g2 = tuple(w.copy() for w in w1), tuple(g.copy() for g in g1)
    state2 = [opt2.create_state_multi_precision(0, w2[i]) for i in range(ntensors)]
    opt2.update_multi_precision(list(range(ntensors)), w2, g2, state2)
    for i in range(ntensors):
        state1 = opt1.create_state_multi_precision(i, w1[i])
        opt1.update_multi_precision(i, w1[i], g1[i], state1)
        if compare_states:
            compare_ndarray_tuple(state1, state2[i], rtol, atol)
        compare_ndarray_tuple(w1[i], w2[i], rtol, atol)


def _compared_array(shape, ctx, dtype, stype, density):
    if stype == "default":
        return _random_uniform(shape=shape, ctx=ctx, dtype=dtype)
    if stype in ("row_sparse", "csr"):
        return rand_ndarray(shape, stype, density=density, dtype=dtype)
    raise MXNetError("compare_optimizer: storage type %r is not supported" % (stype,))


def same_array(array1, array2):
    """True when the two NDArrays share memory: a write through array1 shows in array2 (array1 is restored)."""
    array1[:] += 1
    if not same(array1.asnumpy(), array2.asnumpy()):
        array1[:] -= 1
        return False
    array1[:] -= 1
    return same(array1.asnumpy(), array2.asnumpy())


def same_symbol_structure(sym1, sym2):
    """True when the two symbols' JSON graphs have the same operator at each node position."""
    nodes1, nodes2 = json.loads(sym1.tojson())["nodes"], json.loads(sym2.tojson())["nodes"]
    return all(n1["op"] == n2["op"] for n1, n2 in zip(nodes1, nodes2))


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


