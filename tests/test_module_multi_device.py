"""Module on several contexts (MXNet's data parallelism through DataParallelExecutorGroup and the local kvstore):
each batch split among the executors by work_load_list, gradients summed across devices before the update, the
same weights on every device. The truth: the same Module on one device over the whole batch (MXNet's own claim
for its local kvstore; the one-device Module is checked against MXNet 1.9.1 in test_module.py)."""
import numpy as np
import pytest

import onnxsym as mx
from onnxsym.module.executor_group import DataParallelExecutorGroup, split_batch

RNG = np.random.RandomState(7)


def _net(batch_norm=False):
    data = mx.sym.Variable("data")
    net = mx.sym.FullyConnected(data, num_hidden=16, name="fc1")
    if batch_norm:      # (batch statistics: each device normalizes its own slice, as in MXNet)
        net = mx.sym.BatchNorm(net, name="bn", fix_gamma=False)
    net = mx.sym.Activation(net, act_type="tanh")
    net = mx.sym.FullyConnected(net, num_hidden=3, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _train(contexts, work_load_list, optimizer, steps=4, batch=12):
    x = RNG.uniform(-1, 1, (steps * batch, 5)).astype(np.float32)
    y = RNG.randint(0, 3, steps * batch).astype(np.float32)
    mod = mx.mod.Module(_net(), context=contexts, work_load_list=work_load_list)
    it = mx.io.NDArrayIter(x, y, batch_size=batch)
    mod.bind(it.provide_data, it.provide_label)
    mx.random.seed(1)
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer=optimizer, optimizer_params={"learning_rate": 0.1, "wd": 1e-3})
    metric = mx.metric.create("acc")
    outputs = []
    for batch_ in it:
        mod.forward(batch_, is_train=True)
        outputs.append(mod.get_outputs()[0].asnumpy())
        mod.update_metric(metric, batch_.label)
        mod.backward()
        mod.update()
    args, auxs = mod.get_params()
    return mod, {k: v.asnumpy() for k, v in args.items()}, {k: v.asnumpy() for k, v in auxs.items()}, outputs, \
        metric.get()[1]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("work_load_list", [None, [1, 3]])
def test_two_devices_train_as_one(optimizer, work_load_list):
    state = RNG.get_state()
    _, args1, auxs1, outs1, acc1 = _train([mx.cpu(0)], None, optimizer)
    RNG.set_state(state)
    mod, args2, auxs2, outs2, acc2 = _train([mx.cpu(0), mx.cpu(1)], work_load_list, optimizer)
    assert len(mod._exec_group.execs) == 2
    for a, b in zip(outs1, outs2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)     # (sums in another order: float32 rounding)
    # (Adam divides by the root of the squared gradients: gradients near zero, summed in another order, move
    # their weights by up to ~1e-4 differently; SGD, which would also catch a wrongly scaled sum, stays tighter)
    atol = 2e-4 if optimizer == "adam" else 1e-6
    for name in args1:
        np.testing.assert_allclose(args2[name], args1[name], rtol=1e-4, atol=atol, err_msg=name)
    assert acc1 == acc2
    # the weights are equal on both devices after each update
    group = mod._exec_group
    for name, block in zip(mod._param_names, group.param_arrays):
        np.testing.assert_array_equal(block[0].asnumpy(), block[1].asnumpy(), err_msg=name)


