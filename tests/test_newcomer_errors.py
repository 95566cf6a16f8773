"""The errors a newcomer meets first (issue 11, item 5), each checked against what MXNet 1.9.1 has or does:
a missing operator, a file that is not an MXNet parameter file, `fit` without a label, integer data into float ops.
"""
import io
import json
import pathlib
import pickle
import re
import time
import warnings
from contextlib import redirect_stderr

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.ops import mxnet_names
from tests.fixtures import module_names_cases
from tests.fixtures.int_input_cases import CASES as INT_CASES, run_nd, run_sym

ROOT = pathlib.Path(__file__).parent.parent
INT_RECORDED = json.loads((ROOT / "tests" / "fixtures" / "mxnet" / "int_inputs.json").read_text())
NAMES_RECORDED = json.loads((ROOT / "tests" / "fixtures" / "mxnet" / "module_names.json").read_text())


# ---------------------------------------------------------------- 1. a name mx.sym / mx.nd does not have
NAMESPACES = {"mx.sym": mx.sym, "mx.nd": mx.nd, "mx.sym.contrib": mx.sym.contrib, "mx.nd.contrib": mx.nd.contrib,
              "mx.sym._internal": mx.sym._internal, "mx.nd._internal": mx.nd._internal}


def _missing_message(module, name):
    with pytest.raises(AttributeError) as info:
        getattr(module, name)
    return str(info.value)


def test_names_file_is_mxnet_1_9_1():
    """The recorded names are MXNet 1.9.1's (a few that its documentation lists, in the namespaces it lists)."""
    assert mxnet_names.MXNET_VERSION == "1.9.1"
    assert {"stack", "Convolution", "FullyConnected", "concat", "SoftmaxOutput"} <= set(mxnet_names.OPERATORS["mx.sym"])
    assert {"stack", "Convolution"} <= set(mxnet_names.OPERATORS["mx.nd"])
    assert {"box_nms", "ROIAlign", "BilinearResize2D"} <= set(mxnet_names.OPERATORS["mx.sym.contrib"])
    assert {"Variable", "Group", "load"} <= set(mxnet_names.FUNCTIONS["mx.sym"])
    assert {"array", "imdecode", "load"} <= set(mxnet_names.FUNCTIONS["mx.nd"])
    assert "_Plus" in mxnet_names.OPERATORS["mx.sym._internal"]


@pytest.mark.parametrize("namespace", ["mx.sym", "mx.nd"])
def test_khatri_rao_is_an_mxnet_operator_onnxsym_lacks(namespace):
    message = _missing_message(NAMESPACES[namespace], "khatri_rao")
    assert message.startswith("%s.khatri_rao is an MXNet operator that onnxsym does not implement yet" % namespace)
    assert "onnxsym ops" in message and "mx.onnx.get_operator_support()" in message
    assert "mx.operator.CustomOp" in message and "register_function('khatri_rao')" in message
    assert "%s.Custom(..., op_type='khatri_rao')" % namespace[:6] in message


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_every_missing_mxnet_operator_says_so(namespace):
    """Every MXNet operator of the namespace is either there or named as one onnxsym does not implement."""
    module = NAMESPACES[namespace]
    lacking = [name for name in mxnet_names.OPERATORS[namespace] if not hasattr(module, name)]
    for name in lacking:
        assert _missing_message(module, name).startswith(
            "%s.%s is an MXNet operator that onnxsym does not implement yet" % (namespace, name))
    present = [name for name in mxnet_names.OPERATORS[namespace] if hasattr(module, name)]
    assert present, "onnxsym implements none of %s's operators?" % namespace


def test_missing_mxnet_function_and_namespace():
    assert _missing_message(mx.nd, "imdecode").startswith(
        "mx.nd.imdecode is an MXNet function that onnxsym does not implement yet")
    assert _missing_message(mx.sym, "image").startswith("mx.sym.image is an MXNet namespace that onnxsym does not")


