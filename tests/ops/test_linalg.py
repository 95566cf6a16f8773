"""Linear-algebra operators (`_linalg_*`, mx.sym.linalg / mx.nd.linalg) against MXNet 1.9.1 (fixtures from
tests/fixtures/make_linalg_fixtures.py: outputs and input gradients for seeded head gradients), numpy references
and central finite differences in float64."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.test_utils import assert_almost_equal, check_numeric_gradient
from .opcase import OpCase, run_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "mxnet")
with open(os.path.join(FIXTURES, "linalg.json")) as _handle:
    _RECORDS = json.load(_handle)
_ARRAYS = np.load(os.path.join(FIXTURES, "linalg.npz"))
TOL = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}


def _function(namespace, op):
    """mx.<namespace>.linalg.<name> for `_linalg_<name>` (the way MXNet users call them), else the alias."""
    module = getattr(mx, namespace)
    return getattr(module.linalg, op[len("_linalg_"):]) if op.startswith("_linalg_") else getattr(module, op)


def _record(name):
    meta = _RECORDS["cases"][name]
    prefix = name + "/"
    arrays = {k[len(prefix):]: _ARRAYS[k] for k in _ARRAYS.files if k.startswith(prefix)}
    return meta, arrays


@pytest.mark.parametrize("name", sorted(_RECORDS["cases"]))
def test_forward_and_backward_match_mxnet(name):
    meta, arrays = _record(name)
    dtype = meta["dtype"]
    sym = _function("sym", meta["op"])(*[mx.sym.Variable(n) for n in meta["inputs"]], **meta["attrs"])
    args = {n: mx.nd.array(arrays["in:" + n], dtype=dtype) for n in meta["inputs"]}
    grads = {n: mx.nd.zeros(arrays["in:" + n].shape, dtype=dtype) for n in meta["inputs"]}
    executor = sym.bind(mx.cpu(), args=args, args_grad=grads)
    outputs = executor.forward(is_train=True)
    assert [list(o.shape) for o in outputs] == meta["out_shapes"]
    _, out_shapes, _ = sym.infer_shape(**{n: arrays["in:" + n].shape for n in meta["inputs"]})
    assert [list(s) for s in out_shapes] == meta["out_shapes"]
    for i, out in enumerate(outputs):
        assert out.dtype == np.dtype(dtype)
        assert_almost_equal(out.asnumpy(), arrays["out:%d" % i], names=("onnxsym", "mxnet"), **TOL[dtype])
    executor.backward([mx.nd.array(arrays["head:%d" % i], dtype=dtype) for i in range(len(outputs))])
    for n in meta["inputs"]:
        assert_almost_equal(grads[n].asnumpy(), arrays["grad:" + n], names=("d " + n, "mxnet"), **TOL[dtype])


@pytest.mark.parametrize("name", sorted(_RECORDS["cases"]))
def test_mxnet_json_loads_and_runs(name):
    """The symbol built here writes MXNet's JSON; MXNet's JSON (its node names, output names, attribute strings)
    loads, names its outputs as MXNet does and computes MXNet's outputs."""
    meta, arrays = _record(name)
    with mx.name.NameManager():
        made = _function("sym", meta["op"])(*[mx.sym.Variable(n) for n in meta["inputs"]], **meta["attrs"])
    assert made.list_outputs() == meta["outputs"]
    assert made.tojson() == meta["tojson"]          # byte for byte MXNet's JSON
    sym = mx.sym.load_json(meta["tojson"])
    assert sym.list_outputs() == meta["outputs"] and sym.list_arguments() == meta["inputs"]
    args = {n: mx.nd.array(arrays["in:" + n], dtype=meta["dtype"]) for n in meta["inputs"]}
    for i, out in enumerate(sym.bind(mx.cpu(), args=args).forward()):
        assert_almost_equal(out.asnumpy(), arrays["out:%d" % i], names=("onnxsym", "mxnet"), **TOL[meta["dtype"]])


