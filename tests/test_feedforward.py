"""mx.model.FeedForward against MXNet 1.9.1: fit on numpy data (shuffled, last batch rolled over, with and without
epoch_size), predict, score, save and load give MXNet's parameters, outputs, metric values and callback arguments
(fixtures/make_modules_fixtures.py, cases in fixtures/modules_cases.py); misuse raises MXNet's errors."""
import json
import logging
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures import modules_cases as cases

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
EXPECTED = np.load(os.path.join(FIXTURES, "modules.npz"))
with open(os.path.join(FIXTURES, "modules.json")) as _handle:
    META = json.load(_handle)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def close(actual, key, rtol=2e-4, atol=2e-5):
    np.testing.assert_allclose(np.asarray(actual), EXPECTED[key], rtol=rtol, atol=atol, err_msg=key)


def check_seen(seen, expected):
    for kind in ("batch", "epoch", "eval"):
        assert len(seen[kind]) == len(expected[kind]), kind
        for got, want in zip(seen[kind], expected[kind]):
            assert got[:-1] == want[:-1], (kind, got, want)       # epoch (and nbatch)
            assert abs(got[-1] - want[-1]) < 1e-5, (kind, got, want)


@pytest.fixture(scope="module")
def fitted():
    return cases.feedforward_fit(mx)


def test_fit_matches_mxnet(fitted):
    model, seen = fitted
    assert sorted("ff:" + k for k in model.arg_params) == sorted(k for k in EXPECTED.files
                                                                 if k.startswith("ff:") and "predict" not in k)
    for name, value in model.arg_params.items():
        close(value.asnumpy(), "ff:" + name)
    check_seen(seen, META["ff_seen"])
    assert model.aux_params == {}


def test_epoch_size_matches_mxnet():
    model, seen = cases.feedforward_fit(mx, epoch_size=3, num_epoch=3)
    for name, value in model.arg_params.items():
        close(value.asnumpy(), "ff_sized:" + name)
    check_seen(seen, META["ff_sized_seen"])


def test_predict_matches_mxnet(fitted):
    model, _ = fitted
    x, _ = cases.data(n=23, seed=5)
    xv, yv = cases.data(n=12, seed=6)
    out = model.predict(x)
    assert isinstance(out, np.ndarray) and out.shape == (23, cases.CLASSES)
    close(out, "ff:predict")
    out, data, label = model.predict(mx.io.NDArrayIter(xv, yv, batch_size=cases.BATCH), return_data=True)
    close(out, "ff:predict_val")
    np.testing.assert_array_equal(data, EXPECTED["ff:predict_data"])
    np.testing.assert_array_equal(label, EXPECTED["ff:predict_label"])
    close(model.predict(xv, num_batch=2), "ff:predict_2batches")


def test_score_matches_mxnet(fitted):
    model, _ = fitted
    xv, yv = cases.data(n=12, seed=6)
    assert abs(model.score(mx.io.NDArrayIter(xv, yv, batch_size=cases.BATCH)) - META["ff_score"]) < 1e-6
    seen = []
    value = model.score(mx.io.NDArrayIter(xv, yv, batch_size=cases.BATCH), "ce", num_batch=1,
                        batch_end_callback=lambda p: seen.append((p.epoch, p.nbatch)))
    assert abs(value - META["ff_score_ce_1batch"]) < 1e-5 and seen == [(0, 0)]


def test_save_and_load_round_trip(fitted, tmp_path):
    model, _ = fitted
    prefix = str(tmp_path / "ff")
    model.save(prefix)          # epoch defaults to num_epoch
    assert os.path.exists(prefix + "-symbol.json") and os.path.exists(prefix + "-0003.params")
    loaded = mx.model.FeedForward.load(prefix, 3)
    assert loaded.begin_epoch == 3
    close(loaded.predict(cases.data(n=23, seed=5)[0]), "ff:predict")


def test_load_mxnet_checkpoint_predicts_as_mxnet():
    """The checkpoint MXNet's FeedForward.save wrote, loaded and run by onnxsym."""
    model = mx.model.FeedForward.load(os.path.join(FIXTURES, "modules_ff"), 3)
    close(model.predict(cases.data(n=23, seed=5)[0]), "ff:predict")
    for name, value in model.arg_params.items():
        close(value.asnumpy(), "ff:" + name)


