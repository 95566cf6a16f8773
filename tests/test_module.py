"""mx.mod.Module against MXNet 1.9.1: same initial parameters, data order and optimizer settings give the same
parameters after every epoch, the same scores and predictions (fixtures/make_module_fixtures.py)."""
import ast
import json
import logging
import os
import pathlib

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures.module_cases import CASES, data, train

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")


def fit(name, **fit_kwargs):
    return train(mx, name, **fit_kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_matches_mxnet(name):
    expected = np.load(os.path.join(FIXTURES, "module_%s.npz" % name))
    with open(os.path.join(FIXTURES, "module_%s.json" % name)) as handle:
        meta = json.load(handle)
    mod, val, per_epoch = fit(name)
    keys = [k for k in expected.files if k.startswith("epoch")]
    assert sorted(keys) == sorted(per_epoch)
    for key in keys:
        np.testing.assert_allclose(per_epoch[key], expected[key], rtol=2e-4, atol=2e-5, err_msg=key)
    score = mod.score(val, CASES[name].get("metric", "acc"))
    for (n1, v1), (n2, v2) in zip(score, meta["score"]):
        assert n1 == n2 and abs(v1 - v2) < 1e-4, (score, meta["score"])
    np.testing.assert_allclose(mod.predict(val).asnumpy(), expected["pred"], rtol=2e-4, atol=2e-5)


def test_speedometer_and_epoch_logs(caplog):
    with caplog.at_level(logging.INFO):
        fit("mlp_sgd", batch_end_callback=mx.callback.Speedometer(20, 2))
    text = caplog.text
    assert "Epoch[0] Batch [2-4]\tSpeed:" in text and "samples/sec\taccuracy=" in text
    assert "Epoch[2] Train-accuracy=" in text and "Epoch[2] Validation-accuracy=" in text
    assert "Epoch[0] Time cost=" in text


def test_mxnet_checkpoint_loads_and_trains(tmp_path):
    prefix = os.path.join(FIXTURES, "checkpoint_mlp")
    expected = np.load(os.path.join(FIXTURES, "module_mlp_sgd.npz"))
    sym, args, auxs = mx.model.load_checkpoint(prefix, 3)
    np.testing.assert_allclose(args["fc1_weight"].asnumpy(), expected["epoch2:fc1_weight"])
    mod = mx.mod.Module.load(prefix, 3)
    case = CASES["mlp_sgd"]
    x, y = data(case)
    it = mx.io.NDArrayIter(x[:case["train"]], y[:case["train"]], batch_size=20)
    mod.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    before = mod.get_params()[0]["fc1_weight"].asnumpy().copy()
    mod.fit(it, num_epoch=1, optimizer_params={"learning_rate": 0.1})
    assert np.abs(mod.get_params()[0]["fc1_weight"].asnumpy() - before).max() > 0
    out = str(tmp_path / "again")
    mod.save_checkpoint(out, 1, save_optimizer_states=True)
    sym2, args2, _ = mx.model.load_checkpoint(out, 1)
    assert sym2.tojson() == sym.tojson()
    np.testing.assert_array_equal(args2["fc1_weight"].asnumpy(), mod.get_params()[0]["fc1_weight"].asnumpy())
    reloaded = mx.mod.Module.load(out, 1, load_optimizer_states=True)
    reloaded.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    reloaded.init_optimizer(optimizer_params={"learning_rate": 0.1})
    assert sorted(os.listdir(tmp_path)) == ["again-0001.params", "again-0001.states", "again-symbol.json"]


def test_variable_batch_shapes_without_rebinding():
    case = CASES["mlp_sgd"]
    x, y = data(case)
    mod, _, _ = fit("mlp_sgd")
    odd = mx.io.DataBatch(data=[mx.nd.array(x[:7])], label=[mx.nd.array(y[:7])])
    mod.forward(odd, is_train=False)
    out7 = mod.get_outputs()[0].asnumpy()
    assert out7.shape == (7, 3)
    full = mx.io.DataBatch(data=[mx.nd.array(x[:20])], label=[mx.nd.array(y[:20])])
    mod.forward(full, is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy()[:7], out7, rtol=1e-6)
    mod.forward(odd, is_train=True)
    mod.backward()
    mod.update()
    assert mod.data_shapes[0].shape == (7, 10)


def test_predict_removes_padding_and_iter_predict():
    mod, val, _ = fit("mlp_adam_pad")
    pred = mod.predict(val)
    assert pred.shape == (27, 3)
    batches = list(mod.iter_predict(val))
    assert [b[0][0].shape[0] for b in batches] == [16, 11]


def _numpy_mlp(x, params):
    h = np.maximum(x @ params["fc1_weight"].T + params["fc1_bias"], 0)
    z = h @ params["fc2_weight"].T + params["fc2_bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _mlp_module(batch, folds=True, dtype="float32", labels=False):
    data = mx.sym.var("data", dtype=dtype)
    h = mx.sym.FullyConnected(data, num_hidden=8, name="fc1")
    # (without a fully connected layer nothing folds: the usual session runs the borrowed batches)
    h = mx.sym.Activation(h, act_type="relu") if folds else mx.sym.relu(h)
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(h, num_hidden=3, name="fc2"), name="softmax")
    if not folds:
        net = mx.sym.SoftmaxOutput(mx.sym.relu(data) * 2, name="softmax")
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[mx.io.DataDesc("data", (batch, 5), dtype)], for_training=False,
             label_shapes=[("softmax_label", (batch,))] if labels else None)
    rs = np.random.RandomState(3)
    mod.init_params(mx.init.Normal(0.5))
    params = {k: v.asnumpy().astype(np.float64) for k, v in mod.get_params()[0].items()}
    return mod, params, rs


