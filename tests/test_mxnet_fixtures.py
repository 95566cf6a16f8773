"""onnxsym against what MXNet 1.9.1 itself produced for the same graphs (tests/fixtures/mxnet, made by
tests/fixtures/make_mxnet_fixtures.py): JSON text, names, inferred shapes and forward numbers."""
import json
import os
import warnings

import numpy as np
import onnxruntime as ort
import pytest

import onnxsym as mx
from tests.fixtures.mxnet_graphs import GRAPHS

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")


def load(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        meta = json.load(handle)
    arrays = np.load(os.path.join(FIXTURES, name + ".npz"))
    inputs = {k[3:]: arrays[k] for k in arrays.files if k.startswith("in:")}
    outputs = [arrays["out:%d" % i] for i in range(len([k for k in arrays.files if k.startswith("out:")]))]
    return meta, inputs, outputs


def build(name):
    with mx.name.NameManager():
        return GRAPHS[name][0](mx)


def run(sym, inputs):
    args = {n: mx.nd.array(inputs[n]) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(inputs[n]) for n in sym.list_auxiliary_states()}
    return [o.asnumpy() for o in sym.bind(mx.cpu(), args=args, aux_states=aux).forward()]


# Outputs MXNet leaves unwritten in an inference forward (uninitialised memory in the fixture).
UNDEFINED_AT_INFERENCE = {"leakyrelu4_mask"}
NAMES = sorted(n for n in GRAPHS if os.path.exists(os.path.join(FIXTURES, n + ".json")))


def test_every_graph_has_a_fixture():
    assert NAMES == sorted(GRAPHS), "run tests/fixtures/make_mxnet_fixtures.py under MXNet 1.9.1"


@pytest.mark.parametrize("name", NAMES)
def test_same_json_names_and_shapes(name):
    meta, _, _ = load(name)
    sym = build(name)
    assert sym.tojson() == meta["tojson"]
    assert sym.list_arguments() == meta["list_arguments"]
    assert sym.list_outputs() == meta["list_outputs"]
    assert sym.list_auxiliary_states() == meta["list_auxiliary_states"]
    assert sym.get_internals().list_outputs() == meta["internals"]
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**{k: tuple(v) for k, v in meta["shapes"].items()})
    assert [list(s) for s in arg_shapes] == meta["arg_shapes"]
    assert [list(s) for s in out_shapes] == meta["out_shapes"]
    assert [list(s) for s in aux_shapes] == meta["aux_shapes"]


@pytest.mark.parametrize("name", NAMES)
def test_same_forward_numbers(name):
    meta, inputs, expected = load(name)
    outputs = run(build(name), inputs)
    for out_name, out, exp in zip(meta["list_outputs"], outputs, expected):
        assert out.shape == exp.shape, out_name
        if out_name in UNDEFINED_AT_INFERENCE:
            continue
        np.testing.assert_allclose(out, exp, rtol=1e-4, atol=1e-5, err_msg=out_name)


@pytest.mark.parametrize("name", NAMES)
def test_mxnet_json_loads_and_runs(name):
    meta, inputs, expected = load(name)
    sym = mx.sym.load_json(meta["tojson"])
    assert sym.list_outputs() == meta["list_outputs"]
    assert sym.tojson() == meta["tojson"]
    for out_name, out, exp in zip(meta["list_outputs"], run(sym, inputs), expected):
        if out_name not in UNDEFINED_AT_INFERENCE:
            np.testing.assert_allclose(out, exp, rtol=1e-4, atol=1e-5, err_msg=out_name)


@pytest.mark.parametrize("name", NAMES)
def test_exported_onnx_serves_mxnet_numbers(name, tmp_path):
    """mx.onnx.export_model (first argument as the data input, every other input a parameter) gives a file that
    plain ORT serves with MXNet's output names and numbers: pass-through outputs (Dropout, BatchNorm's mean) keep
    their MXNet names."""
    meta, inputs, expected = load(name)
    sym = build(name)
    data = sym.list_arguments()[0]
    params = {n: mx.nd.array(inputs[n]) for n in sym.list_arguments()[1:] + sym.list_auxiliary_states()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # graphs whose shapes depend on the batch fall back to a static one
        path = mx.onnx.export_model(sym, params, [inputs[data].shape], in_types=[inputs[data].dtype],
                                    onnx_file_path=str(tmp_path / (name + ".onnx")))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == meta["list_outputs"]
    outputs = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    for out_name, out, exp in zip(meta["list_outputs"], outputs, expected):
        if out_name not in UNDEFINED_AT_INFERENCE:
            np.testing.assert_allclose(out, exp, rtol=1e-4, atol=1e-5, err_msg=out_name)
