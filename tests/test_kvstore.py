"""mx.kv: MXNet's single-process KVStore against values and errors recorded from MXNet 1.9.1
(tests/fixtures/make_kvstore_fixtures.py): 2-bit gradient compression on 'device' stores, the reductions of
'local' and 'device' stores, optimizers and updaters, int/str key rules, and its use by Module.fit."""
import json
import pathlib
import warnings

import numpy as np
import pytest

import onnxsym as mx

from .fixtures.kvstore_cases import double_add, key_of

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "mxnet"
RECORD = json.loads((FIXTURES / "kvstore.json").read_text())
ARRAYS = np.load(FIXTURES / "kvstore.npz")
SHAPE = (2, 3)


def replay(name, spec, check):
    """Run a recorded scenario on onnxsym's store; check(step, key, pulled, recorded) after each step."""
    dtype = spec.get("dtype", "float32")
    kv = mx.kv.create(spec["type"])
    if spec.get("compression"):
        kv.set_gradient_compression(spec["compression"])
    for key in spec["keys"]:
        kv.init(key_of(key), mx.nd.array(ARRAYS["%s/init:%s" % (name, key)], dtype=dtype))
    if "optimizer" in spec:
        kv.set_optimizer(mx.optimizer.SGD(**spec["optimizer"]))
    elif spec.get("updater") == "double_add":
        kv._set_updater(double_add)
    for step, count in enumerate(spec["devices"]):
        values = [[mx.nd.array(ARRAYS["%s/push:%d:%s:%d" % (name, step, key, device)], ctx=mx.cpu(device),
                               dtype=dtype) for device in range(count)] for key in spec["keys"]]
        kv.push([key_of(key) for key in spec["keys"]], values)
        for key in spec["keys"]:
            out = mx.nd.zeros(RECORD["shapes"][key], dtype=dtype)
            kv.pull(key_of(key), out=out)
            check(step, key, out.asnumpy(), ARRAYS["%s/pull:%d:%s" % (name, step, key)])
        if step + 1 == spec.get("save_after"):
            path = "/tmp/onnxsym_kvstore_%d.states" % id(kv)
            kv.save_optimizer_states(path)
            kv = mx.kv.create(spec["type"])
            kv.set_gradient_compression(spec["compression"])
            for key in spec["keys"]:
                kv.init(key_of(key), mx.nd.array(ARRAYS["%s/pull:%d:%s" % (name, step, key)]))
            kv.set_optimizer(mx.optimizer.SGD(**spec["optimizer"]))
            kv.load_optimizer_states(path)
            pathlib.Path(path).unlink()


@pytest.mark.parametrize("name", sorted(RECORD["scenarios"]))
def test_recorded_scenarios(name):
    """Pulls after each push equal MXNet's: bit for bit for reductions (the compressed ones, and sums in MXNet's
    order and dtype), to float rounding where an optimizer computes."""
    spec = RECORD["scenarios"][name]

    def check(step, key, pulled, recorded):
        assert pulled.dtype == recorded.dtype, (step, key)
        if "optimizer" in spec:
            tol = 2e-3 if spec.get("dtype") == "float16" else 1e-6
            np.testing.assert_allclose(pulled, recorded, rtol=tol, atol=tol, err_msg="step %d key %s" % (step, key))
        else:
            np.testing.assert_array_equal(pulled, recorded, err_msg="step %d key %s" % (step, key))
    replay(name, spec, check)


def simulate(name, residual=True, compare=np.greater_equal):
    """numpy model of MXNet's 2-bit reduction (no optimizer) for a recorded scenario: [pulled per step]."""
    spec = RECORD["scenarios"][name]
    threshold = np.float32(spec["compression"].get("threshold", 0.5))
    residuals, pulls = {}, []
    for step, count in enumerate(spec["devices"]):
        total = None
        for device in range(count):
            res = residuals.setdefault(device, np.zeros(RECORD["shapes"]["0"], np.float32))
            if not residual:
                res[...] = 0
            res += ARRAYS["%s/push:%d:0:%d" % (name, step, device)]
            quantized = np.where(compare(res, threshold), threshold,
                                 np.where(compare(-res, threshold), -threshold, 0)).astype(np.float32)
            res -= quantized
            total = quantized if total is None else total + quantized
        pulls.append(total)
    return pulls