@pytest.mark.parametrize("folds", [True, False])
@pytest.mark.parametrize("labels", [False, True])
def test_predict_and_score_read_the_batches_where_they_lie(folds, labels):
    """predict/score run each batch from the iterator's own buffer (no copy into the executor): the results are the
    same as numpy's, padding included; afterwards the executor's data holds the last batch (as forward leaves
    it), the iterator's arrays are unchanged, and the session binds the executor's own arrays again."""
    mod, params, rs = _mlp_module(4, folds, labels=labels)
    x = rs.uniform(-1, 1, (10, 5)).astype(np.float32)
    y = rs.randint(0, 3, 10).astype(np.float32)
    it = mx.io.NDArrayIter(x, y if labels else None, batch_size=4, last_batch_handle="pad")
    expected = _numpy_mlp(x, params) if folds else \
        np.exp(2 * np.maximum(x, 0)) / np.exp(2 * np.maximum(x, 0)).sum(axis=1, keepdims=True)
    kept = x.copy()
    for _ in range(3):      # (a folded session is made at the first predict and serves the later ones)
        np.testing.assert_allclose(mod.predict(it).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    exe = mod._exec_group.execs[0]
    on_host = exe._bound.device is None     # (ONNXSYM_GPU_EMULATION=all: device copies, no folding, no borrowing)
    assert (exe._folding is not None and exe._folding.builds >= 1) == (folds and on_host)
    np.testing.assert_array_equal(x, kept)
    # the last batch: rows 8, 9, then the padding from the start
    np.testing.assert_array_equal(exe.arg_dict["data"].asnumpy(), x[[8, 9, 0, 1]])
    for bound in (exe._bound, exe._folding and exe._folding.bound):
        assert bound is None or not bound._lent
    # a forward of the module's own after predict reads its own array again
    fresh = rs.uniform(-1, 1, (4, 5)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(fresh)]), is_train=False)
    reference = _numpy_mlp(fresh, params) if folds else \
        np.exp(2 * np.maximum(fresh, 0)) / np.exp(2 * np.maximum(fresh, 0)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), reference, rtol=1e-5, atol=1e-6)
    if labels:
        accuracy = dict(mod.score(it, "acc"))["accuracy"]
        rows = list(range(10)) + [0, 1]         # (MXNet's score counts the padding rows too)
        assert accuracy == pytest.approx(float(np.mean(expected.argmax(axis=1)[rows] == y[rows])))
        np.testing.assert_array_equal(exe.arg_dict["data"].asnumpy(), x[[8, 9, 0, 1]])


