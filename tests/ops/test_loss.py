"""Loss heads: forward values and the label shapes MXNet infers or accepts."""
import numpy as np
import pytest

import onnxsym as mx
from .opcase import OpCase, run_case


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


CASES = [
    OpCase("SoftmaxOutput", {}, {"data": (4, 5)}, lambda data, label: _softmax(data, 1),
           int_inputs={"label": (0, 5)}),
    OpCase("SoftmaxOutput", {}, {"data": (2, 3, 4)},
           lambda data, label: _softmax(data.reshape(2, -1), 1).reshape(2, 3, 4), int_inputs={"label": (0, 3)}),
    OpCase("SoftmaxOutput", dict(multi_output=True), {"data": (2, 3, 4)}, lambda data, label: _softmax(data, 1),
           int_inputs={"label": (0, 3)}),
    OpCase("SoftmaxOutput", dict(preserve_shape=True), {"data": (2, 3, 4)}, lambda data, label: _softmax(data, 2),
           int_inputs={"label": (0, 4)}),
    OpCase("Softmax", {}, {"data": (3, 4)}, lambda data, label: _softmax(data, 1), int_inputs={"label": (0, 4)}),
    OpCase("LinearRegressionOutput", {}, {"data": (3, 2)}, lambda data, label: data),
    OpCase("MAERegressionOutput", {}, {"data": (3, 1)}, lambda data, label: data),
    OpCase("LogisticRegressionOutput", dict(grad_scale=2.0), {"data": (3, 2)},
           lambda data, label: 1 / (1 + np.exp(-data))),
    OpCase("MakeLoss", dict(grad_scale=0.5), {"data": (2, 3)}, lambda data: data),
    OpCase("make_loss", {}, {"data": (2, 3)}, lambda data: data),
    OpCase("SVMOutput", {}, {"data": (4, 3)}, lambda data, label: data, int_inputs={"label": (0, 3)}),
    # smooth_l1: quadratic inside |x| < 1 / sigma^2, linear outside (inputs reach both regions)
    OpCase("smooth_l1", dict(scalar=1.0), {"data": (3, 4)},
           lambda data: np.where(np.abs(data) < 1, 0.5 * data ** 2, np.abs(data) - 0.5), low=-3, high=3),
    OpCase("smooth_l1", dict(scalar=2.0), {"data": (5,)}, lambda data: np.where(
        np.abs(data) < 0.25, 2 * data ** 2, np.abs(data) - 0.125), dtype="float64", low=-1, high=1),
    OpCase("softmax_cross_entropy", {}, {"data": (4, 5)}, lambda data, label: np.array([-np.sum(
        np.log(_softmax(data, 1))[np.arange(4), label.astype(int)])]), int_inputs={"label": (0, 5)}),
    OpCase("softmax_cross_entropy", {}, {"data": (3, 2)}, lambda data, label: np.array([-np.sum(
        np.log(_softmax(data, 1))[np.arange(3), label.astype(int)])]), dtype="float64", int_inputs={"label": (0, 2)}),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_softmax_output_label_names_and_shapes():
    out = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=10, name="fc"),
                               name="softmax")
    assert out.list_arguments() == ["data", "fc_weight", "fc_bias", "softmax_label"]
    assert out.infer_shape(data=(8, 20))[0][-1] == (8,)
    multi = mx.sym.SoftmaxOutput(mx.sym.Variable("x"), multi_output=True, name="s")
    assert multi.infer_shape(x=(2, 3, 4, 5))[0][-1] == (2, 20)      # MXNet 1.9.1 infers (N, size / N / C)
    assert multi.infer_shape(x=(2, 3, 4, 5), s_label=(2, 4, 5))[0][-1] == (2, 4, 5)
    assert multi.infer_shape(x=(2, 3, 4, 5), s_label=(2, 1, 4, 5))[0][-1] == (2, 1, 4, 5)
    assert multi.infer_shape(x=(2, 3, 4, 5), s_label=(2, 20))[0][-1] == (2, 20)
    with pytest.raises(mx.MXNetError, match=r"label shape \(8, 3\)"):
        out.infer_shape(data=(8, 20), softmax_label=(8, 3))


def test_regression_label_shapes():
    reg = mx.sym.LinearRegressionOutput(mx.sym.Variable("x"), name="lro")
    assert reg.infer_shape(x=(5, 1))[0] == [(5, 1), (5,)]
    assert reg.infer_shape(x=(5, 3))[0] == [(5, 3), (5, 3)]
    with pytest.raises(mx.MXNetError, match="lro_label"):
        reg.infer_shape(x=(5, 3), lro_label=(4, 3))