@pytest.mark.parametrize("name", ["c05_1dev", "c05_3dev", "cdefault_2dev", "c05_devices_change"])
def test_fixture_pins_the_residual_and_comparison(name):
    """The recorded pulls are MXNet's 2-bit quantization with residuals and >= / <=, and they tell it apart from
    the same without the residual or with strict comparisons: a store that dropped either fails
    test_recorded_scenarios."""
    recorded = [ARRAYS["%s/pull:%d:0" % (name, step)] for step in range(len(RECORD["scenarios"][name]["devices"]))]
    for model, pulled in zip(simulate(name), recorded):
        np.testing.assert_array_equal(model, pulled)
    assert any((a != b).any() for a, b in zip(simulate(name, residual=False), recorded))
    assert any((a != b).any() for a, b in zip(simulate(name, compare=np.greater), recorded))


def test_compression_drops_no_residual_on_a_store():
    """Below-threshold pushes accumulate in the residual until they reach it, on each device's own residual."""
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init("w", mx.nd.zeros(SHAPE))
    out = mx.nd.zeros(SHAPE)
    pulled = []
    for _ in range(3):
        kv.push("w", [mx.nd.ones(SHAPE) * 0.25, mx.nd.ones(SHAPE, ctx=mx.cpu(1)) * -0.2])
        kv.pull("w", out=out)
        pulled.append(out.asnumpy()[0, 0])
    assert pulled == [0.0, 0.5, -0.5]       # device 0: 0.25, 0.5 -> 0.5, 0.25; device 1: -0.2, -0.4, -0.6 -> -0.5


# name -> (call on onnxsym, a phrase both MXNet's message and onnxsym's contain)
def int_store(kv_type="local"):
    kv = mx.kv.create(kv_type)
    kv.init(3, mx.nd.zeros(SHAPE))
    return kv


def str_store(kv_type="local"):
    kv = mx.kv.create(kv_type)
    kv.init("a", mx.nd.zeros(SHAPE))
    return kv


def ones(shape=SHAPE, dtype="float32"):
    return mx.nd.ones(shape, dtype=dtype)


def gc_push(key_dtype, value_dtype):
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit"})
    kv.init(0, mx.nd.zeros(SHAPE, dtype=key_dtype))
    kv.push(0, ones(dtype=value_dtype))


def failed_push_then_str_init():
    kv = mx.kv.create()
    with pytest.raises(mx.MXNetError, match="1 has not been inited"):
        kv.push(1, ones())
    kv.init("a", ones())


def broadcast_twice():
    kv = mx.kv.create()
    kv.broadcast("b", ones(), out=ones())
    kv.broadcast("b", ones(), out=ones())


