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
    exe.set_monitor_callback(lambda name, arr: seen.append(name), monitor_all=monitor_all)
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
    mon = mx.mon.Monitor(2, stat_func=mean_abs, pattern="fc_0|act_0_output|data", sort=True)
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
    expected = {"act_0_output": np.abs(1 / (1 + np.exp(-fc))).mean(), "data": np.abs(data).mean(),
                "fc_0_bias": np.abs(bias).mean(), "fc_0_output": np.abs(fc).mean(),
                "fc_0_weight": np.abs(weight).mean()}
    assert [name for _, name, _ in rows] == sorted(expected)        # sort=True; re.match of the pattern
    for step, name, text in rows:
        assert step == 1
        assert text.endswith("\t") and float(text) == pytest.approx(expected[name], rel=1e-6), name
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
