"""MXNet's Python-level functions (mx.nd.add ... logical_xor, mx.sym.maximum/pow/hypot, creation functions) and the
ops behind them (_zeros, _arange, _eye, _linspace, stack, diag, moments, batch_take, erfinv, _ravel_multi_index,
_unravel_index, scatter_nd, _histogram, _onehot_encode) against values recorded from MXNet 1.9.1
(tests/fixtures/make_functional_fixtures.py), and gradients against finite differences."""
import json
import os
import warnings

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.test_utils import check_numeric_gradient

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
with open(os.path.join(HERE, "functional.json")) as _f:
    META = json.load(_f)
ARRAYS = np.load(os.path.join(HERE, "functional.npz"))


def _inputs(dtype):
    a = np.array([[1.5, -2, 3], [0, 4, -5.5]])
    b = np.array([[2, -2, 1.5]])
    v = np.array([0.1, 2, 3.5, 1])
    m = np.arange(12).reshape(3, 4) * 0.5 - 1
    return {k: mx.nd.array(x, dtype=dtype) for k, x in dict(a=a, b=b, v=v, m=m).items()}


def _tolerance(dtype, expr):
    if "erfinv" in expr:
        return 2e-6         # erfinv is computed in float32 (DEVIATIONS: ONNX Runtime has no float64 Erf)
    return 1e-12 if dtype == "float64" else 1e-6


XFAIL = {}
ND = [pytest.param(i, e, id="%s-%s" % (e["expr"], e["dtype"]),
                   marks=[pytest.mark.xfail(reason=XFAIL[e["expr"], e["dtype"]], strict=True)]
                   if (e["expr"], e["dtype"]) in XFAIL else [])
      for i, e in enumerate(META["nd"])]


@pytest.mark.parametrize("index,case", ND)
def test_nd_function(index, case):
    env = dict(_inputs(case["dtype"]), mx=mx, np=np, dtype=case["dtype"])
    if "error" in case:
        with pytest.raises(mx.MXNetError):
            result = eval(case["expr"], env)
            [r.asnumpy() for r in (result if isinstance(result, (list, tuple)) else [result])]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = eval(case["expr"], env)
    if case["kind"] == "scalar":
        assert result == case["value"] and type(result).__name__ == case["type"]
        return
    results = list(result) if case["kind"] == "list" else [result]
    assert [np.dtype(r.dtype).name for r in results] == case["dtypes"]
    for j, r in enumerate(results):
        expected = ARRAYS["nd%d_%d" % (index, j)]
        got = r.asnumpy()
        assert got.shape == expected.shape
        tol = _tolerance(case["dtype"], case["expr"])
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, equal_nan=True)


SYM = [pytest.param(i, e, id=e["expr"]) for i, e in enumerate(META["sym"])]


@pytest.mark.parametrize("index,case", SYM)
def test_symbol_function(index, case):
    with mx.name.NameManager():
        x, y = mx.sym.var("x"), mx.sym.var("y")
        s = eval(case["expr"], dict(mx=mx, np=np, x=x, y=y))
    assert s.name == case["name"]
    assert s.list_arguments() == case["list_arguments"]
    assert s.list_outputs() == case["list_outputs"]
    assert json.loads(s.tojson()) == json.loads(case["tojson"])
    arg_shapes, out_shapes, _ = s.infer_shape(**case["shapes"])
    assert [list(o) for o in out_shapes] == case["out_shapes"]
    assert [list(a) for a in arg_shapes] == case["arg_shapes"]
    args = {k: mx.nd.array(ARRAYS["sym%d_in_%s" % (index, k)], dtype=case["arg_dtypes"][k]) for k in case["shapes"]}
    outs = s.bind(mx.cpu(), args).forward()
    assert [np.dtype(o.dtype).name for o in outs] == case["out_dtypes"]
    for j, o in enumerate(outs):
        np.testing.assert_allclose(o.asnumpy(), ARRAYS["sym%d_out%d" % (index, j)], rtol=2e-6, atol=2e-6)
    loaded = mx.sym.load_json(case["tojson"])     # MXNet's JSON loads back with the same op names
    assert loaded.tojson() == s.tojson()


def test_number_pairs_give_python_numbers():
    assert mx.sym.maximum(2, 3) == 3 and mx.sym.pow(2, 3) == 8 and mx.sym.hypot(3, 4) == 5.0
    assert mx.nd.add(1, 2) == 3 and mx.nd.equal(2, 2) == 1 and mx.nd.logical_xor(0, 3) == 1
    with pytest.raises(TypeError):
        mx.sym.maximum("a", mx.sym.var("x"))
    with pytest.raises(TypeError):
        mx.nd.add(mx.nd.ones((2,)), "a")


