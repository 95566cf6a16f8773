"""mx.monitor.Monitor (mx.mon) and Executor.set_monitor_callback: the names MXNet 1.9.1 gives (recorded from MXNet:
its test_op_output_names_monitor / test_op_all_names_monitor expectations and a run of MXNet's monitor), the
values against numpy."""
import logging

import numpy as np
import pytest

import onnxsym as mx

RNG = np.random.RandomState(3)


def _names(sym, monitor_all, **shapes):
    seen = []
    exe = sym.simple_bind(mx.cpu(), grad_req="null", **shapes)
    exe.set_monitor_callback(lambda name, arr: seen.append(mx.base.py_str(name)), monitor_all=monitor_all)
    exe.forward()
    return seen


@pytest.mark.parametrize("make, outputs, everything", [
    (lambda d: mx.sym.Convolution(d, kernel=(2, 2), num_filter=1, name="conv"), ["conv_output"],
     ["data", "conv_data", "conv_weight", "conv_weight", "conv_bias", "conv_bias", "conv_output"]),
    (lambda d: mx.sym.FullyConnected(d, num_hidden=10, name="fc"), ["fc_output"],
     ["data", "fc_data", "fc_weight", "fc_weight", "fc_bias", "fc_bias", "fc_output"]),
    (lambda d: mx.sym.concat(d, d, dim=0, name="concat"), ["concat_output"],
     ["data", "concat_arg0", "data", "concat_arg1", "concat_output"]),
    (lambda d: mx.sym.softmax(d, name="softmax"), ["softmax_output"], ["data", "softmax_data", "softmax_output"]),
    (lambda d: mx.sym.Activation(d, act_type="relu", name="act"), ["act_output"],
     ["data", "act_input0", "act_output"]),
    (lambda d: mx.sym.Pooling(d, kernel=(2, 2), pool_type="avg", name="pooling"), ["pooling_output"],
     ["data", "pooling_data", "pooling_output"]),
])
def test_callback_names_as_mxnet(make, outputs, everything):
    sym = make(mx.sym.Variable("data"))
    assert _names(sym, False, data=(10, 3, 10, 10)) == outputs
    assert _names(sym, True, data=(10, 3, 10, 10)) == everything


def test_monitor_collects_outputs_and_arguments(caplog):
    x = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=2, name="fc_0")
    x = mx.sym.Activation(x, act_type="sigmoid", name="act_0")
    x = mx.sym.LinearRegressionOutput(x, name="softmax")
    mean_abs = lambda a: mx.nd.sum(mx.nd.abs(a)) / a.size
    mon = mx.mon.Monitor(2, stat_func=mean_abs, pattern="fc_0|act_0|data", sort=True)
    mod = mx.mod.Module(x)
    mod.bind([("data", (1, 2))], [("softmax_label", (1, 2))])
    mod.install_monitor(mon)
    weight, bias = np.array([[.15, .20], [.25, .30]], np.float32), np.array([.35, .35], np.float32)
    mod.init_params(arg_params={"fc_0_weight": mx.nd.array(weight), "fc_0_bias": mx.nd.array(bias)})
    data = np.array([[0.05, 0.10]], np.float32)
    batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array([[.01, .99]])])
    mon.tic()
    mod.forward_backward(batch)
    rows = mon.toc()
    fc = data @ weight.T + bias
    act = 1 / (1 + np.exp(-fc))
    grad_act = (act - np.array([[.01, .99]])) / 2           # LinearRegressionOutput's: over the 2 outputs per row
    grad_fc = grad_act * act * (1 - act)
    expected = {"act_0_output": np.abs(act).mean(), "data": np.abs(data).mean(),
                "fc_0_bias": np.abs(bias).mean(), "fc_0_output": np.abs(fc).mean(),
                "fc_0_weight": np.abs(weight).mean(),
                # the backward: each operator's input gradients, MXNet's names (fc_0 has three inputs)
                "act_0_backward_output": np.abs(grad_fc).mean(),
                "fc_0_backward_output0": np.abs(grad_fc @ weight).mean(),
                "fc_0_backward_output1": np.abs(grad_fc.T @ data).mean(),
                "fc_0_backward_output2": np.abs(grad_fc.sum(axis=0)).mean()}
    assert [name for _, name, _ in rows] == sorted(expected)        # sort=True; re.match of the pattern
    for step, name, text in rows:
        assert step == 1
        assert text.endswith("\t") and float(text) == pytest.approx(expected[name], rel=1e-5), name
    mon.tic()                       # interval 2: the second batch is not collected
    mod.forward_backward(batch)
    assert mon.toc() == []
    mon.tic()
    mod.forward_backward(batch)
    with caplog.at_level(logging.INFO):
        mon.toc_print()
    assert "Batch:       3 act_0_output" in caplog.text


