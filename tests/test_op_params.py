"""Operator parameters and extra keywords are accepted and stored exactly as MXNet 1.9.1 does.

Every case of tests/fixtures/op_params_cases.py is rebuilt here and compared with what MXNet 1.9.1 recorded
(tests/fixtures/mxnet/op_params_cases.json, written by make_params_fixtures.py): the attribute strings of every
node, list_attr / attr_dict / attr(key), imperative results, and the error type and wording.
"""
import json
import pathlib

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.ops.registry import names
from onnxsym.name import format_value, op_attr_key, set_attr_key
from tests.fixtures.op_params_cases import CASES, record

RECORDED = json.loads((pathlib.Path(__file__).parent / "fixtures" / "mxnet" / "op_params_cases.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_matches_mxnet(name):
    expected, got = RECORDED["cases"][name], record(mx, CASES[name])
    if expected["kind"] == "error":
        assert got["kind"] == "error", "MXNet raises %s(%s), onnxsym gave %s" % (
            expected["type"], expected["message"], got)
        assert got["type"] == expected["type"], got
        message = got["message"].replace("numpy.bool'", "numpy.bool_'")     # numpy 2 renamed the class
        assert expected["message"] in message, got["message"]
    elif expected["kind"] == "ndarray":
        assert got["kind"] == "ndarray", got
        assert (got["dtype"], got["shape"]) == (expected["dtype"], expected["shape"])
        np.testing.assert_allclose(got["values"], expected["values"], rtol=1e-6, atol=1e-7)
    else:
        assert got == expected


def test_all_recorded_cases_are_built():
    assert sorted(RECORDED["cases"]) == sorted(CASES)


@pytest.mark.parametrize("accepts", [True, False], ids=["parser-less", "with-parser"])
def test_unknown_keyword_per_op(accepts):
    """Ops without a parameter parser in MXNet store an unknown keyword, the others refuse it."""
    recorded = set(RECORDED["unknown_keyword"]["accept" if accepts else "reject"])
    # MXNet's make_loss has no parameters; onnxsym's is an alias of MakeLoss (grad_scale, ...), which refuses.
    known_gaps = {"make_loss"}
    checked = 0
    for op_name, opcls in sorted(names().items()):
        if op_name not in recorded or op_name in known_gaps:
            continue
        checked += 1
        assert opcls.rejects_unknown_attrs() is not accepts, op_name
    assert checked > 100


def test_unknown_keyword_is_stored_or_refused_on_symbols():
    x = mx.sym.Variable("x")
    assert mx.sym.sigmoid(x, foo=np.int64(3)).list_attr() == {"foo": "3"}
    with pytest.raises(mx.MXNetError, match="Cannot find argument 'foo'"):
        mx.sym.Convolution(x, kernel=(3, 3), num_filter=2, foo=1)
    # a hidden name passes every parser, as dmlc's kAllowHidden
    assert mx.sym.Convolution(x, kernel=(3, 3), num_filter=2, __foo__=1, name="c").attr("__foo__") == "1"


def test_format_value_prints_numpy_as_mxnet_does():
    # numpy 2 prints (np.int64(0),); MXNet 1.9.1 runs numpy < 1.24 and stores "(0,)"
    assert format_value((np.int64(0),)) == "(0,)"
    assert format_value([np.int32(1), np.float32(0.1), np.bool_(True), None]) == "[1, 0.1, True, None]"
    assert format_value(((np.int64(1), 2), [np.float64(1e-5)])) == "((1, 2), [1e-05])"
    assert format_value(np.float32(0.1)) == "0.1"
    assert format_value(np.array(3)) == "3"
    assert format_value(np.array([1, 0])) == "[1 0]"
    assert format_value(("a", np.str_("b"))) == "('a', 'b')"
    assert format_value(()) == "()"


def test_hidden_key_rules():
    assert op_attr_key("lr_mult", "2") == "__lr_mult__"
    assert op_attr_key("lr_mult_x", "2") == "__lr_mult_x__"
    assert op_attr_key("__lr_mult__", "2") == "__lr_mult__"
    assert op_attr_key("profiler_scope", "a") == "profiler_scope"
    assert set_attr_key("lr_mult_x", "2") == "lr_mult_x"
    assert set_attr_key("ctx_group", "dev1") == "__ctx_group__"
    for rule in (op_attr_key, set_attr_key):
        with pytest.raises(mx.MXNetError, match="sym = YourSymbolName\\(weight=w\\)"):
            rule("weight_lr_mult", "2")


def test_set_attr_reparses_the_op():
    """MXNet parses an op node again after _set_attr: a new num_hidden changes the inferred shapes."""
    fc = mx.sym.FullyConnected(mx.sym.Variable("d"), num_hidden=7, name="fc")
    fc._set_attr(num_hidden="9")
    assert fc.infer_shape(d=(2, 3))[0] == [(2, 3), (9, 3), (9,)]
    with pytest.raises(mx.MXNetError, match="Cannot find argument 'mood'"):
        fc._set_attr(mood="ok")
    assert fc.attr("mood") is None       # MXNet keeps the refused key (and then refuses every later call); not here
    fc._set_attr(__mood__="ok", name="fc2")
    assert (fc.name, fc.attr("__mood__")) == ("fc2", "ok")


def test_numpy_scalar_params_reach_the_op():
    x = mx.sym.Variable("x")
    out = mx.sym.slice(x, begin=(np.int64(0), None), end=(None, np.int32(2)))
    assert out.infer_shape(x=(3, 4))[1] == [(3, 2)]
    assert mx.sym.Reshape(x, shape=[np.int64(-1), 0]).infer_shape(x=(2, 3, 4))[1] == [(8, 3)]
    assert mx.sym.Variable("v", shape=(np.int64(3), np.int32(4))).infer_shape()[0] == [(3, 4)]
    assert mx.sym.Variable("v", shape=[3, 4]).infer_shape()[0] == [(3, 4)]
    loaded = mx.sym.load_json((x * np.float32(0.1)).tojson())
    assert loaded.attr("scalar") == "0.1"