def test_pickle_keeps_predictions(fitted):
    model, _ = fitted
    x, _ = cases.data(n=23, seed=5)
    first = model.predict(x)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(x), first)


def test_internal_feature_predict_with_extra_params(fitted):
    """MXNet's tests/python/train/test_mlp.py: an internal output with the full model's parameters."""
    model, _ = fitted
    hidden = mx.model.FeedForward(model.symbol.get_internals()["relu1_output"], arg_params=model.arg_params,
                                  aux_params=model.aux_params, allow_extra_params=True)
    assert sorted(hidden.arg_params) == ["fc1_bias", "fc1_weight"]
    x, _ = cases.data(n=23, seed=5)
    w, b = model.arg_params["fc1_weight"].asnumpy(), model.arg_params["fc1_bias"].asnumpy()
    np.testing.assert_allclose(hidden.predict(x), np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    strict = mx.model.FeedForward(model.symbol.get_internals()["relu1_output"], arg_params=model.arg_params)
    with pytest.raises(ValueError, match="fc2"):
        strict.predict(x)


def test_create_trains_and_warns():
    x, y = cases.data(n=23, seed=5)
    with pytest.warns(DeprecationWarning, match="mxnet.mod.Module"):
        model = mx.model.FeedForward.create(cases.mlp_full(mx), x, y, num_epoch=2, numpy_batch_size=5,
                                            learning_rate=0.1, initializer=mx.init.Xavier())
    assert model.num_epoch == 2 and sorted(model.arg_params) == sorted(cases.FF_SHAPES)
    assert model.predict(x).shape == (23, cases.CLASSES)


def test_fit_from_data_iter_and_callbacks(caplog, tmp_path):
    """A DataIter with its own label name, the optimizer as an object, do_checkpoint as epoch_end_callback and
    Speedometer (nbatch counted from 1) as batch_end_callback."""
    x, y = cases.data()
    data_ = mx.sym.Variable("data")
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data_, num_hidden=cases.CLASSES, name="fc"), name="sm")
    it = mx.io.NDArrayIter(x, y, batch_size=5, label_name="sm_label")
    opt = mx.optimizer.SGD(learning_rate=0.1, rescale_grad=1.0 / 5)
    model = mx.model.FeedForward(net, num_epoch=2, optimizer=opt,
                                 arg_params={"fc_weight": mx.nd.zeros((cases.CLASSES, cases.FEATURES)),
                                             "fc_bias": mx.nd.zeros((cases.CLASSES,))})
    nbatches = []
    with caplog.at_level(logging.INFO):
        model.fit(it, batch_end_callback=[lambda p: nbatches.append(p.nbatch), mx.callback.Speedometer(5, 2)],
                  epoch_end_callback=mx.callback.do_checkpoint(str(tmp_path / "ck")))
    assert nbatches == [1, 2, 3, 4] * 2
    assert "Epoch[1] Batch [2-4]\tSpeed:" in caplog.text
    _, args, _ = mx.model.load_checkpoint(str(tmp_path / "ck"), 2)     # do_checkpoint saves epoch + 1
    np.testing.assert_array_equal(args["fc_weight"].asnumpy(), model.arg_params["fc_weight"].asnumpy())
    # one SGD step from zero weights: the softmax gradient of the first batch, by hand
    first = mx.model.FeedForward(net, num_epoch=1, optimizer=mx.optimizer.SGD(learning_rate=0.1, rescale_grad=0.2),
                                 epoch_size=1,
                                 arg_params={"fc_weight": mx.nd.zeros((cases.CLASSES, cases.FEATURES)),
                                             "fc_bias": mx.nd.zeros((cases.CLASSES,))})
    first.fit(mx.io.NDArrayIter(x, y, batch_size=5, label_name="sm_label"))
    onehot = np.eye(cases.CLASSES)[y[:5].astype(int)]
    grad = (np.full((5, cases.CLASSES), 1.0 / cases.CLASSES) - onehot).T @ x[:5] * 0.2
    np.testing.assert_allclose(first.arg_params["fc_weight"].asnumpy(), -0.1 * grad, rtol=1e-5, atol=1e-7)