@pytest.mark.parametrize("namespace, name, suggestion", [
    ("mx.sym", "nonexistent_op", None),
    ("mx.sym", "fullyconnected", "FullyConnected"),      # case: onnxsym's own name
    ("mx.sym", "Convolutoin", "Convolution"),
    ("mx.nd", "khatri_roa", "khatri_rao"),                # an MXNet name onnxsym lacks is still suggested
    ("mx.sym.contrib", "box_nsm", "box_nms"),
    ("mx.nd._internal", "_plus_scalr", "_plus_scalar"),
])
def test_unknown_name_says_no_such_mxnet_name(namespace, name, suggestion):
    module = NAMESPACES[namespace]
    assert name not in mxnet_names.OPERATORS[namespace] and name not in mxnet_names.FUNCTIONS[namespace]
    message = _missing_message(module, name)
    assert message.startswith("no MXNet operator or function named '%s' in %s" % (name, namespace))
    if suggestion is None:
        assert "did you mean" not in message
    else:
        assert "did you mean '%s'" % suggestion in message


def test_missing_names_stay_attribute_errors():
    """hasattr / getattr(default) keep working, quickly (the message is built only when shown); dunder probes
    (pytest, doctest, functools.wraps, importlib) get Python's plain AttributeError."""
    assert not hasattr(mx.sym, "khatri_rao") and getattr(mx.nd, "no_such_op", 42) == 42
    assert hasattr(mx.sym, "FullyConnected") and hasattr(mx.nd, "relu") and hasattr(mx.nd.NDArray, "reshape")
    start = time.perf_counter()
    for _ in range(2000):
        hasattr(mx.sym, "definitely_not_there")
    assert time.perf_counter() - start < 0.5
    for module in NAMESPACES.values():
        for dunder in ("__wrapped__", "__signature__", "__test__", "__pytest_plugins__"):
            with pytest.raises(AttributeError) as info:
                getattr(module, dunder)
            assert type(info.value) is AttributeError
            assert str(info.value) == "module '%s' has no attribute '%s'" % (module.__name__, dunder)


def test_custom_op_advice_works():
    """What the message advises: a composite registered under the missing name, called through Custom."""
    @mx.operator.register_function("stack")
    def stack(first, second, axis="0"):
        axis = int(axis)
        return mx.sym.Concat(mx.sym.expand_dims(first, axis=axis), mx.sym.expand_dims(second, axis=axis), dim=axis)

    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    net = mx.sym.Custom(a, b, op_type="stack", axis=1)
    ex = net.simple_bind(mx.cpu(), a=(2, 3), b=(2, 3), grad_req="null")
    x, y = np.arange(6, dtype=np.float32).reshape(2, 3), -np.ones((2, 3), np.float32)
    ex.forward(a=mx.nd.array(x), b=mx.nd.array(y))
    np.testing.assert_array_equal(ex.outputs[0].asnumpy(), np.stack([x, y], axis=1))


# ---------------------------------------------------------------- 2. a file that is not an MXNet parameter file
def _mlp():
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc"),
                                name="softmax")


def _good_params(path):
    mx.nd.save(str(path), {"arg:fc_weight": mx.nd.ones((3, 4)), "arg:fc_bias": mx.nd.zeros((3,))})
    return path.read_bytes()


def _npz(tmp_path):
    np.savez(tmp_path / "weights.npz", fc_weight=np.ones((3, 4)))
    return (tmp_path / "weights.npz").read_bytes()


def _onnx(tmp_path):
    mx.onnx.export_model(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc"),
                         {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.zeros((3,))}, [(1, 4)], [np.float32],
                         onnx_file_path=str(tmp_path / "model.onnx"))
    return (tmp_path / "model.onnx").read_bytes()