def test_predict_copies_batches_it_cannot_borrow():
    """float64 batches for a float32 module, strided views, a monitor: copied in as before, the same numbers."""
    mod, params, rs = _mlp_module(3)
    x = rs.uniform(-1, 1, (6, 10))
    it = mx.io.NDArrayIter(x[:, ::2], batch_size=3)            # float64: converted when copied in
    np.testing.assert_allclose(mod.predict(it).asnumpy(), _numpy_mlp(x[:, ::2], params), rtol=1e-5, atol=1e-6)
    batch = mx.io.DataBatch([mx.nd.array(x[:3, ::2], dtype="float32")])
    assert not mod._forward_borrowing(mx.io.DataBatch([x.astype(np.float32)[:3, ::2]]))     # strided
    assert mod._forward_borrowing(batch) == (mod._exec_group.execs[0]._bound.device is None)
    # a forward() in between reads the module's own array (the lent buffer is bound no more)
    other = x[3:, ::2].astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(other)]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), _numpy_mlp(other, params), rtol=1e-5, atol=1e-6)
    mod._end_borrowing()
    np.testing.assert_array_equal(mod._exec_group.execs[0].arg_dict["data"].asnumpy(), other)
    seen = []
    mon = mx.mon.Monitor(1, lambda a: mx.nd.norm(a), pattern=".*fc1_output.*")
    mod.install_monitor(mon)
    mon.tic()
    np.testing.assert_allclose(mod.predict(mx.io.NDArrayIter(x[:3, ::2].astype(np.float32), batch_size=3)).asnumpy(),
                               _numpy_mlp(x[:3, ::2], params), rtol=1e-5, atol=1e-6)
    seen = mon.toc()
    assert seen and "fc1_output" in seen[0][1]


def _softmax_module(grad_req="write", dropout=False):
    data = mx.sym.var("data")
    h = mx.sym.BatchNorm(data, fix_gamma=False, momentum=0.9, name="bn")
    if dropout:
        h = mx.sym.Dropout(h, p=0.5)
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(h, num_hidden=3, name="fc"), name="softmax")
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (6, 4))], label_shapes=[("softmax_label", (6,))], grad_req=grad_req)
    mod.init_params(mx.init.Normal(0.3))
    return mod


def _softmax_truth(mod, x, y):
    """numpy: BatchNorm with batch statistics, FullyConnected, SoftmaxOutput's gradient p - onehot(y)."""
    arg, aux = mod.get_params()
    gamma, beta = arg["bn_gamma"].asnumpy(), arg["bn_beta"].asnumpy()
    w, b = arg["fc_weight"].asnumpy().astype(np.float64), arg["fc_bias"].asnumpy()
    mean, var = x.mean(axis=0), x.var(axis=0)
    h = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    z = h @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = p - np.eye(3)[y.astype(int)]
    moving = (aux["bn_moving_mean"].asnumpy() * 0.9 + mean * 0.1, aux["bn_moving_var"].asnumpy() * 0.9 + var * 0.1)
    return {"fc_weight": dz.T @ h, "fc_bias": dz.sum(axis=0)}, moving


