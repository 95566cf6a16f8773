"""Inference forwards with the parameters as constants (runtime/folding.py): the same outputs as the graph with
parameters as inputs (numpy computes them here), and a parameter written by any path is seen at the next forward."""
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.runtime.device import emulating_all


def _net():
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=3, name="fc")
    bn = mx.sym.BatchNorm(fc, fix_gamma=False, eps=1e-3, name="bn")
    return mx.sym.LinearRegressionOutput(mx.sym.relu(bn, name="act"), name="out")


def _numpy(x, params, aux):
    y = x @ params["fc_weight"].T + params["fc_bias"]
    y = (y - aux["bn_moving_mean"]) / np.sqrt(aux["bn_moving_var"] + 1e-3) * params["bn_gamma"] + params["bn_beta"]
    return np.maximum(y, 0)


def _values(rng):
    params = {"fc_weight": rng.normal(0, 1, (3, 4)), "fc_bias": rng.normal(0, 1, 3),
              "bn_gamma": rng.uniform(0.5, 2, 3), "bn_beta": rng.normal(0, 1, 3)}
    aux = {"bn_moving_mean": rng.normal(0, 1, 3), "bn_moving_var": rng.uniform(0.5, 2, 3)}
    return ({k: v.astype(np.float32) for k, v in params.items()}, {k: v.astype(np.float32) for k, v in aux.items()})


def _module(for_training, rng):
    mod = mx.mod.Module(_net(), label_names=["out_label"])
    mod.bind([("data", (5, 4))], [("out_label", (5, 3))], for_training=for_training)
    params, aux = _values(rng)
    mod.init_params(arg_params={k: mx.nd.array(v) for k, v in params.items()},
                    aux_params={k: mx.nd.array(v) for k, v in aux.items()})
    return mod, params, aux


def _forward(mod, x):
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros((5, 3))]), is_train=False)
    return mod.get_outputs()[0].asnumpy()


class _NoFolding:
    """What _folding gives where executors do not fold (device arrays: ONNXSYM_GPU_EMULATION=all): the numbers
    are checked all the same, the session counts are not."""
    builds = None


def _folding(mod):
    folding = mod._exec_group.execs[0]._folding
    if emulating_all():
        assert folding is None      # device arrays keep their own copies: no folding there
        return _NoFolding()
    return folding


def _builds_are(got, expected):
    return got is None or got == expected


def test_inference_module_folds_at_once_and_sees_every_parameter_write():
    rng = np.random.RandomState(0)
    mod, params, aux = _module(False, rng)
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    assert _builds_are(_folding(mod).builds, 1)
    for _ in range(3):
        np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    assert _builds_are(_folding(mod).builds, 1)     # the parameters did not change: one session
    # set_params
    params, aux = _values(rng)
    mod.set_params({k: mx.nd.array(v) for k, v in params.items()}, {k: mx.nd.array(v) for k, v in aux.items()})
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    # a write into the bound array, through __setitem__, copyto and an in-place operator
    exe = mod._exec_group.execs[0]
    params["fc_weight"] = params["fc_weight"] * 2
    exe.arg_dict["fc_weight"][:] = params["fc_weight"]
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    aux["bn_moving_mean"] = aux["bn_moving_mean"] + 1
    mx.nd.array(aux["bn_moving_mean"]).copyto(exe.aux_dict["bn_moving_mean"])
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    params["fc_bias"] = params["fc_bias"] + 0.5
    exe.arg_dict["fc_bias"] += 0.5
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    # init_params(force_init) with another initializer
    mod.init_params(mx.init.Constant(0.25), force_init=True)
    arg, auxs = mod.get_params()
    params = {k: v.asnumpy() for k, v in arg.items()}
    aux = {k: v.asnumpy() for k, v in auxs.items()}
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)


def test_training_module_predicts_with_its_latest_parameters():
    """Training steps between inference forwards: each forward sees the updated weights (the first forward after
    a change runs the usual graph; the folded session is made once the weights stay the same)."""
    rng = np.random.RandomState(1)
    mod, _, _ = _module(True, rng)
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    for step in range(3):
        batch = mx.io.DataBatch([mx.nd.array(rng.normal(0, 1, (5, 4)))], [mx.nd.array(rng.normal(0, 1, (5, 3)))])
        mod.forward_backward(batch)
        mod.update()
        arg, auxs = mod.get_params()
        params = {k: v.asnumpy() for k, v in arg.items()}
        aux = {k: v.asnumpy() for k, v in auxs.items()}
        for _ in range(4):
            np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
        assert _builds_are(_folding(mod).builds, step + 1)    # made at the second forward after a step, run 3 times


def test_a_folded_session_that_does_not_pay_is_not_made_again_at_once():
    """A weight written every other forward: the folded session made at the first forward serves 2 runs, fewer
    than 3, so the next 8 forwards run the usual graph (making sessions would cost more than it saves); then one
    is tried again. The numbers stay right throughout."""
    rng = np.random.RandomState(4)
    mod, params, aux = _module(False, rng)
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    exe = mod._exec_group.execs[0]
    builds = []
    for step in range(6):
        params["fc_bias"] = params["fc_bias"] + 1
        exe.arg_dict["fc_bias"][:] = params["fc_bias"]
        for _ in range(2):
            np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
        builds.append(_folding(mod).builds)
    assert builds in ([1, 1, 1, 1, 1, 2], [None] * 6)


