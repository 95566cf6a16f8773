"""models/: the image-classification symbols against MXNet 1.9.1 (fixtures from
tests/fixtures/make_models_fixtures.py: MXNet loading the same JSON), against published parameter counts, and
through one training step."""
import hashlib
import importlib
import json
import os

import numpy as np
import pytest

from onnxsym import models
import onnxsym as mx
from tests.fixtures.make_models_fixtures import CASES, FORWARD, listing_digest, seeded_inputs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
with open(os.path.join(FIXTURES, "models_cases.json")) as _handle:
    RECORDED = json.load(_handle)
TRAIN_CASES = [name for name, case in CASES.items() if case[3]]

# Published counts of the same architectures at 224x224 with 1000 classes (an independent truth for the layer
# structure). torchvision: vgg16 138,357,544; resnet50 25,557,032; resnext50_32x4d 25,028,904; densenet121
# 7,978,856; mobilenet_v2 3,504,872. Keras MobileNet (alpha 1): 4,231,976 trainable. MXNet's versions differ by
# bn_data's gamma/beta (+6: densenet, resnext) and by the 1x1 expansion (32*32 weights + 64 BN) that MXNet's
# MobileNetV2 keeps in the t=1 block and torchvision drops (+1,088).
PUBLISHED = {"vgg16_224": 138357544, "resnet_v1_50_224": 25557032, "resnext50_224": 25028904 + 6,
             "densenet121_224": 7978856 + 6, "mobilenet_224": 4231976, "mobilenetv2_224": 3504872 + 1088}


def build(name):
    module, kwargs, _, _ = CASES[name]
    with mx.name.NameManager():
        return importlib.import_module("models." + module).get_symbol(**kwargs)


def parameters(sym, arg_shapes):
    return {n: s for n, s in zip(sym.list_arguments(), arg_shapes) if n not in ("data", "softmax_label")}


def test_every_model_has_cases_and_fixtures():
    assert sorted({case[0] for case in CASES.values()}) == sorted(models.__all__)
    assert sorted(RECORDED["cases"]) == sorted(CASES), "rerun tests/fixtures/make_models_fixtures.py"
    for name, (module, kwargs, data_shape, train) in CASES.items():
        assert RECORDED["cases"][name]["kwargs"] == kwargs and RECORDED["cases"][name]["train"] == train, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_names_and_parameter_count_match_mxnet(name):
    expected = RECORDED["cases"][name]
    sym = build(name)
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=tuple(expected["data_shape"]))
    num_classes = CASES[name][1]["num_classes"]
    assert out_shapes == [(expected["data_shape"][0], num_classes)] and expected["out_shapes"] == [
        [expected["data_shape"][0], num_classes]]
    assert sym.list_outputs() == expected["list_outputs"]
    listing = {"list_arguments": sym.list_arguments(), "list_auxiliary_states": sym.list_auxiliary_states(),
               "arg_shapes": [list(s) for s in arg_shapes], "aux_shapes": [list(s) for s in aux_shapes]}
    for key in listing:
        if key in expected:
            assert listing[key] == expected[key], key
    assert listing_digest(listing) == expected["listing_sha256"]
    assert sum(int(np.prod(s)) for s in parameters(sym, arg_shapes).values()) == expected["num_params"]
    # MXNet re-serialised the loaded JSON byte for byte, so this digest is MXNet's text as well as ours.
    assert expected["mxnet_tojson_identical"]
    assert hashlib.sha256(sym.tojson().encode()).hexdigest() == expected["mxnet_tojson_sha256"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published_architecture(name):
    sym = build(name)
    arg_shapes, _, _ = sym.infer_shape(data=(1, 3, 224, 224))
    assert sum(int(np.prod(s)) for s in parameters(sym, arg_shapes).values()) == PUBLISHED[name]


@pytest.mark.parametrize("name", TRAIN_CASES)
def test_training_step_gives_finite_gradients_of_parameter_shape(name):
    sym = build(name)
    # A batch of 2: with one image, BatchNorm over a 1x1 map in training mode outputs beta and stops the gradient.
    data_shape = (2,) + tuple(CASES[name][2][1:])
    exe = sym.simple_bind(mx.cpu(), data=data_shape)
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=data_shape)
    values = seeded_inputs(sym.list_arguments(), arg_shapes, 1, out_shapes[0][1])
    for key, array in exe.arg_dict.items():
        array[:] = values[key]
    for key, array in exe.aux_dict.items():
        array[:] = 1.0 if key.endswith("_var") else 0.0
    out = exe.forward(is_train=True)[0].asnumpy()
    exe.backward()
    assert out.shape == out_shapes[0] and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    grads = {key: exe.grad_dict[key].asnumpy() for key in parameters(sym, arg_shapes)}
    for key, shape in parameters(sym, arg_shapes).items():
        assert grads[key].shape == shape, key
        assert np.isfinite(grads[key]).all(), key
    first_weight = next(key for key in sym.list_arguments() if key.endswith("_weight"))
    assert np.abs(grads[first_weight]).max() > 0, "no gradient reached %s" % first_weight


def _bind(sym, values):
    args = {n: mx.nd.array(values[n]) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(values[n]) for n in sym.list_auxiliary_states()}
    return args, aux


def _close(actual, expected, what, rtol=5e-4):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("name", sorted(FORWARD))
def test_forward_and_gradients_match_mxnet(name):
    batch_shape, logits, grad_names = FORWARD[name]
    reference = np.load(os.path.join(FIXTURES, "models_forward.npz"))
    sym = build(name)
    scores_sym = sym.get_internals()[logits + "_output"]
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=batch_shape)
    names = sym.list_arguments() + sym.list_auxiliary_states()
    values = seeded_inputs(names, list(arg_shapes) + list(aux_shapes), 0, out_shapes[0][1])
    for mode in ("infer", "train"):
        args, aux = _bind(sym, values)
        grads = {n: mx.nd.zeros(values[n].shape) for n in grad_names}
        exe = sym.bind(mx.cpu(), args=args, args_grad=grads, aux_states=aux,
                       grad_req={n: "write" if n in grads else "null" for n in args})
        probs = exe.forward(is_train=mode == "train")[0].asnumpy()
        scores_args, scores_aux = _bind(scores_sym, values)
        scores = scores_sym.bind(mx.cpu(), args=scores_args, aux_states=scores_aux).forward(
            is_train=mode == "train")[0].asnumpy()
        _close(scores, reference["%s/%s:logits" % (name, mode)], "%s logits" % mode)
        _close(probs, reference["%s/%s:softmax" % (name, mode)], "%s softmax" % mode)
        if mode == "train":
            exe.backward()
            for key in grad_names:
                _close(grads[key].asnumpy(), reference["%s/grad:%s" % (name, key)], "gradient of " + key)
