"""mx.onnx.export_training_model: the training graph as one plain .onnx that ONNX Runtime alone trains with.

Truth: onnxsym's Executor (forward(is_train=True) + backward(), whose gradients the registry-wide tests check
against finite differences and MXNet 1.9.1) followed by the same SGD update in numpy; the file runs in a bare
onnxruntime.InferenceSession, without onnxsym in the loop."""
import numpy as np
import onnx
import onnxruntime
import pytest

import onnxsym as mx


def _net(no_bias=False):
    data = mx.sym.Variable("data")
    net = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), no_bias=no_bias, name="conv")
    net = mx.sym.BatchNorm(net, fix_gamma=False, momentum=0.8, name="bn")
    net = mx.sym.Activation(net, act_type="tanh")
    net = mx.sym.FullyConnected(mx.sym.Flatten(net), num_hidden=3, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _start(sym, shapes):
    exe = sym.simple_bind(mx.cpu(), **shapes)
    rng = np.random.RandomState(0)
    for name, array in exe.arg_dict.items():
        if name not in shapes:
            array[:] = rng.uniform(-0.5, 0.5, array.shape)
    exe.aux_dict["bn_moving_var"][:] = 1.0
    return exe


def _batches(steps, rng):
    return [(rng.uniform(-1, 1, (4, 2, 6, 6)).astype(np.float32), rng.randint(0, 3, 4).astype(np.float32))
            for _ in range(steps)]


def test_sgd_training_file_trains_as_onnxsym_does(tmp_path):
    sym = _net()
    shapes = {"data": (4, 2, 6, 6), "softmax_label": (4,)}
    exe = _start(sym, shapes)
    params = {**{n: a.copy() for n, a in exe.arg_dict.items() if n not in shapes},
              **{n: a.copy() for n, a in exe.aux_dict.items()}}
    path = mx.onnx.export_training_model(sym, params, [(4, 2, 6, 6)], onnx_file_path=str(tmp_path / "train.onnx"),
                                         optimizer="sgd")
    with np.load(str(tmp_path / "train.npz")) as saved:       # the starting point, beside the model
        state = dict(saved)
    assert sorted(state) == sorted(params)
    assert not [t.name for t in onnx.load(path).graph.initializer if t.name in params]
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    rate = np.array(0.05, np.float32)
    for x, y in _batches(3, np.random.RandomState(1)):
        feeds = {"data": x, "softmax_label": y, "learning_rate": rate, **state}
        values = dict(zip(outputs, session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})))
        state = {name: values[name + "_new"] for name in state}
        # the same step through onnxsym
        exe.arg_dict["data"][:] = x
        exe.arg_dict["softmax_label"][:] = y
        exe.forward(is_train=True)
        exe.backward()
        for name, grad in exe.grad_dict.items():
            if name in params:
                exe.arg_dict[name][:] = exe.arg_dict[name].asnumpy() - 0.05 * grad.asnumpy()
    for name in params:
        ours = (exe.arg_dict[name] if name in exe.arg_dict else exe.aux_dict[name]).asnumpy()
        np.testing.assert_allclose(state[name], ours, rtol=1e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(state["fc_weight"], params["fc_weight"].asnumpy())     # it did train


def test_gradients_only_file_gives_executor_gradients(tmp_path):
    sym = _net()
    shapes = {"data": (4, 2, 6, 6), "softmax_label": (4,)}
    exe = _start(sym, shapes)
    params = {**{n: a for n, a in exe.arg_dict.items() if n not in shapes}, **exe.aux_dict}
    path = mx.onnx.export_training_model(sym, params, [(4, 2, 6, 6)], onnx_file_path=str(tmp_path / "grad.onnx"))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert "learning_rate" not in [i.name for i in session.get_inputs()]
    x, y = _batches(1, np.random.RandomState(2))[0]
    exe.arg_dict["data"][:] = x
    exe.arg_dict["softmax_label"][:] = y
    exe.forward(is_train=True)
    exe.backward()
    with np.load(str(tmp_path / "grad.npz")) as saved:
        feeds = dict(saved, data=x, softmax_label=y)
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    np.testing.assert_allclose(values["softmax_output"], exe.outputs[0].asnumpy(), rtol=1e-5, atol=1e-6)
    for name in ("conv_weight", "bn_gamma", "fc_bias"):
        np.testing.assert_allclose(values[name + "_grad"], exe.grad_dict[name].asnumpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    ({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
    ({"in_shapes": [(4, 2, 6, 6), (4,)]}, "2 shapes given for the 1 data inputs"),
])
def test_bad_requests_are_clear(tmp_path, kwargs, words):
    sym = _net()
    exe = _start(sym, {"data": (4, 2, 6, 6), "softmax_label": (4,)})
    params = {**{n: a for n, a in exe.arg_dict.items() if n not in ("data", "softmax_label")}, **exe.aux_dict}
    call = dict({"in_shapes": [(4, 2, 6, 6)], "onnx_file_path": str(tmp_path / "t.onnx")}, **kwargs)
    with pytest.raises(mx.MXNetError, match=words.replace("(", r"\(").replace(")", r"\)")):
        mx.onnx.export_training_model(sym, params, **call)


def test_a_symbol_without_loss_head_is_refused(tmp_path):
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=2, name="fc")
    params = {"fc_weight": mx.nd.ones((2, 3)), "fc_bias": mx.nd.zeros(2)}
    with pytest.raises(mx.MXNetError, match="no loss head"):
        mx.onnx.export_training_model(net, params, [(1, 3)], onnx_file_path=str(tmp_path / "t.onnx"))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_command_line_writes_and_verifies_a_training_file(tmp_path, optimizer):
    """`onnxsym export ... --training sgd|adam` (the console script; export is convert's alias): the file, its .npz,
    a verified gradient step."""
    import os
    import subprocess
    import sys
    sym = _net()
    exe = _start(sym, {"data": (4, 2, 6, 6), "softmax_label": (4,)})
    args = {n: a for n, a in exe.arg_dict.items() if n not in ("data", "softmax_label")}
    mx.model.save_checkpoint(str(tmp_path / "net"), 1, sym, args, dict(exe.aux_dict))
    script = os.path.join(os.path.dirname(sys.executable), "onnxsym")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([script, "export", "net", "1", "-o", "train.onnx", "--input-shape", "data:4,2,6,6",
                           "--training", optimizer], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=root))
    assert done.returncode == 0, done.stderr
    assert "conv_weight_grad (4, 2, 3, 3): max abs difference" in done.stdout
    assert done.stdout.strip().endswith("wrote train.onnx and its starting parameters train.npz")
    session = onnxruntime.InferenceSession(str(tmp_path / "train.onnx"), providers=["CPUExecutionProvider"])
    assert "learning_rate" in [i.name for i in session.get_inputs()]
    states = [n + s for n in args for s in ("_adam_mean", "_adam_var")] if optimizer == "adam" else []
    assert ("step" in [i.name for i in session.get_inputs()]) == (optimizer == "adam")
    with np.load(str(tmp_path / "train.npz")) as saved:
        assert sorted(saved) == sorted(list(args) + list(exe.aux_dict) + states)


