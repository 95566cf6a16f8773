"""Old MXNet symbol files load and upgrade exactly as MXNet 1.9.1 upgrades them (fixtures/legacy)."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx

LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "legacy")


def test_mxnet_0_8_file_upgrades_like_mxnet_1_9_1():
    sym = mx.sym.load(os.path.join(LEGACY, "save_000800.json"))
    with open(os.path.join(LEGACY, "expected_000800.json")) as handle:
        expected = json.load(handle)
    assert sym.list_arguments() == expected["list_arguments"]
    assert sym.list_auxiliary_states() == expected["list_auxiliary_states"]
    assert sym.list_outputs() == expected["list_outputs"]
    assert sym.attr_dict() == expected["attr_dict"]
    assert sym.tojson() == expected["tojson"]
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=(4, 20))
    assert out_shapes == [(4, 10)] and aux_shapes == [(10,), (10,)]


def test_file_round_trip(tmp_path):
    sym = mx.sym.load(os.path.join(LEGACY, "save_000800.json"))
    path = tmp_path / "net-symbol.json"
    sym.save(str(path))
    again = mx.sym.load(str(path))
    assert again.tojson() == sym.tojson()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]     # written atomically


@pytest.mark.parametrize("text, message", [
    ("not json", "Invalid symbol JSON in the JSON string: not valid JSON"),
    ('{"nodes": [{"op": "NoSuchOp", "name": "x", "inputs": []}], "heads": [[0, 0, 0]]}', "NoSuchOp"),
    ('{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "relu", "name": "r", "inputs": [[5, 0, 0]]}],'
     ' "heads": [[1, 0, 0]]}', r"input \[5, 0, 0\] refers to node 5, not one of the nodes before it"),
    ('{"nodes": [{"op": "null", "name": "x", "inputs": []}], "heads": []}', "heads"),
    ('{"nodes": [{"op": "null", "name": "x", "inputs": []},'
     ' {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "2"}, "inputs": [[0, 0, 0]]}],'
     ' "heads": [[1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}', "has 1 inputs, expected 3"),
])
def test_bad_json_is_a_clear_mxnet_error(text, message):
    with pytest.raises(mx.MXNetError, match=message):
        mx.sym.load_json(text)


def test_two_element_entries_and_attr_keys():
    text = json.dumps({"nodes": [{"op": "null", "name": "x", "inputs": []},
                                 {"op": "Activation", "name": "act", "param": {"act_type": "tanh"},
                                  "inputs": [[0, 0]]}], "arg_nodes": [0], "heads": [[1, 0]]})
    sym = mx.sym.load_json(text)
    out = sym.eval(ctx=mx.cpu(), x=mx.nd.array([0.5, -1.0]))[0].asnumpy()
    np.testing.assert_allclose(out, np.tanh([0.5, -1.0]), rtol=1e-6)