@pytest.mark.parametrize("name, op, shapes, dtype", [
    ("potrf_f16", "_linalg_potrf", {"A": (3, 3)}, "float16"),
    ("gemm2_f16", "_linalg_gemm2", {"A": (2, 3), "B": (3, 2)}, "float16"),
    ("extractdiag_f16", "_linalg_extractdiag", {"A": (3, 3)}, "float16"),
    ("det_f16", "_linalg_det", {"A": (3, 3)}, "float16"),
    ("gemm2_int32", "_linalg_gemm2", {"A": (2, 3), "B": (3, 2)}, "int32"),
])
def test_only_float32_and_float64(name, op, shapes, dtype):
    assert "only supports 32-bit and 64-bit floating point" in _RECORDS["dtype_errors"][name]["error"]
    sym = _function("sym", op)(*[mx.sym.Variable(n) for n in shapes])
    with pytest.raises(MXNetError, match="only supports 32-bit and 64-bit floating point"):
        sym.simple_bind(mx.cpu(), type_dict={n: dtype for n in shapes}, **shapes).forward()


# ---------------------------------------------------------------- numpy references (forward)
def _lower(a):
    return np.tril(a)


def _sym_from_lower(a):
    return np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2)


def _spd(n, batch=()):
    x = np.random.RandomState(1).uniform(-1, 1, size=batch + (n, n))
    return x @ np.swapaxes(x, -1, -2) + n * np.eye(n)


def _tri(n, batch=()):
    return np.random.RandomState(2).uniform(-1, 1, size=batch + (n, n)) + 3 * np.eye(n)


def _t(a):
    return np.swapaxes(a, -1, -2)


def _trmm(transpose, rightside, lower, alpha):
    def ref(A, B):
        tri = np.tril(A) if lower else np.triu(A)
        tri = _t(tri) if transpose else tri
        return alpha * (B @ tri if rightside else tri @ B)
    return ref


def _trsm(transpose, rightside, lower, alpha):
    def ref(A, B):
        tri = np.tril(A) if lower else np.triu(A)
        inv = np.linalg.inv(_t(tri) if transpose else tri)
        return alpha * (B @ inv if rightside else inv @ B)
    return ref


def _gelqf(A):
    # LAPACK's gelqf of A is its geqrf of A^T (the same Householder reflections and signs), which numpy's QR runs
    q, r = np.linalg.qr(_t(A))
    return _t(q), _t(r)


def _syevd(A):
    lam, vec = np.linalg.eigh(_sym_from_lower(A))
    u = _t(vec)
    biggest = np.take_along_axis(u, np.argmax(np.abs(u), axis=-1)[..., None], axis=-1)
    return u * np.where(biggest < 0, -1, 1), lam


def _extracttrian(offset, lower):
    def ref(A):
        n = A.shape[-1]
        if offset < 0 or (offset == 0 and lower):
            rows, cols = np.tril_indices(n, offset)
        else:           # the upper triangle is read column by column of the transposed matrix (row-major there)
            cols, rows = np.tril_indices(n, -offset)
        return A[..., rows, cols]
    return ref


def _maketrian(offset, lower):
    def ref(A):
        size = int((np.sqrt(8 * A.shape[-1] + 1) - 1) / 2)
        n = size + abs(offset)
        out = np.zeros(A.shape[:-1] + (n, n))
        if offset < 0 or (offset == 0 and lower):
            rows, cols = np.tril_indices(n, offset)
        else:
            cols, rows = np.tril_indices(n, -offset)
        out[..., rows, cols] = A
        return out
    return ref


def _makediag(offset):
    def ref(A):
        n = A.shape[-1] + abs(offset)
        out = np.zeros(A.shape[:-1] + (n, n))
        index = np.arange(A.shape[-1])
        out[..., index - min(offset, 0), index + max(offset, 0)] = A
        return out
    return ref


