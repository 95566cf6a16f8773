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