@pytest.mark.parametrize("grad_req,dropout", [("write", False), ("add", False), ("write", True)])
def test_forward_backward_writes_the_gradients_of_forward_then_backward(grad_req, dropout):
    """Module.forward_backward (fit's step) has the run write the gradients straight into the gradient arrays where
    it can ('write', no sampling): the gradients and BatchNorm's moving statistics are numpy's, no second set of
    gradient buffers is made, and a backward() after it gives the same gradients again, also once something
    overwrote them."""
    mod = _softmax_module(grad_req, dropout)
    rs = np.random.RandomState(0)
    x = rs.normal(size=(6, 4)).astype(np.float32)
    y = rs.randint(0, 3, 6).astype(np.float32)
    batch = mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)])
    exe = mod._exec_group.execs[0]
    grads = dict(zip(exe._arg_names, exe.grad_arrays))
    truth, moving = _softmax_truth(mod, x.astype(np.float64), y)
    mod.forward_backward(batch)
    training = exe._training
    direct = grad_req == "write" and not dropout and exe._bound.device is None
    assert (training.grad_buffers == {}) == direct
    aux = exe.aux_dict      # (get_params syncs from the devices after update(), as MXNet's)
    np.testing.assert_allclose(aux["bn_moving_mean"].asnumpy(), moving[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["bn_moving_var"].asnumpy(), moving[1], rtol=1e-5, atol=1e-6)
    if dropout:
        return      # (the numbers are the dropped ones; the path is the usual one)
    for name, value in truth.items():
        np.testing.assert_allclose(grads[name].asnumpy(), value, rtol=1e-4, atol=1e-5)
    grads["fc_weight"][:] = 7
    mod.backward()
    if grad_req == "write":
        for name, value in truth.items():
            np.testing.assert_allclose(grads[name].asnumpy(), value, rtol=1e-4, atol=1e-5)
        mod.backward()      # (nothing wrote them: they are kept)
        np.testing.assert_allclose(grads["fc_bias"].asnumpy(), truth["fc_bias"], rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(grads["fc_weight"].asnumpy(), 7 + truth["fc_weight"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(grads["fc_bias"].asnumpy(), 2 * truth["fc_bias"], rtol=1e-4, atol=1e-5)


def test_a_subclass_runs_its_own_forward_and_backward():
    calls = []

    class Clipped(mx.mod.Module):
        def backward(self, out_grads=None):
            super().backward(out_grads)
            calls.append(1)
            for grad in self._exec_group.grad_arrays:
                grad[0][:] = mx.nd.clip(grad[0], -1e-3, 1e-3)

    data = mx.sym.var("data")
    mod = Clipped(mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="softmax"))
    mod.bind(data_shapes=[("data", (4, 5))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(mx.init.Normal(1.0))
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((4, 5))], [mx.nd.array([0, 1, 2, 0])]))
    assert calls == [1]
    seen = []
    Clipped.forward = lambda self, batch, is_train=None: seen.append(1) or mx.mod.Module.forward(self, batch, is_train)
    mod.predict(mx.io.NDArrayIter(np.ones((8, 5), np.float32), batch_size=4))
    assert seen == [1, 1]
    assert np.abs(mod._exec_group.grad_arrays[0][0].asnumpy()).max() == pytest.approx(1e-3)


def test_bad_input_errors():
    sym = CASES["mlp_sgd"]["build"](mx)
    with pytest.raises(ValueError, match="datum"):
        mx.mod.Module(sym, data_names=("datum",))
    mod = mx.mod.Module(sym)
    with pytest.raises(ValueError, match="label.*softmax_label"):
        mod.bind(data_shapes=[("data", (4, 10))], label_shapes=[("label", (4,))])
    mod = mx.mod.Module(sym)
    with pytest.raises(mx.MXNetError, match=r"fc1_weight.*\(16, 10\)|\(16, 10\).*fc1_weight|inconsistent"):
        mod.bind(data_shapes=[("data", (4, 10))], label_shapes=[("softmax_label", (4,))])
        mod.init_params(arg_params={"fc1_weight": mx.nd.zeros((16, 9))}, allow_missing=True)
    mod = mx.mod.Module(sym)
    mod.bind(data_shapes=[("data", (4, 10))], label_shapes=[("softmax_label", (4,))])
    mod.init_params()
    with pytest.raises(ValueError, match="nosuchopt"):
        mod.init_optimizer(optimizer="nosuchopt")
    with pytest.raises(AssertionError):
        mod.fit(mx.io.NDArrayIter(np.zeros((4, 10)), np.zeros(4), batch_size=4), eval_metric="nosuchmetric",
                num_epoch=1)
    with pytest.raises(mx.MXNetError, match="data"):
        mod.forward(mx.io.DataBatch(data=[mx.nd.zeros((4, 10)), mx.nd.zeros((4, 10))], label=None))


def test_bucketing_module_shares_parameters():
    def sym_gen(seq_len):
        data = mx.sym.Variable("data")
        net = mx.sym.FullyConnected(mx.sym.mean(mx.sym.Reshape(data, shape=(0, seq_len, 4)), axis=1),
                                    num_hidden=3, name="fc")
        return mx.sym.SoftmaxOutput(net, name="softmax"), ("data",), ("softmax_label",)

    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=5)
    mod.bind(data_shapes=[("data", (2, 20))], label_shapes=[("softmax_label", (2,))])
    mod.init_params()
    mod.init_optimizer(optimizer_params={"learning_rate": 0.5})
    rng = np.random.RandomState(0)
    for key in (5, 3, 5, 3):
        batch = mx.io.DataBatch(data=[mx.nd.array(rng.randn(2, key * 4))], label=[mx.nd.array([0, 1])],
                                bucket_key=key, provide_data=[mx.io.DataDesc("data", (2, key * 4))],
                                provide_label=[mx.io.DataDesc("softmax_label", (2,))])
        before = mod.get_params()[0]["fc_weight"].asnumpy().copy()
        mod.forward(batch, is_train=True)
        mod.backward()
        mod.update()
        assert np.abs(mod.get_params()[0]["fc_weight"].asnumpy() - before).max() > 0
    assert sorted(mod._buckets) == [3, 5]
    assert mod._buckets[3]._exec._by_name["fc_weight"] is mod._buckets[5]._exec._by_name["fc_weight"]


@pytest.mark.parametrize("momentum,clip", [(0.9, 0.05), (0.0, None)])
@pytest.mark.parametrize("inputs,hidden", [(5, 3), (700, 400)])
def test_sgd_update_equals_mxnet_formula(momentum, clip, inputs, hidden):
    """Module.update (SGD over the flat parameter arena) is MXNet's sgd(_mom)_update per parameter:
    g = clip(rescale_grad * grad), mom = momentum * mom - lr * lr_mult * (g + wd * wd_mult * w), w += mom.
    700 x 400: an arena of several update pieces (module._SGD_CHUNK), a piece boundary inside fc_weight and one
    piece with both parameters' multipliers."""
    data = mx.sym.Variable("data")
    weight = mx.sym.Variable("fc_weight", lr_mult=0.5, wd_mult=2.0)
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data, weight=weight, num_hidden=hidden, name="fc"),
                               name="softmax")
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (4, inputs))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(initializer=mx.init.Uniform(0.5))
    lr, wd, rescale = 0.1, 0.01, 0.25
    mod.init_optimizer(optimizer="sgd", optimizer_params=dict(learning_rate=lr, wd=wd, momentum=momentum,
                                                              rescale_grad=rescale, clip_gradient=clip))
    rng = np.random.RandomState(0)
    mults = {"fc_weight": (0.5, 2.0), "fc_bias": (1.0, 0.0)}     # MXNet: no weight decay on *_bias
    moms = {n: 0.0 for n in mults}
    for _ in range(3):
        batch = mx.io.DataBatch([mx.nd.array(rng.uniform(-4, 4, (4, inputs)))],
                                [mx.nd.array(rng.randint(0, 3, 4))])
        mod.forward_backward(batch)
        weights = {n: a.asnumpy().astype(np.float64) for n, a in mod._exec.arg_dict.items() if n in mults}
        grads = {n: mod._exec.grad_dict[n].asnumpy().astype(np.float64) for n in mults}
        mod.update()
        for name, (lr_mult, wd_mult) in mults.items():
            g = rescale * grads[name]
            if clip is not None:
                g = np.clip(g, -clip, clip)
            moms[name] = momentum * moms[name] - lr * lr_mult * (g + wd * wd_mult * weights[name])
            np.testing.assert_allclose(mod._exec.arg_dict[name].asnumpy(), weights[name] + moms[name],
                                       rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,clip,wd", [(0.9, None, 1e-4), (0.9, 0.3, 1e-4), (0.0, None, 1e-4),
                                              (0.0, 0.3, 0.0), (0.9, None, 0.0),
                                              (0.9, None, [(0, 200, 1e-4), (350, 420, 3e-4)]),
                                              (0.0, 0.3, [(10, 500, 1e-4)])])
