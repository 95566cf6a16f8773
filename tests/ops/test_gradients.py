"""Every differentiable op's gradient against central finite differences (float32, eps=1e-2: truncation error
~eps^2 and rounding error ~1e-7*|f|/eps stay well inside rtol=2e-2, atol=1e-3), walked over the registry so that
an op cannot be added without a checked gradient. Loss heads (their backward is MXNet's formula, not a
derivative) are checked against MXNet in tests/test_mxnet_gradients.py; ops without a gradient give zeros.

A family test module may define GRADIENT_CASES (OpCases used here instead of its forward CASES for those ops,
e.g. inputs away from a discontinuity) and GRADIENT_SKIPS ({op: reason}) for ops that finite differences cannot
check (random ops), whose gradient that module tests another way."""
import importlib
import pathlib

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.ops.registry import all_ops
from .opcase import run_gradient_case
from .ort_training_gaps import skip_ort_training_gap

HERE = pathlib.Path(__file__).parent
CASES_PER_OP = 2

def _op_of(case):
    return type(case.symbol().outputs[0][0].op).op_name


def _collect():
    cases, gradient_cases, skips = {}, {}, {}
    for path in sorted(HERE.glob("test_*.py")):
        # (the modules that import this one's cases back)
        if path.stem in ("test_registry", "test_gradients", "test_gradient_dtypes", "test_input_gradients"):
            continue
        module = importlib.import_module("tests.ops." + path.stem)
        for case in getattr(module, "CASES", []):
            cases.setdefault(_op_of(case), []).append(case)
        for case in getattr(module, "GRADIENT_CASES", []):
            gradient_cases.setdefault(_op_of(case), []).append(case)
        skips.update(getattr(module, "GRADIENT_SKIPS", {}))
    return cases, gradient_cases, skips


CASES, GRADIENT_CASES, GRADIENT_SKIPS = _collect()


def _is_loss_head(opcls):
    return opcls.is_loss


def _gradient_cases(name):
    if name in GRADIENT_CASES:
        return GRADIENT_CASES[name]
    usable = [c for c in CASES.get(name, []) if c.dtype in ("float32", "float64")]
    return usable[:CASES_PER_OP]


@pytest.mark.parametrize("name", sorted(all_ops()))
def test_gradient(name):
    opcls = all_ops()[name]
    if _is_loss_head(opcls):
        pytest.skip("loss head: checked against MXNet's backward in tests/test_mxnet_gradients.py")
    if name in GRADIENT_SKIPS:
        pytest.skip(GRADIENT_SKIPS[name])
    skip_ort_training_gap(name)
    cases = _gradient_cases(name)
    assert cases, "op %s has no float case to check its gradient with" % name
    for case in cases:
        if opcls.differentiable:
            run_gradient_case(case)
        else:
            _check_zero_gradient(case)


def _check_zero_gradient(case):
    sym = case.symbol()
    arrays = case.inputs(sym)
    names = [n for n in sym.list_arguments() if n not in case.int_inputs]
    grads = {n: mx.nd.array(np.full(arrays[n].shape, 7.0), dtype=arrays[n].dtype) for n in names}
    args = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_auxiliary_states()}
    exe = sym[0].bind(mx.cpu(), args=args, args_grad=grads, aux_states=aux)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(np.ones(exe.outputs[0].shape), dtype=exe.outputs[0].dtype)])
    for name in names:
        np.testing.assert_array_equal(grads[name].asnumpy(), 0, err_msg="%s: gradient of %s" % (case, name))
