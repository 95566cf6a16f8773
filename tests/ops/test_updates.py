"""Optimizer update operators against MXNet 1.9.1's recorded values (tests/fixtures/make_updates_fixtures.py):
the new weight, the states written in place (momentum, moments, float32 master weights), the in-place call the
optimizers make (out=weight) and a call into a new array, float16/32/64, the symbols' argument/aux names and a
bound forward, and the errors for bad calls."""
import json
import pathlib

import numpy as np
import onnx
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.test_utils import lowered_model
from .opcase import OpCase, run_case

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "mxnet"
RECORD = json.loads((FIXTURES / "updates.json").read_text())
ARRAYS = np.load(FIXTURES / "updates.npz")
RECORDED = {case["name"]: case for case in RECORD["cases"]}
# float16: MXNet rounds every intermediate to float16, onnxsym computes in float32 and rounds once; float64: bit for
# bit but for one value of ftml_clip_float64_new one ulp away (ORT's arithmetic on it)
TOLERANCE = {"float16": (5e-3, 5e-3), "float32": (1e-5, 1e-6), "float64": (1e-15, 1e-17)}


def _inputs(case, prefix=None):
    prefix = prefix or case["name"]
    return {n: ARRAYS["%s/in:%s" % (prefix, n)] for n in case["inputs"]}


