"""Conventions of MXNet's Python layer that its own tests (and users' programs) rely on: None for an input the op
does not have, grad_req entries for names that are no arguments, Pooling's extra pad entries, run-time index errors
as IndexError, broadcast_like with an rhs of another dtype, 3-D dilated convolution."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import onnxsym as mx
from tests.ops.test_conv import _conv


def test_none_for_an_input_the_op_does_not_have():
    x, w = mx.sym.Variable("x"), mx.sym.Variable("w")
    conv = mx.sym.Convolution(x, w, None, num_filter=2, kernel=(1, 1), no_bias=True)
    assert conv.list_arguments() == ["x", "w"]
    resize = mx.sym.contrib.BilinearResize2D(x, None, height=4, width=4)
    assert resize.list_arguments() == ["x"]


def test_grad_req_names_that_are_no_arguments_are_ignored_with_a_warning():
    conv = mx.sym.Convolution(mx.sym.Variable("x"), mx.sym.Variable("w"), num_filter=1, kernel=(1, 1), no_bias=True)
    args = {"x": mx.nd.ones((1, 1, 2, 2)), "w": mx.nd.ones((1, 1, 1, 1))}
    grads = {"x": mx.nd.zeros((1, 1, 2, 2)), "w": mx.nd.zeros((1, 1, 1, 1))}
    with pytest.warns(UserWarning, match="grad_req names b, which is not an argument"):
        exe = conv.bind(mx.cpu(), args, args_grad=grads, grad_req={"x": "write", "w": "null", "b": "write"})
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((1, 1, 2, 2)))
    assert grads["x"].asnumpy().tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    assert grads["w"].asnumpy().tolist() == [[[[0.0]]]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv.bind(mx.cpu(), args, args_grad=grads, grad_req={"x": "write"})


def test_pooling_reads_the_first_pad_and_stride_entries():
    data = mx.nd.array(np.arange(10, dtype=np.float32).reshape(1, 1, 10))
    out = mx.nd.Pooling(data, kernel=2, stride=2, pad=(0, 0, 0), pool_type="max", pooling_convention="same")
    assert out.asnumpy().ravel().tolist() == [1, 3, 5, 7, 9]
    with pytest.raises(mx.MXNetError, match="pad"):
        mx.sym.Pooling(mx.sym.Variable("x"), kernel=(2, 2), pad=(1,))      # fewer entries than the kernel: refused


def test_indices_out_of_bounds_raise_index_error():
    data = mx.nd.array([[0, 1, 2], [3, 4, 5]])
    for indices in ([[0, 1, 0], [0, 1, 3]], [[0, 1, 0], [0, 1, -5]]):
        with pytest.raises(IndexError):
            mx.nd.gather_nd(data, mx.nd.array(indices)).asnumpy()
    late = mx.nd.take(data, mx.nd.array([7]), mode="raise")     # raised at the read, as MXNet's engine does
    with pytest.raises(mx.MXNetError):          # an MXNetError too
        late.asnumpy()
    # take(mode='raise') takes [0, size) as MXNet's does: a negative index is out of bounds (Gather would wrap it)
    with pytest.raises(IndexError):
        mx.nd.take(data, mx.nd.array([-1]), mode="raise").asnumpy()
    sym = mx.sym.take(mx.sym.Variable("a"), mx.sym.Variable("i"), mode="raise")
    exe = sym.bind(mx.cpu(), args={"a": data, "i": mx.nd.array([5])})
    outputs = exe.forward()
    with pytest.raises(IndexError):
        outputs[0].asnumpy()
    exe.arg_dict["i"][:] = 1
    assert exe.forward()[0].asnumpy().tolist() == [[3.0, 4.0, 5.0]]     # a new forward clears it
    wrapped = mx.nd.gather_nd(data, mx.nd.array([[0, 1, -1], [0, 1, -2]]))     # negative indices wrap
    assert wrapped.asnumpy().tolist() == [0.0, 4.0, 4.0]      # (0, 0), (1, 1), (-1, -2) = (1, 1)


def test_broadcast_like_reads_only_the_shape_of_rhs():
    z = mx.nd.broadcast_like(mx.nd.zeros((2, 1)), mx.nd.ones((2, 2)).astype("int32"))
    assert z.dtype == np.float32 and z.asnumpy().tolist() == [[0, 0], [0, 0]]


def test_dilated_3d_convolution_against_numpy():
    rng = np.random.RandomState(0)
    x, w = rng.randn(1, 2, 6, 5, 6).astype(np.float32), rng.randn(3, 2, 2, 3, 2).astype(np.float32)
    out = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(w), num_filter=3, kernel=(2, 3, 2), dilate=(2, 1, 3),
                            pad=(1, 0, 1), no_bias=True)
    np.testing.assert_allclose(out.asnumpy(), _conv(x, w, pad=(1, 0, 1), dilate=(2, 1, 3)), rtol=1e-4, atol=1e-4)
    sym = mx.sym.Convolution(mx.sym.Variable("x"), mx.sym.Variable("w"), num_filter=3, kernel=(2, 3, 2),
                             dilate=(2, 1, 3), pad=(1, 0, 1), no_bias=True)
    mx.test_utils.check_numeric_gradient(sym, [x, w], numeric_eps=1e-2, rtol=5e-2, atol=5e-2)


def test_operator_introspection_as_mxnets():
    ops = mx.operator.get_all_registered_operators()
    assert isinstance(ops, list) and "Activation" in ops and "_contrib_box_nms" in ops and "box_nms" not in ops
    args = mx.operator.get_operator_arguments("Activation")
    assert isinstance(args, mx.operator.OperatorArguments)
    assert args.names == ["data", "act_type"] and args.narg == 2     # MXNet 1.9.1's own answer
    assert args.types == ["NDArray-or-Symbol", "{'relu', 'sigmoid', 'softrelu', 'softsign', 'tanh'}, required"]
    conv = mx.operator.get_operator_arguments("Convolution")
    assert conv.names[:3] == ["data", "weight", "bias"]
    assert conv.types[conv.names.index("no_bias")] == "boolean, optional, default=0"
    assert mx.operator.get_operator_arguments("add_n").types == ["NDArray-or-Symbol[]"]
    with pytest.raises(mx.MXNetError, match="Failed to find operator"):
        mx.operator.get_operator_arguments("NoSuchOp")


def test_legacy_python_operators():
    class Square(mx.operator.NumpyOp):
        def __init__(self):
            super().__init__(need_top_grad=True)

        def forward(self, in_data, out_data):
            out_data[0][:] = in_data[0] ** 2

        def backward(self, out_grad, in_data, out_data, in_grad):
            in_grad[0][:] = 2 * in_data[0] * out_grad[0]

    class Twice(mx.operator.NDArrayOp):
        def forward(self, in_data, out_data):
            out_data[0][:] = in_data[0] * 2

        def backward(self, out_grad, in_data, out_data, in_grad):
            in_grad[0][:] = out_grad[0] * 2

    with pytest.warns(UserWarning, match="deprecated"):
        square, twice = Square(), Twice()
    x = mx.sym.Variable("x")
    y = twice.get_symbol(square(x, name="sq"), name="tw")
    assert y.list_arguments() == ["x"]
    grad = mx.nd.zeros((3,))
    exe = y.bind(mx.cpu(), args=[mx.nd.array([1.0, -2.0, 3.0])], args_grad={"x": grad})
    assert exe.forward(is_train=True)[0].asnumpy().tolist() == [2.0, 8.0, 18.0]
    exe.backward(mx.nd.ones((3,)))
    assert grad.asnumpy().tolist() == [4.0, -8.0, 12.0]       # d(2 x^2)/dx


def test_thread_count_from_mxnets_environment_variables():
    """MXNet sizes its operator thread pool from OMP_NUM_THREADS, else MXNET_OMP_MAX_THREADS, else one thread per
    physical core; sessions here take the same count (0 = ONNX Runtime's one per physical core)."""
    from onnxsym.runtime.ort import threads_from_environment
    assert threads_from_environment({}) == 0
    assert threads_from_environment({"OMP_NUM_THREADS": "1"}) == 1
    assert threads_from_environment({"OMP_NUM_THREADS": " 3 "}) == 3
    assert threads_from_environment({"OMP_NUM_THREADS": "2,1"}) == 2
    assert threads_from_environment({"MXNET_OMP_MAX_THREADS": "4"}) == 4
    assert threads_from_environment({"OMP_NUM_THREADS": "1", "MXNET_OMP_MAX_THREADS": "4"}) == 1
    for bad in ("0", "-2", "two", ""):
        assert threads_from_environment({"OMP_NUM_THREADS": bad}) == 0


@pytest.mark.parametrize("value,expected", [("1", 1), ("3", 3), (None, 0)])
def test_sessions_take_omp_num_threads_at_import(value, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS")}
    if value is not None:
        env["OMP_NUM_THREADS"] = value
    code = ("import onnxsym as mx\n"
            "from onnxsym.runtime import ort\n"
            "exe = (mx.sym.var('x') * 2).bind(mx.cpu(), {'x': mx.nd.ones((2,))})\n"
            "print(exe.forward()[0].asnumpy().tolist(), ort.session_options().intra_op_num_threads)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("]")[-1].split() == [str(expected)] and out.stdout.startswith("[2.0, 2.0]")
