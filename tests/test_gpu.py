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
from onnxsym.runtime import device
from onnxsym.runtime.library import GPU_INSTALL, gpu_emulation

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
    net = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv")
    net = mx.sym.BatchNorm(net, name="bn")
    net = mx.sym.Activation(net, act_type="relu")
    net = mx.sym.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = mx.sym.FullyConnected(net, num_hidden=3, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _fit(ctx, epochs=2):
    rng = np.random.RandomState(0)
    x = rng.randn(16, 2, 6, 6).astype(np.float32)
    y = rng.randint(0, 3, 16).astype(np.float32)
    mod = mx.mod.Module(_net(), context=ctx)
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    mx.random.seed(1)
    mod.fit(it, num_epoch=epochs, initializer=mx.init.Xavier(rnd_type="gaussian", magnitude=2),
            optimizer="sgd", optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
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


def test_module_fit_on_emulated_gpu_equals_cpu(emulated):
    cpu_params, cpu_pred = _fit(mx.cpu())
    gpu_params, gpu_pred = _fit(mx.gpu(0))
    assert cpu_params.keys() == gpu_params.keys()
    for name in cpu_params:
        np.testing.assert_array_equal(gpu_params[name], cpu_params[name], err_msg=name)
    np.testing.assert_array_equal(gpu_pred, cpu_pred)


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