def test_batch_norm_runs_per_device():
    """With BatchNorm each device normalizes its own slice (MXNet's data parallelism): device i's outputs are a
    one-device module's on slice i with the same weights; the moving statistics differ per device and get_params
    gives their average (MXNet's _sync_params_from_devices)."""
    x = RNG.uniform(-1, 1, (10, 5)).astype(np.float32)
    y = RNG.randint(0, 3, 10).astype(np.float32)
    mod = mx.mod.Module(_net(batch_norm=True), context=[mx.cpu(0), mx.cpu(1)], work_load_list=[2, 3])
    mod.bind([("data", (10, 5))], [("softmax_label", (10,))])
    mod.init_params(mx.init.Xavier())
    args, auxs = mod.get_params()
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)]), is_train=True)
    parts = [p.asnumpy() for p in mod.get_outputs(merge_multi_context=False)[0]]
    for part, rows in zip(parts, (slice(0, 4), slice(4, 10))):
        one = mx.mod.Module(_net(batch_norm=True))
        one.bind([("data", x[rows].shape)], [("softmax_label", y[rows].shape)])
        one.init_params(arg_params=args, aux_params=auxs)
        one.forward(mx.io.DataBatch([mx.nd.array(x[rows])], [mx.nd.array(y[rows])]), is_train=True)
        np.testing.assert_allclose(part, one.get_outputs()[0].asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), np.concatenate(parts), rtol=0, atol=0)
    mod.backward()
    mod.init_optimizer()
    mod.update()            # (moving statistics move in backward, each device's own)
    group = mod._exec_group
    means = [b.asnumpy() for b in group.aux_arrays[group.aux_names.index("bn_moving_mean")]]
    assert not np.allclose(means[0], means[1])
    _, new_auxs = mod.get_params()
    np.testing.assert_allclose(new_auxs["bn_moving_mean"].asnumpy(), (means[0] + means[1]) / 2, rtol=1e-6)


def test_split_and_attributes():
    assert split_batch(10, [1, 1]) == [slice(0, 5), slice(5, 10)]
    assert split_batch(10, [1, 3]) == [slice(0, 2), slice(2, 10)]      # round(2.5) = 2, the rest to the last
    assert split_batch(7, [1, 1, 1]) == [slice(0, 2), slice(2, 4), slice(4, 7)]
    with pytest.raises(ValueError, match="Too many slices"):
        split_batch(2, [1, 1, 1])
    mod = mx.mod.Module(_net(batch_norm=True), context=[mx.cpu(0), mx.cpu(1)], work_load_list=[1, 3])
    mod.bind([("data", (8, 5))], [("softmax_label", (8,))])
    mod.init_params()
    group = mod._exec_group
    assert isinstance(group, DataParallelExecutorGroup)
    assert [e.arg_dict["data"].shape for e in group.execs] == [(2, 5), (6, 5)]
    assert group.slices == [slice(0, 2), slice(2, 8)]
    assert [d.shape for d in group.data_shapes] == [(8, 5)] and mod.data_shapes[0].shape == (8, 5)
    assert len(group.param_arrays) == 6 and all(len(b) == 2 for b in group.param_arrays)
    assert group.grad_arrays[0][0].shape == (16, 5)
    assert mod.output_shapes == [("softmax_output", (8, 3))]
    parts = mod.get_outputs(merge_multi_context=False)
    assert [p.shape for p in parts[0]] == [(2, 3), (6, 3)]
    with pytest.raises(ValueError, match="work_load_list has 1 entries for 2 contexts"):
        mx.mod.Module(_net(), context=[mx.cpu(0), mx.cpu(1)], work_load_list=[1])


def test_standalone_group_shares_with_another():
    """DataParallelExecutorGroup as MXNet's tests build it: a second group sharing the first's parameters,
    gradients and input arrays (shared_data_arrays)."""
    sym = _net()
    params = [n for n in sym.list_arguments() if n not in ("data", "softmax_label")]
    kwargs = dict(contexts=[mx.cpu(0), mx.cpu(1)], workload=[1, 1], param_names=params, for_training=True,
                  inputs_need_grad=False)
    first = DataParallelExecutorGroup(sym, data_shapes=[("data", (4, 5))], label_shapes=[("softmax_label", (4,))],
                                      **kwargs)
    assert [sorted(d) for d in first.shared_data_arrays] == [["data", "softmax_label"]] * 2
    second = DataParallelExecutorGroup(sym, data_shapes=[("data", (4, 5))], label_shapes=[("softmax_label", (4,))],
                                       shared_group=first, **kwargs)
    for a, b in zip(first.execs, second.execs):
        for name in params:
            assert mx.test_utils.same_array(a.arg_dict[name], b.arg_dict[name]), name
            assert mx.test_utils.same_array(a.grad_dict[name], b.grad_dict[name]), name
        assert mx.test_utils.same_array(a.arg_dict["data"], b.arg_dict["data"])
    assert first.grad_req == second.grad_req and first.grad_req["data"] == "null"


