"""mx.gpu(): sessions on ONNX Runtime's CUDA execution provider, inputs read from device copies (runtime/device.py).

Without a GPU the device path runs under ONNXSYM_GPU_EMULATION (device memory is separate host memory, sessions on
the CPU provider) with ONNXSYM_DEVICE_CHECK's comparison of every unchanged device copy against its host buffer;
CI also runs the executor/module/autograd suites that way (.ci/run). The tests marked `cuda` need a real CUDA
device and are skipped, saying so, on machines without one.
"""
import numpy as np
import onnxruntime
import pytest

import onnxsym as mx
from onnxsym.module import device_updates
from onnxsym.runtime import device
from onnxsym.runtime.library import GPU_INSTALL, gpu_emulation
from tests import test_optimizer

REAL_CUDA = not gpu_emulation() and "CUDAExecutionProvider" in onnxruntime.get_available_providers() \
    and mx.num_gpus() > 0
cuda = pytest.mark.skipif(not REAL_CUDA, reason="no CUDA device with onnxruntime-gpu on this machine "
                                                "(bench/gpu_check.sh runs the GPU checks where there is one)")


@pytest.fixture
def emulated(monkeypatch):
    """mx.gpu() as an emulated device, every device copy checked against its host buffer before each run."""
    monkeypatch.setenv("ONNXSYM_GPU_EMULATION", "1")
    monkeypatch.setattr(device, "_CHECK", True)


