"""forward(is_train=True) + backward against what MXNet 1.9.1 computed for the same graphs, inputs and head
gradients (tests/fixtures/mxnet/train_*, made by tests/fixtures/make_mxnet_fixtures.py): loss heads with every
normalization/ignore/smoothing option, MakeLoss/BlockGrad, BatchNorm's batch statistics and moving averages."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures.mxnet_graphs import TRAIN_GRAPHS

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")


def load(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        meta = json.load(handle)
    arrays = np.load(os.path.join(FIXTURES, name + ".npz"))
    pick = lambda prefix: {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)}
    return meta, pick("in:"), pick("out:"), pick("out_grad:"), pick("grad:"), pick("aux_after:")


def train_step(name, inputs, out_grads):
    with mx.name.NameManager():
        sym = TRAIN_GRAPHS[name][0](mx)
    args = {n: mx.nd.array(inputs[n]) for n in sym.list_arguments()}
    grads = {n: mx.nd.zeros(inputs[n].shape) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(inputs[n]) for n in sym.list_auxiliary_states()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads, aux_states=aux)
    outputs = [o.asnumpy() for o in exe.forward(is_train=True)]
    exe.backward([mx.nd.array(out_grads[str(i)]) for i in range(len(outputs))])
    return sym, outputs, {n: g.asnumpy() for n, g in grads.items()}, {n: a.asnumpy() for n, a in aux.items()}


@pytest.mark.parametrize("name", sorted(TRAIN_GRAPHS))
def test_training_step_matches_mxnet(name):
    meta, inputs, outputs, out_grads, grads, aux_after = load(name)
    sym, ours, our_grads, our_aux = train_step(name, inputs, out_grads)
    assert sym.list_arguments() == meta["list_arguments"] and sym.list_outputs() == meta["list_outputs"]
    for i, out_name in enumerate(meta["list_outputs"]):
        np.testing.assert_allclose(ours[i], outputs[str(i)], rtol=1e-4, atol=1e-5, err_msg=out_name)
    for arg in meta["list_arguments"]:
        np.testing.assert_allclose(our_grads[arg], grads[arg], rtol=1e-4, atol=1e-5, err_msg="gradient of " + arg)
    for aux in meta["list_auxiliary_states"]:
        np.testing.assert_allclose(our_aux[aux], aux_after[aux], rtol=1e-4, atol=1e-6, err_msg=aux)
