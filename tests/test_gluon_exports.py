"""Gluon model-zoo exports (HybridBlock.export by MXNet 1.9.1) load without MXNet, give MXNet's outputs and MXNet's
gradients, export to .onnx that plain ONNX Runtime serves with the same numbers, and train.

GluonNLP 0.10 (tests/fixtures/nlp, make_nlp_fixtures.py): a 2-layer BERT (arange_like, interleaved self-attention,
softmax with lengths, masked-LM decoder), a Transformer encoder (div_sqrt_dim, batch_dot attention, sinusoidal
positions from arange_like), LSTM and GRU language models (_rnn_param_concat + RNN) and an encoder-decoder attention
block (interleaved encdec ops).

GluonCV 0.10.5 detectors (tests/fixtures/gluoncv, make_gluoncv_fixtures.py): SSD, YOLOv3, Faster R-CNN and CenterNet
(with and without a DCNv2 layer), GluonCV's own classes on tiny backbones. Their detections are compared as sets of
(class, score, box): NMS may order equal scores either way."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxsym as mx

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NLP = ["bert", "transformer", "lstm_lm", "gru_lm", "encdec"]
DETECTORS = ["ssd", "yolo3", "faster_rcnn", "center_net", "center_net_dcn"]
MODELS = NLP + DETECTORS
WITH_GRADIENTS = [m for m in MODELS if m != "center_net_dcn"]  # (MXNet 1.9.1: DCNv2's backward is GPU-only)


def _prefix(name):
    return os.path.join(FIXTURES, "gluoncv" if name in DETECTORS else "nlp", name)


def _load(name):
    prefix = _prefix(name)
    sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
    io = np.load(prefix + "_io.npz")
    data = [n for n in sym.list_inputs() if n not in args and n not in auxs]
    # Gluon names its inputs data0, data1, ... in call order (the recorded in0, in1, ...), a single one data
    inputs = {n: io["in" + (n[len("data"):] or "0")] for n in data}
    outputs = [io["out%d" % i] for i in range(len(sym.list_outputs()))]
    heads = [io["head%d" % i] for i in range(len(outputs))]
    return sym, args, auxs, inputs, outputs, heads


def _detections(ids, scores, boxes):
    keep = ids.reshape(-1) >= 0
    return ids.reshape(-1)[keep], scores.reshape(-1)[keep], boxes.reshape(-1, 4)[keep]


def _assert_same_detections(got, expected):
    """Every detection MXNet reports (class id >= 0) is among onnxsym's, same class, score and box, and no more."""
    got_ids, got_scores, got_boxes = _detections(*got)
    ids, scores, boxes = _detections(*expected)
    assert len(ids) > 0
    assert len(got_ids) == len(ids), (len(got_ids), len(ids))
    used = np.zeros(len(got_ids), bool)
    for i in range(len(ids)):
        same = (~used & (got_ids == ids[i]) & np.isclose(got_scores, scores[i], rtol=1e-5, atol=1e-6)
                & np.isclose(got_boxes, boxes[i], rtol=1e-4, atol=1e-3).all(axis=1))
        assert same.any(), "MXNet's detection %d (class %d, score %g, box %s) is missing" % (
            i, ids[i], scores[i], boxes[i])
        used[np.argmax(same)] = True


def _assert_outputs(name, out_names, got, expected):
    if name in DETECTORS:
        _assert_same_detections(got[:3], expected[:3])
        return
    assert len(got) == len(expected)
    for out_name, out, exp in zip(out_names, got, expected):
        assert out.shape == exp.shape, out_name
        np.testing.assert_allclose(out, exp, rtol=1e-5, atol=1e-5, err_msg=out_name)


@pytest.mark.parametrize("name", MODELS)
def test_export_runs_as_mxnet(name):
    sym, args, auxs, inputs, outputs, _ = _load(name)
    exe = sym.bind(mx.cpu(), {**args, **{n: mx.nd.array(v) for n, v in inputs.items()}}, aux_states=auxs)
    _assert_outputs(name, sym.list_outputs(), [o.asnumpy() for o in exe.forward()], outputs)


def test_detections_are_compared_as_sets():
    # the set comparison itself: the recorded detections in another order pass, a moved box or a lost one fails
    _, _, _, _, outputs, _ = _load("ssd")
    order = np.random.RandomState(0).permutation(outputs[0].shape[1])
    _assert_same_detections([o[:, order] for o in outputs], outputs)
    moved = [o.copy() for o in outputs]
    moved[2][0, 3, 1] += 0.5
    with pytest.raises(AssertionError):
        _assert_same_detections(moved, outputs)
    lost = [o.copy() for o in outputs]
    lost[0][0, 0] = -1
    with pytest.raises(AssertionError):
        _assert_same_detections(lost, outputs)


