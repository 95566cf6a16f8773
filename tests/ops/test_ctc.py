"""CTCLoss against MXNet 1.9.1's recorded losses and gradients (tests/fixtures/make_ctc_fixtures.py), central finite
differences, and the names, shapes and errors MXNet gives."""
import json
import pathlib

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.test_utils import check_numeric_gradient
from .opcase import OpCase, run_case

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "mxnet"
RECORD = {c["name"]: c for c in json.loads((FIXTURES / "ctc.json").read_text())["cases"]}
ARRAYS = np.load(FIXTURES / "ctc.npz")
# warp-ctc leaves the gradient of a sample it skips (labels longer than the data allow) unwritten: MXNet's recorded
# values there are whatever the memory held; onnxsym gives 0
SKIPPED = {"infeasible": [0]}


def ctc_reference(data, label, data_lengths=None, label_lengths=None, blank_label="first", **_):
    """Graves et al.'s forward algorithm in float64 numpy, one sample at a time (-log p; 0 for a sample whose
    labels cannot fit its length, as warp-ctc)."""
    data = np.asarray(data, np.float64)
    steps, batch, classes = data.shape
    blank, pad = (0, 0) if blank_label == "first" else (classes - 1, -1)
    out = np.zeros(batch)
    for n in range(batch):
        time = steps if data_lengths is None else int(data_lengths[n])
        row = [int(v) for v in label[n]]
        count = int(label_lengths[n]) if label_lengths is not None else \
            (row.index(pad) if pad in row else len(row))
        labels = row[:count]
        if count + sum(a == b for a, b in zip(labels, labels[1:])) > time:
            continue
        x = data[:time, n]
        log_probs = x - x.max(axis=1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        ext = [blank]
        for value in labels:
            ext += [value, blank]
        alpha = np.full(len(ext), -np.inf)
        alpha[:2] = log_probs[0, ext[:2]]
        for t in range(1, time):
            new = np.full(len(ext), -np.inf)
            for s in range(len(ext)):
                terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else []) + \
                    ([alpha[s - 2]] if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] else [])
                new[s] = np.logaddexp.reduce(terms) + log_probs[t, ext[s]]
            alpha = new
        out[n] = -np.logaddexp.reduce(alpha[-2:] if len(ext) > 1 else alpha[-1:])
    return out


def _inputs(name):
    return {n: ARRAYS["%s/in:%s" % (name, n)] for n in RECORD[name]["inputs"]}


def _attrs(name):
    return dict(RECORD[name]["attrs"])


