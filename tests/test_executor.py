"""bind / simple_bind / Executor: argument handling, zero-copy IOBinding, errors and reshape."""
import numpy as np
import onnx
from onnx import numpy_helper
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError


def fc_net():
    return mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc")


def params(rng):
    return {"data": rng.uniform(-1, 1, (4, 5)).astype(np.float32),
            "fc_weight": rng.uniform(-1, 1, (3, 5)).astype(np.float32),
            "fc_bias": rng.uniform(-1, 1, (3,)).astype(np.float32)}


def reference(p):
    return p["data"] @ p["fc_weight"].T + p["fc_bias"]


def test_bind_dict_and_list_give_the_numpy_result():
    p = params(np.random.RandomState(0))
    net = fc_net()
    by_dict = net.bind(mx.cpu(), {k: mx.nd.array(v) for k, v in p.items()})
    by_list = net.bind(mx.cpu(), [mx.nd.array(p[n]) for n in net.list_arguments()])
    for exe in (by_dict, by_list):
        out = exe.forward()
        assert out is exe.outputs and len(out) == 1
        np.testing.assert_allclose(out[0].asnumpy(), reference(p), rtol=1e-5)
    assert sorted(by_dict.arg_dict) == ["data", "fc_bias", "fc_weight"]
    assert by_dict.grad_dict == {"data": None, "fc_weight": None, "fc_bias": None}
    assert list(by_dict.output_dict) == ["fc_output"]


def test_arrays_are_bound_zero_copy():
    p = params(np.random.RandomState(1))
    exe = fc_net().bind(mx.cpu(), {k: mx.nd.array(v) for k, v in p.items()})
    out = exe.outputs[0]
    exe.forward()
    new_data = np.random.RandomState(2).uniform(-1, 1, (4, 5)).astype(np.float32)
    exe.arg_dict["data"][:] = new_data                        # in-place write, no rebinding
    exe.forward()
    assert exe.outputs[0] is out                              # outputs are written in place
    np.testing.assert_allclose(out.asnumpy(), reference(dict(p, data=new_data)), rtol=1e-5)
    exe.forward(data=mx.nd.array(p["data"]))                  # keyword inputs copy into the bound array
    np.testing.assert_allclose(out.asnumpy(), reference(p), rtol=1e-5)
    exe.forward(data=p["data"] * 2)                           # numpy arrays too
    np.testing.assert_allclose(out.asnumpy(), reference(dict(p, data=p["data"] * 2)), rtol=1e-5)


def test_bind_errors():
    p = {k: mx.nd.array(v) for k, v in params(np.random.RandomState(0)).items()}
    net = fc_net()
    with pytest.raises(ValueError, match="fc_bias"):
        net.bind(mx.cpu(), {"data": p["data"], "fc_weight": p["fc_weight"]})
    with pytest.raises(ValueError, match="Length of args"):
        net.bind(mx.cpu(), [p["data"]])
    with pytest.raises(TypeError):
        net.bind(mx.cpu(), "data")
    with pytest.raises(TypeError, match="NDArray"):
        net.bind(mx.cpu(), dict(p, data=np.zeros((4, 5))))
    with pytest.raises(mx.MXNetError, match=r"fc_weight.*\(3, 5\).*\(3, 4\)|\(3, 4\).*\(3, 5\)"):
        net.bind(mx.cpu(), dict(p, fc_weight=mx.nd.zeros((3, 4))))
    with pytest.raises(ValueError, match="grad_req"):
        net.bind(mx.cpu(), p, args_grad={"data": mx.nd.zeros((4, 5))}, grad_req="sometimes")
    exe = net.bind(mx.cpu(), p)
    with pytest.raises(TypeError, match="Unknown argument dta"):
        exe.forward(dta=p["data"])
    with pytest.raises(ValueError, match=r"Shape not match! Argument data, need: \(4, 5\), received: \(2, 5\)"):
        exe.forward(data=mx.nd.zeros((2, 5)))
    with pytest.raises(ValueError):
        exe.forward(data=[1, 2])


