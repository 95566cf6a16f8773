"""mx.autograd on NDArrays: record / backward / grad / attach_grad against numpy's derivatives and float64 finite
differences, grad_req semantics, the tape's executor reuse, and MXNet's errors."""
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.runtime import tape

RNG = np.random.RandomState(3)


def _finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in range(x.size):
        up, down = x.copy().reshape(-1), x.copy().reshape(-1)
        up[i] += eps
        down[i] -= eps
        grad.reshape(-1)[i] = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * eps)
    return grad


def test_backward_of_a_composite_matches_finite_differences():
    a = RNG.uniform(-1, 1, (3, 4))
    w = RNG.uniform(-1, 1, (4, 2))

    def forward(nd, x, v):
        h = nd.tanh(nd.dot(x, v)) * 2 + x.sum(axis=1, keepdims=True) ** 2
        return (nd.log_softmax(h, axis=1) * h).sum()

    x, v = mx.nd.array(a, dtype="float64"), mx.nd.array(w, dtype="float64")
    x.attach_grad()
    v.attach_grad()
    with mx.autograd.record():
        loss = forward(mx.nd, x, v)
    loss.backward()

    def value(xa, wa):
        return float(forward(mx.nd, mx.nd.array(xa, dtype="float64"), mx.nd.array(wa, dtype="float64")).asscalar())
    np.testing.assert_allclose(x.grad.asnumpy(), _finite_difference(lambda t: value(t, w), a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(v.grad.asnumpy(), _finite_difference(lambda t: value(a, t), w), rtol=1e-6, atol=1e-8)


def test_head_gradients_reshape_and_slicing():
    data = RNG.uniform(-1, 1, (2, 3)).astype(np.float32)
    x = mx.nd.array(data)
    x.attach_grad()
    head = np.array([1.0, 10.0, 100.0], np.float32)
    with mx.autograd.record():
        y = mx.nd.exp(x).reshape((6,))[1:4]
    y.backward(mx.nd.array(head))
    expected = np.zeros(6, np.float32)
    expected[1:4] = head * np.exp(data.reshape(6)[1:4])
    np.testing.assert_allclose(x.grad.asnumpy(), expected.reshape(2, 3), rtol=1e-6)
    with mx.autograd.record():
        row = (x * 3)[1]
    row.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[0, 0, 0], [3, 3, 3]])


def test_grad_req_write_add_null_and_grad_function():
    x = mx.nd.array([1.0, 2.0])
    x.attach_grad(grad_req="add")
    for _ in range(3):
        with mx.autograd.record():
            y = (x * x).sum()
        y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [6.0, 12.0])
    x.attach_grad()         # write: a fresh zero buffer, overwritten by each backward
    with mx.autograd.record():
        y = mx.nd.sigmoid(x)
    grads = mx.autograd.grad(y, [x], head_grads=mx.nd.ones((2,)))
    s = 1 / (1 + np.exp(-np.array([1.0, 2.0])))
    np.testing.assert_allclose(grads[0].asnumpy(), s * (1 - s), rtol=1e-6)
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])       # grad() leaves .grad alone
    frozen = mx.nd.array([5.0, 6.0])
    g = mx.nd.zeros(2)
    mx.autograd.mark_variables([frozen], [g], grad_reqs="null")
    with mx.autograd.record():
        z = (frozen * x).sum()
    z.backward()
    np.testing.assert_array_equal(g.asnumpy(), [0, 0])
    np.testing.assert_array_equal(x.grad.asnumpy(), [5.0, 6.0])


def test_constants_and_unmarked_inputs_take_no_gradient():
    x = mx.nd.array([1.0, -2.0, 3.0])
    c = mx.nd.array([2.0, 2.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = (mx.nd.relu(x) * c + mx.nd.random.uniform(shape=(3,))).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [2.0, 0.0, 2.0])


def test_recording_state_scopes():
    assert not mx.autograd.is_recording() and not mx.autograd.is_training()
    with mx.autograd.record():
        assert mx.autograd.is_recording() and mx.autograd.is_training()
        with mx.autograd.pause():
            assert not mx.autograd.is_recording() and not mx.autograd.is_training()
        with mx.autograd.predict_mode():
            assert mx.autograd.is_recording() and not mx.autograd.is_training()
    with mx.autograd.train_mode():
        assert mx.autograd.is_training() and not mx.autograd.is_recording()
    assert mx.autograd.set_recording(True) is False
    assert mx.autograd.set_recording(False) is True
    x = mx.nd.ones(2)
    x.attach_grad()
    with mx.autograd.record():
        with mx.autograd.pause():
            paused = x * 2
        recorded = x * 2
    with pytest.raises(MXNetError, match="not in a computational graph"):
        paused.backward()
    recorded.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [2, 2])
    assert recorded.detach().grad is None


