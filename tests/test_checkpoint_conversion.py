"""MXNet checkpoints -> .onnx without MXNet: a Gluon HybridBlock.export written by MXNet 1.9.1 (tests/fixtures,
made by make_gluon_fixtures.py) converts, and ORT reproduces MXNet's own output."""
import os

import numpy as np
import onnx
import onnxruntime as ort

import onnxsym as mx

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
PREFIX = os.path.join(FIXTURES, "gluon_net")


def test_gluon_export_loads_runs_and_converts(tmp_path):
    io = np.load(PREFIX + "_io.npz")
    sym, args, auxs = mx.model.load_checkpoint(PREFIX, 0)
    assert "gluonnet_batchnorm0_running_mean" in auxs and "gluonnet_prelu0_alpha" in args
    exe = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(io["x"])}, aux_states=auxs)
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), io["out"], rtol=1e-5, atol=1e-6)
    path = mx.onnx.export_model(sym, {**args, **auxs}, [io["x"].shape], onnx_file_path=str(tmp_path / "g.onnx"))
    onnx.checker.check_model(onnx.load(path), full_check=True)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": io["x"]})[0]
    np.testing.assert_allclose(served, io["out"], rtol=1e-5, atol=1e-6)


def test_gluon_export_trains_on():
    io = np.load(PREFIX + "_io.npz")
    sym, args, auxs = mx.model.load_checkpoint(PREFIX, 0)
    net = mx.sym.SoftmaxOutput(sym, name="softmax")
    mod = mx.mod.Module(net)
    it = mx.io.NDArrayIter(np.concatenate([io["x"]] * 2), np.array([0, 1, 2, 3]), batch_size=2)
    mod.fit(it, arg_params=args, aux_params=auxs, num_epoch=1, optimizer_params={"learning_rate": 0.1})
    new_args, new_auxs = mod.get_params()
    assert np.abs(new_args["gluonnet_dense0_weight"].asnumpy() - args["gluonnet_dense0_weight"].asnumpy()).max() > 0
    assert np.abs(new_auxs["gluonnet_batchnorm0_running_mean"].asnumpy()
                  - auxs["gluonnet_batchnorm0_running_mean"].asnumpy()).max() > 0