def test_simple_bind_allocates_from_inferred_shapes():
    net = mx.sym.Activation(fc_net(), act_type="relu")
    exe = net.simple_bind(mx.cpu(), data=(8, 5))
    assert {k: v.shape for k, v in exe.arg_dict.items()} == {"data": (8, 5), "fc_weight": (3, 5), "fc_bias": (3,)}
    assert {k: v.shape for k, v in exe.grad_dict.items()} == {"data": (8, 5), "fc_weight": (3, 5), "fc_bias": (3,)}
    assert exe.outputs[0].shape == (8, 3)
    exe = net.simple_bind(mx.cpu(), grad_req={"fc_weight": "write"}, data=(8, 5))
    assert exe.grad_dict["data"] is None and exe.grad_dict["fc_weight"].shape == (3, 5)
    exe = net.simple_bind(mx.cpu(), type_dict={"data": "float64"}, data=(2, 5))
    assert exe.arg_dict["fc_weight"].dtype == np.float64 and exe.outputs[0].dtype == np.float64
    exe.arg_dict["data"][:] = 1
    exe.arg_dict["fc_weight"][:] = 0.5
    exe.arg_dict["fc_bias"][:] = -1
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), np.full((2, 3), 1.5))
    with pytest.raises(mx.MXNetError, match="data"):
        net.simple_bind(mx.cpu())


def test_copy_params_from_and_eval():
    p = params(np.random.RandomState(3))
    exe = fc_net().simple_bind(mx.cpu(), data=(4, 5), grad_req="null")
    exe.copy_params_from({"fc_weight": mx.nd.array(p["fc_weight"]), "fc_bias": mx.nd.array(p["fc_bias"])})
    exe.arg_dict["data"][:] = p["data"]
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), reference(p), rtol=1e-5)
    with pytest.raises(ValueError, match="not in the arguments"):
        exe.copy_params_from({"other": mx.nd.zeros(1)})
    exe.copy_params_from({"other": mx.nd.zeros(1)}, allow_extra_params=True)
    outs = fc_net().eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in p.items()})
    np.testing.assert_allclose(outs[0].asnumpy(), reference(p), rtol=1e-5)


def test_reshape_shares_parameters():
    p = params(np.random.RandomState(4))
    exe = fc_net().bind(mx.cpu(), {k: mx.nd.array(v) for k, v in p.items()})
    small = exe.reshape(data=(2, 5))
    assert small.arg_dict["fc_weight"] is exe.arg_dict["fc_weight"]
    small.arg_dict["data"][:] = p["data"][:2]
    np.testing.assert_allclose(small.forward()[0].asnumpy(), reference(p)[:2], rtol=1e-5)
    with pytest.raises(MXNetError, match="larger than original"):
        exe.reshape(data=(8, 5))
    big = exe.reshape(allow_up_sizing=True, data=(8, 5))
    assert big.outputs[0].shape == (8, 3)
    base = fc_net().simple_bind(mx.cpu(), data=(4, 5))
    with pytest.raises(MXNetError, match="partial_shaping"):
        base.reshape(data=(2, 6))
    assert base.reshape(partial_shaping=True, allow_up_sizing=True, data=(4, 6)).arg_dict["fc_weight"].shape == (3, 6)


def test_group_outputs_run_together():
    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    group = mx.sym.Group([a * b, a + b, a * b])
    exe = group.bind(mx.cpu(), {"a": mx.nd.array([2.0]), "b": mx.nd.array([5.0])})
    assert [o.asscalar() for o in exe.forward()] == [10.0, 7.0, 10.0]


def test_backward_without_forward_runs_the_forward_first():
    # MXNet differentiates whatever its buffers hold (test_repeat calls backward right after bind); here the
    # training forward runs first, so the gradient is right for any op
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = mx.sym.Variable("x")
    exe = (mx.sym.repeat(x, repeats=2, axis=0) * x.repeat(repeats=2, axis=0)).bind(
        mx.cpu(), args=[mx.nd.array(data)], args_grad=[mx.nd.zeros((2, 3))])
    head = np.arange(12, dtype=np.float32).reshape(4, 3)
    exe.backward(mx.nd.array(head))
    want = (2 * np.repeat(data, 2, axis=0) * head).reshape(2, 2, 3).sum(axis=1)
    np.testing.assert_allclose(exe.grad_arrays[0].asnumpy(), want)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), np.repeat(data, 2, axis=0) ** 2)