def _net():
    data = mx.sym.Variable("data")
    net = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), no_bias=True, name="conv")
    net = mx.sym.BatchNorm(net, name="bn")
    net = mx.sym.Activation(net, act_type="relu")
    net = mx.sym.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = mx.sym.FullyConnected(net, num_hidden=3, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _fit(ctx, epochs=2, optimizer="sgd", optimizer_params=None):
    rng = np.random.RandomState(0)
    x = rng.randn(16, 2, 6, 6).astype(np.float32)
    y = rng.randint(0, 3, 16).astype(np.float32)
    mod = mx.mod.Module(_net(), context=ctx)
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    mx.random.seed(1)
    mod.fit(it, num_epoch=epochs, initializer=mx.init.Xavier(rnd_type="gaussian", magnitude=2),
            optimizer=optimizer, optimizer_params=optimizer_params or {"learning_rate": 0.1, "momentum": 0.9})
    args, auxs = mod.get_params()
    return {k: v.asnumpy() for k, v in {**args, **auxs}.items()}, mod.predict(it).asnumpy()


def test_gpu_without_cuda_is_one_clear_error(monkeypatch):
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    monkeypatch.delenv("ONNXSYM_GPU_EMULATION", raising=False)
    assert mx.num_gpus() == 0
    for attempt in (lambda: mx.nd.zeros((2,), ctx=mx.gpu(0)),
                    lambda: mx.sym.Variable("x").simple_bind(mx.gpu(0), x=(2,)),
                    lambda: mx.mod.Module(_net(), context=mx.gpu(0)).bind([("data", (4, 2, 6, 6))])):
        with pytest.raises(mx.MXNetError) as err:
            attempt()
        assert "gpu(0) needs ONNX Runtime's CUDAExecutionProvider" in str(err.value)
        assert GPU_INSTALL in str(err.value)


def test_emulated_gpu_counts_one_device(emulated):
    assert mx.num_gpus() == 1
    assert mx.nd.ones((2, 3), ctx=mx.gpu(0)).context == mx.gpu(0)


def test_executor_on_gpu_equals_cpu_and_sees_every_write(emulated):
    sym = mx.sym.FullyConnected(mx.sym.Variable("x"), num_hidden=3, name="fc")
    rng = np.random.RandomState(0)
    values = {"x": rng.randn(2, 4), "fc_weight": rng.randn(3, 4), "fc_bias": rng.randn(3)}
    exes = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        exe = sym.simple_bind(ctx, x=(2, 4))
        for name, value in values.items():
            exe.arg_dict[name][:] = value
        exes[ctx.device_type] = exe
    gpu = exes["gpu"]
    assert len(gpu._bound.copies) == 3 and not exes["cpu"]._bound.copies
    np.testing.assert_array_equal(gpu.forward()[0].asnumpy(), exes["cpu"].forward()[0].asnumpy())
    # writes through every path reach the next run: setitem, a view, copyto, in-place arithmetic, forward kwargs
    gpu.arg_dict["fc_weight"][1:2] = 0.0
    mx.nd.array(np.full(3, 2.0)).copyto(gpu.arg_dict["fc_bias"])
    gpu.arg_dict["fc_weight"] *= 2
    out = gpu.forward(x=mx.nd.array(np.ones((2, 4))))[0].asnumpy()
    weight = values["fc_weight"].copy()
    weight[1] = 0
    np.testing.assert_allclose(out, np.ones((2, 4)) @ (2 * weight).T + 2.0, rtol=1e-6)


def test_unchanged_inputs_are_not_uploaded_again(emulated, monkeypatch):
    uploads = []
    original = onnxruntime.OrtValue.update_inplace
    monkeypatch.setattr(onnxruntime.OrtValue, "update_inplace",
                        lambda self, array: (uploads.append(array.shape), original(self, array))[1])
    exe = mx.sym.FullyConnected(mx.sym.Variable("x"), num_hidden=3, name="fc").simple_bind(mx.gpu(0), x=(2, 4))
    exe.forward()
    assert sorted(uploads) == [(2, 4), (3,), (3, 4)]
    del uploads[:]
    exe.forward()
    exe.forward()
    assert uploads == []
    exe.arg_dict["x"][:] = 1.0
    exe.forward()
    assert uploads == [(2, 4)]


def test_device_check_catches_a_write_without_touch(emulated):
    exe = mx.sym.FullyConnected(mx.sym.Variable("x"), num_hidden=3, name="fc").simple_bind(mx.gpu(0), x=(2, 4))
    exe.forward()
    exe.arg_dict["fc_weight"]._data[...] = 1.0       # behind onnxsym's back: no touch
    with pytest.raises(mx.MXNetError, match="device copy out of date"):
        exe.forward()


@pytest.mark.parametrize("optimizer, params", [("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3}),
                                               ("sgd", {"learning_rate": 0.1, "clip_gradient": 0.01}),
                                               ("adam", {"learning_rate": 0.01, "wd": 1e-3}),
                                               ("rmsprop", {"learning_rate": 0.01})])
def test_module_fit_on_emulated_gpu_equals_cpu(emulated, optimizer, params):
    """SGD and Adam update on the device (module/device_updates.py), RMSProp on the host: the same training as on
    the CPU (where SGD takes the arena path) up to float rounding."""
    cpu_params, cpu_pred = _fit(mx.cpu(), optimizer=optimizer, optimizer_params=params)
    gpu_params, gpu_pred = _fit(mx.gpu(0), optimizer=optimizer, optimizer_params=params)
    assert cpu_params.keys() == gpu_params.keys()
    for name in cpu_params:
        np.testing.assert_allclose(gpu_params[name], cpu_params[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(gpu_pred, cpu_pred, rtol=1e-5, atol=1e-6)


def _on_device(case):
    """Recorded cases whose updates run on the device: SGD, Adam, LARS, NAG without momentum (sgd_update's form)."""
    if "error" in case or case["dtype"] == "float16":
        return False
    return case["optimizer"] in ("sgd", "adam", "lars") or (case["optimizer"] == "nag"
                                                            and not case["kwargs"].get("momentum"))


@pytest.mark.parametrize("case", [c for c in test_optimizer.RECORD["cases"] if _on_device(c)],
                         ids=lambda c: c["name"])
def test_device_updates_match_mxnet_bit_for_bit(emulated, monkeypatch, case):
    """The update graphs on the device (module/device_updates.py: multi_sgd, sgd_update's single form for NAG
    without momentum, LARS's preloaded float32 lr*wd, Adam) replay MXNet 1.9.1's recorded steps exactly, in float32
    and float64, as the host updates do (tests/test_optimizer.py; its NEAR cases within their tolerance)."""
    calls = []
    for name in ("sgd", "adam"):
        run = getattr(device_updates, name)
        monkeypatch.setattr(device_updates, name, lambda *args, run=run: (calls.append(args[0]), run(*args))[1])
    test_optimizer.replay_recorded(case, mx.gpu(0))
    assert calls, "the updates did not run on the device"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_steps_keep_parameters_gradients_and_states_on_the_device(emulated, monkeypatch, optimizer):
    """Between steps only the batches (and BatchNorm's moving statistics, updated on the host) go up; nothing
    comes down until the program reads something."""
    monkeypatch.setattr(device, "_CHECK", False)        # (its comparisons read device buffers)
    mod = mx.mod.Module(_net(), context=mx.gpu(0))
    it = mx.io.NDArrayIter(np.random.RandomState(0).randn(16, 2, 6, 6).astype(np.float32),
                           np.arange(16) % 3, batch_size=4)
    mod.bind(it.provide_data, it.provide_label)
    mod.init_params(initializer=mx.init.Xavier())
    mod.init_optimizer(optimizer=optimizer, optimizer_params={"learning_rate": 0.01, "momentum": 0.9}
                       if optimizer == "sgd" else {"learning_rate": 0.01})
    batches = list(it)
    for batch in batches[:2]:          # (the first updates create the optimizer states)
        mod.forward_backward(batch)
        mod.update()
    uploads, downloads = [], []
    up, down = onnxruntime.OrtValue.update_inplace, onnxruntime.OrtValue.numpy
    monkeypatch.setattr(onnxruntime.OrtValue, "update_inplace",
                        lambda self, array: (uploads.append(array.shape), up(self, array))[1])
    monkeypatch.setattr(onnxruntime.OrtValue, "numpy", lambda self: (downloads.append(self.shape()), down(self))[1])
    for batch in batches[2:]:
        mod.forward_backward(batch)
        mod.update()
    assert sorted(uploads) == [(4,)] * 6 + [(4, 2, 6, 6)] * 2     # data, labels, moving mean and variance
    assert downloads == []
    args, _ = mod.get_params()          # the parameters come down once each, when read
    assert sorted(map(tuple, downloads)) == sorted(a.shape for a in args.values())


def test_gradients_read_on_the_host_are_the_devices(emulated):
    rng = np.random.RandomState(0)
    results = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        exe = _net().simple_bind(ctx, data=(4, 2, 6, 6))
        rng = np.random.RandomState(0)
        for name, arr in exe.arg_dict.items():
            arr[:] = rng.randint(0, 3, arr.shape) if name == "softmax_label" else rng.uniform(-1, 1, arr.shape)
        exe.forward(is_train=True)
        exe.backward()
        first = {k: v.asnumpy() for k, v in exe.grad_dict.items()}
        exe.grad_dict["fc_weight"][:] = 5.0       # a host write, then a second backward writes again
        exe.backward()
        results[ctx.device_type] = first, {k: v.asnumpy() for k, v in exe.grad_dict.items()}
    for name, grad in results["cpu"][0].items():
        np.testing.assert_array_equal(results["gpu"][0][name], grad, err_msg=name)
        np.testing.assert_array_equal(results["gpu"][1][name], results["cpu"][1][name], err_msg=name)


@cuda
def test_cuda_forward_backward_match_cpu():
    rng = np.random.RandomState(0)
    shapes = {"data": (4, 2, 6, 6)}
    results = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        exe = _net().simple_bind(ctx, **shapes)
        for name, arr in exe.arg_dict.items():
            arr[:] = rng.randint(0, 3, arr.shape) if name == "softmax_label" else rng.uniform(-1, 1, arr.shape)
        rng = np.random.RandomState(0)
        exe.forward(is_train=True)
        exe.backward()
        results[ctx.device_type] = ([o.asnumpy() for o in exe.outputs],
                                    {k: v.asnumpy() for k, v in exe.grad_dict.items() if v is not None})
    for a, b in zip(results["cpu"][0], results["gpu"][0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    for name, grad in results["cpu"][1].items():
        np.testing.assert_allclose(results["gpu"][1][name], grad, rtol=1e-3, atol=1e-4, err_msg=name)


@cuda
def test_cuda_module_fit_matches_cpu():
    cpu_params, _ = _fit(mx.cpu())
    gpu_params, _ = _fit(mx.gpu(0))
    for name in cpu_params:
        np.testing.assert_allclose(gpu_params[name], cpu_params[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_grad_req_add_accumulates_on_emulated_gpu(emulated):
    results = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        exe = _net().simple_bind(ctx, data=(4, 2, 6, 6), grad_req="add")
        rng = np.random.RandomState(0)
        for name, arr in exe.arg_dict.items():
            arr[:] = rng.randint(0, 3, arr.shape) if name == "softmax_label" else rng.uniform(-1, 1, arr.shape)
        for grad in exe.grad_arrays:
            if grad is not None:
                grad[:] = 0
        for _ in range(2):
            exe.forward(is_train=True)
            exe.backward()
        results[ctx.device_type] = {k: v.asnumpy() for k, v in exe.grad_dict.items() if v is not None}
    for name, grad in results["cpu"].items():
        np.testing.assert_allclose(results["gpu"][name], grad, rtol=1e-6, atol=1e-7, err_msg=name)


def test_writes_through_dlpack_reach_the_device(emulated):
    """A weight shared for writing through DLPack (to_dlpack_for_write): onnxsym cannot count those writes, so its
    device copy is uploaded before every run."""
    sym = mx.sym.FullyConnected(mx.sym.Variable("x"), num_hidden=3, name="fc")
    rng = np.random.RandomState(1)
    weight = rng.randn(3, 4)
    exe = sym.simple_bind(mx.gpu(0), x=(2, 4))
    exe.arg_dict["fc_weight"][:] = weight
    exe.arg_dict["fc_bias"][:] = 0
    shared = mx.nd.from_dlpack(exe.arg_dict["fc_weight"].to_dlpack_for_write())._data
    x = np.ones((2, 4))
    np.testing.assert_allclose(exe.forward(x=mx.nd.array(x))[0].asnumpy(), x @ weight.T, rtol=1e-6)
    shared[...] = -shared           # written behind onnxsym's back
    np.testing.assert_allclose(exe.forward(x=mx.nd.array(x))[0].asnumpy(), -(x @ weight.T), rtol=1e-6)
