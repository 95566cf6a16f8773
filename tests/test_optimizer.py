"""mx.optimizer against MXNet 1.9.1: recorded update steps, lr/wd multipliers, registry, Updater state files."""
import json
import os
import pickle
import struct
import warnings

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.module import lr_scheduler, optimizer
from tests.fixtures.recorded import leaves

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
with open(os.path.join(FIXTURES, "optimizer_updates.json")) as _handle:
    RECORD = json.load(_handle)
ARRAYS = np.load(os.path.join(FIXTURES, "optimizer_updates.npz"))


class RecordedSchedule:
    """The learning rates MXNet's scheduler returned, by num_update; a call MXNet never made fails."""

    def __init__(self, calls, base_lr):
        self.table = {n: lr for n, lr in calls}
        self.base_lr = base_lr

    def __call__(self, num_update):
        assert num_update in self.table, "MXNet never asked the scheduler for num_update=%d" % num_update
        return self.table[num_update]


def split(flat, shapes, dtype, ctx=None):
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(mx.nd.array(flat[offset:offset + size].reshape(shape), ctx=ctx, dtype=dtype))
        offset += size
    return out


def build(case):
    kwargs, options = dict(case["kwargs"]), case["options"]
    if case["scheduler_calls"]:
        kwargs["lr_scheduler"] = RecordedSchedule(case["scheduler_calls"], base_lr=123.0)
    if options.get("names"):
        kwargs["param_idx2name"] = dict(enumerate(case["names"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimizer.create(case["optimizer"], **kwargs)
    if case["lr_mult"]:
        opt.set_lr_mult(dict((k, v) for k, v in case["lr_mult"]))
    if "wd_mult" in options:
        opt.set_wd_mult(options["wd_mult"])
    return opt


# Cases that cannot match bit for bit. float64: Nadam's NDArray scalars reach MXNet's kernels through dmlc's
# string-to-double parser, which misses the nearest double for ~10 % of 17-digit values (its 1 - m_schedule is
# 0.908785712584094 for 0.9087857125840941); LARS's multi_sum_sq adds float64 squares into a float32 sum in
# double, which onnxsym's vectorised sum rounds per square first (the sum's last float32 place can differ).
# float32: LAMB's single-index path takes the weight's norm from NDArray.norm (mshadow's scaled nrm2 reduction,
# numpy's here); one value of the aggregated path is one ulp away after four steps (cause not found: not an FMA,
# not powf).
NEAR = {"nadam_float64": dict(rtol=1e-15, atol=1e-17),
        "lars_float64": dict(rtol=1e-9, atol=1e-10), "lars_single_float64": dict(rtol=1e-9, atol=1e-10),
        "lamb": dict(rtol=2.5e-7, atol=0), "lamb_bounds": dict(rtol=2.5e-7, atol=0)}


def recorded_tolerance(name):
    """Every step bit for bit, in float16, float32 and float64 (MXNet's operators take float32 rates and cast them
    to the weight's dtype; its Python arithmetic is in double), but for NEAR."""
    return NEAR.get(name, dict(rtol=0, atol=0))


@pytest.mark.parametrize("case", [c for c in RECORD["cases"] if "error" not in c], ids=lambda c: c["name"])
def test_updates_match_mxnet(case):
    replay_recorded(case)


def replay_recorded(case, ctx=None):
    """Run a recorded case's steps through onnxsym's optimizer (its arrays on `ctx`) and compare every step's
    weights, states, rates and counts with MXNet's."""
    name, shapes, dtype = case["name"], [tuple(s) for s in case["shapes"]], case["dtype"]
    tol, stored = recorded_tolerance(name), np.float64 if dtype == "float64" else np.float32
    opt = build(case)
    weights = split(ARRAYS[name + ":w0"], shapes, dtype, ctx)
    buffers = [w._data for w in weights]
    updater, states, mode = optimizer.get_updater(opt), {}, case["options"].get("mode", "list")
    indices = list(range(len(shapes)))
    for step in range(case["steps"]):
        grads = split(ARRAYS[name + ":g"][step], shapes, dtype, ctx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "list":
                updater(indices, grads, weights)
            elif mode == "single":
                for i in indices:
                    updater(i, grads[i], weights[i])
            else:
                for i in indices:
                    states.setdefault(i, opt.create_state_multi_precision(i, weights[i]))
                    opt.update_multi_precision(i, weights[i], grads[i], states[i])
        states = updater.states if mode != "direct" else states
        got = np.concatenate([w.asnumpy().astype(stored).ravel() for w in weights])
        np.testing.assert_allclose(got, ARRAYS[name + ":w"][step], err_msg="%s weights, step %d" % (name, step), **tol)
        flat = np.concatenate([np.zeros(0, stored)] + [x for i in indices for x in leaves(states[i], stored)])
        np.testing.assert_allclose(flat, ARRAYS[name + ":s"][step], err_msg="%s states, step %d" % (name, step),
                                   **tol)
        assert opt.learning_rate == pytest.approx(case["learning_rate"][step], rel=1e-12)
        assert opt.num_update == case["num_update"][step]
        assert [opt._index_update_count.get(i) for i in indices] == case["index_update_count"][step]
    assert all(w._data is b for w, b in zip(weights, buffers)), "weights must be updated in place"
    assert [w.dtype for w in weights] == [np.dtype(dtype).type] * len(weights)
    assert [opt._get_lr(i) for i in indices] == pytest.approx(case["lrs"], rel=1e-12)
    assert [opt._get_wd(i) for i in indices] == pytest.approx(case["wds"], rel=1e-12)
    if case["scheduler_base_lr"] is not None:  # learning_rate overrides the scheduler's base_lr, as in MXNet
        assert opt.lr_scheduler.base_lr == case["kwargs"]["learning_rate"]


@pytest.mark.parametrize("case", [c for c in RECORD["cases"] if "error" in c], ids=lambda c: c["name"])
def test_updates_mxnet_refuses(case):
    """AdaGrad, RMSProp, AdaDelta, Ftrl and GroupAdaGrad keep float32 states (MXNet's zeros) whatever the weight;
    MXNet 1.9.1 refused their update of a float64 weight, or of a float16 one without multi_precision (recorded),
    where onnxsym used to mix the dtypes silently. With multi_precision the float16 update runs on the master."""
    assert "Incompatible attr" in case["error"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimizer.create(case["optimizer"], **case["kwargs"])
        shapes = [(3, 4), (2, 3)]
        weights = [mx.nd.array(np.full(s, 0.5), dtype=case["dtype"]) for s in shapes]
        grads = [mx.nd.array(np.full(s, 0.25), dtype=case["dtype"]) for s in shapes]
        updater = optimizer.get_updater(opt)
        with pytest.raises(MXNetError, match="the weight is %s but its optimizer state is float32" % case["dtype"]):
            updater([0, 1], grads, weights)
        assert [w.asnumpy().tolist() for w in weights] == [np.full(s, 0.5).tolist() for s in shapes]
        if case["dtype"] == "float16":
            opt = optimizer.create(case["optimizer"], multi_precision=True, **case["kwargs"])
            optimizer.get_updater(opt)([0, 1], grads, weights)
            assert all(np.all(w.asnumpy() != 0.5) for w in weights)


def attr_symbol():
    data = mx.sym.Variable("data")
    weight = mx.sym.Variable("fc1_weight", lr_mult=2.0, wd_mult=0.5)
    bias = mx.sym.Variable("fc1_bias", lr_mult=0.1)
    net = mx.sym.FullyConnected(data, weight=weight, bias=bias, num_hidden=3, name="fc1")
    net = mx.sym.FullyConnected(net, num_hidden=2, name="fc2")
    return mx.sym.broadcast_mul(net, mx.sym.Variable("bn_gamma", wd_mult=4.0), name="scale")


def test_lr_wd_mult_from_symbol_attrs():
    with open(os.path.join(FIXTURES, "optimizer_attrs.json")) as handle:
        expected = json.load(handle)
    net = attr_symbol()
    args = net.list_arguments()
    assert args == expected["arguments"]
    for case in expected["cases"]:
        idx2name = dict(enumerate(args)) if case["idx2name"] else None
        opt = optimizer.create("sgd", learning_rate=0.1, wd=0.01, sym=net, param_idx2name=idx2name)
        assert sorted(map(list, opt.lr_mult.items())) == case["lr_mult"]
        assert sorted(map(list, opt.wd_mult.items())) == case["wd_mult"]
        assert [opt._get_lr(i) for i in range(len(args))] == pytest.approx(case["lrs"])
        assert [opt._get_wd(i) for i in range(len(args))] == pytest.approx(case["wds"])
        opt.set_lr_mult({"fc2_weight": 3.0, 1: 5.0})
        opt.set_wd_mult({"fc2_bias": 2.0})
        after = case["after_set"]
        assert sorted([str(k), v] for k, v in opt.lr_mult.items()) == after["lr_mult"]
        assert sorted(map(list, opt.wd_mult.items())) == after["wd_mult"]
        assert [opt._get_lr(i) for i in range(len(args))] == pytest.approx(after["lrs"])
        assert [opt._get_wd(i) for i in range(len(args))] == pytest.approx(after["wds"])


def test_registry_names_and_create():
    assert sorted(optimizer.Optimizer.opt_registry) == RECORD["registry"]
    assert type(optimizer.create("SGD")) is optimizer.SGD
    assert type(optimizer.create("AdaM", learning_rate=0.1)) is optimizer.Adam
    assert optimizer.create("adam").learning_rate == 0.001
    assert optimizer.create("sgd").learning_rate == 0.01
    assert optimizer.create is optimizer.Optimizer.create_optimizer
    with pytest.raises(ValueError, match="Cannot find optimizer nosuch"):
        optimizer.create("nosuch")


def test_register_custom_optimizer_and_override_warning():
    @optimizer.register
    class HalfStep(optimizer.Optimizer):
        def update(self, index, weight, grad, state):
            weight._data -= 0.5 * grad._data

    try:
        weight = mx.nd.array([1.0, 2.0])
        optimizer.get_updater(optimizer.create("halfstep"))(0, mx.nd.array([2.0, 2.0]), weight)
        np.testing.assert_array_equal(weight.asnumpy(), [0.0, 1.0])
        with pytest.warns(UserWarning, match="overriding existing optimizer"):
            optimizer.register(type("HalfStep", (optimizer.Optimizer,), {}))
    finally:
        del optimizer.Optimizer.opt_registry["halfstep"]


def test_learning_rate_rules():
    opt = optimizer.create("sgd", learning_rate=0.5)
    opt.set_learning_rate(0.25)
    assert opt.learning_rate == 0.25
    sched = lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    with pytest.warns(UserWarning, match="overwritten"):
        opt = optimizer.create("sgd", learning_rate=0.2, lr_scheduler=sched)
    assert sched.base_lr == 0.2 and opt.learning_rate == 0.2
    with pytest.raises(UserWarning, match="LRScheduler of the optimizer has already been defined"):
        opt.set_learning_rate(0.1)
    with pytest.raises(NotImplementedError):
        optimizer.Optimizer().update(0, mx.nd.ones((2,)), mx.nd.ones((2,)), None)


def test_bad_inputs():
    opt = optimizer.create("adam")
    state = opt.create_state(0, mx.nd.ones((2, 2)))
    with pytest.raises(TypeError, match="NDArray"):
        opt.update(0, np.ones((2, 2), np.float32), mx.nd.ones((2, 2)), state)
    with pytest.raises(MXNetError, match=r"\(2, 2\).*\(3,\)"):
        opt.update(0, mx.nd.ones((2, 2)), mx.nd.ones((3,)), state)
    signsgd = optimizer.create("signum", momentum=0.0, wd_lh=0.1)
    with pytest.raises(MXNetError, match="wd_lh"):
        signsgd.update(0, mx.nd.ones((2,)), mx.nd.ones((2,)), None)
    with pytest.raises(ValueError, match="2-D"):
        optimizer.create("groupadagrad").create_state(0, mx.nd.ones((3,)))
    with pytest.raises(ValueError, match="param_idx2name"):
        optimizer.create("sgd", param_idx2name=[("a", 1)])


def test_dcasgd_momentum_follows_the_documented_update():
    # MXNet 1.9.1 crashes here (`if mom:` on an array); the update is the one its docstring states.
    lr, momentum, lamda, wd = 0.1, 0.9, 0.5, 0.01
    rng = np.random.RandomState(3)
    w0, grads = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, (4, 3, 2))
    weight = mx.nd.array(w0)
    updater = optimizer.get_updater(optimizer.create("dcasgd", learning_rate=lr, momentum=momentum, lamda=lamda,
                                                     wd=wd))
    w, prev, mom = w0.copy(), w0.copy(), np.zeros_like(w0)
    for g in grads:
        updater(0, mx.nd.array(g), weight)
        mom = momentum * mom - lr * (g + wd * w + lamda * g * g * (w - prev))
        prev, w = w.copy(), w + mom
    np.testing.assert_allclose(weight.asnumpy(), w, rtol=1e-5, atol=1e-6)


def test_sgld_noise_has_variance_lr():
    lr, wd = 0.04, 0.1
    w0 = np.random.RandomState(1).uniform(-1, 1, 20000).astype(np.float32)
    g = np.random.RandomState(2).uniform(-1, 1, 20000).astype(np.float32)
    results = []
    for _ in range(2):
        mx.random.seed(7)
        weight = mx.nd.array(w0)
        optimizer.create("sgld", learning_rate=lr, wd=wd).update(0, weight, mx.nd.array(g), None)
        results.append(weight.asnumpy())
    np.testing.assert_array_equal(results[0], results[1])  # reproducible under mx.random.seed, as MXNet's
    noise = results[0] - (w0 - lr / 2 * (g + wd * w0))
    assert abs(noise.mean()) < 0.01
    assert noise.std() == pytest.approx(np.sqrt(lr), rel=0.03)


def run_steps(updater, weights, steps, seed):
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        grads = [mx.nd.array(rng.uniform(-1, 1, w.shape)) for w in weights]
        updater(list(range(len(weights))), grads, weights)


@pytest.mark.filterwarnings("ignore:Accumulating with float16")
@pytest.mark.parametrize("name,kwargs", [
    ("adam", dict(learning_rate=0.01, wd=0.01)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9, multi_precision=True)),
    ("nadam", dict(learning_rate=0.01)),
    ("lars", dict(learning_rate=0.1, momentum=0.9)),
    ("lbsgd", dict(learning_rate=0.1, batch_scale=2, momentum=0.5)),
])
def test_updater_state_round_trip(name, kwargs):
    shapes, dtypes = [(3, 4), (5,)], ["float16", "float32"]
    init = [np.random.RandomState(i).uniform(-1, 1, s) for i, s in enumerate(shapes)]
    make = lambda: [mx.nd.array(x, dtype=d) for x, d in zip(init, dtypes)]  # noqa: E731

    def fresh():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optimizer.get_updater(optimizer.create(name, **kwargs))

    reference, weights = fresh(), make()
    run_steps(reference, weights, 3, seed=0)
    blob = reference.get_states(dump_optimizer=True)
    assert isinstance(blob, bytes) and blob.startswith(b"ONNXSYM-UPDATER\n")
    restored = fresh()
    restored.set_states(blob)
    assert restored.optimizer is not reference.optimizer and type(restored.optimizer) is type(reference.optimizer)
    assert restored.optimizer.num_update == reference.optimizer.num_update == 3
    assert restored.states_synced == {0: False, 1: False}
    for key in reference.states:
        old, new = reference.states[key], restored.states[key]
        assert type(old) is type(new)
        for a, b in zip(leaves(old), leaves(new)):
            np.testing.assert_array_equal(a, b)
    copies = [mx.nd.array(w.asnumpy(), dtype=w.dtype) for w in weights]
    run_steps(reference, weights, 2, seed=1)
    run_steps(restored, copies, 2, seed=1)
    for a, b in zip(weights, copies):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert restored.optimizer._index_update_count == reference.optimizer._index_update_count


def test_states_without_optimizer_keep_the_current_one():
    updater = optimizer.get_updater(optimizer.create("rmsprop", centered=True))
    weight = mx.nd.ones((2, 3))
    updater("w", mx.nd.ones((2, 3)), weight)
    blob = updater.get_states()
    other = optimizer.get_updater(optimizer.create("rmsprop", centered=True, learning_rate=0.5))
    keep = other.optimizer
    other.set_states(blob)
    assert other.optimizer is keep and set(other.states) == {"w"}
    assert isinstance(other.states["w"], tuple) and len(other.states["w"]) == 3


def test_dumped_scheduler_round_trip():
    sched = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    updater = optimizer.get_updater(optimizer.create("sgd", lr_scheduler=sched, momentum=0.9))
    weight = mx.nd.ones((4,))
    for _ in range(5):
        updater(0, mx.nd.ones((4,)), weight)
    restored = optimizer.get_updater(optimizer.create("sgd"))
    restored.set_states(updater.get_states(dump_optimizer=True))
    new_sched = restored.optimizer.lr_scheduler
    assert type(new_sched) is lr_scheduler.FactorScheduler and new_sched is not sched
    assert vars(new_sched) == vars(sched)
    assert restored.optimizer.learning_rate == updater.optimizer.learning_rate == 0.25


def edit_header(blob, old, new):
    """The blob with `old` replaced by `new` in its JSON header (the header length kept consistent)."""
    size = struct.unpack_from("<Q", blob, 16)[0]
    header = blob[24:24 + size].replace(old, new)
    return blob[:16] + struct.pack("<Q", len(header)) + header + blob[24 + size:]


@pytest.mark.parametrize("mutate,error,match", [
    (lambda blob: pickle.dumps({0: None}), MXNetError, "not an onnxsym optimizer-state file"),
    (lambda blob: blob[:-3], MXNetError, "truncated"),
    (lambda blob: blob + b"\0", MXNetError, "trailing"),
    (lambda blob: edit_header(blob, b'"<f4"', b'"|O8"'), MXNetError, "bad array entry"),
    (lambda blob: blob[:16] + struct.pack("<Q", 10 ** 9) + blob[24:], MXNetError, "truncated header"),
    (lambda blob: edit_header(blob, b'"sgd"', b'"os.system"'), MXNetError, "unknown optimizer"),
    (lambda blob: edit_header(blob, b'"format": 1', b'"format": 2'), MXNetError, "unsupported header"),
    (lambda blob: edit_header(blob, b'{"ndarray": 0}', b'{"ndarray": 9}'), MXNetError, "malformed entry"),
    (lambda blob: "text", TypeError, "bytes"),
])
def test_set_states_rejects_foreign_data(mutate, error, match):
    updater = optimizer.get_updater(optimizer.create("sgd", momentum=0.9))
    updater(0, mx.nd.ones((2,)), mx.nd.ones((2,)))
    blob = updater.get_states(dump_optimizer=True)
    with pytest.raises(error, match=match):
        optimizer.get_updater(optimizer.create("sgd")).set_states(mutate(blob))


def test_state_format_is_plain_json_and_raw_arrays():
    updater = optimizer.get_updater(optimizer.create("sgd", momentum=0.9))
    updater(0, mx.nd.ones((2,)), mx.nd.array([1.0, 2.0]))
    blob = updater.get_states()
    size = struct.unpack_from("<Q", blob, 16)[0]
    header = json.loads(blob[24:24 + size])
    assert header["states"] == {"dict": [[0, {"ndarray": 0}]]}
    assert header["arrays"] == [{"dtype": "<f4", "shape": [2]}] and header["optimizer"] is None
    momentum = np.frombuffer(blob[24 + size:], np.float32)
    np.testing.assert_allclose(momentum, updater.states[0].asnumpy())
    np.testing.assert_allclose(momentum, [-0.01, -0.01])


def test_get_states_refuses_unknown_objects():
    updater = optimizer.get_updater(optimizer.create("sgd", lr_scheduler=RecordedSchedule([], 0.01)))
    with pytest.raises(ValueError, match="cannot store a RecordedSchedule"):
        updater.get_states(dump_optimizer=True)