@pytest.mark.parametrize("given", ["data", "every shape"])
def test_plain_executors_fold_what_stays_the_same(given):
    """simple_bind(grad_req='null') + forward(data=...): the data changes at every forward, the weights do not.
    The arguments simple_bind inferred the shapes of are the parameters, constants from the first forward; given
    every shape, the executor takes what its first forward did not change as constants at the second."""
    rng = np.random.RandomState(5)
    params, aux = _values(rng)
    sym = _net().get_internals()["act_output"]
    shapes = {"data": (5, 4)}
    if given == "every shape":
        shapes.update({name: value.shape for name, value in params.items()})
    exe = sym.simple_bind(mx.cpu(), grad_req="null", **shapes)
    for name, value in list(params.items()) + list(aux.items()):
        (exe.arg_dict if name in exe.arg_dict else exe.aux_dict)[name][:] = value
    for index in range(5):
        x = rng.normal(0, 1, (5, 4)).astype(np.float32)
        out = exe.forward(is_train=False, data=x)[0].asnumpy()
        np.testing.assert_allclose(out, _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
        if not emulating_all():
            assert exe._folding.builds == (1 if given == "data" or index >= 1 else 0)
    if not emulating_all():     # (the folded session's constants: the parameters and aux states, not the data)
        assert sorted(exe._folding._names[i] for i in exe._folding._constants) == sorted(list(params) + list(aux))
    params["bn_gamma"] = params["bn_gamma"] * 3
    exe.arg_dict["bn_gamma"][:] = params["bn_gamma"]
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    np.testing.assert_allclose(exe.forward(is_train=False, data=x)[0].asnumpy(), _numpy(x, params, aux),
                               rtol=1e-5, atol=1e-5)
    for _ in range(12):     # a parameter given with every forward (a constant that is not): right all along
        params["fc_weight"] = rng.normal(0, 1, (3, 4)).astype(np.float32)
        out = exe.forward(is_train=False, data=x, fc_weight=params["fc_weight"])[0].asnumpy()
        np.testing.assert_allclose(out, _numpy(x, params, aux), rtol=1e-5, atol=1e-5)


def test_predict_and_score_match_the_unfolded_graph():
    rng = np.random.RandomState(2)
    mod, params, aux = _module(False, rng)
    data = rng.normal(0, 1, (23, 4)).astype(np.float32)
    it = mx.io.NDArrayIter(data, np.zeros((23, 3), np.float32), batch_size=5, label_name="out_label")
    np.testing.assert_allclose(mod.predict(it).asnumpy(), _numpy(data, params, aux), rtol=1e-5, atol=1e-5)
    assert _builds_are(_folding(mod).builds, 1)


def test_folding_keeps_out_of_sampling_graphs_and_monitors():
    data = mx.sym.var("data")
    net = mx.sym.Dropout(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), p=0.5) + \
        mx.sym.random.uniform(shape=(5, 3))
    mod = mx.mod.Module(net, label_names=None)
    mod.bind([("data", (5, 4))], for_training=False)
    mod.init_params()
    assert mod._exec_group.execs[0]._folding is None       # sampling nodes take seeds per session
    mod, _, _ = _module(False, np.random.RandomState(3))
    mon = mx.mon.Monitor(1, pattern=".*", stat_func=lambda x: x)
    mod.install_monitor(mon)
    mon.tic()
    _forward(mod, np.ones((5, 4), np.float32))
    seen = mon.toc()
    assert any("fc_output" in name for _, name, _ in seen)     # the monitored run is the usual graph's
    assert _builds_are(_folding(mod).builds, 0)


def test_arrays_shared_for_writing_through_dlpack_are_never_constants():
    """A weight another framework may write (to_dlpack_for_write, from_dlpack): its writes are invisible to
    onnxsym, so it stays a graph input and every forward reads its current values."""
    rng = np.random.RandomState(6)
    mod, params, aux = _module(False, rng)
    exe = mod._exec_group.execs[0]
    shared = mx.nd.from_dlpack(exe.arg_dict["fc_weight"].to_dlpack_for_write())._data     # (a consumer's view)
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)
    shared[...] = shared * -1       # written behind onnxsym's back
    params["fc_weight"] = params["fc_weight"] * -1
    np.testing.assert_allclose(_forward(mod, x), _numpy(x, params, aux), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_constants_with_path_like_names(dtype, in_memory, monkeypatch):
    """Constants of 1 KB and more reach ORT from their buffers as in-memory external data (folding.py), or inline
    where onnxruntime cannot take them from memory (1.23, the training build): values of both float widths, names
    that look like paths ('../', '/'), a small one inline beside them; numpy decides."""
    from onnxsym.runtime import folding, ort as runtime_ort
    if in_memory and not runtime_ort.external_data_in_memory():
        pytest.skip("this onnxruntime has no in-memory external data (the inline path is the other case)")
    monkeypatch.setattr(folding, "external_data_in_memory", lambda: in_memory)
    rng = np.random.RandomState(3)
    weight = mx.sym.var("../w/eight", dtype=dtype)
    bias = mx.sym.var("b/../ias", dtype=dtype)
    out = mx.sym.FullyConnected(mx.sym.var("data", dtype=dtype), weight=weight, bias=bias, num_hidden=64, name="fc")
    w = rng.normal(0, 1, (64, 32)).astype(dtype)            # 8 or 16 KB: external
    b = rng.normal(0, 1, 64).astype(dtype)                  # 256 or 512 bytes: inline
    exe = out.simple_bind(mx.cpu(), data=(5, 32), grad_req="null", type_dict={"data": dtype})
    exe.arg_dict["../w/eight"][:] = w
    exe.arg_dict["b/../ias"][:] = b
    for step in range(3):
        x = rng.normal(0, 1, (5, 32)).astype(dtype)
        got = exe.forward(is_train=False, data=mx.nd.array(x, dtype=dtype))[0].asnumpy()
        np.testing.assert_allclose(got, x @ w.T + b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    if not emulating_all():
        assert exe._folding is not None and exe._folding.builds == 1