def test_in_place_writes_into_recorded_arrays_are_refused():
    x = mx.nd.ones(2)
    x.attach_grad()
    with mx.autograd.record():
        y = x * 2
        with pytest.raises(MXNetError, match="Inplace"):
            y += 1
        with pytest.raises(MXNetError, match="Inplace"):
            x[:] = 3


def test_a_training_loop_reuses_one_executor():
    w = mx.nd.array(RNG.uniform(-1, 1, (3, 1)))
    w.attach_grad()
    data = mx.nd.array(RNG.uniform(-1, 1, (8, 3)))
    target = mx.nd.dot(data, mx.nd.array([[1.0], [-2.0], [0.5]]))
    before = len(tape._EXECUTORS)
    for _ in range(60):
        with mx.autograd.record():
            loss = ((mx.nd.dot(data, w) - target) ** 2).mean()
        loss.backward()
        w[:] = w - 0.5 * w.grad
        x, wv, t = data.asnumpy(), (w + 0.5 * w.grad).asnumpy(), target.asnumpy()
        np.testing.assert_allclose(w.grad.asnumpy(), 2 / 8 * x.T @ (x @ wv - t), rtol=1e-4, atol=1e-6)
    assert len(tape._EXECUTORS) == before + 1
    assert float(loss.asscalar()) < 0.05


def test_get_symbol_and_errors():
    x = mx.nd.ones((2, 2))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.exp(x) + 1
    sym = mx.autograd.get_symbol(y)
    assert sym.list_arguments() == ["ag0"]
    with pytest.raises(NotImplementedError):
        mx.autograd.grad(y, [x], create_graph=True)
    with pytest.raises(MXNetError, match="marked"):
        mx.autograd.grad(y, [mx.nd.ones(2)])
    x.attach_grad(stype="row_sparse")             # the gradient buffer in that storage type, as MXNet's
    assert x.grad.stype == "row_sparse" and x.grad.asnumpy().tolist() == [[0, 0], [0, 0]]
    with mx.autograd.record():
        y = (x * mx.nd.array([[0, 0], [2, 3]])).sum()
    y.backward()
    assert x.grad.stype == "row_sparse" and x.grad.indices.asnumpy().tolist() == [1]
    np.testing.assert_array_equal(x.grad.asnumpy(), [[0, 0], [2, 3]])
    with pytest.raises(MXNetError, match="storage type"):
        x.attach_grad(stype="coo")
    assert x.tostype("default").asnumpy().tolist() == [[1, 1], [1, 1]]


def test_contrib_autograd_legacy_api():
    """mx.contrib.autograd (MXNet 1.x's first API): grad_and_loss, mark_variables + train_section + backward."""
    f = mx.contrib.autograd.grad_and_loss(lambda a, b: (a * b + mx.nd.exp(a)).sum())
    a, b = mx.nd.array([0.5, 1.0]), mx.nd.array([2.0, 3.0])
    (ga, gb), loss = f(a, b)
    np.testing.assert_allclose(ga.asnumpy(), [2.0 + np.exp(0.5), 3.0 + np.exp(1.0)], rtol=1e-6)
    np.testing.assert_allclose(gb.asnumpy(), [0.5, 1.0])
    np.testing.assert_allclose(loss.asscalar(), 0.5 * 2 + 3 + np.exp(0.5) + np.exp(1.0), rtol=1e-6)
    x, dx = mx.nd.array([1.0, 2.0]), mx.nd.zeros(2)
    mx.contrib.autograd.mark_variables([x], [dx])
    with mx.contrib.autograd.train_section():
        assert mx.autograd.is_recording() and mx.autograd.is_training()
        y = x * x
        with mx.contrib.autograd.test_section():
            assert not mx.autograd.is_recording()
    mx.contrib.autograd.backward([y], [mx.nd.array([1.0, 0.5])])
    np.testing.assert_array_equal(dx.asnumpy(), [2.0, 2.0])