def test_predict_without_parameters():
    model = mx.model.FeedForward(cases.mlp_full(mx))
    with pytest.raises(mx.base.MXNetError, match="fit it first"):
        model.predict(cases.data()[0])


@pytest.mark.parametrize("name", sorted(k for k in cases.ERRORS if k.startswith("ff_")))
def test_errors_as_mxnet(name):
    kind, message = META["errors"][name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cases.raised(mx, name) == (kind, message)


class _Buckets(mx.io.DataIter):
    """Batches of sequences of length 2 and 4 (bucket keys), each with its shapes, as bucketing iterators give."""

    def __init__(self, x, y):
        super().__init__(batch_size=5)
        self.x, self.y, self.default_bucket_key = x, y, 4
        self.provide_data = [mx.io.DataDesc("data", (5, 4, cases.FEATURES))]
        self.provide_label = [mx.io.DataDesc("softmax_label", (5,))]
        self.cursor = 0

    def reset(self):
        self.cursor = 0

    def next(self):
        if self.cursor == 4:
            raise StopIteration
        key = 2 if self.cursor % 2 else 4
        part = slice(self.cursor * 5, self.cursor * 5 + 5)
        self.cursor += 1
        data = np.repeat(self.x[part][:, None, :], key, axis=1)
        return mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(self.y[part])], pad=0, bucket_key=key,
                               provide_data=[mx.io.DataDesc("data", data.shape)],
                               provide_label=[mx.io.DataDesc("softmax_label", (5,))])


def test_sym_gen_trains_through_buckets():
    """A callable symbol: one symbol per bucket key sharing the parameters (a mean over the sequence axis, so every
    bucket computes what the plain network computes on x); trained as the plain network is."""
    def sym_gen(key):
        seq = mx.sym.mean(mx.sym.Variable("data"), axis=1)
        return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(seq, num_hidden=cases.CLASSES, name="fc"), name="softmax")

    x, y = cases.data()
    start = {"fc_weight": np.full((cases.CLASSES, cases.FEATURES), 0.1, np.float32),
             "fc_bias": np.zeros(cases.CLASSES, np.float32)}
    bucketed = mx.model.FeedForward(sym_gen, num_epoch=2, learning_rate=0.1, arg_params=cases.as_nd(mx, start))
    bucketed.fit(_Buckets(x, y))
    data_ = mx.sym.Variable("data")
    plain_sym = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data_, num_hidden=cases.CLASSES, name="fc"),
                                     name="softmax")
    plain = mx.model.FeedForward(plain_sym, num_epoch=2, learning_rate=0.1, arg_params=cases.as_nd(mx, start))
    plain.fit(mx.io.NDArrayIter(x, y, batch_size=5))
    for name in start:
        np.testing.assert_allclose(bucketed.arg_params[name].asnumpy(), plain.arg_params[name].asnumpy(),
                                   rtol=1e-5, atol=1e-6)
    assert bucketed.symbol is not None      # the default bucket's symbol, as MXNet sets it


def test_mxnet_names_under_compat(tmp_path):
    """`import mxnet.model; mxnet.model.FeedForward` and the module paths of the chain classes, as old scripts
    write them, under onnxsym.compat."""
    script = tmp_path / "legacy.py"
    script.write_text(
        "import mxnet as mx\n"
        "import mxnet.model\n"
        "from mxnet.model import FeedForward\n"
        "from mxnet.module.sequential_module import SequentialModule\n"
        "from mxnet.module.python_module import PythonLossModule, PythonModule\n"
        "import onnxsym\n"
        "assert mxnet.model.FeedForward is FeedForward is onnxsym.model.FeedForward\n"
        "assert SequentialModule is mx.mod.SequentialModule and PythonLossModule is mx.mod.PythonLossModule\n"
        "assert PythonModule is mx.mod.PythonModule\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "onnxsym.compat", str(script)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    with pytest.raises(AttributeError, match="NoSuchThing"):
        mx.model.NoSuchThing
