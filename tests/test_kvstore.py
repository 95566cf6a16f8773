"""mx.kv: MXNet's single-process KVStore (the examples of MXNet 1.9.1's kvstore documentation) and its use by
Module.fit; distributed types are refused."""
import numpy as np
import pytest

import onnxsym as mx

SHAPE = (2, 3)


def test_documented_push_pull_and_updater():
    kv = mx.kv.create("local")
    assert (kv.type, kv.rank, kv.num_workers) == ("local", 0, 1)
    kv.init(3, mx.nd.ones(SHAPE) * 2)
    a = mx.nd.zeros(SHAPE)
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 2.0))
    kv.push(3, mx.nd.ones(SHAPE) * 8)                        # no updater: the pushed value replaces the stored one
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 8.0))
    kv.push(3, [mx.nd.ones(SHAPE)] * 4)                      # values of several devices are summed
    outs = [mx.nd.zeros(SHAPE) for _ in range(2)]
    kv.pull(3, out=outs)
    for out in outs:
        np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 4.0))

    def update(key, value, stored):                          # the documentation's custom updater
        stored += value * 2
    kv._set_updater(update)
    kv.push(3, mx.nd.ones(SHAPE))
    kv.pull(3, out=a)
    np.testing.assert_array_equal(a.asnumpy(), np.full(SHAPE, 6.0))
    kv.init(["5", "7"], [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE) * 3])   # several keys at once, str keys
    b, c = mx.nd.zeros(SHAPE), mx.nd.zeros(SHAPE)
    kv.pushpull(["5", "7"], [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE)], out=[b, c])
    np.testing.assert_array_equal(b.asnumpy(), np.full(SHAPE, 3.0))
    np.testing.assert_array_equal(c.asnumpy(), np.full(SHAPE, 5.0))


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


def test_errors():
    kv = mx.kv.create()
    kv.init("w", mx.nd.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match="already initialized"):
        kv.init("w", mx.nd.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match="'v' was not initialized"):
        kv.push("v", mx.nd.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match=r"holds shape \(2, 3\), got a value of shape \(3,\)"):
        kv.push("w", mx.nd.ones((3,)))
    with pytest.raises(TypeError, match="must be an NDArray"):
        kv.push("w", np.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match="'dist_sync' is not available"):
        mx.kv.create("dist_sync")


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