def _moments_sum(outputs):
    return outputs[0] * 1.5 + outputs[1]


# Gradients: central differences in float64 (test_utils.check_numeric_gradient) through each differentiable op.
GRADIENT_CASES = {
    "maximum": (lambda x, y: mx.sym.maximum(x, y), {"x": (2, 3), "y": (2, 3)}),
    "pow_scalar": (lambda x, y: mx.sym.pow(2, x), {"x": (2, 3)}),
    "hypot": (lambda x, y: mx.sym.hypot(x, y), {"x": (2, 3), "y": (2, 3)}),
    "stack": (lambda x, y: mx.sym.stack(x, y * 2, axis=1), {"x": (2, 3), "y": (2, 3)}),
    "diag_matrix": (lambda x, y: mx.sym.diag(x, k=1), {"x": (3, 4)}),
    "diag_vector": (lambda x, y: mx.sym.diag(x, k=-1), {"x": (3,)}),
    "diag_planes": (lambda x, y: mx.sym.diag(x, k=-1, axis1=2, axis2=0), {"x": (3, 2, 4)}),
    "moments": (lambda x, y: _moments_sum(mx.sym.moments(x, axes=(1,))), {"x": (3, 4)}),
    "erfinv": (lambda x, y: mx.sym.erfinv(x), {"x": (2, 3)}),
    "batch_take": (lambda x, y: mx.sym.batch_take(x, mx.sym.BlockGrad(mx.sym.var("i"))), {"x": (3, 4), "i": (3,)}),
    "scatter_nd": (lambda x, y: mx.sym.scatter_nd(x, mx.sym.BlockGrad(y), shape=(3, 4)), {"x": (3,), "y": (2, 3)}),
    "plus_full": (lambda x, y: x * mx.sym.ones((2, 3), dtype="float64") + mx.sym.full((2, 3), 2, dtype="float64"),
                  {"x": (2, 3)}),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradient_matches_finite_differences(name):
    build, shapes = GRADIENT_CASES[name]
    s = build(mx.sym.var("x"), mx.sym.var("y"))
    rng = np.random.RandomState(0)
    location = {k: rng.uniform(-0.9, 0.9, size=shape) for k, shape in shapes.items()}
    grad_nodes = ["x"] + (["y"] if "y" in shapes and name not in ("scatter_nd",) else [])
    if name == "batch_take":
        location["i"] = np.array([1, 3, 0])
    if name == "scatter_nd":
        location["y"] = np.array([[1, 0, 2], [0, 3, 1]])
    if name == "maximum":
        location["y"] = location["x"] + np.where(rng.uniform(size=(2, 3)) > 0.5, 0.3, -0.3)   # no ties
    # erfinv's forward has float32 accuracy (see _tolerance): a wider step keeps the differences meaningful
    eps = 1e-3 if name == "erfinv" else 1e-5
    check_numeric_gradient(s, location, grad_nodes=grad_nodes, numeric_eps=eps, rtol=1e-3, atol=1e-4,
                           dtype=np.float64)


def test_creation_ops_are_not_differentiable_and_take_no_arguments():
    s = mx.sym.arange(0, 6, 2, repeat=3)
    assert s.list_arguments() == [] and s.infer_shape()[1] == [(9,)]
    np.testing.assert_array_equal(s.bind(mx.cpu(), {}).forward()[0].asnumpy(), [0, 0, 0, 2, 2, 2, 4, 4, 4])
    with pytest.raises(mx.MXNetError):
        mx.sym.arange(3, 1).infer_shape()


# MXNet 1.9.1, mx.nd.divide(3, mx.nd.array([2, 0, 0], dtype=...)): recorded by hand in its venv (array / array
# and array / 0 kill MXNet itself with SIGFPE, so only the scalar-divided-by-array form has a value to match)
RDIV_BY_ZERO = {np.int32: [1, -2147483648, -2147483648], np.int64: [1, -2 ** 63, -2 ** 63], np.int8: [1, 0, 0],
                np.uint8: [1, 0, 0]}


@pytest.mark.parametrize("dtype", sorted(RDIV_BY_ZERO, key=str))
def test_integer_division_by_zero_never_reaches_the_runtime(dtype):
    """MXNet's values for a scalar divided by an array with zeros; array / array gives the same at zero divisors
    instead of an ORT error, or the SIGFPE that killed the process under onnxruntime 1.23."""
    b = mx.nd.array([2, 0, 0], dtype=dtype)
    expected = RDIV_BY_ZERO[dtype]
    assert mx.nd.divide(3, b).asnumpy().tolist() == expected
    assert (mx.nd.array([7, 6, 0], dtype=dtype) / b).asnumpy().tolist() == [3] + expected[1:]