def test_default_statistic_is_norm_over_sqrt_size():
    exe = mx.sym.Activation(mx.sym.Variable("data"), act_type="relu", name="r").simple_bind(mx.cpu(), data=(3, 4))
    mon = mx.monitor.Monitor(1, pattern="r_output")
    mon.install(exe)
    x = RNG.uniform(-1, 1, (3, 4)).astype(np.float32)
    mon.tic()
    exe.forward(data=x)
    (_, name, text), = mon.toc()
    assert name == "r_output"
    assert float(text) == pytest.approx(np.linalg.norm(np.maximum(x, 0)) / np.sqrt(12), rel=1e-6)


def test_backward_names_and_counts_as_mxnet():
    """MXNet 1.9.1's test_monitor: forward_backward of fc_0 > act_0 > fc_1 > act_1 > LinearRegressionOutput with
    pattern '.*' gives 21 rows: per name prefix act_0 2, act_1 2, data 1, fc_0 6, fc_1 6, softmax 4."""
    x = mx.sym.Variable("data")
    x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=2, name="fc_0"), act_type="sigmoid", name="act_0")
    x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=2, name="fc_1"), act_type="sigmoid", name="act_1")
    x = mx.sym.LinearRegressionOutput(data=x, name="softmax", grad_scale=2)
    mon = mx.mon.Monitor(1, stat_func=lambda a: mx.nd.sum(mx.nd.abs(a)) / a.size, pattern=".*", sort=True)
    mod = mx.mod.Module(x, context=[mx.cpu()])
    mod.bind([("data", (1, 2))], [("softmax_label", (1, 2))])
    mod.install_monitor(mon)
    mod.init_params()
    mon.tic()
    mod.forward_backward(mx.io.DataBatch([mx.nd.array([[0.05, .10]])], [mx.nd.array([[.01, 0.99]])]))
    rows = mon.toc()
    counts = {key: sum(1 for _, name, _ in rows if name.startswith(key))
              for key in ("act_0", "act_1", "data", "fc_0", "fc_1", "softmax")}
    assert len(rows) == 21 and counts == {"act_0": 2, "act_1": 2, "data": 1, "fc_0": 6, "fc_1": 6, "softmax": 4}


def test_callbacks_written_for_mxnet_work():
    """MXNet's callbacks read the name with py_str and the array through its C handle (test_operator's
    test_monitor_with_variable_input_shape); the callback stays on the executors of a module's later input
    shapes."""
    import ctypes
    from onnxsym.base import NDArrayHandle
    seen = {}

    def minimum(name, arr):
        arr = mx.nd.NDArray(ctypes.cast(arr, NDArrayHandle), writable=False)
        seen[mx.base.py_str(name)] = mx.nd.min(arr).asscalar()

    mod = mx.mod.Module(mx.sym.Convolution(mx.sym.Variable("data"), kernel=(1, 1), num_filter=1, name="conv"),
                        label_names=None)
    mod.bind(for_training=False, data_shapes=[("data", (1, 3, 10, 10))])
    mod.init_params()
    mod._exec_group.execs[0].set_monitor_callback(minimum, monitor_all=True)
    x = RNG.uniform(0.5, 1, (1, 3, 10, 14)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)       # another shape: another executor
    assert sorted(seen) == ["conv_bias", "conv_data", "conv_output", "conv_weight", "data"]
    assert seen["data"] == pytest.approx(x.min())
    with pytest.raises(mx.MXNetError, match="no handle of a live onnxsym NDArray"):
        mx.nd.NDArray(ctypes.c_void_p(12345))