def test_batchnorm_in_train_mode_under_record_is_mxnets():
    """Under record() ops run in train mode, as MXNet's: BatchNorm normalizes with the batch statistics, updates
    the moving ones (m * moving + (1 - m) * batch) and backward is the derivative through the batch statistics
    (the formulas of MXNet's test_operator.py::_test_batchnorm_impl, computed here with numpy)."""
    rng = np.random.RandomState(0)
    x = rng.randn(4, 3, 2).astype(np.float32)
    gamma, beta = (rng.rand(3) + 0.5).astype(np.float32), rng.randn(3).astype(np.float32)
    data, g, b = mx.nd.array(x), mx.nd.array(gamma), mx.nd.array(beta)
    moving_mean, moving_var = mx.nd.zeros(3), mx.nd.ones(3)
    for array in (data, g, b):
        array.attach_grad()
    ograd = rng.randn(*x.shape).astype(np.float32)
    with mx.autograd.record():
        y = mx.nd.BatchNorm(data, g, b, moving_mean, moving_var, fix_gamma=False, momentum=0.9, eps=1e-3)
    y.backward(mx.nd.array(ograd))
    mean, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    inv = 1 / np.sqrt(var + 1e-3)
    nx = (x - mean) * inv
    np.testing.assert_allclose(y.asnumpy(), nx * gamma.reshape(1, 3, 1) + beta.reshape(1, 3, 1), atol=1e-5)
    np.testing.assert_allclose(moving_mean.asnumpy(), 0.1 * mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(moving_var.asnumpy(), 0.9 + 0.1 * var.ravel(), rtol=1e-5)
    dnx = ograd * gamma.reshape(1, 3, 1)
    centered = x - mean
    dvar = (dnx * centered).sum((0, 2), keepdims=True) * -0.5 * inv ** 3
    dmean = -inv * dnx.sum((0, 2), keepdims=True) - dvar * centered.mean((0, 2), keepdims=True) * 2
    np.testing.assert_allclose(data.grad.asnumpy(), dnx * inv + dvar * centered * (2 / 8) + dmean / 8, atol=1e-5)
    np.testing.assert_allclose(g.grad.asnumpy(), (ograd * nx).sum((0, 2)), rtol=1e-5)
    np.testing.assert_allclose(b.grad.asnumpy(), ograd.sum((0, 2)), rtol=1e-5)
    # predict mode: the moving statistics normalize and stay as they are
    before = moving_mean.asnumpy()
    with mx.autograd.record(train_mode=False):
        z = mx.nd.BatchNorm(data, g, b, moving_mean, moving_var, fix_gamma=False, eps=1e-3)
    np.testing.assert_array_equal(moving_mean.asnumpy(), before)
    expected = (x - before.reshape(1, 3, 1)) / np.sqrt(moving_var.asnumpy().reshape(1, 3, 1) + 1e-3)
    np.testing.assert_allclose(z.asnumpy(), expected * gamma.reshape(1, 3, 1) + beta.reshape(1, 3, 1), atol=1e-5)
    with mx.autograd.record():
        mixed = mx.nd.BatchNorm(data, g, b, moving_mean, moving_var) + z
    with pytest.raises(MXNetError, match="train mode and in predict mode"):
        mixed.backward()


def test_dropout_in_train_mode():
    """train_mode(): Dropout drops (factor 1/(1-p)) and follows mx.random.seed; outside it, identity. Recording a
    train-mode Dropout is refused with a clear error (its mask would be drawn again by backward)."""
    x = mx.nd.ones((40, 50))
    with mx.autograd.train_mode():
        mx.random.seed(3)
        first = mx.nd.Dropout(x, p=0.5).asnumpy()
        mx.random.seed(3)
        second = mx.nd.Dropout(x, p=0.5).asnumpy()
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 2.0} and 0.4 < (first == 0).mean() < 0.6
    np.testing.assert_array_equal(mx.nd.Dropout(x, p=0.5).asnumpy(), x.asnumpy())
    x.attach_grad()
    with mx.autograd.record():
        with pytest.raises(MXNetError, match="train mode draws random values"):
            mx.nd.Dropout(x, p=0.5)


def test_multinomial_log_probability_under_autograd():
    """MXNet's test_sample_multinomial: the gradient of the log-probabilities of the drawn classes (recorded) is
    head / p at each drawn class, summed; the tape replays the draw rather than drawing again."""
    x = mx.nd.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]) / 10.0
    dx = mx.nd.ones_like(x)
    mx.autograd.mark_variables([x], [dx])
    with mx.autograd.record():
        y, prob = mx.nd.random.multinomial(x, shape=500, get_prob=True, dtype="uint8")
        (prob * 5).backward()
    drawn, p = y.asnumpy().astype(np.int64), x.asnumpy()
    np.testing.assert_allclose(prob.asnumpy(), np.log(np.take_along_axis(p, drawn, 1)), rtol=1e-6)
    expected = np.zeros((2, 5))
    for row in range(2):
        np.add.at(expected[row], drawn[row], 5.0 / p[row, drawn[row]])
    np.testing.assert_allclose(dx.asnumpy(), expected, rtol=1e-5)
