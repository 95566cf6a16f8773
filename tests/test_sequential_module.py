"""mx.mod.SequentialModule, PythonModule and PythonLossModule against MXNet 1.9.1: the same chains trained from the
same parameters on the same data give MXNet's parameters, outputs, input gradients and metric values
(fixtures/make_modules_fixtures.py, cases in fixtures/modules_cases.py), and misuse raises what MXNet raises."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures import modules_cases as cases

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
EXPECTED = np.load(os.path.join(FIXTURES, "modules.npz"))
with open(os.path.join(FIXTURES, "modules.json")) as _handle:
    META = json.load(_handle)


def close(actual, key):
    np.testing.assert_allclose(np.asarray(actual), EXPECTED[key], rtol=2e-4, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("contexts", [None, "several"])
def test_two_modules_fit_matches_mxnet(contexts):
    """On one CPU, and (as MXNet's example/module/sequential_module.py) with the modules on other contexts, the
    second split over two: the local kvstore's summed gradients give the same training."""
    if contexts == "several":
        contexts = (mx.cpu(1), [mx.cpu(0), mx.cpu(1)])
    seq, val, per_epoch, batch_metrics = cases.train_two_modules(mx, contexts)
    keys = sorted(k[4:] for k in EXPECTED.files if k.startswith("seq:epoch"))
    assert sorted(per_epoch) == keys
    for key in keys:
        close(per_epoch[key], "seq:" + key)
    np.testing.assert_allclose(batch_metrics, META["seq_batch_metrics"], atol=1e-6)
    close(seq.predict(val).asnumpy(), "seq:predict")
    score = seq.score(val, ["acc", "ce"])
    assert [n for n, _ in score] == [n for n, _ in META["seq_score"]]
    np.testing.assert_allclose([v for _, v in score], [v for _, v in META["seq_score"]], rtol=1e-4)
    assert [[n, list(s)] for n, s in seq.output_shapes] == META["seq_output_shapes"]
    assert [[d[0], list(d[1])] for d in seq.label_shapes] == META["seq_label_shapes"]
    assert [seq.data_names, seq.output_names] == META["seq_names"]


def test_two_modules_params_are_merged():
    seq, _, per_epoch, _ = cases.train_two_modules(mx)
    arg, aux = seq.get_params()
    assert sorted(arg) == sorted(cases.SEQ_SHAPES) and aux == {}
    for name, value in arg.items():
        close(value.asnumpy(), "seq:epoch1:" + name)


def test_input_gradients_through_the_chain_match_mxnet():
    grads = cases.input_grads_two_modules(mx)
    assert sorted("grads:" + k for k in grads) == sorted(k for k in EXPECTED.files if k.startswith("grads:"))
    for key, value in grads.items():
        close(value, "grads:" + key)


def test_chain_input_grads():
    """The chain's own get_input_grads (MXNet's fails an assertion: its bind never sets inputs_need_grad) gives
    MXNet's gradient of the first module's data."""
    x, y = cases.data()
    seq = cases.two_modules(mx)
    seq.bind(data_shapes=[("data", (cases.BATCH, cases.FEATURES))],
             label_shapes=[("softmax_label", (cases.BATCH,))], inputs_need_grad=True)
    seq.init_params(arg_params=cases.as_nd(mx, cases.params(cases.SEQ_SHAPES)))
    batch = mx.io.DataBatch([mx.nd.array(x[:cases.BATCH])], [mx.nd.array(y[:cases.BATCH])])
    seq.forward_backward(batch)
    close(seq.get_input_grads()[0].asnumpy(), "grads:data_grad")
    assert seq.inputs_need_grad and seq.for_training


def test_set_params_and_save_load_params(tmp_path):
    seq, val, _, _ = cases.train_two_modules(mx)
    path = str(tmp_path / "seq.params")
    seq.save_params(path)
    fresh = cases.two_modules(mx)
    fresh.bind(data_shapes=val.provide_data, label_shapes=val.provide_label, for_training=False)
    fresh.init_params()
    fresh.load_params(path)
    close(fresh.predict(val).asnumpy(), "seq:predict")
    fresh.set_params(*seq.get_params())
    close(fresh.predict(val).asnumpy(), "seq:predict")


@pytest.mark.filterwarnings("ignore:You created Module")   # MXNet warns alike: the scores have no label
def test_python_loss_module_chain_matches_mxnet():
    seq, train = cases.train_python_loss(mx)
    arg, aux = seq.get_params()
    assert sorted(arg) == sorted(cases.LOSS_SHAPES) and aux == {}
    for name, value in arg.items():
        close(value.asnumpy(), "loss:" + name)
    close(seq.predict(train).asnumpy(), "loss:predict")
    score = seq.score(train, "acc")
    assert score[0][0] == META["loss_score"][0][0] and abs(score[0][1] - META["loss_score"][0][1]) < 1e-6
    assert [seq.data_names, seq.output_names] == META["loss_names"]


def test_python_loss_module_alone():
    x, y = cases.data()
    loss = mx.mod.PythonLossModule(name="hinge", grad_func=cases.hinge_grad)
    loss.bind(data_shapes=[("data", (cases.BATCH, cases.CLASSES))], label_shapes=[("softmax_label", (cases.BATCH,))])
    assert loss.output_shapes == [("hinge_output", (cases.BATCH, cases.CLASSES))]
    assert loss.output_names == ["hinge_output"] and loss.get_params() == ({}, {})
    scores = x[:cases.BATCH, :cases.CLASSES]
    loss.forward(mx.io.DataBatch([mx.nd.array(scores)], [mx.nd.array(y[:cases.BATCH])]))
    loss.backward()
    expected = cases.hinge_grad(mx.nd.array(scores), mx.nd.array(y[:cases.BATCH]))
    grad = loss.get_input_grads()[0]
    assert isinstance(grad, mx.nd.NDArray)
    np.testing.assert_array_equal(grad.asnumpy(), expected)
    np.testing.assert_array_equal(loss.get_outputs()[0].asnumpy(), scores)
    metric = mx.metric.Accuracy()
    loss.update_metric(metric, [mx.nd.array(y[:cases.BATCH])])
    assert metric.get()[1] == np.mean(scores.argmax(axis=1) == y[:cases.BATCH])


def test_python_module_subclass():
    """A PythonModule subclass computing y = 2 x: the API's no-op defaults and the shapes it computes."""
    class Double(mx.mod.PythonModule):
        def _compute_output_shapes(self):
            return [("double_output", self._data_shapes[0][1])]

        def forward(self, data_batch, is_train=None):
            self._out = data_batch.data[0] * 2

        def get_outputs(self, merge_multi_context=True):
            return [self._out]

    mod = Double(("data",), None, ["double_output"])
    assert mod.data_names == ["data"]
    mod.bind(data_shapes=[("data", (2, 3))])
    assert mod.output_shapes == [("double_output", (2, 3))] and mod.label_shapes is None
    mod.init_params()
    mod.init_optimizer()
    mod.update()
    mod.forward(mx.io.DataBatch([mx.nd.ones((2, 3))]))
    np.testing.assert_array_equal(mod.get_outputs()[0].asnumpy(), np.full((2, 3), 2.0))
    metric = mx.metric.MSE()
    mod.update_metric(metric, [mx.nd.zeros((2, 3))])       # no label shapes: the metric is left alone
    assert metric.num_inst == 0
    with pytest.raises(NotImplementedError):
        mx.mod.PythonModule(["data"], None, ["out"]).bind([("data", (2, 3))])


@pytest.mark.parametrize("name", sorted(k for k in cases.ERRORS if not k.startswith("ff_")))
def test_errors_as_mxnet(name):
    kind, message = META["errors"][name]
    err = _raise(name)
    assert kind in [c.__name__ for c in type(err).__mro__], (type(err), kind)
    actual_message = str(err)
    if message:
        # MXNet names its own classes (mxnet.module.module.Module); the rest of the message is the same
        assert actual_message == message.replace("mxnet.module.module.Module", "onnxsym.module.module.Module")
    else:
        assert actual_message       # MXNet's bare assertion; onnxsym says what is wrong


def _raise(name):
    try:
        cases.ERRORS[name](mx)
    except Exception as err:        # the exception object, to check its classes
        return err
    raise AssertionError("%s raised nothing" % name)


def test_add_resets_and_chains():
    seq, _, _, _ = cases.train_two_modules(mx)
    assert seq.binded and seq.params_initialized and seq.optimizer_initialized
    assert seq.add(mx.mod.PythonLossModule()) is seq
    assert not (seq.binded or seq.params_initialized or seq.optimizer_initialized)
    empty = mx.mod.SequentialModule()
    assert empty.data_names == [] and empty.output_names == []
    with pytest.raises(mx.base.MXNetError, match="bind"):
        empty.data_shapes


def test_inference_bind_takes_no_input_gradients():
    seq = cases.two_modules(mx)
    seq.bind(data_shapes=[("data", (cases.BATCH, cases.FEATURES))], for_training=False)
    assert seq.label_shapes is None     # labels were not given: nobody gets them
    assert not any(m.inputs_need_grad for m in seq._modules)
    seq.init_params(arg_params=cases.as_nd(mx, cases.params(cases.SEQ_SHAPES)))
    x, _ = cases.data()
    seq.forward(mx.io.DataBatch([mx.nd.array(x[:cases.BATCH])]), is_train=False)
    p = cases.params(cases.SEQ_SHAPES)
    hidden = np.maximum(x[:cases.BATCH] @ p["fc1_weight"].T + p["fc1_bias"], 0)
    logits = hidden @ p["fc2_weight"].T + p["fc2_bias"]
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(seq.get_outputs()[0].asnumpy(), softmax / softmax.sum(axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_install_monitor_reaches_every_module():
    class Recorder:
        def __init__(self):
            self.executors = []

        def install(self, exe):
            self.executors.append(exe)

    seq = cases.two_modules(mx)
    seq.bind(data_shapes=[("data", (cases.BATCH, cases.FEATURES))], label_shapes=[("softmax_label", (cases.BATCH,))])
    mon = Recorder()
    seq.install_monitor(mon)
    assert mon.executors == [m._exec_group.execs[0] for m in seq._modules]
    with_loss = mx.mod.SequentialModule().add(mx.mod.Module(cases.mlp_scores(mx), label_names=[]))
    with_loss.add(mx.mod.PythonLossModule(grad_func=cases.hinge_grad), take_labels=True, auto_wiring=True)
    with_loss.bind(data_shapes=[("data", (cases.BATCH, cases.FEATURES))],
                   label_shapes=[("softmax_label", (cases.BATCH,))])
    with pytest.raises(NotImplementedError):      # as MXNet: a Python loss has no executor to watch
        with_loss.install_monitor(Recorder())
    with pytest.raises(mx.base.MXNetError, match="install_monitor"):
        cases.two_modules(mx).install_monitor(Recorder())
