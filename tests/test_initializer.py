"""mx.init against MXNet 1.9.1: exact outputs of the deterministic initializers, dumps() strings, the registry,
and the laws (bounds, std, Xavier scales, orthogonality) of the random ones (tests/fixtures/mxnet/init_*)."""
import json
import logging
import os
import warnings

import numpy as np
import pytest

from onnxsym.module import initializer as init
from onnxsym.runtime.ndarray import NDArray

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "mxnet")
with open(os.path.join(HERE, "init_initializer.json")) as _handle:
    META = json.load(_handle)
ARRAYS = dict(np.load(os.path.join(HERE, "init_initializer.npz")))
CASES = META["cases"]


def run(initializer, desc, shape, dtype=np.float32):
    """Initialize a sentinel-filled array the way the fixture script did."""
    arr = NDArray(np.full(shape, -9.0, dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy str path warns, as in MXNet
        initializer(desc, arr)
    return arr.asnumpy()


def keys(kind):
    return sorted(k for k, v in CASES.items() if v["kind"] == kind)


def assert_same(got, key):
    expected = ARRAYS[key]
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("key", keys("bilinear"))
def test_bilinear_matches_mxnet(key):
    assert_same(run(init.Bilinear(), init.InitDesc("up_weight"), tuple(CASES[key]["shape"])), key)


def test_constant_zero_one_match_mxnet():
    assert_same(run(init.Constant(0.25), init.InitDesc("fc_weight"), (3, 4)), "constant_scalar")
    value = np.array(CASES["constant_array"]["value"], np.float32)
    assert_same(run(init.Constant(NDArray(value)), init.InitDesc("fc_weight"), (3, 4)), "constant_array")
    assert_same(run(init.Constant(value.tolist()), init.InitDesc("fc_weight"), (3, 4)), "constant_array")
    assert_same(run(init.Zero(), init.InitDesc("fc_weight"), (2, 3)), "zero")
    assert_same(run(init.One(), init.InitDesc("fc_weight"), (2, 3)), "one")
    assert_same(run(init.One(), init.InitDesc("fc_weight"), (2, 3), np.int32), "one_int32")


@pytest.mark.parametrize("key", keys("desc"))
def test_suffix_dispatch_matches_mxnet(key):
    assert_same(run(init.Constant(0.5), init.InitDesc(CASES[key]["name"]), (2, 3)), key)


@pytest.mark.parametrize("key", keys("attr"))
def test_init_attribute_overrides_the_suffix(key):
    desc = init.InitDesc(CASES[key]["name"], {"__init__": CASES[key]["init"]})
    assert_same(run(init.Uniform(), desc, (8,)), key)


@pytest.mark.parametrize("key", keys("legacy"))
def test_legacy_string_dispatch_matches_mxnet(key):
    assert_same(run(init.Constant(0.5), CASES[key]["name"], tuple(CASES[key]["shape"])), key)


def test_legacy_path_warns_and_checks_types():
    with pytest.warns(DeprecationWarning, match="InitDesc"):
        init.Zero()("fc_weight", NDArray(np.ones((2,), np.float32)))
    with pytest.raises(TypeError, match="arr must be NDArray"), pytest.warns(DeprecationWarning):
        init.Zero()("fc_weight", np.ones(2))


def test_lstm_bias_mixed_load_match_mxnet():
    assert_same(run(init.LSTMBias(1.5), init.InitDesc("lstm_i2h_weight"), (12,)), "lstmbias")
    mixed = init.Mixed(["fc", ".*"], [init.One(), init.Constant(3.0)])
    for key in keys("mixed"):
        assert_same(run(mixed, init.InitDesc(CASES[key]["name"]), (2, 2)), key)
    value = np.array(CASES["constant_array"]["value"], np.float32)
    params = {"arg:fc_weight": NDArray(value), "aux:bn_moving_mean": NDArray(np.array([1.0, 2.0, 3.0], np.float32)),
              "other": NDArray(np.array([[4.0, 5.0]], np.float32))}
    load = init.Load(params, default_init=init.Constant(7.0))
    assert sorted(load.param) == ["bn_moving_mean", "fc_weight", "other"]
    for key in keys("load"):
        assert_same(run(load, CASES[key]["name"], tuple(CASES[key]["shape"])), key)


def test_mixed_and_load_errors():
    with pytest.raises(ValueError, match="conv_weight did not match any pattern"):
        init.Mixed(["fc"], [init.One()])(init.InitDesc("conv_weight"), NDArray(np.zeros(2, np.float32)))
    with pytest.raises(AssertionError, match="one initializer per pattern"):
        init.Mixed(["fc", ".*"], [init.One()])
    load = init.Load({"w": NDArray(np.zeros((2, 2), np.float32))})
    with pytest.raises(AssertionError, match="Shape mismatch"):
        load("w", NDArray(np.zeros((3,), np.float32)))
    with pytest.raises(AssertionError, match="Cannot Initialize x_weight"):
        load("x_weight", NDArray(np.zeros((3,), np.float32)))
    with pytest.raises(AssertionError, match="dict"):
        init.Load([np.zeros(2)])


@pytest.mark.parametrize("key", keys("fused"))
def test_fused_rnn_matches_mxnet(key):
    c = CASES[key]
    fused = init.FusedRNN(init.One(), c["num_hidden"], c["num_layers"], c["mode"], c["bidirectional"],
                          forget_bias=c["forget_bias"])
    assert_same(run(fused, init.InitDesc("rnn_weight"), (c["size"],)), key)


@pytest.mark.parametrize("key", keys("fused_attr"))
def test_fused_rnn_from_init_attribute_uses_the_global_initializer(key):
    c = CASES[key]
    desc = init.InitDesc("rnn_parameters", {"__init__": c["init"]})
    assert_same(run(init.Constant(0.5), desc, (c["size"],)), key)


def test_fused_rnn_rejects_a_wrong_size():
    with pytest.raises(AssertionError, match="Invalid parameters size 7"):
        run(init.FusedRNN(init.One(), 2, 1, "lstm"), init.InitDesc("rnn_weight"), (7,))


def test_dumps_match_mxnet():
    d = META["dumps"]
    built = {
        "Normal(0.5)": init.Normal(0.5), "Uniform()": init.Uniform(),
        "Xavier(factor_type='in', magnitude=2.34)": init.Xavier(factor_type="in", magnitude=2.34),
        "Xavier()": init.Xavier(), "MSRAPrelu()": init.MSRAPrelu(), "MSRAPrelu('in', 0.1)": init.MSRAPrelu("in", 0.1),
        "Orthogonal()": init.Orthogonal(), "Constant(0.25)": init.Constant(0.25), "Zero()": init.Zero(),
        "One()": init.One(), "Bilinear()": init.Bilinear(), "LSTMBias()": init.LSTMBias(),
        "Constant(array)": init.Constant(NDArray(np.array([[1.0, 2.0]], np.float32))),
        "FusedRNN(None, 4, 1, 'gru')": init.FusedRNN(None, 4, 1, "gru"),
        "FusedRNN(Xavier(), 4, 2, 'lstm', True)": init.FusedRNN(init.Xavier(), 4, 2, "lstm", True),
    }
    assert sorted(built) == sorted(d)
    for label, initializer in built.items():
        assert initializer.dumps() == d[label], label
        assert init.create(d[label]) == init.create(initializer.dumps()), label


def test_registry_and_create_match_mxnet():
    assert {k: v.__name__ for k, v in init._REGISTRY.items()} == META["registry"]
    xavier = init.create("Xavier", magnitude=2)
    assert isinstance(xavier, init.Xavier) and xavier.magnitude == 2.0
    assert init.create(xavier) is xavier
    assert init.create({"initializer": "normal", "sigma": 0.5}) == init.Normal(0.5)
    assert init.create('{"initializer": "constant", "value": 3}') == init.Constant(3)
    assert init.create(initializer="zeros") == init.Zero()
    assert init.Normal(0.5) != init.Normal(0.2) and init.Zero() != init.One()
    with pytest.raises(AssertionError, match="mixed is not registered"):
        init.create("mixed")
    with pytest.raises(AssertionError, match="already an instance"):
        init.create(xavier, 3)


def test_register_and_alias_custom_initializer():
    @init.register
    @init.alias("onnxsym_test_alias")
    class OnnxsymTestInit(init.Initializer):
        def _init_weight(self, _, arr):
            arr[:] = 0.1

    assert type(init.create("onnxsym_test_alias")) is OnnxsymTestInit
    np.testing.assert_allclose(run(init.create("OnnxsymTestInit"), init.InitDesc("w_weight"), (2,)), 0.1)
    with pytest.warns(UserWarning, match="overriding"):
        init.register(OnnxsymTestInit)
    with pytest.raises(AssertionError, match="subclass of Initializer"):
        init.register(dict)
    del init._REGISTRY["onnxsym_test_alias"], init._REGISTRY["onnxsymtestinit"]


def test_default_pattern_and_vector_errors():
    with pytest.raises(ValueError, match="Unknown initialization pattern for data"):
        run(init.Uniform(), init.InitDesc("data"), (2,))
    with pytest.raises(ValueError, match="cannot be applied to vector fc_weight"):
        run(init.Xavier(), init.InitDesc("fc_weight"), (4,))
    with pytest.raises(ValueError, match="Incorrect factor type"):
        run(init.Xavier(factor_type="fan"), init.InitDesc("fc_weight"), (4, 4))
    with pytest.raises(ValueError, match="4-D"):
        run(init.Bilinear(), init.InitDesc("up_weight"), (4, 4))
    with pytest.raises(NotImplementedError):
        run(init.Initializer(), init.InitDesc("fc_weight"), (2,))


def test_verbose_log_matches_mxnet(caplog):
    caplog.set_level(logging.INFO)
    verbose = init.Constant(0.25).set_verbosity(True)
    run(verbose, init.InitDesc("fc_weight"), (2, 2))
    run(verbose, init.InitDesc("fc_bias"), (4,))
    run(verbose, init.InitDesc("bn_moving_var", {"__init__": '["one", {}]'}), (4,))
    assert [r.getMessage() for r in caplog.records] == META["verbose_log"]


def _orthogonal_side(shape):
    nout, nin = shape[0], int(np.prod(shape[1:]))
    return "w_wt" if nout <= nin else "wt_w"


@pytest.mark.parametrize("key", keys("orthogonal"))
def test_orthogonal_gram_matrices_match_mxnet(key):
    c = CASES[key]
    w = run(init.Orthogonal(scale=1.5, rand_type=c["rand_type"]), init.InitDesc("w_weight"), tuple(c["shape"]))
    w2 = w.reshape(c["shape"][0], -1).astype(np.float64)
    side = _orthogonal_side(c["shape"])
    gram = w2 @ w2.T if side == "w_wt" else w2.T @ w2
    np.testing.assert_allclose(gram, c[side], atol=1e-4)
    np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=1e-4)  # and MXNet's is scale^2 * I too
    np.testing.assert_allclose(np.array(c[side]), 2.25 * np.eye(len(gram)), atol=1e-4)


def _law(label):
    """(kind, scale) of the distribution an MXNet-recorded random initializer samples from."""
    stats = META["stats"][label]
    shape = stats["shape"]
    if label.startswith("Uniform"):
        return "uniform", 0.07 if label == "Uniform()" else 0.1
    if label.startswith("Normal"):
        return "gaussian", 0.01 if label == "Normal()" else 0.5
    hw = np.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * hw, shape[0] * hw
    if label.startswith("MSRAPrelu"):
        factor_type, magnitude, rnd = ("in", 2.0, "gaussian") if "'in'" in label else ("avg", 2 / 1.0625, "gaussian")
    else:
        rnd, factor_type, magnitude = label.split(")")[0].split("(")[1].replace("'", "").split(", ")
        magnitude = float(magnitude)
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    return rnd, np.sqrt(magnitude / factor)


BUILD = {"Uniform(0.1)": lambda: init.Uniform(0.1), "Uniform()": init.Uniform,
         "Normal(0.5)": lambda: init.Normal(0.5), "Normal()": init.Normal,
         "MSRAPrelu()": init.MSRAPrelu, "MSRAPrelu('in', 0.0)": lambda: init.MSRAPrelu("in", 0.0)}
for _rnd in ("uniform", "gaussian"):
    for _factor in ("avg", "in", "out"):
        BUILD["Xavier('%s', '%s', 2)" % (_rnd, _factor)] = lambda r=_rnd, f=_factor: init.Xavier(r, f, 2)
        BUILD["Xavier('%s', '%s', 3) fc" % (_rnd, _factor)] = lambda r=_rnd, f=_factor: init.Xavier(r, f, 3)


@pytest.mark.parametrize("label", sorted(META["stats"]))
def test_random_initializers_follow_mxnets_law(label):
    stats = META["stats"][label]
    rnd, scale = _law(label)
    init.seed(7)
    w = run(BUILD[label](), init.InitDesc("w_weight"), tuple(stats["shape"])).astype(np.float64)
    n = w.size
    # MXNet's own sample agrees with the law derived from the formula (so the formula is MXNet's) ...
    for sample in (stats, {"max_abs": np.abs(w).max(), "mean": w.mean(), "std": w.std()}):
        if rnd == "uniform":
            assert sample["max_abs"] <= scale * (1 + 1e-6) and sample["max_abs"] > scale * 0.99
            assert sample["std"] == pytest.approx(scale / np.sqrt(3), rel=6 / np.sqrt(n))
        else:
            assert sample["std"] == pytest.approx(scale, rel=6 / np.sqrt(n))
        assert abs(sample["mean"]) < 6 * scale / np.sqrt(n)
    # ... and ours matches MXNet's sample statistics
    assert w.std() == pytest.approx(stats["std"], rel=12 / np.sqrt(n))


def test_seed_makes_draws_reproducible():
    init.seed(3)
    a = run(init.Xavier(), init.InitDesc("w_weight"), (5, 4))
    b = run(init.Normal(), init.InitDesc("w_weight"), (5, 4))
    init.seed(3)
    np.testing.assert_array_equal(run(init.Xavier(), init.InitDesc("w_weight"), (5, 4)), a)
    np.testing.assert_array_equal(run(init.Normal(), init.InitDesc("w_weight"), (5, 4)), b)
    assert not np.array_equal(a, run(init.Xavier(), init.InitDesc("w_weight"), (5, 4)))
    with pytest.raises(ValueError, match="seed_state must be int"):
        init.seed(1.5)