def _check(got, expected, dtype, what):
    rtol, atol = TOLERANCE[dtype]
    assert got.dtype == expected.dtype, "%s: dtype %s, MXNet %s" % (what, got.dtype, expected.dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_imperative_matches_mxnet(name):
    case = RECORDED[name]
    values = _inputs(case)
    arrays = [mx.nd.array(values[n], dtype=values[n].dtype) for n in case["inputs"]]
    out = None
    if case["mode"] == "inplace":
        weights = [a for n, a in zip(case["inputs"], arrays) if n.split("_")[0] == "weight"]
        out = weights[0] if len(weights) == 1 else weights
    result = getattr(mx.nd, case["op"])(*arrays, out=out, **case["attrs"])
    results = result if isinstance(result, (list, tuple)) else [result]
    if out is not None:
        assert all(r is o for r, o in zip(results, out if isinstance(out, list) else [out]))
    for i, r in enumerate(results):
        _check(r.asnumpy(), ARRAYS["%s/out:%d" % (name, i)], case["dtype"], "%s output %d" % (name, i))
    for n, a in zip(case["inputs"], arrays):
        _check(a.asnumpy(), ARRAYS["%s/after:%s" % (name, n)], case["dtype"], "%s input %s after" % (name, n))


def test_fixtures_cover_every_update_op():
    ops = {case["op"] for case in RECORD["cases"]}
    assert ops == {"sgd_update", "sgd_mom_update", "mp_sgd_update", "mp_sgd_mom_update", "nag_mom_update",
                   "mp_nag_mom_update", "signsgd_update", "signum_update", "adam_update", "rmsprop_update",
                   "rmspropalex_update", "ftrl_update", "ftml_update", "lamb_update_phase1", "lamb_update_phase2",
                   "multi_sgd_update", "multi_sgd_mom_update", "multi_mp_sgd_update", "multi_mp_sgd_mom_update"}


def test_nag_in_place_reads_the_new_weight():
    """MXNet's NAG kernel writes out before it updates mom: out=weight and a new output give different moms."""
    for dtype in ("float32", "float64"):
        inplace, new = (ARRAYS["nag_%s_%s/after:mom" % (dtype, mode)] for mode in ("inplace", "new"))
        assert not np.allclose(inplace, new)


def _op_case(name):
    """An OpCase (the symbolic path: infer_shape, bind, forward, ONNX checker, plain ORT) of a recorded case
    whose output is the symbol's output; MXNet's recorded output is the reference."""
    case = RECORDED[name]
    values = _inputs(case)
    expected = [ARRAYS["%s/out:%d" % (name, i)] for i in range(sum(1 for k in ARRAYS.files
                                                                    if k.startswith(name + "/out:")))]
    return OpCase(case["op"], dict(case["attrs"]), {n: v.shape for n, v in values.items()},
                  ref=lambda **_: expected if len(expected) > 1 else expected[0], dtype=case["dtype"],
                  values=values, rtol=1e-5, atol=1e-6, name=name)


CASES = [_op_case(n) for n in sorted(RECORDED) if n.endswith("_float32_new") or
            (RECORDED[n]["op"].startswith("multi") and n.endswith("_float32_inplace"))]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_symbolic_forward(case):
    run_case(case)


@pytest.mark.parametrize("op", sorted(RECORD["symbols"]))
def test_symbol_names_and_bound_forward(op):
    """A symbol of the op loaded from MXNet's JSON: the states are auxiliary states (FMutateInputs), and a bound
    forward writes them as MXNet's executor does."""
    record = RECORD["symbols"][op]
    sym = mx.sym.load_json(record["json"])
    assert sym.list_arguments() == record["arguments"]
    assert sym.list_auxiliary_states() == record["aux"]
    assert sym.list_outputs()[0] == record["outputs"][0]
    if op.startswith("multi"):
        return      # (MXNet 1.9.1 cannot bind them; the names are what it gives)
    prefix = "sym_" + op
    args = {n: mx.nd.array(ARRAYS["%s/in:%s" % (prefix, n)]) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(ARRAYS["%s/in:%s" % (prefix, n)]) for n in sym.list_auxiliary_states()}
    executor = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    for _ in range(2):          # each forward updates the states again: compare the first
        outputs = executor.forward()
        if _ == 0:
            _check(outputs[0].asnumpy(), ARRAYS["%s/out:0" % prefix], "float32", op)
            for n, a in list(args.items()) + list(aux.items()):
                _check(a.asnumpy(), ARRAYS["%s/after:%s" % (prefix, n)], "float32", "%s %s" % (op, n))
    assert not np.allclose(aux[record["aux"][0]].asnumpy(), ARRAYS["%s/after:%s" % (prefix, record["aux"][0])]) \
        if record["aux"] else True


def test_symbol_composes_with_auxiliary_states():
    w, g, m = (mx.sym.Variable(n) for n in ("w", "g", "m"))
    sym = mx.sym.sgd_mom_update(w, g, m, lr=0.1, momentum=0.9)
    assert sym.list_arguments() == ["w", "g"] and sym.list_auxiliary_states() == ["m"]
    sym = mx.sym.multi_mp_sgd_update(*[mx.sym.Variable("v%d" % i) for i in range(6)], lrs=(0.1, 0.2),
                                     wds=[0.0, 0.0], num_weights=2, name="upd")
    assert sym.list_auxiliary_states() == ["v2", "v5"]
    assert sym.list_outputs() == ["upd_output0", "upd_output1"]
    _, _, aux_types = sym.infer_type(v0="float16")
    assert [np.dtype(t) for t in aux_types] == [np.float32, np.float32]
    lowered = lowered_model(sym, {"v%d" % i: (3,) for i in range(6)},
                            {"v%d" % i: np.float16 if i % 3 < 2 else np.float32 for i in range(6)})
    onnx.checker.check_model(lowered.model, full_check=True)


@pytest.mark.parametrize("call, message", [
    (lambda a: mx.nd.sgd_update(a, a), "lr"),
    (lambda a: mx.nd.sgd_mom_update(a, a, lr=0.1), "mom"),
    (lambda a: mx.nd.sgd_update(a, mx.nd.ones((2, 3)), lr=0.1), "shape"),
    (lambda a: mx.nd.sgd_update(a, mx.nd.ones((3, 4), dtype="float64"), lr=0.1), "dtype"),
    (lambda a: mx.nd.sgd_update(mx.nd.ones((3, 4), dtype="int32"), mx.nd.ones((3, 4), dtype="int32"), lr=0.1),
     "int32"),
    (lambda a: mx.nd.mp_sgd_update(a.astype("float16"), a.astype("float16"), a.astype("float16"), lr=0.1),
     "float32"),
    (lambda a: mx.nd.ftml_update(a, a, a, a, a, lr=0.1), "t"),
    (lambda a: mx.nd.ftml_update(a, a, a, a, a, lr=0.1, t=1, beta1=1.5), "beta1"),
    (lambda a: mx.nd.lamb_update_phase1(a, a, a, a, t=1), "wd"),
    (lambda a: mx.nd.lamb_update_phase2(a, a, mx.nd.ones((2,)), mx.nd.ones((1,)), lr=0.1), "r1"),
    (lambda a: mx.nd.multi_sgd_update(a, a, a, a, lrs=(0.1,), wds=(0.0, 0.0), num_weights=2), "learning rates"),
    (lambda a: mx.nd.multi_sgd_update(a, a, lrs="(0.1, x)", wds=(0.0,)), "lrs"),
    (lambda a: mx.nd.multi_sgd_update(a, a, a, a, lrs=(0.1,), wds=(0.0,)), "inputs"),
    (lambda a: mx.nd.multi_sgd_update(a, a, lrs=(0.1,) * 61, wds=(0.0,) * 61, num_weights=61), "num_weights"),
    (lambda a: mx.nd.sgd_update(a, a, lr=0.1, momentum=0.9), "momentum"),
])
def test_bad_calls(call, message):
    with pytest.raises(MXNetError, match=message):
        call(mx.nd.ones((3, 4)))


def test_update_ops_have_no_gradient():
    w = mx.nd.ones((3,))
    w.attach_grad()
    with mx.autograd.record():
        out = mx.nd.sgd_update(w, mx.nd.ones((3,)), lr=0.1)
    out.backward()
    assert np.array_equal(w.grad.asnumpy(), np.zeros(3, np.float32))