MIXED = "Mixed key types are not allowed"
ERRORS = {
    "gc_on_local": (lambda: mx.kv.create("local").set_gradient_compression({"type": "2bit"}),
                    "Gradient compression is not supported for this type of kvstore"),
    "gc_on_other_name": (lambda: mx.kv.create("foo").set_gradient_compression({"type": "2bit"}),
                         "Gradient compression is not supported for this type of kvstore"),
    "gc_unknown_type": (lambda: mx.kv.create("device").set_gradient_compression({"type": "1bit"}),
                        "Unknown type for gradient compression 1bit"),
    "gc_threshold_zero": (lambda: mx.kv.create("device").set_gradient_compression({"type": "2bit", "threshold": 0}),
                          "threshold must be greater than 0"),
    "gc_threshold_negative": (lambda: mx.kv.create("device").set_gradient_compression(
        {"type": "2bit", "threshold": -1}), "threshold must be greater than 0"),
    "gc_threshold_checked_first": (lambda: mx.kv.create("device").set_gradient_compression(
        {"type": "4bit", "threshold": 0}), "threshold must be greater than 0"),
    "gc_no_type": (lambda: mx.kv.create("device").set_gradient_compression({"threshold": 1}),
                   "Required parameter type of string is not presented"),
    "gc_bad_threshold": (lambda: mx.kv.create("device").set_gradient_compression(
        {"type": "2bit", "threshold": "abc"}), "Invalid Parameter format for threshold expect float but value='abc'"),
    "gc_not_a_dict": (lambda: mx.kv.create("device").set_gradient_compression([("type", "2bit")]),
                      "unexpected type for param_dict: <class 'list'>"),
    "gc_float16_push": (lambda: gc_push("float16", "float16"), "data type do not match"),
    "gc_float64_push": (lambda: gc_push("float64", "float64"), "data type do not match"),
    "gc_float16_value_float32_key": (lambda: gc_push("float32", "float16"), "data type do not match"),
    "mixed_init_str_on_int": (lambda: int_store().init("b", ones()), MIXED),
    "mixed_push_str_on_int": (lambda: int_store().push("a", ones()), MIXED),
    "mixed_pull_str_on_int": (lambda: int_store().pull("a", out=ones()), MIXED),
    "mixed_pushpull_str_on_int": (lambda: int_store().pushpull("a", ones()), MIXED),
    "mixed_broadcast_str_on_int": (lambda: int_store().broadcast("b", ones(), out=ones()), MIXED),
    "mixed_init_int_on_str": (lambda: str_store().init(4, ones()), MIXED),
    "mixed_push_int_on_str": (lambda: str_store().push(3, ones()), MIXED),
    "mixed_pull_int_on_str": (lambda: str_store().pull(3, out=ones()), MIXED),
    "mixed_after_failed_push": (failed_push_then_str_init, MIXED),
    "mixed_in_one_list": (lambda: mx.kv.create().init([5, "b"], [ones(), ones()]),
                          "inconsistent types of keys detected."),
    "key_float": (lambda: mx.kv.create().init(3.0, ones()), "unexpected type for keys: <class 'float'>"),
    "key_numpy_int": (lambda: mx.kv.create().init(np.int64(3), ones()),
                      "unexpected type for keys: <class 'numpy.int64'>"),
    "value_numpy": (lambda: int_store().push(3, np.ones(SHAPE)), ""),
    "keys_values_length": (lambda: int_store().push([3], [ones(), ones()]), ""),
    "pull_without_out": (lambda: int_store().pull(3), ""),
    "duplicate_init_int": (lambda: int_store().init(3, ones()), "duplicate init of key 3"),
    "duplicate_init_str": (lambda: str_store().init("a", ones()), "duplicate init of key a"),
    "duplicate_init_in_list": (lambda: mx.kv.create().init(3, [ones(), ones()]), "duplicate init of key 3"),
    "pull_uninitialized_int": (lambda: int_store().pull(4, out=ones()), "key 4 has not been inited"),
    "pull_uninitialized_str": (lambda: str_store().pull("b", out=ones()), "key b doesn't exist. Did you init?"),
    "push_uninitialized_str": (lambda: str_store().push("b", ones()), "key b doesn't exist. Did you init?"),
    "pull_shape": (lambda: int_store().pull(3, out=ones((3,))),
                   "operands shape mismatch from.shape = [2,3] to.shape=[3]"),
    "push_shape_two_devices": (lambda: int_store().push(3, [ones((3,)), ones((3,))]),
                               "operands shape mismatch from.shape = [3] to.shape=[2,3]"),
    "local_push_dtype_two_devices": (lambda: int_store().push(3, [ones(dtype="float64")] * 2),
                                     "data type do not match"),
    "broadcast_twice": (broadcast_twice, "duplicate init of key b"),
    "broadcast_initialized": (lambda: str_store().broadcast("a", ones(), out=ones()), "duplicate init of key a"),
    "broadcast_two_values": (lambda: mx.kv.create().broadcast(5, [ones(), ones()], out=ones()),
                             "duplicate init of key 5"),
    "is_capable_unknown": (lambda: mx.kv.create().is_capable("compression"), "Unknown capability: compression"),
    "save_states_without_optimizer": (lambda: mx.kv.create().save_optimizer_states("/tmp/onnxsym_kv_none"),
                                      "Cannot save states for distributed training"),
    "load_states_without_optimizer": (lambda: mx.kv.create().load_optimizer_states("/tmp/onnxsym_kv_none"),
                                      "Cannot load states for distributed training"),
    "create_not_a_string": (lambda: mx.kv.create(3), "name must be a string"),
    "row_sparse_pull_dense_out": (lambda: int_store().row_sparse_pull(3, out=ones(), row_ids=mx.nd.array([1])),
                                  "Expected row_sparse storage type for row_sparse_pull values"),
    "row_sparse_pull_mixed_keys": (lambda: int_store().row_sparse_pull("a", out=ones(), row_ids=mx.nd.array([1])),
                                   MIXED),
}
CLASSES = {"MXNetError": mx.MXNetError, "AssertionError": AssertionError, "ValueError": ValueError,
           "TypeError": TypeError, "Exception": mx.MXNetError}   # MXNet's bare Exception: an MXNetError here