# name -> (the file's bytes from a good .params file and tmp_path, what the message says after the reader's reason)
BAD_PARAMS = {
    "empty": (lambda good, tmp: b"", "it is empty, so it is not an MXNet .params file"),
    "truncated": (lambda good, tmp: good[: len(good) - 10], "the MXNet .params file is cut short"),
    "truncated_header": (lambda good, tmp: good[:5], "5 bytes are too few for an MXNet .params file"),
    "text": (lambda good, tmp: b"fc_weight 1 1 1 1\nfc_bias 0 0 0\n", "it looks like a text file"),
    "symbol_json": (lambda good, tmp: _mlp().tojson().encode(), "symbol JSON file; load it with mx.sym.load"),
    "npz": (lambda good, tmp: _npz(tmp), "it looks like a zip archive (a NumPy .npz"),
    "onnx": (lambda good, tmp: _onnx(tmp), "it looks like an ONNX model; load it with mx.onnx.import_model"),
    "pickle": (lambda good, tmp: pickle.dumps({"fc_weight": np.ones((3, 4))}), "it looks like a Python pickle"),
    "binary": (lambda good, tmp: bytes(range(256)), "it starts with the bytes 00 01 02 03"),
    "damaged": (lambda good, tmp: good[:24] + b"\xff" * 4 + good[28:], "the MXNet .params file is damaged"),
}


def _cli_convert(prefix):
    from onnxsym.cli import main
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["convert", str(prefix), "0", "-o", str(prefix) + ".onnx", "--input-shape", "data:1,4"])
    assert code != 0
    raise mx.MXNetError(err.getvalue())


# every entry point that reads a .params file, given the checkpoint prefix (epoch 0)
PARAMS_READERS = {
    "nd.load": lambda prefix: mx.nd.load("%s-0000.params" % prefix),
    "model.load_checkpoint": lambda prefix: mx.model.load_checkpoint(prefix, 0),
    "Module.load": lambda prefix: mx.mod.Module.load(prefix, 0),
    "mod.load_params": lambda prefix: mx.mod.Module(_mlp()).load_params("%s-0000.params" % prefix),
    "onnx.export_model": lambda prefix: mx.onnx.export_model(
        "%s-symbol.json" % prefix, "%s-0000.params" % prefix, [(1, 4)], [np.float32],
        onnx_file_path="%s.onnx" % prefix),
    "cli convert": _cli_convert,
}


@pytest.mark.parametrize("reader", sorted(PARAMS_READERS))
@pytest.mark.parametrize("kind", sorted(BAD_PARAMS))
def test_bad_params_file_is_named_and_explained(tmp_path, kind, reader):
    make, explanation = BAD_PARAMS[kind]
    prefix = tmp_path / "my model"
    _mlp().save("%s-symbol.json" % prefix)
    good = _good_params(tmp_path / "good.params")
    assert mx.nd.load(str(tmp_path / "good.params"))["arg:fc_weight"].shape == (3, 4)   # the good file loads
    params = pathlib.Path("%s-0000.params" % prefix)
    params.write_bytes(make(good, tmp_path))
    with pytest.raises(mx.MXNetError) as info:
        PARAMS_READERS[reader](prefix)
    message = " ".join(str(info.value).split())
    assert "cannot load file '%s': " % params in message, message
    assert explanation in message, message
    assert ".params file" in message, message


# ---------------------------------------------------------------- 3. fit without a label, other input names
# case -> what onnxsym adds after MXNet's sentence
NAME_HINTS = {
    "fit_no_label": ["the iterator gives no label, but the symbol expects ['softmax_label']",
                     "mx.io.NDArrayIter(data, label, batch_size, label_name='softmax_label')", "label_names=None"],
    "fit_other_label_name": ["names its label ['label'], but the Module expects ['softmax_label']",
                             "label_name='softmax_label'"],
    "bind_other_label_name": ["names its label ['label'], but the Module expects ['softmax_label']",
                              "label_name='softmax_label'"],
    "fit_other_data_name": ["names its data ['image'], but the Module expects ['data']", "data_name='data'",
                            "the symbol's inputs: data, softmax_label"],
    "bind_other_data_name": ["names its data ['image'], but the Module expects ['data']", "data_name='data'"],
    "fit_label_names_none": ["softmax_label looks like a label", "label_names=['softmax_label']"],
}