CASES = [
    OpCase("linalg_gemm", dict(alpha=2.0, beta=-0.5), {"A": (2, 3, 4), "B": (2, 4, 5), "C": (2, 3, 5)},
           lambda A, B, C: 2 * A @ B - 0.5 * C),
    OpCase("_linalg_gemm", dict(transpose_a=True, axis=0), {"A": (4, 2, 3), "B": (4, 2, 5), "C": (3, 2, 5)},
           lambda A, B, C: np.einsum("kbi,kbj->ibj", A, B) + C),
    OpCase("linalg_gemm2", dict(transpose_b=True, alpha=-1.0), {"A": (3, 4), "B": (5, 4)}, lambda A, B: -A @ B.T),
    OpCase("_linalg_gemm2", {}, {"A": (2, 2, 3, 4), "B": (2, 2, 4, 5)}, lambda A, B: A @ B, dtype="float64"),
    OpCase("linalg_syrk", dict(alpha=2.0), {"A": (2, 3, 4)}, lambda A: 2 * A @ _t(A)),
    OpCase("_linalg_syrk", dict(transpose=True), {"A": (3, 4)}, lambda A: A.T @ A, dtype="float64"),
    OpCase("linalg_trmm", dict(rightside=True, transpose=True, lower=False, alpha=0.5),
           {"A": (2, 3, 3), "B": (2, 4, 3)}, _trmm(True, True, False, 0.5)),
    OpCase("_linalg_trmm", {}, {"A": (3, 3), "B": (3, 2)}, _trmm(False, False, True, 1.0), dtype="float64"),
    OpCase("linalg_trsm", dict(alpha=2.0), {"A": (2, 3, 3), "B": (2, 3, 4)}, _trsm(False, False, True, 2.0),
           values={"A": _tri(3, (2,))}, dtype="float64"),
    OpCase("_linalg_trsm", dict(rightside=True, transpose=True, lower=False), {"A": (3, 3), "B": (4, 3)},
           _trsm(True, True, False, 1.0), values={"A": _tri(3)}, dtype="float64"),
    OpCase("linalg_potrf", {}, {"A": (2, 4, 4)}, lambda A: np.linalg.cholesky(_sym_from_lower(A)),
           values={"A": _spd(4, (2,)) + np.triu(np.ones((4, 4)), 1)}, dtype="float64"),
    OpCase("_linalg_potrf", dict(lower=False), {"A": (3, 3)}, lambda A: _t(np.linalg.cholesky(A)),
           values={"A": _spd(3)}, dtype="float64"),
    OpCase("linalg_potri", {}, {"A": (2, 3, 3)}, lambda A: np.linalg.inv(np.tril(A) @ _t(np.tril(A))),
           values={"A": _tri(3, (2,))}, dtype="float64"),
    OpCase("_linalg_potri", dict(lower=False), {"A": (3, 3)}, lambda A: np.linalg.inv(_t(np.triu(A)) @ np.triu(A)),
           values={"A": _tri(3)}, dtype="float64"),
    OpCase("linalg_sumlogdiag", {}, {"A": (2, 3, 3)}, lambda A: np.log(np.diagonal(A, 0, -2, -1)).sum(-1),
           low=0.5, high=2.0),
    OpCase("_linalg_sumlogdiag", {}, {"A": (3, 3)}, lambda A: np.log(np.diag(A)).sum(keepdims=True), low=0.5,
           high=2.0, dtype="float64"),
    OpCase("linalg_extractdiag", dict(offset=-1), {"A": (2, 4, 4)}, lambda A: np.diagonal(A, -1, -2, -1)),
    OpCase("_linalg_extractdiag", dict(offset=2), {"A": (4, 4)}, lambda A: np.diagonal(A, 2), dtype="float64"),
    OpCase("linalg_makediag", dict(offset=1), {"A": (2, 3)}, _makediag(1)),
    OpCase("_linalg_makediag", dict(offset=-2), {"A": (3,)}, _makediag(-2), dtype="float64"),
    OpCase("linalg_extracttrian", dict(offset=0, lower=False), {"A": (2, 4, 4)}, _extracttrian(0, False)),
    OpCase("_linalg_extracttrian", dict(offset=-1), {"A": (4, 4)}, _extracttrian(-1, True), dtype="float64"),
    OpCase("_linalg_extracttrian", dict(offset=1), {"A": (3, 3)}, _extracttrian(1, True)),
    OpCase("linalg_maketrian", dict(offset=1), {"A": (2, 6)}, _maketrian(1, True)),
    OpCase("_linalg_maketrian", dict(lower=False), {"A": (10,)}, _maketrian(0, False), dtype="float64"),
    OpCase("linalg_inverse", {}, {"A": (2, 3, 3)}, lambda A: np.linalg.inv(A), values={"A": _tri(3, (2,))},
           dtype="float64"),
    OpCase("_linalg_inverse", {}, {"A": (4, 4)}, lambda A: np.linalg.inv(A), values={"A": _tri(4)}, dtype="float64"),
    OpCase("linalg_det", {}, {"A": (3, 4, 4)}, lambda A: np.linalg.det(A), dtype="float64"),
    OpCase("_linalg_det", {}, {"A": (3, 3)}, lambda A: np.linalg.det(A)[None], rtol=1e-4, atol=1e-5),
    OpCase("linalg_slogdet", {}, {"A": (2, 5, 5)}, lambda A: list(np.linalg.slogdet(A)), dtype="float64"),
    OpCase("_linalg_slogdet", {}, {"A": (3, 3)}, lambda A: [v[None] for v in np.linalg.slogdet(A)], rtol=1e-4,
           atol=1e-5),
    OpCase("linalg_gelqf", {}, {"A": (2, 3, 6)}, _gelqf, dtype="float64"),
    OpCase("_linalg_gelqf", {}, {"A": (4, 4)}, _gelqf, rtol=1e-4, atol=1e-5),
    OpCase("_linalg_syevd", {}, {"A": (2, 5, 5)}, _syevd, dtype="float64"),
    OpCase("_linalg_syevd", {}, {"A": (6, 6)}, _syevd, rtol=1e-4, atol=1e-5),
    OpCase("_linalg_syevd", {}, {"A": (1, 1)}, _syevd, dtype="float64"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_against_numpy(case):
    run_case(case)


# ---------------------------------------------------------------- gradients by finite differences (float64)
# tests/ops/test_gradients.py checks every op's CASES by finite differences, element by element: these two read one
# triangle of A but give MXNet's symmetric gradient, which only a symmetric perturbation sees (FD_CASES below feed
# them 0.5 (A + A^T), as MXNet's own tests do; test_forward_and_backward_match_mxnet compares with MXNet's records)
GRADIENT_SKIPS = {
    "_linalg_potrf": "symmetric gradient of a one-triangle forward: checked through a symmetrized input here",
    "_linalg_syevd": "symmetric gradient of a one-triangle forward: checked through a symmetrized input here",
}

@pytest.mark.parametrize("op, attrs, inputs, ref", [
    ("potri", dict(lower=False), {"A": _tri(3)}, lambda A: np.linalg.inv(_t(np.triu(A)) @ np.triu(A))),
    ("inverse", {}, {"A": _tri(3, (2,))}, lambda A: np.linalg.inv(A)),
    ("trsm", dict(transpose=True), {"A": _tri(3, (2,)), "B": _tri(3, (2,))[:, :, :2]},
     _trsm(True, False, True, 1.0)),
    ("potrf", {}, {"A": _spd(3, (2,))}, lambda A: np.linalg.cholesky(A)),
])
def test_float32(op, attrs, inputs, ref):
    """The float32 forms of the ops whose OpCases need well-conditioned (float64) inputs."""
    inputs = {n: v.astype(np.float32) for n, v in inputs.items()}
    out = getattr(mx.nd.linalg, op)(*[mx.nd.array(v, dtype="float32") for v in inputs.values()], **attrs)
    assert out.dtype == np.float32
    assert_almost_equal(out.asnumpy(), ref(**{n: v.astype(np.float64) for n, v in inputs.items()}), rtol=1e-4,
                        atol=1e-5)


def _symmetrized(a):
    """0.5 (a + a^T): MXNet's own tests feed potrf / syevd symmetric inputs so that the finite differences see the
    symmetric gradient MXNet gives (the forward reads only one triangle)."""
    ndim = 3
    axes = tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)
    return 0.5 * (a + mx.sym.transpose(a, axes=axes))


A, B, C = mx.sym.Variable("A"), mx.sym.Variable("B"), mx.sym.Variable("C")
RNG = np.random.RandomState(5)
FD_CASES = {
    "gemm": (mx.sym.linalg.gemm(A, B, C, transpose_b=True, alpha=1.5, beta=-2.0),
             {"A": RNG.uniform(-1, 1, (2, 3, 4)), "B": RNG.uniform(-1, 1, (2, 5, 4)),
              "C": RNG.uniform(-1, 1, (2, 3, 5))}),
    "gemm2": (mx.sym.linalg.gemm2(A, B, transpose_a=True, axis=0),
              {"A": RNG.uniform(-1, 1, (4, 2, 3)), "B": RNG.uniform(-1, 1, (4, 2, 2))}),
    "syrk": (mx.sym.linalg.syrk(A, alpha=-1.0), {"A": RNG.uniform(-1, 1, (2, 3, 4))}),
    "trmm": (mx.sym.linalg.trmm(A, B, rightside=True, lower=False, alpha=2.0),
             {"A": _tri(3, (2,)), "B": RNG.uniform(-1, 1, (2, 4, 3))}),
    "trsm": (mx.sym.linalg.trsm(A, B, transpose=True, alpha=-0.5),
             {"A": _tri(3, (2,)), "B": RNG.uniform(-1, 1, (2, 3, 2))}),
    "potrf": (mx.sym.linalg.potrf(_symmetrized(A)), {"A": _spd(4, (2,))}),
    "potrf_upper": (mx.sym.linalg.potrf(_symmetrized(A), lower=False), {"A": _spd(3, (2,))}),
    "potri": (mx.sym.linalg.potri(A, lower=False), {"A": _tri(3, (2,))}),
    "sumlogdiag": (mx.sym.linalg.sumlogdiag(A), {"A": RNG.uniform(0.5, 2, (2, 3, 3))}),
    "extractdiag": (mx.sym.linalg.extractdiag(A, offset=1), {"A": RNG.uniform(-1, 1, (2, 3, 3))}),
    "makediag": (mx.sym.linalg.makediag(A, offset=-1), {"A": RNG.uniform(-1, 1, (2, 3))}),
    "extracttrian": (mx.sym.linalg.extracttrian(A, lower=False), {"A": RNG.uniform(-1, 1, (2, 3, 3))}),
    "maketrian": (mx.sym.linalg.maketrian(A, offset=-1), {"A": RNG.uniform(-1, 1, (2, 6))}),
    "inverse": (mx.sym.linalg.inverse(A), {"A": _tri(3, (2,))}),
    "det": (mx.sym.linalg.det(A), {"A": _tri(3, (2,))}),
    "slogdet": (mx.sym.linalg.slogdet(A)[1], {"A": RNG.uniform(-1, 1, (2, 3, 3))}),
    "gelqf_q": (mx.sym.linalg.gelqf(A)[0], {"A": RNG.uniform(-1, 1, (2, 3, 5))}),
    "gelqf_l": (mx.sym.linalg.gelqf(A)[1], {"A": RNG.uniform(-1, 1, (2, 3, 5))}),
    "syevd_u": (mx.sym.linalg.syevd(_symmetrized(A))[0], {"A": RNG.uniform(-1, 1, (2, 4, 4))}),
    "syevd_l": (mx.sym.linalg.syevd(_symmetrized(A))[1], {"A": RNG.uniform(-1, 1, (2, 3, 3))}),
}


@pytest.mark.parametrize("name", sorted(FD_CASES))
def test_gradient_by_finite_differences(name):
    sym, location = FD_CASES[name]
    check_numeric_gradient(sym, location, numeric_eps=1e-6, rtol=1e-5, atol=1e-7, dtype=np.float64)


def _syevd_backward(grad_u, grad_l, u, lam):
    """MXNet's syevd backward (la_op-inl.h): dA = U^T Y U, Y_ij = (X_ij - X_ji) / (2 (l_i - l_j)), X = dU U^T."""
    x = grad_u @ u.T
    y = np.diag(grad_l)
    for i in range(len(lam)):
        for j in range(i):
            y[i, j] = y[j, i] = (x[i, j] - x[j, i]) / (2 * (lam[i] - lam[j]))
    return u.T @ y @ u


def _gelqf_backward(grad_q, grad_l, q, low):
    """MXNet's gelqf backward: dA = L^-T (dQ + copyLTU(M) Q), M = L^T dL - dQ Q^T."""
    m = low.T @ grad_l - grad_q @ q.T
    m = np.tril(m) + np.tril(m, -1).T
    return np.linalg.solve(low.T, grad_q + m @ q)


def _potrf_backward(grad_l, low):
    """MXNet's potrf backward: dA = 0.5 L^-T copyLTU(L^T dL) L^-1."""
    m = low.T @ grad_l
    m = np.tril(m) + np.tril(m, -1).T
    inv = np.linalg.inv(low)
    return 0.5 * inv.T @ m @ inv


@pytest.mark.parametrize("op, formula", [("syevd", "syevd"), ("gelqf", "gelqf"), ("potrf", "potrf")])
def test_backward_is_mxnets_formula(op, formula):
    rng = np.random.RandomState(7)
    a = rng.uniform(-1, 1, (4, 6) if op == "gelqf" else (4, 4))
    a = _spd(4) + np.triu(a, 1) if op == "potrf" else a
    sym = getattr(mx.sym.linalg, op)(A)
    grad = mx.nd.zeros(a.shape, dtype="float64")
    executor = sym.bind(mx.cpu(), args={"A": mx.nd.array(a, dtype="float64")}, args_grad={"A": grad})
    outputs = [o.asnumpy() for o in executor.forward(is_train=True)]
    heads = [rng.uniform(-1, 1, o.shape) for o in outputs]
    executor.backward([mx.nd.array(h, dtype="float64") for h in heads])
    if op == "syevd":
        expected = _syevd_backward(heads[0], heads[1], *outputs)
    elif op == "gelqf":
        expected = _gelqf_backward(heads[0], heads[1], *outputs)
    else:
        expected = _potrf_backward(heads[0], outputs[0])
    assert_almost_equal(grad.asnumpy(), expected, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- namespaces, imperative, errors
def test_namespaces():
    for name in ("gemm", "gemm2", "potrf", "potri", "trmm", "trsm", "syrk", "sumlogdiag", "extractdiag", "makediag",
                 "extracttrian", "maketrian", "inverse", "det", "slogdet", "gelqf", "syevd"):
        assert callable(getattr(mx.sym.linalg, name)) and callable(getattr(mx.nd.linalg, name))
    # MXNet names nodes after the function called (det0 for mx.sym.linalg.det, linalg_det0 for the alias) and the
    # outputs of its multi-output linalg ops by index
    with mx.name.NameManager():
        assert mx.sym.linalg.det(A).name == "det0"
        assert mx.sym.linalg_det(A).name == "linalg_det0"
        assert mx.sym.linalg.gelqf(A).list_outputs() == ["gelqf0_output0", "gelqf0_output1"]
        assert mx.sym.linalg.syevd(A).list_outputs() == ["syevd0_output0", "syevd0_output1"]
        assert mx.sym.linalg.slogdet(A).list_outputs() == ["slogdet0_output0", "slogdet0_output1"]
        assert mx.sym.linalg.gemm2(A, B).list_arguments() == ["A", "B"]
        assert mx.sym.linalg.gemm(A, B).list_arguments() == ["A", "B", "gemm0_C"]
    with pytest.raises(AttributeError, match="mx.sym.linalg"):
        mx.sym.linalg.no_such_op
    with pytest.raises(AttributeError, match="mx.nd.linalg"):
        mx.nd.linalg.no_such_op
    x = mx.nd.linalg.potrf(mx.nd.array([[4.0, 0.0], [2.0, 10.0]]))
    assert_almost_equal(x.asnumpy(), np.array([[2.0, 0.0], [1.0, 3.0]]))


def test_imperative_gelqf_gradient_float32_matches_float64():
    """MXNet's test_infer_multiout_op2: d sum(L) / dA through mx.autograd, float32 against float64."""
    data = np.random.RandomState(3).normal(size=(2, 3))
    grads = []
    for dtype in ("float32", "float64"):
        x = mx.nd.array(data, dtype=dtype)
        x.attach_grad()
        with mx.autograd.record():
            q, low = mx.nd.linalg.gelqf(x)
            total = mx.nd.sum(low)
        total.backward()
        assert x.grad.dtype == np.dtype(dtype)
        grads.append(x.grad.asnumpy())
    assert_almost_equal(grads[0], grads[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build, shapes, words", [
    (lambda: mx.sym.linalg.potrf(A), {"A": (3, 4)}, "square"),
    (lambda: mx.sym.linalg.gelqf(A), {"A": (4, 3)}, "Last dimension must be >="),
    (lambda: mx.sym.linalg.maketrian(A), {"A": (2, 5)}, "invalid dimension"),
    (lambda: mx.sym.linalg.extractdiag(A, offset=3), {"A": (3, 3)}, "Illegal offset"),
    (lambda: mx.sym.linalg.gemm2(A, B), {"A": (2, 3), "B": (2, 3)}, "shape"),
    (lambda: mx.sym.linalg.gemm2(A, B, axis=-1), {"A": (2, 3), "B": (3, 2)}, "row axis"),
    (lambda: mx.sym.linalg.trsm(A, B, rightside=True), {"A": (3, 3), "B": (3, 2)}, "Incompatible"),
    (lambda: mx.sym.linalg.gemm(A, B, C), {"A": (2, 3), "B": (3, 2), "C": (3, 3)}, "C"),
    (lambda: mx.sym.linalg.det(A), {"A": (3,)}, "at least 2"),
])
def test_shape_errors(build, shapes, words):
    with pytest.raises(MXNetError, match=words):
        build().infer_shape(**shapes)


def test_singular_det_gives_zero_gradient():
    """MXNet: no gradient where det(A) = 0 (and slogdet's -inf)."""
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    for sym, index in ((mx.sym.linalg.det(A), 0), (mx.sym.linalg.slogdet(A), 1)):
        grad = mx.nd.zeros((2, 2), dtype="float64")
        executor = sym.bind(mx.cpu(), args={"A": mx.nd.array(a, dtype="float64")}, args_grad={"A": grad})
        outputs = executor.forward(is_train=True)
        assert outputs[index].asnumpy()[0] == (0 if index == 0 else -np.inf)
        executor.backward([mx.nd.ones(o.shape, dtype="float64") for o in outputs])
        assert np.array_equal(grad.asnumpy(), np.zeros((2, 2)))


def _getrf(a):
    """LAPACK getrf in numpy: packed L\\U and 0-based pivot rows (partial pivoting, first maximum)."""
    lu, pivots = a.astype(np.float64).copy(), []
    n = a.shape[0]
    for k in range(n):
        p = k + int(np.argmax(np.abs(lu[k:, k])))
        pivots.append(p)
        lu[[k, p]] = lu[[p, k]]
        if lu[k, k] != 0:
            lu[k + 1:, k] /= lu[k, k]
            lu[k + 1:, k + 1:] -= np.outer(lu[k + 1:, k], lu[k, k + 1:])
    return lu, np.asarray(pivots)


def test_lu_is_lapacks_getrf():
    """det / slogdet factor as LAPACK's getrf (MXNet's det kernel): the packed factors, pivot rows and the sign of
    the permutation, the first maximum winning ties; they also become MXNet's hidden outputs LU and pivot."""
    from onnxsym.lower.builder import GraphBuilder
    from onnxsym.ops.linalg import _lu
    from onnxsym.runtime.ort import create_session
    a = np.random.RandomState(4).uniform(-1, 1, (3, 4, 4))
    a[1, :, 0] = [0.0, 0.0, 3.0, 0.0]           # a zero first pivot: rows swap
    a[2, :, 1] = a[2, :, 0]                     # singular: a zero pivot is skipped, as LAPACK's
    g = GraphBuilder()
    value = g.add_input("A", a.shape, np.float64)
    lu, pivots, sign = _lu(g, value, 4)
    for out, dtype in ((lu, np.float64), (pivots, np.int64), (sign, np.float64)):
        g.add_output(out, None, dtype)
    got_lu, got_pivots, got_sign = create_session(g.model()).run(None, {"A": a})
    for i in range(3):
        want_lu, want_pivots = _getrf(a[i])
        assert_almost_equal(got_lu[i], want_lu, rtol=1e-12, atol=1e-12)
        assert list(got_pivots[i]) == list(want_pivots)
        assert got_sign[i] == (-1) ** int(np.sum(want_pivots != np.arange(4)))
    sym = mx.sym.linalg.slogdet(A)
    assert sym.list_outputs() == [sym.name + "_output0", sym.name + "_output1"]
    assert sym.infer_type(A="float64")[1] == [np.float64, np.float64]