@pytest.mark.parametrize("name", sorted(RECORD))
def test_loss_and_gradient_match_mxnet(name):
    values = _inputs(name)
    arrays = {k: mx.nd.array(v, dtype=v.dtype) for k, v in values.items()}
    arrays["data"].attach_grad()
    with mx.autograd.record():
        loss = mx.nd.CTCLoss(**arrays, **_attrs(name))
    loss.backward(mx.nd.array(ARRAYS[name + "/head"]))
    np.testing.assert_allclose(loss.asnumpy(), ARRAYS[name + "/loss"], rtol=1e-5, atol=1e-5)
    grad, expected = arrays["data"].grad.asnumpy(), ARRAYS[name + "/grad"].copy()
    for sample in SKIPPED.get(name, []):
        expected[:, sample] = 0
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_forward_without_recording_and_aliases():
    values = _inputs("first_padding")
    data, label = mx.nd.array(values["data"]), mx.nd.array(values["label"])
    expected = ARRAYS["first_padding/loss"]
    for fn in (mx.nd.CTCLoss, mx.nd.ctc_loss, mx.nd.contrib.CTCLoss, mx.nd.contrib.ctc_loss,
               mx.contrib.ndarray.ctc_loss):
        np.testing.assert_allclose(fn(data, label).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_symbol_names_and_shapes():
    d, l, dl, ll = (mx.sym.Variable(n) for n in ("d", "l", "dl", "ll"))
    sym = mx.sym.ctc_loss(d, l, name="ctc")
    assert sym.list_arguments() == ["d", "l"] and sym.list_outputs() == ["ctc_output0"]
    assert sym.get_internals().list_outputs() == ["d", "l", "ctc_output0"]
    arg_shapes, out_shapes, _ = sym.infer_shape(d=(4, 2, 5), l=(2, 3))
    assert arg_shapes == [(4, 2, 5), (2, 3)] and out_shapes == [(2,)]
    sym = mx.sym.contrib.ctc_loss(d, l, dl, ll, use_data_lengths=True, use_label_lengths=True, name="c2")
    assert sym.list_arguments() == ["d", "l", "dl", "ll"]
    auto = mx.sym.CTCLoss(d, l, use_label_lengths=True, name="c3")
    assert auto.list_arguments() == ["d", "l", "c3_label_lengths"]
    arg_shapes, _, _ = auto.infer_shape(d=(4, 2, 5), l=(2, 3))
    assert arg_shapes[2] == (2,)


def test_reference_matches_mxnet():
    """The numpy reference the symbolic cases use agrees with MXNet's recorded losses."""
    for name in RECORD:
        values = _inputs(name)
        attrs = {k: (v if k == "blank_label" else v == "True") for k, v in _attrs(name).items()}
        np.testing.assert_allclose(ctc_reference(**values, **attrs), ARRAYS[name + "/loss"], rtol=1e-5, atol=1e-5)


def _case(name, **extra):
    values = _inputs(name)
    attrs = _attrs(name)
    ints = {n: (0, 1) for n in values if n != "data"}       # labels and lengths: no gradient
    return OpCase("CTCLoss", attrs, {n: v.shape for n, v in values.items()},
                  ref=lambda **arrays: ctc_reference(**arrays, blank_label=attrs.get("blank_label", "first")),
                  values=values, int_inputs=ints, rtol=1e-5, atol=1e-5, name="ctc_" + name, **extra)


CASES = [_case(n) for n in ("first_padding", "label_lengths", "last_padding", "both_lengths_last")]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_symbolic_forward(case):
    run_case(case)


@pytest.mark.parametrize("name", ["repeats", "both_lengths_last", "one_label_one_step", "infeasible"])
def test_gradient_by_finite_differences(name):
    """Central differences in float64 on sum(loss * proj) (the NaN steps past a length are not perturbed)."""
    values = {n: (v.astype(np.float64) if n == "data" else v) for n, v in _inputs(name).items()}
    names = RECORD[name]["inputs"]
    sym = mx.sym.CTCLoss(*[mx.sym.Variable(n) for n in names], **_attrs(name))
    check_numeric_gradient(sym, [values[n] for n in names], grad_nodes=["data"], numeric_eps=1e-6, rtol=1e-5,
                           atol=1e-7, dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_other_dtypes(dtype):
    """MXNet's kernel reads float32 only; float64 and float16 data run here (float16 in float32)."""
    values = _inputs("label_lengths")
    arrays = {k: mx.nd.array(v, dtype=dtype if k == "data" else v.dtype) for k, v in values.items()}
    loss = mx.nd.CTCLoss(**arrays, **_attrs("label_lengths"))
    assert loss.dtype == np.dtype(dtype)
    tolerance = 2e-2 if dtype == "float16" else 1e-5
    np.testing.assert_allclose(loss.asnumpy(), ctc_reference(values["data"].astype(dtype), values["label"],
                                                             label_lengths=values["label_lengths"]),
                               rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("call, message", [
    (lambda d, l: mx.nd.CTCLoss(d.astype("int32"), l), "int32"),
    (lambda d, l: mx.nd.CTCLoss(mx.nd.ones((4, 5)), l), "dimensions of data"),
    (lambda d, l: mx.nd.CTCLoss(d, mx.nd.ones((2,))), "dimensions of labels"),
    (lambda d, l: mx.nd.CTCLoss(d, mx.nd.ones((3, 2))), "batch size"),
    (lambda d, l: mx.nd.CTCLoss(d, mx.nd.ones((2, 5))), "cannot exceed"),
    (lambda d, l: mx.nd.CTCLoss(d, l, mx.nd.ones((3,)), use_data_lengths=True), "data_lengths"),
    (lambda d, l: mx.nd.CTCLoss(d, l, blank_label="middle"), "blank_label|middle"),
    (lambda d, l: mx.nd.CTCLoss(d, l, use_label_lengths=True), "label_lengths"),
])
def test_bad_calls(call, message):
    with pytest.raises(MXNetError, match=message):
        call(mx.nd.ones((4, 2, 5)), mx.nd.ones((2, 3)))
