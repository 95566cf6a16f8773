"""GluonNLP / Gluon exports (HybridBlock.export by MXNet 1.9.1, tests/fixtures/nlp, made by make_nlp_fixtures.py):
a 2-layer BERT (arange_like, interleaved self-attention, softmax with lengths, masked-LM decoder), a Transformer
encoder (div_sqrt_dim, batch_dot attention, sinusoidal positions from arange_like), LSTM and GRU
language models (_rnn_param_concat + RNN) and an encoder-decoder attention block (interleaved encdec ops) load
without MXNet, give MXNet's outputs and MXNet's gradients, export to .onnx that plain ONNX Runtime serves with the
same numbers, and train."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxsym as mx

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "nlp")
MODELS = ["bert", "transformer", "lstm_lm", "gru_lm", "encdec"]


def _load(name):
    prefix = os.path.join(FIXTURES, name)
    sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
    io = np.load(prefix + "_io.npz")
    data = [n for n in sym.list_inputs() if n not in args and n not in auxs]
    # Gluon names its inputs data0, data1, ... in call order (the recorded in0, in1, ...)
    inputs = {n: io["in" + n[len("data"):]] for n in data}
    outputs = [io["out%d" % i] for i in range(len(sym.list_outputs()))]
    heads = [io["head%d" % i] for i in range(len(outputs))]
    return sym, args, auxs, inputs, outputs, heads


@pytest.mark.parametrize("name", MODELS)
def test_export_runs_as_mxnet(name):
    sym, args, auxs, inputs, outputs, _ = _load(name)
    exe = sym.bind(mx.cpu(), {**args, **{n: mx.nd.array(v) for n, v in inputs.items()}}, aux_states=auxs)
    for out_name, out, exp in zip(sym.list_outputs(), exe.forward(), outputs):
        assert out.shape == exp.shape, out_name
        np.testing.assert_allclose(out.asnumpy(), exp, rtol=1e-5, atol=1e-5, err_msg=out_name)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_as_mxnet(name):
    # MXNet's autograd on the hybridized block with seeded head gradients: the first entries and the norm of
    # every parameter's gradient
    sym, args, auxs, inputs, _, heads = _load(name)
    with open(os.path.join(FIXTURES, name + "_grads.json")) as f:
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
    assert len(served) == len(outputs)
    for out_name, out, exp in zip(sym.list_outputs(), served, outputs):
        np.testing.assert_allclose(out, exp, rtol=1e-5, atol=1e-5, err_msg=out_name)


@pytest.mark.parametrize("name", MODELS)
def test_one_training_step(name):
    # Module on the loaded symbol: mean square of the first output as the loss; one SGD step lowers it
    sym, args, auxs, inputs, _, _ = _load(name)
    loss = mx.sym.MakeLoss(mx.sym.mean(mx.sym.square(sym[0])), name="loss")
    names = [n for n in loss.list_inputs() if n in inputs]      # (BERT's masked positions feed another output)
    args = {n: v for n, v in args.items() if n in loss.list_arguments()}
    mod = mx.mod.Module(loss, data_names=names, label_names=None)
    mod.bind(data_shapes=[(n, inputs[n].shape) for n in names])
    mod.init_params(arg_params=args, aux_params=auxs)
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.05})
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