@pytest.mark.parametrize("settings", [{}, {"wd": 0.01, "rescale_grad": 0.25, "clip_gradient": 0.05,
                                           "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}], ids=["defaults", "set"])
def test_adam_training_file_trains_as_mxnet_adam(tmp_path, settings):
    """Four steps in a bare session against onnxsym's Executor gradients + mx.optimizer.Adam (MXNet's adam_update
    with the bias-corrected rate, checked against MXNet 1.9.1 in tests/test_optimizer.py). The convolution has no
    bias: before BatchNorm its gradient is zero up to rounding, and Adam's m / sqrt(v) of rounding noise is +-1."""
    sym = _net(no_bias=True)
    shapes = {"data": (4, 2, 6, 6), "softmax_label": (4,)}
    exe = _start(sym, shapes)
    params = {**{n: a.copy() for n, a in exe.arg_dict.items() if n not in shapes},
              **{n: a.copy() for n, a in exe.aux_dict.items()}}
    path = mx.onnx.export_training_model(sym, params, [(4, 2, 6, 6)], onnx_file_path=str(tmp_path / "adam.onnx"),
                                         optimizer="adam", optimizer_params=settings)
    with np.load(str(tmp_path / "adam.npz")) as saved:
        state = dict(saved)
    trainable = [n for n in exe.arg_dict if n not in shapes]
    assert sorted(state) == sorted(list(params) + [n + s for n in trainable for s in ("_adam_mean", "_adam_var")])
    assert not np.any(state["fc_weight_adam_mean"])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    optimizer = mx.optimizer.create("adam", learning_rate=0.01, **settings)
    updater = mx.optimizer.get_updater(optimizer)
    for t, (x, y) in enumerate(_batches(4, np.random.RandomState(3)), start=1):
        feeds = {"data": x, "softmax_label": y, "learning_rate": np.array(0.01, np.float32),
                 "step": np.array(t, np.float32), **state}
        values = dict(zip(outputs, session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})))
        state = {name: values[name + "_new"] for name in state}
        exe.arg_dict["data"][:] = x
        exe.arg_dict["softmax_label"][:] = y
        exe.forward(is_train=True)
        exe.backward()
        for index, name in enumerate(trainable):
            updater(index, exe.grad_dict[name], exe.arg_dict[name])
    for name in params:
        ours = (exe.arg_dict[name] if name in exe.arg_dict else exe.aux_dict[name]).asnumpy()
        np.testing.assert_allclose(state[name], ours, rtol=1e-4, atol=1e-6, err_msg=name)
    for index, name in enumerate(trainable):
        mean, var = updater.states[index]
        np.testing.assert_allclose(state[name + "_adam_mean"], mean.asnumpy(), rtol=1e-4, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(state[name + "_adam_var"], var.asnumpy(), rtol=1e-4, atol=1e-9, err_msg=name)
    assert not np.allclose(state["fc_weight"], params["fc_weight"].asnumpy())


def test_unknown_optimizer_setting_is_refused(tmp_path):
    with pytest.raises(mx.MXNetError, match=r"optimizer_params \['momentum'\] are not settings of adam"):
        mx.onnx.export_training_model(_net(), {}, [(4, 2, 6, 6)], onnx_file_path=str(tmp_path / "a.onnx"),
                                      optimizer="adam", optimizer_params={"momentum": 0.9})