def test_error_table_is_the_recorded_one():
    assert sorted(ERRORS) == sorted(RECORD["errors"])


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_as_mxnet(name):
    """The exception class MXNet raised (MXNetError where MXNet raises a bare Exception), with its words."""
    call, phrase = ERRORS[name]
    mx_class, mx_message = RECORD["errors"][name]
    assert phrase in mx_message
    with pytest.raises(CLASSES[mx_class]) as info:
        call()
    assert phrase in str(info.value)
    assert str(info.value)                  # never an empty message (MXNet's asserts have none)
    if mx_class == "AssertionError":
        assert isinstance(info.value, mx.MXNetError)


def test_recorded_behaviour():
    facts = RECORD["behaviour"]
    assert [mx.kv.create(n).type for n in ("foo", "Device", "horovod")] == \
        [facts["type_foo"], facts["type_Device"], facts["type_horovod"]]
    assert type(mx.kv.create("teststore")).__name__ == facts["teststore"]
    assert [mx.kv.create().is_capable("optimizer"), mx.kv.create().is_capable("OPTIMIZER")] == facts["is_capable"]
    assert mx.kv.KVStore.OPTIMIZER == mx.kv.KVStoreBase.OPTIMIZER == "optimizer"
    seen = []
    kv = mx.kv.create()
    kv.init(["x", "y"], [ones(), ones()])
    kv._set_updater(lambda key, value, stored: seen.append(repr(key)))
    kv.push(["y", "x", "y"], [ones(), ones(), ones()])
    assert seen == facts["str_updater_keys"]            # bytes, once per key, in init order
    kv = mx.kv.create()
    a = ones()
    kv.init(3, mx.nd.zeros(SHAPE))
    kv.push(3, a)
    a[:] = 7
    out = mx.nd.zeros(SHAPE)
    kv.pull(3, out=out)
    assert out.asnumpy()[0, 0] == facts["single_push_aliases"]
    kv = mx.kv.create()
    kv.init(3, mx.nd.zeros(SHAPE))
    values = [ones(), ones() * 2]
    kv.pushpull(3, values)
    assert [v.asnumpy()[0, 0] for v in values] == facts["pushpull_into_values"]
    kv = mx.kv.create("device")
    kv.init(3, mx.nd.zeros(SHAPE))
    kv.push(3, [ones(dtype="float64") * 1.25, ones(dtype="float16")])
    out = mx.nd.zeros(SHAPE, dtype="float64")
    kv.pull(3, out=out)
    assert [out.asnumpy()[0, 0], out.dtype.__name__] == facts["device_casts_values"]
    kv = mx.kv.create("local")
    kv.init(3, mx.nd.zeros(SHAPE))
    kv.push(3, ones(dtype="float64") * 1.1)
    kv.push(3, [ones() * 0.1, ones() * 0.2, ones() * 0.3])
    out = mx.nd.zeros(SHAPE, dtype="float64")
    kv.pull(3, out=out)
    assert out.asnumpy()[0, 0] == facts["sum_in_init_dtype"]       # 0.1f + (0.2f + 0.3f), in float32


