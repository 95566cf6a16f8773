"""Ops whose MXNet parameters are C++ floats, in float64, float32 and float16, against MXNet 1.9.1
(tests/fixtures/float_param_cases.py, recorded by make_float_param_fixtures.py): a float64 graph must see
float64(float32(0.3)) where MXNet's field is a float, and exactly 0.3 where it is a double. Tolerance: a few units
in the last place of the dtype, scaled by the largest recorded value (kernels may order their arithmetic
differently; a parameter rounded differently moves float64 results by ~1e-8, millions of such units)."""
import json
import math
import pathlib

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures import float_param_cases     # (a module: tests/ops/test_gradients.py collects CASES)

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "mxnet"
RECORD = json.loads((FIXTURES / "float_params.json").read_text())
ARRAYS = np.load(FIXTURES / "float_params.npz")

ULPS = 8
# (case, dtype) -> (units in the last place, why) where onnxsym differs from MXNet by more than ULPS: DEVIATIONS.md
_FLOAT32_KERNEL = (2 ** 31, "MXNet computes it in float32 whatever the dtype (mshadow_op.h: xelu's "
                            "float(a) * float(b), gelu's float erf); onnxsym in float64 (test_float64_exact_where_"
                            "mxnet_computes_in_float32)")
NEAR = {("leaky", "float64"): _FLOAT32_KERNEL, ("rrelu_inference", "float64"): _FLOAT32_KERNEL,
        ("gelu", "float64"): _FLOAT32_KERNEL}


def _run(name, dtype):
    build, _, backward = float_param_cases.CASES[name]
    key = "%s/%s/" % (name, dtype)
    sym = build(mx)
    args = {n: mx.nd.array(ARRAYS[key + "in:%d" % i], dtype=ARRAYS[key + "in:%d" % i].dtype)
            for i, n in enumerate(sym.list_arguments())}
    aux = {n: mx.nd.array(ARRAYS[key + "aux:%d" % i], dtype=ARRAYS[key + "aux:%d" % i].dtype)
           for i, n in enumerate(sym.list_auxiliary_states())}
    grads = {n: mx.nd.zeros(a.shape, dtype=a.dtype) for n, a in args.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads if backward else None, aux_states=aux)
    exe.forward(is_train=backward)
    results = {"out": exe.outputs[0].asnumpy()}
    if backward:
        exe.backward([mx.nd.array(ARRAYS[key + "head"], dtype=dtype)])
        results["grad"] = grads["data"].asnumpy()
        results.update(("aux_after:%d" % i, a.asnumpy()) for i, a in enumerate(aux.values()))
    return results


@pytest.mark.parametrize("entry", [e for e in RECORD["cases"] if "error" not in e],
                         ids=lambda e: "%s-%s" % (e["case"], e["dtype"]))
def test_matches_mxnet(entry):
    name, dtype = entry["case"], entry["dtype"]
    ulps, _ = NEAR.get((name, dtype), (ULPS, ""))
    for what, got in _run(name, dtype).items():
        want = ARRAYS["%s/%s/%s" % (name, dtype, what)]
        assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
        atol = ulps * np.finfo(dtype).eps * float(np.abs(want.astype(np.float64)).max())     # (the case's dtype:
        # float16 BatchNorm's moving statistics are float32 values computed from float16 data)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=atol,
                                   err_msg="%s %s %s" % (name, dtype, what))


def test_float64_exact_where_mxnet_computes_in_float32():
    """LeakyReLU's leaky/rrelu and gelu on float64 data: MXNet's kernels compute in float32 (results within float32
    rounding, test_matches_mxnet's NEAR); onnxsym's are the float64 values, with the slope a float32 parameter."""
    x = ARRAYS["leaky/float64/in:0"]
    slope = np.float64(np.float32(0.3))
    got = _run("leaky", "float64")["out"]
    np.testing.assert_array_equal(got, np.where(x > 0, x, x * slope))
    x = ARRAYS["rrelu_inference/float64/in:0"]
    mean = np.float64((np.float32(0.1) + np.float32(0.3)) / np.float32(2))
    np.testing.assert_array_equal(_run("rrelu_inference", "float64")["out"], np.where(x > 0, x, x * mean))
    x = ARRAYS["gelu/float64/in:0"]
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(_run("gelu", "float64")["out"], exact, rtol=1e-14, atol=1e-15)