def test_outputs_split_along_their_layout():
    """An output declared with __layout__='TNC' is split and joined along axis 1 (MXNet's output_layouts); the
    head gradients given for the whole batch too."""
    sym = mx.sym.Activation(mx.sym.Variable("data"), act_type="relu", __layout__="TNC")
    mod = mx.mod.Module(sym, ("data",), None, context=[mx.cpu(0), mx.cpu(1)])
    mod.bind(data_shapes=[mx.io.DataDesc("data", (3, 8, 7), layout="TNC")], inputs_need_grad=True)
    mod.init_params()
    x = RNG.uniform(-1, 1, (3, 8, 7)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], None), is_train=True)
    head = RNG.uniform(-1, 1, (3, 8, 7)).astype(np.float32)
    mod.backward([mx.nd.array(head)])
    assert [p.shape for p in mod.get_outputs(merge_multi_context=False)[0]] == [(3, 4, 7), (3, 4, 7)]
    np.testing.assert_array_equal(mod.get_outputs()[0].asnumpy(), np.maximum(x, 0))
    np.testing.assert_array_equal(mod.get_input_grads()[0].asnumpy(), head * (x > 0))


def test_context_groups_place_their_arrays():
    """group2ctxs: the arrays of variables declared in a ctx_group live on that group's context (one dict for all
    devices, a list of dicts, or a context per device); results as without groups."""
    with mx.AttrScope(ctx_group="dev1"):
        a = mx.sym.Variable("a") * 2
    with mx.AttrScope(ctx_group="dev2"):
        c = a + mx.sym.Variable("b")
    ones = mx.io.DataBatch([mx.nd.ones((2, 5)), mx.nd.ones((2, 5))])
    for contexts, group2ctxs, where in (([mx.cpu(0)], {"dev1": mx.cpu(1), "dev2": mx.cpu(2)}, [mx.cpu(1), mx.cpu(2)]),
                                        ([mx.cpu(0), mx.cpu(1)], [{"dev1": mx.cpu(2), "dev2": mx.cpu(3)},
                                                                  {"dev1": mx.cpu(4), "dev2": mx.cpu(5)}], None),
                                        ([mx.cpu(0), mx.cpu(1)], {"dev1": [mx.cpu(2), mx.cpu(3)], "dev2": mx.cpu(4)},
                                         None)):
        mod = mx.mod.Module(c, context=contexts, data_names=["a", "b"], label_names=None, group2ctxs=group2ctxs)
        mod.bind(data_shapes=[("a", (2, 5)), ("b", (2, 5))], inputs_need_grad=True)
        mod.init_params()
        mod.forward(ones, is_train=True)
        mod.backward([mx.nd.ones((2, 5))])
        grads = mod.get_input_grads()
        np.testing.assert_array_equal(grads[0].asnumpy(), np.full((2, 5), 2.0))
        np.testing.assert_array_equal(grads[1].asnumpy(), np.ones((2, 5)))
        if where:
            assert [g.context for g in grads] == where
    group = mod._exec_group
    assert group.execs[1].arg_dict["a"].context == mx.cpu(3) and group.execs[1].arg_dict["b"].context == mx.cpu(4)