def test_mxnet_invalid_key_types_dense():
    """MXNet's test_invalid_pull check_invalid_key_types_* (its dense part): a store keeps the kind of its keys."""
    for kv, key, other in ((int_store(), 3, "a"), (str_store(), "a", 3)):
        for keys in (other, [other, other]):
            vals = ones() if not isinstance(keys, list) else [ones(), ones()]
            for call in (kv.init, kv.push, kv.pull):
                with pytest.raises(mx.MXNetError, match=MIXED):
                    call(keys, vals)
        out = ones()
        kv.pull(key, out=out)                           # the store still works with its own kind
        assert out.asnumpy().sum() == 0


class RowSparseLike(mx.nd.NDArray):
    """An array that reports storage type row_sparse (a stand-in: onnxsym's arrays are dense)."""

    @property
    def stype(self):
        return "row_sparse"


def test_pull_ignores_sparse_targets():
    """MXNet's test_invalid_pull check_ignored_pull_*: pull leaves non-default targets as they are, warning once per
    key; dense targets of the same call are written."""
    kv = int_store()
    kv.push(3, ones() * 5)
    sparse, dense = RowSparseLike(np.full(SHAPE, 2, np.float32)), mx.nd.zeros(SHAPE)
    with pytest.warns(UserWarning, match="non-default weights detected during kvstore pull"):
        kv.pull(3, out=[sparse, dense])
    np.testing.assert_array_equal(sparse.asnumpy(), np.full(SHAPE, 2.0))
    np.testing.assert_array_equal(dense.asnumpy(), np.full(SHAPE, 5.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kv.pull(3, out=sparse)
    np.testing.assert_array_equal(sparse.asnumpy(), np.full(SHAPE, 2.0))


def test_broadcast_and_teststore():
    kv = mx.kv.create("local")
    outs = [mx.nd.zeros(SHAPE), mx.nd.zeros(SHAPE, ctx=mx.cpu(1))]
    kv.broadcast("3", ones() * 2, out=outs)
    for out in outs:
        np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 2.0))
    kv.push("3", ones() * 5)
    kv.pull("3", out=outs[0])
    np.testing.assert_array_equal(outs[0].asnumpy(), np.full(SHAPE, 5.0))
    store = mx.kv.create("teststore")
    assert (store.type, store.rank, store.num_workers, store.is_capable("optimizer")) == ("teststore", 0, 1, False)
    values = [ones(), ones() * 3]
    store.pushpull("k", values)
    assert [v.asnumpy()[0, 0] for v in values] == [4.0, 4.0]
    with pytest.raises(NotImplementedError):
        store.set_optimizer(mx.optimizer.SGD())


