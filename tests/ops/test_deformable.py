"""Deformable and position-sensitive contrib ops (DeformableConvolution, ModulatedDeformableConvolution,
PSROIPooling, DeformablePSROIPooling, RROIAlign) against MXNet 1.9.1 (fixtures from
tests/fixtures/make_deformable_fixtures.py: forward outputs and the gradients of a seeded head gradient), numpy
references written from MXNet's kernels (loops over taps, bins and sample points) and float64 finite differences."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from .opcase import OpCase, run_case, run_gradient_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "mxnet")


def _load():
    with open(os.path.join(FIXTURES, "deformable.json")) as handle:
        metas = json.load(handle)["cases"]
    arrays = np.load(os.path.join(FIXTURES, "deformable.npz"))
    cases = {}
    for meta in metas:
        prefix = meta["name"] + "/"
        cases[meta["name"]] = (meta, {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)})
    return cases


FIXTURE = _load()
# float16: MXNet's CPU kernels round every step to float16, onnxsym computes in float32 and rounds once
TOLERANCES = {"float16": (2e-2, 2e-2), "float32": (1e-5, 1e-5), "float64": (1e-10, 1e-12)}


def _bind(meta, arrays, grads=True, grad_req="write"):
    sym = mx.sym.load_json(meta["tojson"])
    args = {k: mx.nd.array(arrays["in:" + k], dtype=arrays["in:" + k].dtype) for k in meta["inputs"]}
    grad = {k: mx.nd.zeros(v.shape, dtype=v.dtype) for k, v in args.items()} if grads else None
    return sym, sym.bind(mx.cpu(), args=args, args_grad=grad, grad_req=grad_req if grads else "null"), grad


@pytest.mark.parametrize("name", sorted(FIXTURE))
def test_forward_matches_mxnet(name):
    """MXNet's JSON loads with MXNet's argument and output names, shapes and values."""
    meta, arrays = FIXTURE[name]
    sym, exe, _ = _bind(meta, arrays, grads=False)
    assert sym.list_arguments() == meta["list_arguments"] and sym.list_outputs() == meta["list_outputs"]
    _, out_shapes, _ = sym.infer_shape(**{k: arrays["in:" + k].shape for k in meta["inputs"]})
    assert [list(s) for s in out_shapes] == meta["out_shapes"]
    rtol, atol = TOLERANCES[meta["dtype"]]
    out = exe.forward()[0]
    assert out.dtype == np.dtype(meta["dtype"])
    np.testing.assert_allclose(out.asnumpy(), arrays["out:0"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(n for n in FIXTURE if FIXTURE[n][0]["grad"]))
def test_training_step_matches_mxnet(name):
    """forward(is_train=True) and backward for MXNet's head gradient equal MXNet's (rois: zero gradient)."""
    meta, arrays = FIXTURE[name]
    sym, exe, grads = _bind(meta, arrays)
    rtol, atol = TOLERANCES[meta["dtype"]]
    out = exe.forward(is_train=True)[0]
    np.testing.assert_allclose(out.asnumpy(), arrays["out:0"], rtol=rtol, atol=atol)
    exe.backward([mx.nd.array(arrays["head:0"], dtype=arrays["head:0"].dtype)])
    for k in meta["inputs"]:
        got = grads[k].asnumpy()
        assert got.dtype == np.dtype(meta["dtype"])
        # offsets / trans: sums of products of O(1) values over channels and taps
        scale = 4 if k in ("offset", "trans") else 1
        np.testing.assert_allclose(got, arrays["grad:" + k], rtol=rtol * scale, atol=atol * scale,
                                   err_msg="gradient of " + k)
