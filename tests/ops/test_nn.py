"""FullyConnected and Activation against numpy."""
import numpy as np
import pytest

from .opcase import OpCase, run_case


def _softrelu(data):
    return np.logaddexp(0, data.astype(np.float64)).astype(data.dtype)


CASES = [
    OpCase("FullyConnected", dict(num_hidden=4), {"data": (2, 3, 5)},
           lambda data, weight, bias: data.reshape(2, -1) @ weight.T + bias),
    OpCase("FullyConnected", dict(num_hidden=4, no_bias=True), {"data": (2, 6)},
           lambda data, weight: data @ weight.T),
    OpCase("FullyConnected", dict(num_hidden=4, flatten=False), {"data": (2, 3, 5)},
           lambda data, weight, bias: data @ weight.T + bias),
    OpCase("FullyConnected", dict(num_hidden=4, flatten=False, no_bias=True), {"data": (2, 3, 5)},
           lambda data, weight: data @ weight.T),
    OpCase("FullyConnected", dict(num_hidden=3), {"data": (2, 5)},
           lambda data, weight, bias: data @ weight.T + bias, dtype="float64"),
    OpCase("FullyConnected", dict(num_hidden=3, flatten=False), {"data": (2, 4, 5)},
           lambda data, weight, bias: data @ weight.T + bias, dtype="float64"),
    OpCase("Activation", dict(act_type="relu"), {"data": (2, 3)}, lambda data: np.maximum(data, 0)),
    OpCase("Activation", dict(act_type="sigmoid"), {"data": (2, 3)}, lambda data: 1 / (1 + np.exp(-data))),
    OpCase("Activation", dict(act_type="tanh"), {"data": (2, 3)}, lambda data: np.tanh(data)),
    OpCase("Activation", dict(act_type="softrelu"), {"data": (2, 3)}, _softrelu, low=-30, high=30),
    OpCase("Activation", dict(act_type="softsign"), {"data": (2, 3)}, lambda data: data / (1 + np.abs(data))),
    OpCase("LeakyReLU", {}, {"data": (2, 3)}, lambda data: np.where(data > 0, data, 0.25 * data)),
    OpCase("LeakyReLU", dict(act_type="leaky", slope=0.1), {"data": (2, 3, 4)},
           lambda data: np.where(data > 0, data, 0.1 * data)),
    OpCase("LeakyReLU", dict(act_type="prelu"), {"data": (2, 3, 4, 5)},
           lambda data, gamma: np.where(data > 0, data, gamma.reshape(1, 3, 1, 1) * data)),
    OpCase("LeakyReLU", dict(act_type="prelu"), {"data": (4, 3)},
           lambda data, gamma: np.where(data > 0, data, gamma * data)),
    # gamma of shape (N, C): MXNet fills the batch and channel axes from the right (its test_prelu's gam_full)
    OpCase("LeakyReLU", dict(act_type="prelu"), {"data": (3, 4, 2, 5), "gamma": (3, 4)},
           lambda data, gamma: np.where(data > 0, data, gamma.reshape(3, 4, 1, 1) * data)),
    OpCase("LeakyReLU", dict(act_type="prelu"), {"data": (3, 4), "gamma": (3, 4)},
           lambda data, gamma: np.where(data > 0, data, gamma * data)),
    OpCase("LeakyReLU", dict(act_type="elu", slope=0.7), {"data": (2, 5)},
           lambda data: np.where(data > 0, data, 0.7 * np.expm1(data)), low=-3, high=3),
    OpCase("LeakyReLU", dict(act_type="selu"), {"data": (2, 5)},
           lambda data: 1.0507009873538 * np.where(data > 0, data, 1.6732632423543772 * np.expm1(data)),
           low=-3, high=3),
    OpCase("LeakyReLU", dict(act_type="gelu"), {"data": (2, 5)}, lambda data: _gelu(data), low=-3, high=3),
    OpCase("LeakyReLU", dict(act_type="rrelu", lower_bound=0.1, upper_bound=0.3), {"data": (2, 5)},
           lambda data: [np.where(data > 0, data, 0.2 * data), np.full(data.shape, 0.2, np.float32)]),
]


def _gelu(data):
    from math import erf
    return (0.5 * data * (1 + np.vectorize(erf)(data / np.sqrt(2.0)))).astype(data.dtype)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def test_fully_connected_infers_weight_shapes():
    import onnxsym as mx
    fc = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=128, name="fc1")
    assert fc.infer_shape(data=(5, 3, 28, 28)) == ([(5, 3, 28, 28), (128, 2352), (128,)], [(5, 128)], [])


def test_fully_connected_weight_conflict_names_node_and_shapes():
    import onnxsym as mx
    fc = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=128, name="fc1")
    with pytest.raises(mx.MXNetError) as err:
        fc.infer_shape(data=(5, 784), fc1_weight=(128, 100))
    message = str(err.value)
    assert "fc1" in message and "weight" in message and "(128, 784)" in message and "(128, 100)" in message


def test_activation_rejects_unknown_type():
    import onnxsym as mx
    with pytest.raises(mx.MXNetError, match="act_type"):
        mx.sym.Activation(mx.sym.Variable("x"), act_type="swish")


def test_prelu_gamma_defaults():
    import onnxsym as mx
    act = mx.sym.LeakyReLU(mx.sym.Variable("x"), act_type="prelu", name="p")
    assert act.list_arguments() == ["x", "p_gamma"]
    assert act.infer_shape(x=(2, 7, 3, 3))[0][1] == (7,)
    assert act.attr_dict()["p_gamma"]["__init__"] == '["Constant", {"value": 0.25}]'
    with pytest.raises(mx.MXNetError, match="Cannot broadcast gamma to data"):
        act.infer_shape(x=(2, 7, 3, 3), p_gamma=(3,))
    with pytest.raises(mx.MXNetError, match="Cannot broadcast gamma to data"):
        act.infer_shape(x=(2, 7, 3, 3), p_gamma=(2, 7, 3))


def test_rrelu_training_draws_slopes_and_backward_uses_them():
    import onnxsym as mx
    sym = mx.sym.LeakyReLU(mx.sym.Variable("x"), act_type="rrelu", lower_bound=0.1, upper_bound=0.3)
    exe = sym.simple_bind(mx.cpu(), x=(200,))
    x = np.linspace(-2, 2, 200).astype(np.float32)
    exe.arg_dict["x"][:] = x
    out, mask = [o.asnumpy() for o in exe.forward(is_train=True)]
    negative = x < 0
    assert np.all((mask >= 0.1) & (mask <= 0.3)) and mask[negative].std() > 0.01
    np.testing.assert_allclose(out, np.where(negative, mask * x, x), rtol=1e-6)
    head = np.random.RandomState(0).uniform(size=200).astype(np.float32)
    exe.backward([mx.nd.array(head), mx.nd.zeros(200)])
    np.testing.assert_allclose(exe.grad_dict["x"].asnumpy(), np.where(negative, mask * head, head), rtol=1e-5)