def test_documented_push_pull_and_updater():
    """The examples of MXNet 1.9.1's kvstore documentation."""
    kv = mx.kv.create("local")
    assert (kv.type, kv.rank, kv.num_workers) == ("local", 0, 1)
    kv.init(3, mx.nd.ones(SHAPE) * 2)
    a = mx.nd.zeros(SHAPE)
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 2.0))
    kv.push(3, mx.nd.ones(SHAPE) * 8)                        # no updater: the pushed value replaces the stored one
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 8.0))
    kv.push(3, [mx.nd.ones(SHAPE, ctx=mx.cpu(i)) for i in range(4)])     # values of several devices are summed
    outs = [mx.nd.zeros(SHAPE) for _ in range(2)]
    kv.pull(3, out=outs)
    for out in outs:
        np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 4.0))
    seen = []

    def update(key, value, stored):                          # the documentation's custom updater
        seen.append(key)
        stored += value * 2
    kv._set_updater(update)
    kv.push(3, mx.nd.ones(SHAPE))
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 6.0))
    kv.init([5, 7], [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE) * 3])           # several keys at once
    b, c = mx.nd.zeros(SHAPE), mx.nd.zeros(SHAPE)
    kv.pushpull([7, 5], [mx.nd.ones(SHAPE), [mx.nd.ones(SHAPE)] * 2], out=[b, c])
    np.testing.assert_array_equal(b.asnumpy(), np.full(SHAPE, 5.0))      # 3 + 2 * 1
    np.testing.assert_array_equal(c.asnumpy(), np.full(SHAPE, 5.0))      # 1 + 2 * (1 + 1): the updater sees the sum
    assert seen == [3, 5, 7]                                 # once per key, int keys ascending


def test_set_optimizer_applies_sgd_and_states_round_trip(tmp_path):
    kv = mx.kvstore.create("device")
    kv.init(0, mx.nd.ones(SHAPE))
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.5))
    grad = np.arange(6, dtype=np.float32).reshape(SHAPE)
    weight, mom = np.ones(SHAPE), np.zeros(SHAPE)
    out = mx.nd.zeros(SHAPE)
    for _ in range(2):
        kv.push(0, mx.nd.array(grad))
        mom = 0.5 * mom - 0.1 * grad
        weight = weight + mom
        kv.pull(0, out=out)
        np.testing.assert_allclose(out.asnumpy(), weight, rtol=1e-6, atol=1e-6)
    path = str(tmp_path / "kv.states")
    kv.save_optimizer_states(path)
    kv2 = mx.kv.create()
    kv2.init(0, mx.nd.array(weight))
    kv2.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.5))
    kv2.load_optimizer_states(path)
    kv2.push(0, mx.nd.array(grad))
    kv2.pull(0, out=out)
    np.testing.assert_allclose(out.asnumpy(), weight + 0.5 * mom - 0.1 * grad, rtol=1e-6, atol=1e-6)


def test_async_and_nccl_types_are_refused():
    """dist_async has no MPI equivalent (the error names dist_sync); NCCL is absent (dist_sync: tests/test_dist.py)."""
    for name in ("dist_async", "dist_device_async", "nccl"):
        with pytest.raises(mx.MXNetError, match="'%s' is not available" % name):
            mx.kv.create(name)
    with pytest.raises(mx.MXNetError, match="dist_sync"):
        mx.kv.create("dist_async")


def test_module_fit_accepts_a_kvstore():
    """fit(kvstore=mx.kv.create(...)) trains as with kvstore='local' (one device); distributed types are refused."""
    rng = np.random.RandomState(0)
    x, y = rng.rand(20, 4).astype(np.float32), (np.arange(20) % 3).astype(np.float32)
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc"),
                               name="softmax")
    results = []
    for kvstore in ("local", mx.kv.create("device")):
        mod = mx.mod.Module(net)
        mod.fit(mx.io.NDArrayIter(x, y, batch_size=5), num_epoch=2, kvstore=kvstore,
                arg_params={"fc_weight": mx.nd.ones((3, 4)) * 0.1, "fc_bias": mx.nd.zeros(3)},
                optimizer_params={"learning_rate": 0.5})
        results.append(mod.get_params()[0]["fc_weight"].asnumpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert np.abs(results[0] - 0.1).max() > 1e-3
    with pytest.raises(mx.MXNetError, match="'dist_async' is not available"):
        mx.mod.Module(net).fit(mx.io.NDArrayIter(x, y, batch_size=5), num_epoch=1, kvstore="dist_async")


def test_mxnet_module_aliases():
    assert mx.kv is mx.kvstore and mx.opt is mx.optimizer and mx.rnd is mx.random and mx.visualization is mx.viz
