"""The `onnxsym` command line: every subcommand on small checkpoints built here, checked against numpy forwards of
the same weights; failures exit non-zero with one line on stderr and no traceback."""
import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

import onnxsym as mx
from onnxsym import cli
from onnxsym.runtime.ort import ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mlp_reference(x, p):
    hidden = np.maximum(x @ p["fc1_weight"].T + p["fc1_bias"], 0)
    return softmax(hidden @ p["fc2_weight"].T + p["fc2_bias"])


def convnet_reference(x, p):
    """conv 3x3 pad 1 -> BatchNorm (fix_gamma: gamma is 1, moving stats, eps 1e-3) -> relu -> 2x2 max pool -> fc."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    y = np.einsum("nchwij,fcij->nfhw", windows, p["conv_weight"]) + p["conv_bias"][:, None, None]
    y = (y - p["bn_moving_mean"][:, None, None]) / np.sqrt(p["bn_moving_var"][:, None, None] + 1e-3)
    y = np.maximum(y + p["bn_beta"][:, None, None], 0)
    n, c, h, w = y.shape
    y = y.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)).reshape(n, -1)
    return softmax(y @ p["fc_weight"].T + p["fc_bias"])


def save(prefix, sym, params, aux_names=()):
    arrays = {k: mx.nd.array(v) for k, v in params.items()}
    mx.model.save_checkpoint(prefix, 1, sym, {k: v for k, v in arrays.items() if k not in aux_names},
                             {k: v for k, v in arrays.items() if k in aux_names})
    return prefix


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Checkpoints of an MLP (data 2x6) and a small conv net with BatchNorm (data 2x3x6x6), and the MLP's .onnx."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.RandomState(0)
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=8, name="fc1")
    net = mx.sym.FullyConnected(mx.sym.Activation(net, act_type="relu", name="relu1"), num_hidden=3, name="fc2")
    mlp = mx.sym.SoftmaxOutput(net, name="softmax")
    mlp_params = {"fc1_weight": rng.randn(8, 6), "fc1_bias": rng.randn(8), "fc2_weight": rng.randn(3, 8),
                  "fc2_bias": rng.randn(3)}
    mlp_params = {k: v.astype(np.float32) for k, v in mlp_params.items()}
    net = mx.sym.Convolution(mx.sym.Variable("data"), kernel=(3, 3), pad=(1, 1), num_filter=4, name="conv")
    net = mx.sym.Activation(mx.sym.BatchNorm(net, name="bn"), act_type="relu", name="relu")
    net = mx.sym.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool")
    conv = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Flatten(net), num_hidden=5, name="fc"), name="softmax")
    conv_params = {"conv_weight": rng.randn(4, 3, 3, 3) * 0.3, "conv_bias": rng.randn(4), "bn_gamma": np.full(4, 5.0),
                   "bn_beta": rng.randn(4), "bn_moving_mean": rng.randn(4), "bn_moving_var": rng.rand(4) + 0.5,
                   "fc_weight": rng.randn(5, 36) * 0.3, "fc_bias": rng.randn(5)}
    conv_params = {k: v.astype(np.float32) for k, v in conv_params.items()}
    mlp_prefix = save(str(folder / "mlp"), mlp, mlp_params)
    conv_prefix = save(str(folder / "conv"), conv, conv_params, aux_names=("bn_moving_mean", "bn_moving_var"))
    onnx_path = mx.onnx.export_model(mlp, {k: mx.nd.array(v) for k, v in mlp_params.items()}, [(2, 6)],
                                     onnx_file_path=str(folder / "mlp.onnx"))
    return dict(folder=folder, mlp=mlp_prefix, mlp_params=mlp_params, conv=conv_prefix, conv_params=conv_params,
                mlp_onnx=onnx_path)


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of cli.main in this process."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "onnxsym.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def max_difference(stdout):
    return float(re.search(r"^max abs difference: (\S+) \(tolerance", stdout, re.M).group(1))


# ----- help -----

@pytest.mark.parametrize("command, expected", [
    ((), ["convert", "info", "plot", "run", "bench"]),
    (("convert",), ["PREFIX", "EPOCH", "--input-shape", "--dtype", "--tolerance"]),
    (("info",), ["FILE", "--params", "--input-shape"]),
    (("plot",), ["--show-weights", "--input-shape", "Graphviz"]),
    (("run",), ["NAME=FILE.npy", "--output"]),
    (("bench",), ["--batch", "--iterations"]),
])
def test_help_of_each_subcommand(capsys, command, expected):
    code, out, err = run_cli(capsys, *command, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: onnxsym %s" % " ".join(command))
    for word in expected:
        assert word in out


# ----- convert -----

def test_convert_mlp_writes_a_model_equal_to_numpy(capsys, models):
    path = models["folder"] / "converted_mlp.onnx"
    code, out, err = run_cli(capsys, "convert", models["mlp"], 1, "-o", path, "--input-shape", "data:2,6")
    assert code == 0, err
    assert re.search(r"^\[1/3\] loading .* done \(\d+\.\d\d s\)$", out, re.M)
    assert re.search(r"^\[2/3\] exporting .* done", out, re.M) and re.search(r"^\[3/3\] verifying: .* done", out, re.M)
    assert max_difference(out) < 1e-6
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["data"]          # the label is dropped, weights are initializers
    x = np.random.RandomState(5).uniform(-1, 1, (2, 6)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    np.testing.assert_allclose(got, mlp_reference(x, models["mlp_params"]), rtol=1e-5, atol=1e-6)


class CallCounter(mx.operator.CustomOp):
    """out = data + the number of forward calls so far: onnxsym's forward and ORT's disagree by exactly 1."""

    calls = 0

    def forward(self, is_train, req, in_data, out_data, aux):
        CallCounter.calls += 1
        self.assign(out_data[0], req[0], in_data[0] + CallCounter.calls)


@mx.operator.register("cli_call_counter")
class CallCounterProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, shapes, dtypes):
        return CallCounter()


def test_convert_fails_when_the_outputs_differ(capsys, tmp_path):
    sym = mx.sym.Custom(mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=2, name="fc"),
                        op_type="cli_call_counter", name="count")
    prefix = save(str(tmp_path / "counter"), sym, {"fc_weight": np.ones((2, 3), np.float32),
                                                   "fc_bias": np.zeros(2, np.float32)})
    argv = ["convert", prefix, 1, "-o", tmp_path / "counter.onnx", "--input-shape", "data:1,3"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and max_difference(out) == 1.0
    assert err == ("onnxsym convert: error: verification failed: max abs difference 1 exceeds the tolerance 0.0001 "
                   "(%s is kept)\n" % (tmp_path / "counter.onnx"))
    code, out, err = run_cli(capsys, *argv, "--tolerance", "1.5")
    assert code == 0 and max_difference(out) == 1.0 and err == ""


def test_convert_conv_net_as_a_process(models):
    path = models["folder"] / "conv.onnx"
    done = run_process("convert", models["conv"], 1, "-o", path, "--input-shape", "data:2,3,6,6", "--seed", 3)
    assert done.returncode == 0, done.stderr
    assert max_difference(done.stdout) < 1e-5
    x = np.random.RandomState(6).uniform(-1, 1, (2, 3, 6, 6)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    np.testing.assert_allclose(got, convnet_reference(x, models["conv_params"]), rtol=1e-4, atol=1e-5)


# ----- info -----

def test_info_onnx_lists_inputs_parameters_and_ops(capsys, models):
    code, out, err = run_cli(capsys, "info", models["mlp_onnx"])
    assert code == 0, err
    model = onnx.load(models["mlp_onnx"])
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    batch = str(batch.dim_value or batch.dim_param)
    assert re.search(r"^inputs \(1\):\n  data  float32  \(%s, 6\)$" % batch, out, re.M)
    assert re.search(r"^outputs \(1\):\n  softmax_output  float32  \(%s, 3\)$" % batch, out, re.M)
    weights = 8 * 6 + 8 + 3 * 8 + 3
    assert "parameters: %d in 4 initializers (%d B)" % (weights, weights * 4) in out
    assert re.search(r"^ +2  Gemm$", out, re.M) and re.search(r"^ +1  Relu$", out, re.M)
    assert "opsets: ai.onnx %d" % model.opset_import[0].version in out
    assert re.search(r"^metadata keys: .*mxnet_symbol", out, re.M)


def test_info_symbol_with_params_and_shapes(capsys, models):
    symbol, params = models["conv"] + "-symbol.json", models["conv"] + "-0001.params"
    code, out, err = run_cli(capsys, "info", symbol, "--params", params)
    assert code == 0, err
    assert re.search(r"^arguments \(8\):\n  data\n  conv_weight  \(4, 3, 3, 3\)\n", out, re.M)
    assert re.search(r"^aux states \(2\):\n  bn_moving_mean  \(4,\)\n  bn_moving_var  \(4,\)$", out, re.M)
    count = sum(v.size for v in models["conv_params"].values())
    assert "parameters: %d in 8 arrays" % count in out
    assert "inputs not in the params: data, softmax_label" not in out    # labels are not parameters
    assert "inputs not in the params: data" in out
    for op in ("Convolution", "BatchNorm", "Activation", "Pooling", "Flatten", "FullyConnected", "SoftmaxOutput"):
        assert re.search(r"^ +1  %s$" % op, out, re.M)
    code, out, err = run_cli(capsys, "info", symbol, "--input-shape", "data:2,3,6,6")
    assert code == 0, err
    assert "parameters: %d in 8 arrays" % count in out               # from inferred shapes alone
    assert re.search(r"^outputs \(1\):\n  softmax_output  \(2, 5\)$", out, re.M)
    code, out, _ = run_cli(capsys, "info", symbol)
    assert code == 0 and "give --params or --input-shape" in out


# ----- plot -----

def test_plot_writes_dot_source_and_svg(capsys, models, tmp_path):
    code, out, err = run_cli(capsys, "plot", models["mlp"] + "-symbol.json", "-o", tmp_path / "g.dot",
                             "--input-shape", "data:2,6")
    assert code == 0, err
    source = (tmp_path / "g.dot").read_text()
    assert source.startswith('digraph "mlp-symbol"') and 'label="FullyConnected\n8"' in source
    assert 'fc1 -> data [label=6' in source and "fc1_weight" not in source
    code, _, err = run_cli(capsys, "plot", models["mlp_onnx"], "-o", tmp_path / "w.gv", "--show-weights")
    assert code == 0, err
    assert "fc1_weight" in (tmp_path / "w.gv").read_text()
    if shutil.which("dot"):
        code, _, err = run_cli(capsys, "plot", models["mlp_onnx"], "-o", tmp_path / "g.svg")
        assert code == 0, err
        assert "<svg" in (tmp_path / "g.svg").read_text() and "FullyConnected" in (tmp_path / "g.svg").read_text()


def test_plot_image_without_graphviz_says_how_to_install(capsys, models, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))                      # no `dot` here
    code, out, err = run_cli(capsys, "plot", models["mlp"] + "-symbol.json", "-o", tmp_path / "g.png")
    assert code == 1 and "apt-get install graphviz" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.png").exists()


# ----- run -----

def test_run_saves_outputs_equal_to_numpy(capsys, models, tmp_path):
    x = np.random.RandomState(7).uniform(-1, 1, (2, 6))               # float64: cast to the model's float32
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli(capsys, "run", models["mlp_onnx"], "--input", "data=%s" % (tmp_path / "x.npy"),
                             "-o", tmp_path / "out.npz")
    assert code == 0, err
    expected = mlp_reference(x.astype(np.float32), models["mlp_params"])
    with np.load(tmp_path / "out.npz", allow_pickle=False) as saved:
        assert list(saved) == ["softmax_output"]
        np.testing.assert_allclose(saved["softmax_output"], expected, rtol=1e-5, atol=1e-6)
    line = re.search(r"^softmax_output  \(2, 3\)  float32  min (\S+)  max (\S+)  mean (\S+)$", out, re.M)
    np.testing.assert_allclose([float(v) for v in line.groups()], [expected.min(), expected.max(), 1 / 3],
                               rtol=1e-4)


CUSTOM_OPS = '''
import onnxsym as mx


class Twice(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0] * 2)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], out_grad[0] * 2)


@mx.operator.register("cli_twice")
class TwiceProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, shapes, dtypes):
        return Twice()
'''


def test_custom_op_model_converts_and_runs_with_import(capsys, tmp_path, monkeypatch):
    """A Python custom op: converted here, then run in fresh processes, which need --import to register it."""
    (tmp_path / "cli_custom_ops.py").write_text(textwrap.dedent(CUSTOM_OPS))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("cli_custom_ops")                       # to build the symbol here
    fc = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc")
    sym = mx.sym.Custom(fc, op_type="cli_twice", name="twice")
    rng = np.random.RandomState(8)
    params = {"fc_weight": rng.randn(3, 4).astype(np.float32), "fc_bias": rng.randn(3).astype(np.float32)}
    save(str(tmp_path / "custom"), sym, params)
    code, out, err = run_cli(capsys, "convert", tmp_path / "custom", 1, "-o", tmp_path / "custom.onnx",
                             "--input-shape", "data:2,4")
    assert code == 0 and max_difference(out) < 1e-6, err
    x = rng.randn(2, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = run_process("run", "custom.onnx", "--input", "data=x.npy", "-o", "out.npz", "--import", "cli_custom_ops",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as saved:
        np.testing.assert_allclose(saved["twice_output"], 2 * (x @ params["fc_weight"].T + params["fc_bias"]),
                                   rtol=1e-5, atol=1e-6)
    done = run_process("run", "custom.onnx", "--input", "data=x.npy", cwd=tmp_path)    # without --import
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("onnxsym run: error: Custom op_type 'cli_twice' is not registered")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


# ----- bench -----

def test_bench_reports_consistent_latency_and_throughput(capsys, models):
    code, out, err = run_cli(capsys, "bench", models["mlp_onnx"], "--batch", 5, "--iterations", 3, "--warmup", 1)
    assert code == 0, err
    assert "inputs: data (5, 6) float32" in out
    rows = dict((name, (float(ms), float(rate))) for name, ms, rate in
                re.findall(r"^(onnxsym|ONNX Runtime) +median (\S+) ms, (\S+) samples/s$", out, re.M))
    assert set(rows) == {"onnxsym", "ONNX Runtime"}
    for ms, rate in rows.values():
        assert ms > 0 and rate == pytest.approx(5 / (ms / 1e3), rel=0.02)
    ratio, agree = re.search(r"latency: (\S+)x \(outputs agree within (\S+)\)", out).groups()
    assert float(ratio) == pytest.approx(rows["onnxsym"][0] / rows["ONNX Runtime"][0], rel=0.05, abs=0.01)
    assert float(agree) < 1e-6


def test_bench_re_exports_a_fixed_batch_model(capsys, models):
    path = models["folder"] / "conv_fixed.onnx"
    assert cli.main(["convert", models["conv"], "1", "-o", str(path), "--input-shape", "data:1,3,6,6"]) == 0
    capsys.readouterr()
    fixed = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    code, out, err = run_cli(capsys, "bench", path, "--batch", 3, "--iterations", 2, "--warmup", 0)
    assert code == 0, err
    assert ("exported again here at batch 3" in out) == (fixed.dim_value == 1)
    assert float(re.search(r"outputs agree within (\S+)\)", out).group(1)) < 1e-5


# ----- failures: one line on stderr, no traceback -----

def failures(models):
    folder = models["folder"]
    corrupt = folder / "corrupt.onnx"
    corrupt.write_bytes(open(models["mlp_onnx"], "rb").read()[:100])
    np.save(folder / "wrong.npy", np.zeros((3, 6), np.float32))
    symbol = models["mlp"] + "-symbol.json"
    return [
        (["convert", folder / "missing", 1, "-o", folder / "m.onnx", "--input-shape", "data:2,6"], 1,
         r"no such file: .*missing-symbol\.json"),
        (["convert", models["mlp"], 1, "-o", folder / "m.onnx", "--input-shape", "data=2,6"], 2,
         r"--input-shape: expected NAME:D1,D2,"),
        (["convert", models["mlp"], 1, "-o", folder / "m.onnx", "--input-shape", "data:2,x"], 2, r"got 'data:2,x'"),
        (["convert", models["mlp"], 1, "-o", folder / "m.onnx", "--input-shape", "image:2,6"], 1,
         r"unknown input 'image' in --input-shape; the model's inputs are: data"),
        (["convert", models["mlp"], 1, "-o", folder / "m.onnx"], 2, r"required: --input-shape"),
        (["convert", models["mlp"], 2, "-o", folder / "m.onnx", "--input-shape", "data:2,6"], 1,
         r"no such file: .*mlp-0002\.params"),
        (["info", corrupt], 1, r"corrupt\.onnx is not a readable ONNX model"),
        (["info", folder / "absent.onnx"], 1, r"no such file"),
        (["info", symbol, "--input-shape", "pixels:1,6"], 1, r"unknown input 'pixels'"),
        (["run", corrupt, "--input", "data=%s" % (folder / "wrong.npy")], 1, r"not a readable ONNX model"),
        (["run", models["mlp_onnx"], "--input", "image=%s" % (folder / "wrong.npy")], 1, r"unknown input 'image'"),
        (["run", models["mlp_onnx"], "--input", "data"], 2, r"expected NAME=FILE\.npy"),
        (["run", models["mlp_onnx"], "--input", "data=%s" % corrupt], 1, r"cannot read .* as a \.npy array"),
        (["plot", symbol, "-o", folder / "g.jpg"], 1, r"-o must end with \.dot"),
        (["bench", corrupt, "--batch", "2"], 1, r"not a readable ONNX model"),
        (["bench", models["mlp_onnx"], "--batch", "0"], 2, r"--batch: expected a positive integer"),
        (["frobnicate"], 2, r"invalid choice: 'frobnicate'"),
    ]


def test_failures_are_one_line_without_traceback(capsys, models):
    for argv, code, pattern in failures(models):
        got, out, err = run_cli(capsys, *argv)
        assert got == code, (argv, err)
        assert len(err.splitlines()) == 1 and re.search(pattern, err), (argv, err)
        assert err.startswith("onnxsym") and "Traceback" not in err


def test_run_checks_the_input_shape(capsys, models):
    model = onnx.load(models["mlp_onnx"])
    if model.graph.input[0].type.tensor_type.shape.dim[0].dim_param:
        path = models["folder"] / "fixed.onnx"                     # the batch is symbolic: fix it to 2
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
        onnx.save(model, str(path))
    else:
        path = models["mlp_onnx"]
    np.save(models["folder"] / "three.npy", np.zeros((3, 6), np.float32))
    code, _, err = run_cli(capsys, "run", path, "--input", "data=%s" % (models["folder"] / "three.npy"))
    assert code == 1 and "has shape (3, 6); the model expects (2, 6)" in err


def test_debug_raises_the_original_exception(models):
    corrupt = models["folder"] / "corrupt_debug.onnx"
    corrupt.write_bytes(b"not a model at all")
    with pytest.raises(mx.MXNetError, match="not a readable ONNX model"):
        cli.main(["info", str(corrupt), "--debug"])


def test_reader_leaving_early_is_not_an_error(capsys, models, monkeypatch):
    """`onnxsym info model.onnx | head -2`: a closed pipe ends the command quietly (exit 141, as cat), no error."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        assert cli.main(["info", str(models["mlp_onnx"])]) == 141
    finally:
        closed.close()
    assert capsys.readouterr().err == ""