def test_simple_bind_ignores_keywords_that_are_no_shapes():
    # MXNet reads only tuples as shapes (tests pass op attributes: simple_bind(ctx, a=(3, 4), axis=-1, mode='clip'))
    sym = mx.sym.take(mx.sym.Variable("a"), mx.sym.Variable("indices"), axis=-1, mode="clip")
    exe = sym.simple_bind(mx.cpu(), a=(3, 4), indices=(2,), axis=-1, mode="clip")
    assert exe.outputs[0].shape == (3, 2)
    with pytest.raises(TypeError, match="shape of 'a'"):
        sym.simple_bind(mx.cpu(), a=3, indices=(2,))


def test_inputs_left_out_by_keyword_none():
    # MXNet's generated functions skip None inputs: SequenceReverse(data, sequence_length=None)
    rev = mx.sym.SequenceReverse(data=mx.sym.Variable("d"), sequence_length=None, use_sequence_length=False)
    assert rev.list_arguments() == ["d"]
    out = mx.nd.SequenceReverse(mx.nd.array(np.arange(3.0).reshape(3, 1)), sequence_length=None)
    assert out.asnumpy().ravel().tolist() == [2.0, 1.0, 0.0]


def test_reshape_shares_output_memory_as_mxnets():
    # MXNet's test_reshape: a smaller executor writes its outputs into the original executor's output memory
    sym = mx.sym.FullyConnected(mx.sym.Variable("x"), num_hidden=4)
    exe = sym.simple_bind(mx.cpu(), x=(5, 4), grad_req="null")
    exe.arg_arrays[0][:] = 1
    exe.arg_arrays[1][:] = mx.nd.ones((4, 4))
    exe.arg_arrays[2][:] = 0
    small = exe.reshape(x=(3, 4))
    small.forward(is_train=False)
    assert (small.outputs[0].asnumpy() == 4).all() and (exe.outputs[0].asnumpy()[:3] == 4).all()
    assert (exe.outputs[0].asnumpy()[3:] == 0).all()
    big = exe.reshape(allow_up_sizing=True, x=(6, 4))
    big.forward()
    assert big.outputs[0].shape == (6, 4) and (big.outputs[0].asnumpy() == 0).all()   # new memory: x is new zeros
    assert (exe.outputs[0].asnumpy()[:3] == 4).all()


def test_training_graph_keeps_no_input_sized_constant(tmp_path, monkeypatch):
    """The training graph ONNX Runtime optimizes holds no constant anywhere near an activation's size: a
    MaxPool gradient's zeros made by a constant Expand were folded into an initializer the size of the pooled
    input, held for the session's life (ResNet-18 at batch 16: 50 MB)."""
    from onnxsym.runtime import ort as runtime_ort
    made = runtime_ort.session_options

    def saving():
        options = made()
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        return options

    monkeypatch.setattr(runtime_ort, "session_options", saving)
    x = mx.sym.var("data")
    net = mx.sym.Pooling(mx.sym.Convolution(x, num_filter=8, kernel=(3, 3), pad=(1, 1), name="conv"),
                         kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=4, name="fc"), name="softmax")
    exe = net.simple_bind(mx.cpu(), data=(8, 3, 32, 32))
    for array in exe.arg_arrays:
        array[:] = np.random.RandomState(0).uniform(-1, 1, array.shape)
    exe.forward(is_train=True)
    exe.backward()
    pooled_input = 8 * 8 * 32 * 32 * 4
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    sizes = [numpy_helper.to_array(t).nbytes for t in optimized.graph.initializer]
    assert sizes and max(sizes) < pooled_input / 8, max(sizes)
