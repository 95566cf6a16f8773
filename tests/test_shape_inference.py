"""Shape and type inference against what MXNet 1.9.1 answered for the same graphs (tests/fixtures/mxnet/
shape_inference.json, made by tests/fixtures/make_shape_fixtures.py): partial shapes with 0 for unknown
dimensions, Variable shape attributes and their override, backward inference, the "Cannot decide" warning, and
type inference that stays undecided."""
import json
import os

import pytest

import onnxsym as mx
from tests.fixtures.make_shape_fixtures import SHAPE_CASES, TYPE_CASES, describe

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet", "shape_inference.json")
with open(FIXTURE) as _handle:
    RECORDED = json.load(_handle)

# Where MXNet 1.9.1's answer is a bug onnxsym does not copy: case -> (call, what onnxsym answers instead, why).
DIFFERENT = {
    # MXNet checks `-1 % num_outputs == 0` on an unknown split axis and fails; onnxsym splits what it knows
    ("slicechannel_backward", "partial"): ({"arg": [[2, 12, 5], [2, 4, 5]], "aux": [], "out": [[2, 4, 5]]},
                                           "MXNet fails its divisibility check on the unknown axis"),
    ("slicechannel_backward", "complete"): ({"arg": [[2, 12, 5], [2, 4, 5]], "aux": [], "out": [[2, 4, 5]]},
                                            "MXNet fails its divisibility check on the unknown axis"),
}


def _compare(kind, name, cases):
    build, given = cases[name]
    expected = RECORDED[kind][name]
    got = describe(mx, build, kind, given)
    for key in ("list_arguments", "list_outputs", "list_auxiliary_states", "given"):
        assert got[key] == expected[key], key
    for call in ("partial", "complete"):
        mine, theirs = got[call], expected[call]
        if (name, call) in DIFFERENT:
            assert mine == DIFFERENT[name, call][0]
            continue
        if theirs is not None and "error" in theirs:
            assert mine is not None and "error" in mine, "MXNet raised %s" % theirs["error"]
        else:
            assert mine == theirs, call
    if kind == "shape":
        # MXNet's infer_type warns too; onnxsym's does not, since simple_bind and Module.bind ask infer_type
        # first and fall back to float32 (MXNet's C++ bind never calls the Python method).
        assert got["warning"] == expected["warning"]


def test_recorded_cases_are_all_tested():
    assert sorted(RECORDED["shape"]) == sorted(SHAPE_CASES), "run tests/fixtures/make_shape_fixtures.py"
    assert sorted(RECORDED["type"]) == sorted(TYPE_CASES)


@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
def test_shape_inference_like_mxnet(name):
    _compare("shape", name, SHAPE_CASES)


@pytest.mark.parametrize("name", sorted(TYPE_CASES))
def test_type_inference_like_mxnet(name):
    _compare("type", name, TYPE_CASES)