def test_kvstore_and_optimizer_states_on_several_devices(tmp_path):
    """Several devices: the module keeps MXNet's kvstore whose updater holds the optimizer states; saved states
    load into a one-device module (MXNet's test_save_load)."""
    sym = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=4)
    mod = mx.mod.Module(sym, ("data",), None, context=[mx.cpu(0), mx.cpu(1)])
    mod.bind(data_shapes=[("data", (6, 3))])
    mod.init_params()
    mod.init_optimizer(optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    mod.forward(mx.io.DataBatch([mx.nd.array(RNG.uniform(-1, 1, (6, 3)))]), is_train=True)
    mod.backward([mx.nd.ones((6, 4))])
    mod.update()
    prefix = str(tmp_path / "m")
    mod.save_checkpoint(prefix, 0, save_optimizer_states=True)
    mod2 = mx.mod.Module.load(prefix, 0, load_optimizer_states=True, data_names=("data",), label_names=None)
    mod2.bind(data_shapes=[("data", (6, 3))])
    mod2.init_optimizer(optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    states = mod._kvstore._updater.states
    assert mod._kvstore._updater is mod._updater and sorted(states) == sorted(mod2._updater.states)
    for key in states:
        np.testing.assert_array_equal(states[key].asnumpy(), mod2._updater.states[key].asnumpy())
    assert mx.mod.Module(sym, ("data",), None)._kvstore is None


def test_backward_with_nothing_to_differentiate():
    """No parameter and no input gradient (MXNet's test_module_update_no_pragram): backward needs no head
    gradient and the update changes nothing."""
    mod = mx.mod.Module(mx.sym.Dropout(mx.sym.Variable("data"), 0.5), label_names=None)
    mod.bind(data_shapes=[("data", (10, 10))])
    mod.init_params()
    mod.init_optimizer()
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((10, 10))]))
    mod.update()
    out = mod.get_outputs()[0].asnumpy()
    assert out.shape == (10, 10) and set(np.unique(out)) <= {0.0, 2.0}


def test_bucketing_module_names_saves_and_loads(tmp_path):
    """sym_gen runs under a fresh NameManager (every bucket's nodes are named alike: embedding0_weight);
    save_checkpoint writes MXNet's files (params, a symbol per bucket, .buckets) and load brings the parameters
    back (MXNet's test_bucketing_save_load)."""
    def sym_gen(length):
        embed = mx.sym.Embedding(mx.sym.Variable("data"), input_dim=10, output_dim=4)
        pred = mx.sym.FullyConnected(mx.sym.Reshape(embed, shape=(-1, 4)), num_hidden=10, name="pred")
        label = mx.sym.Reshape(mx.sym.Variable("softmax_label"), shape=(-1,))
        return mx.sym.SoftmaxOutput(pred, label, name="softmax"), ("data",), ("softmax_label",)

    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=5)
    mod.bind([("data", (2, 5))], [("softmax_label", (2, 5))])
    mod.init_params(mx.init.Xavier())
    assert mod.symbol.list_arguments()[1] == "embedding0_weight"
    mod.switch_bucket(3, [("data", (2, 3))], [("softmax_label", (2, 3))])
    assert mod.symbol.list_arguments()[1] == "embedding0_weight"
    prefix = str(tmp_path / "b")
    mod.save_checkpoint(prefix, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b-0001.params", "b-3-symbol.json", "b-5-symbol.json",
                                                          "b.buckets"]
    mod2 = mx.mod.BucketingModule.load(prefix, 1, sym_gen=sym_gen, default_bucket_key=5)
    mod2.bind([("data", (2, 5))], [("softmax_label", (2, 5))])
    for name, value in mod.get_params()[0].items():
        np.testing.assert_array_equal(mod2.get_params()[0][name].asnumpy(), value.asnumpy(), err_msg=name)
    assert mod._buckets[5]._exec_group._total_exec_bytes > 0


def test_base_module_set_params_is_init_params_without_initializer():
    calls = []
    mod = mx.mod.BaseModule()
    mod.init_params = lambda **kwargs: calls.append(kwargs)
    mod.set_params({"w": 1}, {}, allow_missing=True)
    assert calls == [{"initializer": None, "arg_params": {"w": 1}, "aux_params": {}, "allow_missing": True,
                      "force_init": True, "allow_extra": False}]