@pytest.mark.parametrize("name", WITH_GRADIENTS)
def test_gradients_as_mxnet(name):
    # MXNet's autograd on the hybridized block with seeded head gradients: the first entries and the norm of
    # every parameter's gradient
    sym, args, auxs, inputs, _, heads = _load(name)
    with open(_prefix(name) + "_grads.json") as f:
        recorded = json.load(f)
    grads = {n: mx.nd.zeros(args[n].shape) for n in recorded}
    exe = sym.bind(mx.cpu(), {**args, **{n: mx.nd.array(v) for n, v in inputs.items()}}, args_grad=grads,
                   grad_req={n: ("write" if n in grads else "null") for n in sym.list_arguments()}, aux_states=auxs)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(h) for h in heads])
    for param, expected in recorded.items():
        grad = grads[param].asnumpy().ravel()
        assert np.isfinite(grad).all(), param
        # (float32 rounding: gradients that are zero in exact arithmetic, such as the key bias's under softmax,
        # come out as noise of ~1e-7 in both)
        atol = 1e-6 + 1e-5 * expected["norm"]
        np.testing.assert_allclose(grad[:len(expected["head"])], expected["head"], rtol=1e-4, atol=atol,
                                   err_msg=param)
        np.testing.assert_allclose(np.linalg.norm(grad), expected["norm"], rtol=1e-4, atol=atol * 10,
                                   err_msg=param)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_serves_mxnet_numbers(name, tmp_path):
    sym, args, auxs, inputs, outputs, _ = _load(name)
    names = [n for n in sym.list_inputs() if n in inputs]
    path = mx.onnx.export_model(sym, {**args, **auxs}, [inputs[n].shape for n in names],
                                in_types=[inputs[n].dtype for n in names], onnx_file_path=str(tmp_path / "m.onnx"),
                                dynamic=False)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert not [n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    served = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    _assert_outputs(name, sym.list_outputs(), served, outputs)


@pytest.mark.parametrize("name", MODELS)
def test_one_training_step(name):
    # Module on the loaded symbol: mean square of the first output (a detector's: of its scores) as the loss; one
    # SGD step lowers it
    sym, args, auxs, inputs, _, _ = _load(name)
    loss = mx.sym.MakeLoss(mx.sym.mean(mx.sym.square(sym[1 if name in DETECTORS else 0])), name="loss")
    names = [n for n in loss.list_inputs() if n in inputs]      # (BERT's masked positions feed another output)
    args = {n: v for n, v in args.items() if n in loss.list_arguments()}
    mod = mx.mod.Module(loss, data_names=names, label_names=None)
    mod.bind(data_shapes=[(n, inputs[n].shape) for n in names])
    mod.init_params(arg_params=args, aux_params=auxs)
    # (a detector's loss is piecewise smooth: a larger step moves its shared features enough to change the proposals
    # or the boxes NMS keeps, Faster R-CNN's at 0.01)
    lr = 0.001 if name in DETECTORS else 0.05
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": lr})
    batch = mx.io.DataBatch([mx.nd.array(inputs[n]) for n in names])
    mod.forward(batch, is_train=True)
    before = float(mod.get_outputs()[0].asnumpy().item())
    mod.backward()
    grads = {n: g for n, g in mod._exec.grad_dict.items() if n in args}
    assert sorted(grads) == sorted(args)
    for param, grad in grads.items():
        assert np.isfinite(grad.asnumpy()).all(), param
    mod.update()
    mod.forward(batch, is_train=False)
    after = float(mod.get_outputs()[0].asnumpy().item())
    assert np.isfinite(after) and after < before, (before, after)
    new_args, _ = mod.get_params()
    assert any(np.abs(new_args[n].asnumpy() - args[n].asnumpy()).max() > 0 for n in args)


def test_lstm_language_model_trains():
    # the usual LM head: softmax over the vocabulary per step, labels = the next tokens; three SGD steps on one
    # batch lower the cross-entropy
    sym, args, auxs, inputs, _, _ = _load("lstm_lm")
    net = mx.sym.SoftmaxOutput(mx.sym.reshape(sym[0], shape=(-1, 50)), name="softmax")
    names = ["data0", "data1", "data2"]
    labels = np.roll(inputs["data0"], -1, axis=0).reshape(-1)
    mod = mx.mod.Module(net, data_names=names, label_names=["softmax_label"])
    mod.bind(data_shapes=[(n, inputs[n].shape) for n in names], label_shapes=[("softmax_label", labels.shape)])
    mod.init_params(arg_params=args, aux_params=auxs)
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.5})
    batch = mx.io.DataBatch([mx.nd.array(inputs[n]) for n in names], [mx.nd.array(labels)])
    metric = mx.metric.create("ce")
    losses = []
    for _ in range(3):
        mod.forward_backward(batch)
        metric.reset()
        mod.update_metric(metric, batch.label)
        losses.append(metric.get()[1])
        mod.update()
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