def test_sgd_kernel_is_mxnets_multi_sgd_bit_for_bit(dtype, momentum, clip, wd):
    """optimizer.sgd_kernel (Module's fast arena update and the updater's SGD) against MXNet 1.9.1's
    MultiSGDKernel written out element by element in its C order and the weight's dtype (its parameters are
    float32, cast to that dtype): mom = momentum*mom - lr*wd*w - lr*rescale*g (or - lr*clip(rescale*g));
    w = w + mom (mom 0 without momentum). MXNet's own recorded values: the next test.
    A list `wd`: stretches with their own decay, none elsewhere (Module's arena of weights and biases)."""
    from onnxsym.module.optimizer import sgd_kernel
    rng = np.random.RandomState(1)
    w, g, m = (rng.uniform(-3, 3, 500).astype(dtype) for _ in range(3))
    t = lambda value: dtype(np.float32(value))      # noqa: E731 - the operator's float32 parameters, in w's dtype
    lr, rescale = 0.07, 1 / 7       # (float32(lr) * float32(rescale) != float32(lr * rescale), also with wd)
    decay = np.full(w.size, wd) if np.ndim(wd) == 0 else np.zeros(w.size)
    for begin, end, value in ([] if np.ndim(wd) == 0 else wd):
        decay[begin:end] = value
    expected_w, expected_m = np.empty_like(w), np.empty_like(m)
    for i in range(w.size):
        mom = t(momentum) * m[i] if momentum else t(0)
        if clip is None:
            mom = mom - t(lr) * t(decay[i]) * w[i] - t(lr) * t(rescale) * g[i]
        else:
            mom = mom - t(lr) * t(decay[i]) * w[i] - t(lr) * np.clip(t(rescale) * g[i], t(-clip), t(clip))
        expected_m[i], expected_w[i] = mom, w[i] + mom
    sgd_kernel(w, g, m if momentum else None, lr, wd, rescale, clip, momentum, np.empty_like(w), np.empty_like(w))
    np.testing.assert_array_equal(w, expected_w)
    if momentum:
        np.testing.assert_array_equal(m, expected_m)


