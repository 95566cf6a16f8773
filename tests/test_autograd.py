"""Executor training API: forward(is_train=True) / backward with MXNet's grad_req semantics and errors."""
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.test_utils import check_numeric_gradient, check_symbolic_backward


def test_seed_tutorial_backward_with_args_grad():
    A, B, D = mx.sym.Variable('A'), mx.sym.Variable('B'), mx.sym.Variable('D')
    E = A * B + D
    a, b, d = mx.nd.array([5.0]), mx.nd.ones(1), mx.nd.ones(1)
    grads = {'A': mx.nd.zeros(1), 'B': mx.nd.zeros(1), 'D': mx.nd.zeros(1)}
    executor = E.bind(ctx=mx.cpu(), args={'A': a, 'B': b, 'D': d}, args_grad=grads)
    executor.forward(is_train=True)
    executor.backward(mx.nd.ones(1) * 2)
    assert [grads[k].asscalar() for k in 'ABD'] == [2.0, 10.0, 2.0]


def test_issue_program_blockgrad_makeloss():
    v1, v2, v3 = mx.nd.array([[1, 1]]), mx.nd.array([[2, 2]]), mx.nd.array([[3, 3]])
    a, b, c = mx.sym.Variable('a'), mx.sym.Variable('b'), mx.sym.Variable('c')
    d = b + c
    loss = mx.sym.MakeLoss(mx.sym.BlockGrad(3 * d) + a)
    ex = loss.simple_bind(ctx=mx.cpu(), a=(1, 2), b=(1, 2), c=(1, 2))
    out = ex.forward(is_train=True, a=v1, b=v2, c=v3)
    np.testing.assert_array_equal(out[0].asnumpy(), [[16, 16]])
    ex.backward()
    assert {k: v.asnumpy().tolist() for k, v in ex.grad_dict.items()} == {
        'a': [[1, 1]], 'b': [[0, 0]], 'c': [[0, 0]]}


def test_mlp_softmax_output_gradients():
    """(softmax - onehot(label)) propagated through relu and FullyConnected, as MXNet computes it."""
    net = mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=6, name='fc')
    net = mx.sym.Activation(net, act_type='relu', name='relu')
    net = mx.sym.SoftmaxOutput(net, name='softmax')
    rng = np.random.RandomState(0)
    x, w, bias = rng.randn(5, 4), rng.randn(6, 4), rng.randn(6)
    label = np.array([0, 3, 5, 1, 2])
    args = {'data': mx.nd.array(x), 'fc_weight': mx.nd.array(w), 'fc_bias': mx.nd.array(bias),
            'softmax_label': mx.nd.array(label)}
    grads = {'fc_weight': mx.nd.zeros((6, 4)), 'fc_bias': mx.nd.zeros(6)}
    exe = net.bind(mx.cpu(), args=args, args_grad=grads)
    assert exe.grad_dict['data'] is None and exe.grad_dict['softmax_label'] is None
    exe.forward(is_train=True)
    exe.backward()
    z = x.astype(np.float32) @ w.astype(np.float32).T + bias.astype(np.float32)
    h = np.maximum(z, 0)
    p = np.exp(h - h.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), p, rtol=1e-5)
    dz = (p - np.eye(6)[label]) * (z > 0)
    np.testing.assert_allclose(grads['fc_bias'].asnumpy(), dz.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads['fc_weight'].asnumpy(), dz.T @ x, rtol=1e-4, atol=1e-5)


def _tanh_net():
    return mx.sym.tanh(mx.sym.FullyConnected(mx.sym.Variable('x'), num_hidden=3, name='fc'))


def _bound(grad_req, **extra):
    rng = np.random.RandomState(1)
    args = {'x': mx.nd.array(rng.randn(2, 4)), 'fc_weight': mx.nd.array(rng.randn(3, 4)),
            'fc_bias': mx.nd.array(rng.randn(3))}
    grads = {k: mx.nd.zeros(v.shape) for k, v in args.items()}
    return _tanh_net().bind(mx.cpu(), args=args, args_grad=grads, grad_req=grad_req, **extra), grads


def test_grad_req_write_add_null():
    exe, grads = _bound({'x': 'null', 'fc_weight': 'write', 'fc_bias': 'add'})
    head = mx.nd.ones((2, 3))
    exe.forward(is_train=True)
    exe.backward(head)
    first_w, first_b = grads['fc_weight'].asnumpy(), grads['fc_bias'].asnumpy()
    assert np.abs(first_w).sum() > 0 and np.all(grads['x'].asnumpy() == 0)
    exe.forward(is_train=True)
    exe.backward(head)
    np.testing.assert_allclose(grads['fc_weight'].asnumpy(), first_w, rtol=1e-6)      # write replaces
    np.testing.assert_allclose(grads['fc_bias'].asnumpy(), 2 * first_b, rtol=1e-6)    # add accumulates
    assert exe.grad_dict['x'] is grads['x'] and np.all(grads['x'].asnumpy() == 0)    # null: left untouched