def _short(text):
    """MXNet's DataDesc reprs shortened to the names onnxsym prints."""
    return re.sub(r"DataDesc\[([^,\]]+),[^\]]*\]", r"'\1'", text)


@pytest.mark.parametrize("name", sorted(module_names_cases.CASES))
def test_module_name_mistakes_say_what_to_pass(name):
    """MXNet's sentence first (for labels MXNet only warns it, then fails with an uninformative AssertionError or
    KeyError: onnxsym raises the ValueError MXNet raises for data names), then what to pass."""
    recorded = NAMES_RECORDED["cases"][name]
    assert NAMES_RECORDED["mxnet_version"] == "1.9.1" and recorded["type"] is not None
    with pytest.raises(ValueError) as info, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module_names_cases.CASES[name](mx)
    message = str(info.value)
    if name == "fit_label_names_none":      # MXNet warns about the label, then fails initialising it
        assert recorded["type"] == "ValueError"
        assert [str(w.message) for w in caught] == [_short(text) for text in recorded["warnings"]]
        assert message.startswith("Unknown initialization pattern for softmax_label.")
    else:
        sentence = recorded["message"] if recorded["type"] == "ValueError" else recorded["warnings"][0]
        assert message.startswith(_short(sentence) + "; "), (message, recorded)
    for hint in NAME_HINTS[name]:
        assert hint in message, message


def test_label_exception_type_is_a_documented_deviation():
    doc = (ROOT / "DEVIATIONS.md").read_text()
    for name in ("fit_no_label", "fit_other_label_name", "bind_other_label_name"):
        assert NAMES_RECORDED["cases"][name]["type"] in ("AssertionError", "KeyError")
        assert "`%s`" % name in doc


def test_fit_with_the_advised_label_trains():
    x, y = module_names_cases._xy()
    mod = mx.mod.Module(module_names_cases._mlp(mx), context=mx.cpu())
    mod.fit(mx.io.NDArrayIter(x, y, batch_size=4, label_name="softmax_label"), num_epoch=1)
    assert mod.get_params()[0]["fc_weight"].shape == (3, 4)
    free = mx.mod.Module(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3), label_names=None)
    free.bind(data_shapes=[("data", (4, 4))], for_training=False)
    free.init_params()
    free.forward(mx.io.DataBatch([mx.nd.array(x[:4])]), is_train=False)
    assert free.get_outputs()[0].shape == (4, 3)


# ---------------------------------------------------------------- 4. integer data into float ops
# Where MXNet refuses, onnxsym's message names the input MXNet names (the first input unless listed here).
INT_CULPRITS = {"FullyConnected_float_weight": "weight", "SoftmaxOutput_int_label": "label"}


@pytest.mark.parametrize("how", ["nd", "sym"])
@pytest.mark.parametrize("name", sorted(INT_CASES))
def test_int_input_as_mxnet(name, how):
    """MXNet's numbers where MXNet computes; where it refuses, an MXNetError naming the op, the input, its dtype
    and the dtype accepted."""
    assert INT_RECORDED["mxnet_version"] == "1.9.1"
    recorded = INT_RECORDED["cases"]["%s/%s" % (name, how)]
    got = (run_nd if how == "nd" else run_sym)(mx, name)
    if recorded[0] == "ok":
        assert got[:2] == recorded[:2], got
        np.testing.assert_allclose(got[2], recorded[2], rtol=1e-6, atol=1e-7)
        return
    assert got[:2] == ["error", "MXNetError"], got
    op, _, inputs = INT_CASES[name]
    message = got[2]
    culprit = INT_CULPRITS.get(name, inputs[0][0])
    assert op in message and "'%s'" % culprit in message, message
    assert "int32" in message and "float32" in message, message