_UPDATES = pathlib.Path(__file__).parent / "fixtures" / "mxnet"


@pytest.mark.parametrize("case", [c for c in json.loads((_UPDATES / "updates.json").read_text())["cases"]
                                  if c["op"] in ("multi_sgd_update", "multi_sgd_mom_update")],
                         ids=lambda c: c["name"])
@pytest.mark.parametrize("stretches", [False, True])
def test_sgd_kernel_matches_mxnets_recorded_multi_sgd(case, stretches):
    """optimizer.sgd_kernel against multi_sgd(_mom)_update as MXNet 1.9.1 computed them
    (tests/fixtures/make_updates_fixtures.py) in float32, float64 and float16 (per-operation rounding to half),
    bit for bit; stretches=True: the parameters as one arena with their decays as stretches (Module's fast path)."""
    from onnxsym.module.optimizer import sgd_kernel
    arrays = np.load(_UPDATES / "updates.npz")
    attrs = {k: ast.literal_eval(v) for k, v in case["attrs"].items()}
    lrs, wds = attrs["lrs"], attrs["wds"]
    momentum, clip = attrs.get("momentum", 0.0), attrs.get("clip_gradient")
    name = case["name"]
    for i in range(attrs.get("num_weights", 1)):
        w, g = arrays["%s/in:weight_%d" % (name, i)].copy(), arrays["%s/in:grad_%d" % (name, i)]
        mom = arrays["%s/in:mom_%d" % (name, i)].copy() if momentum else None
        flat = (w.reshape(-1), g.reshape(-1), None if mom is None else mom.reshape(-1))
        wd = [(0, w.size, wds[i])] if stretches else wds[i]
        sgd_kernel(*flat[:2], flat[2], lrs[i], wd, attrs.get("rescale_grad", 1.0), clip, momentum,
                   np.empty(w.size, w.dtype), np.empty(w.size, w.dtype))
        np.testing.assert_array_equal(w, arrays["%s/after:weight_%d" % (name, i)])
        if mom is not None:
            np.testing.assert_array_equal(mom, arrays["%s/after:mom_%d" % (name, i)])


def test_predict_idiom_with_a_namedtuple_batch(tmp_path):
    """MXNet's inference tutorial: a checkpoint bound with label_names=None and fed `namedtuple('Batch', ['data'])`
    batches (no label attribute) gives the same probabilities as predict()."""
    from collections import namedtuple
    Batch = namedtuple("Batch", ["data"])
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc"),
                               name="softmax")
    x = np.random.RandomState(0).rand(4, 5).astype(np.float32)
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (4, 5))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(initializer=mx.init.Uniform(0.5))
    mod.save_checkpoint(str(tmp_path / "net"), 1)
    sym, args, auxs = mx.model.load_checkpoint(str(tmp_path / "net"), 1)
    infer = mx.mod.Module(symbol=sym, context=mx.cpu(), label_names=None)
    infer.bind(for_training=False, data_shapes=[("data", (1, 5))], label_shapes=infer._label_shapes)
    infer.set_params(args, auxs, allow_missing=True)
    infer.forward(Batch([mx.nd.array(x[:1])]))
    w, b = args["fc_weight"].asnumpy(), args["fc_bias"].asnumpy()
    logits = x[:1] @ w.T + b
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(infer.get_outputs()[0].asnumpy(), expected, rtol=1e-5)