def test_grad_req_list_and_string_forms():
    exe, grads = _bound(['write', 'null', 'add'])
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((2, 3)))
    assert np.all(grads['fc_weight'].asnumpy() == 0) and np.abs(grads['x'].asnumpy()).sum() > 0
    exe, _ = _bound('null')
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((2, 3)))          # nothing to compute, no error


def test_backward_errors():
    exe, _ = _bound('write')
    exe.forward(is_train=True)
    with pytest.raises(mx.MXNetError, match="not a loss.*MakeLoss"):
        exe.backward()
    exe.forward(is_train=True)
    with pytest.raises(mx.MXNetError, match=r"shape \(3, 2\).*\(2, 3\)"):
        exe.backward(mx.nd.ones((3, 2)))
    with pytest.raises(ValueError, match="sometimes"):
        _bound('sometimes')
    with pytest.raises(mx.MXNetError, match="fc_weight"):
        _tanh_net().bind(mx.cpu(), args={'x': mx.nd.ones((2, 4)), 'fc_weight': mx.nd.ones((3, 4)),
                                         'fc_bias': mx.nd.ones(3)}, args_grad={'fc_weight': mx.nd.ones((4, 3))})


def test_unreachable_arguments_get_zero_gradients():
    a, b = mx.sym.Variable('a'), mx.sym.Variable('b')
    loss = mx.sym.MakeLoss(mx.sym.sum(a * 2) + mx.sym.sum(mx.sym.BlockGrad(b)))
    exe = loss.simple_bind(mx.cpu(), a=(3,), b=(3,))
    exe.grad_dict['b'][:] = 5
    exe.forward(is_train=True)
    exe.backward()
    assert exe.grad_dict['a'].asnumpy().tolist() == [2, 2, 2] and exe.grad_dict['b'].asnumpy().tolist() == [0] * 3


def test_mixed_loss_and_plain_heads():
    a = mx.sym.Variable('a')
    group = mx.sym.Group([mx.sym.MakeLoss(mx.sym.sum(a)), mx.sym.square(a), mx.sym.argmax(a, axis=0)])
    exe = group.simple_bind(mx.cpu(), a=(3,))
    exe.arg_dict['a'][:] = [1.0, 2.0, 3.0]
    exe.forward(is_train=True)
    exe.backward([None, mx.nd.array([1.0, 0.5, 0.0]), None])
    np.testing.assert_allclose(exe.grad_dict['a'].asnumpy(), [1 + 2, 1 + 2, 1 + 0])


def test_test_utils_helpers():
    rng = np.random.RandomState(2)
    location = {'x': rng.randn(2, 4), 'fc_weight': rng.randn(3, 4), 'fc_bias': rng.randn(3)}
    check_numeric_gradient(_tanh_net(), location)
    check_numeric_gradient(_tanh_net(), location, dtype=np.float64)
    x = mx.sym.Variable('x')
    values = rng.randn(2, 3)
    head = rng.randn(2, 3)
    check_symbolic_backward(x * x, [values], [head], [2 * values * head], rtol=1e-5, atol=1e-6)
    check_symbolic_backward(x * x, [values], [head], [2 * values * head], rtol=1e-5, atol=1e-6, grad_req='add')
    with pytest.raises(AssertionError):
        check_symbolic_backward(x * x, [values], [head], [values * head])


def test_training_graph_built_once_and_reshape_keeps_grads():
    exe, grads = _bound('write')
    exe.forward(is_train=True)
    graph = exe._training
    exe.backward(mx.nd.ones((2, 3)))
    exe.forward(is_train=True)
    assert exe._training is graph
    small = exe.reshape(x=(1, 4))
    assert small.grad_dict['fc_weight'] is grads['fc_weight']
    small.forward(is_train=True)
    small.backward(mx.nd.ones((1, 3)))


def test_softmax_output_out_grad_multiplies_the_head_gradient():
    """out_grad=True: grad = grad_scale * (softmax - onehot) * head_grad (MXNet softmax_output-inl.h). The MXNet
    1.9.1 wheel gives (softmax - onehot) * softmax instead (its output buffer is reused for the head gradient);
    onnxsym follows the operator's definition."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    label = np.array([1, 0, 3], np.float32)
    head = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    sym = mx.sym.SoftmaxOutput(mx.sym.Variable('x'), name='so', out_grad=True, grad_scale=2.0)
    grad = mx.nd.zeros((3, 4))
    exe = sym.bind(mx.cpu(), {'x': mx.nd.array(x), 'so_label': mx.nd.array(label)}, args_grad={'x': grad})
    p = exe.forward(is_train=True)[0].asnumpy()
    exe.backward(mx.nd.array(head))
    np.testing.assert_allclose(grad.asnumpy(), 2.0 * (p - np.eye(4)[[1, 0, 3]]) * head, rtol=1e-5, atol=1e-6)
    with pytest.raises(mx.MXNetError, match="head gradient"):
        exe.forward(is_train=True)
        exe.backward()
