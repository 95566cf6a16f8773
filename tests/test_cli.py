"""The `onnxsym` command line: every subcommand on small checkpoints built here, checked against numpy forwards of
the same weights; failures exit non-zero with one line on stderr and no traceback."""
import importlib
import json
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


CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "onnxsym")


def run_console(*argv, cwd=None, umask=None):
    """The installed `onnxsym` console script in a subprocess, running this checkout's code."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([CONSOLE_SCRIPT, *map(str, argv)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, preexec_fn=None if umask is None else lambda: os.umask(umask))


def run_here(capsys, *argv, cwd=None):
    """cli.main in this process (faster than a console script start), as a CompletedProcess."""
    old = os.getcwd()
    os.chdir(cwd or old)
    try:
        code, out, err = run_cli(capsys, *argv)
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(argv, code, out, err)


def one_line_error(done, command, pattern):
    """`done` failed with exit code 1 and one line `onnxsym COMMAND: error: ...` matching `pattern`."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("onnxsym %s: error: " % command), done.stderr
    assert re.search(pattern, done.stderr), done.stderr


def max_difference(stdout):
    return float(re.search(r"^max abs difference: (\S+) \(tolerance", stdout, re.M).group(1))


# ----- help -----

@pytest.mark.parametrize("command, expected", [
    ((), ["convert", "info", "plot", "run", "bench", "ops", "--version"]),
    (("convert",), ["PREFIX", "EPOCH", "--input-shape", "--dtype", "--tolerance"]),
    (("info",), ["FILE", "--params", "--input-shape"]),
    (("plot",), ["--show-weights", "--input-shape", "Graphviz"]),
    (("run",), ["NAME=FILE.npy", "--output", "--input-shape", "--seed"]),
    (("bench",), ["--batch", "--iterations", "--input-shape"]),
    (("ops",), ["--aliases", "--count", "get_operator_support"]),
])
def test_help_of_each_subcommand(capsys, command, expected):
    code, out, err = run_cli(capsys, *command, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: onnxsym %s" % " ".join(command))
    for word in expected:
        assert word in out
    examples = out[out.index("\nexamples:\n"):]                 # an epilog of example invocations, as written
    assert re.search(r"^  onnxsym %s\S* " % (command[0] if command else ""), examples, re.M), examples


def test_every_subcommand_help_has_an_example(capsys):
    """Every subcommand the parser has (not only those listed above) shows example invocations of itself."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction)).choices
    assert {"convert", "info", "plot", "run", "bench", "ops"} <= set(commands)
    for name in commands:
        code, out, err = run_cli(capsys, name, "--help")
        assert code == 0 and err == ""
        assert "examples:" in out and re.search(r"^  onnxsym %s " % name, out, re.M), name


def test_top_level_help_and_version_from_the_console_script():
    done = run_console("--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: onnxsym") and "examples:" in done.stdout
    assert re.search(r"^  onnxsym --version$", done.stdout, re.M)
    done = run_console("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == "onnxsym %s (onnx %s, onnxruntime %s, Python %s)\n" % (
        mx.__version__, onnx.__version__, ort.__version__, sys.version.split()[0])


def test_python_dash_m_onnxsym_is_the_command():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "onnxsym", "--version"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("onnxsym %s (onnx" % mx.__version__), done
    done = subprocess.run([sys.executable, "-m", "onnxsym", "nosuchcommand"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2 and "nosuchcommand" in done.stderr


# ----- ops -----

# Names MXNet 1.9.1 registers for one operator (its NNVM_REGISTER_OP ... add_alias): `mx.sym.<alias>` is that op.
MXNET_ALIASES = {"BlockGrad": "stop_gradient", "_copy": "identity", "SliceChannel": "split",
                 "broadcast_add": "broadcast_plus", "elemwise_add": "_plus", "Concat": "concat"}


def test_ops_lists_the_supported_mxnet_operators(capsys):
    supported = mx.onnx.get_operator_support()
    assert supported == sorted(set(supported))                     # sorted and unique, as MXNet's
    for name in ("FullyConnected", "Convolution", "BatchNorm", "SoftmaxOutput", "Custom", "_copy", "_plus_scalar"):
        assert name in supported
    assert "_onnx" not in supported                                # onnxsym's imported ONNX node, no MXNet op
    for canonical, alias in MXNET_ALIASES.items():                 # canonical names only, as MXNet's JSON has
        assert canonical in supported and alias not in supported
    for name in supported:
        assert callable(getattr(mx.sym, name)) and callable(getattr(mx.nd, name))
    from onnx.defs import onnx_opset_version
    assert mx.onnx.get_operator_support(onnx_opset_version()) == supported == mx.onnx.get_operator_support(17)
    assert mx.onnx.get_operator_support(16) == []                  # onnxsym writes opset 17 models

    done = run_console("ops")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == supported
    done = run_here(capsys, "ops", "--count")
    assert done.returncode == 0 and done.stdout == "%d\n" % len(supported)
    done = run_here(capsys, "ops", "--aliases")
    assert done.returncode == 0
    rows = dict(re.match(r"^(\S+)(?:  \(aliases: (.*)\))?$", line).groups() for line in done.stdout.splitlines())
    assert list(rows) == supported
    for canonical, alias in MXNET_ALIASES.items():
        assert alias in rows[canonical].split(", ")
    x = mx.sym.Variable("x")
    for canonical, aliases in rows.items():                        # each alias builds its operator
        for alias in (aliases or "").split(", ") if aliases else ():
            assert getattr(mx.sym, alias).__name__ == alias
    assert json_op(mx.sym.stop_gradient(x)) == "BlockGrad" and json_op(mx.sym.identity(x)) == "_copy"


def json_op(sym):
    return json.loads(sym.tojson())["nodes"][-1]["op"]


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
    pytest.importorskip("onnxruntime_extensions", reason="a custom Python operator makes the outputs differ")
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
    done = run_console("run", "custom.onnx", "--input", "data=x.npy", "-o", "out.npz", "--import", "cli_custom_ops",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as saved:
        np.testing.assert_allclose(saved["twice_output"], 2 * (x @ params["fc_weight"].T + params["fc_bias"]),
                                   rtol=1e-5, atol=1e-6)
    done = run_console("run", "custom.onnx", "--input", "data=x.npy", cwd=tmp_path)    # without --import
    assert done.stdout == ""
    one_line_error(done, "run", r"^onnxsym run: error: Custom op_type 'cli_twice' is not registered: pass "
                                r"--import MODULE, naming the module that registers it with "
                                r"mx\.operator\.register\('cli_twice'\)")


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


# ----- any .onnx: models built with onnx.helper, not exported by onnxsym -----

@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """Two models written with onnx.helper (every node becomes an `_onnx` op on import):
    dynamic.onnx  y = cumsum(relu(x @ W + b), axis=1), x (N, 4) with a symbolic batch and a 0-d axis initializer;
    pairs.onnx    z = sum(a * b, axis 1), a and b (B, L): a dynamic dimension besides the batch."""
    folder = tmp_path_factory.mktemp("foreign")
    rng = np.random.RandomState(11)
    weight, bias = rng.randn(4, 3).astype(np.float32), rng.randn(3).astype(np.float32)
    helper, TensorProto = onnx.helper, onnx.TensorProto
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("CumSum", ["r", "axis"], ["y"])]
    graph = helper.make_graph(nodes, "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [onnx.numpy_helper.from_array(weight, "W"), onnx.numpy_helper.from_array(bias, "b"),
                               onnx.numpy_helper.from_array(np.array(1, np.int64), "axis")])
    dynamic = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    nodes = [helper.make_node("Mul", ["a", "b"], ["ab"]), helper.make_node("ReduceSum", ["ab", "axes"], ["z"],
                                                                            keepdims=0)]
    graph = helper.make_graph(nodes, "pairs", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", "L"])
                                               for n in ("a", "b")],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B"])],
                              [onnx.numpy_helper.from_array(np.array([1], np.int64), "axes")])
    pairs = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    paths = {}
    for name, model in (("dynamic", dynamic), ("pairs", pairs)):
        onnx.checker.check_model(model, full_check=True)
        paths[name] = folder / ("%s.onnx" % name)
        onnx.save(model, str(paths[name]))
    return dict(folder=folder, weight=weight, bias=bias, **paths)


def dynamic_reference(x, foreign):
    return np.cumsum(np.maximum(x @ foreign["weight"] + foreign["bias"], 0), axis=1)


def plain_ort(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_info_on_a_foreign_model(capsys, foreign):
    done = run_console("info", foreign["dynamic"])
    assert done.returncode == 0, done.stderr
    assert re.search(r"^inputs \(1\):\n  x  float32  \(N, 4\)$", done.stdout, re.M)
    assert re.search(r"^outputs \(1\):\n  y  float32  \(N, 3\)$", done.stdout, re.M)
    assert "parameters: 16 in 3 initializers (68 B)" in done.stdout        # 15 float32 (60 B), one int64
    for op in ("MatMul", "Add", "Relu", "CumSum"):
        assert re.search(r"^ +1  %s$" % op, done.stdout, re.M)
    assert done.stdout.endswith("onnxsym: cannot import it: input 'x' (N, 4) has the dynamic dimension 'N' "
                                "(axis 0): give its size with --input-shape x:1,4\n")
    done = run_here(capsys, "info", foreign["dynamic"], "--input-shape", "x:3,4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("onnxsym: imports at x (3, 4) as 4 `_onnx` ops (ONNX nodes kept as they are: they "
                                "run, export and train)\n")
    one_line_error(run_here(capsys, "info", foreign["dynamic"], "--input-shape", "data:3,4"), "info",
                   r"unknown input 'data' in --input-shape; the model's inputs are: x$")


def test_plot_on_a_foreign_model(capsys, foreign, tmp_path):
    done = run_console("plot", foreign["dynamic"], "-o", tmp_path / "structure.dot")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("edges carry no shapes: input 'x' (N, 4) has dynamic dimensions (give "
                                           "--input-shape for them)")
    source = (tmp_path / "structure.dot").read_text()
    edges = re.findall(r"^\t(\S+) -> (\S+) \[label=(\S*)", source, re.M)
    # node names from the ONNX op types; W, b, axis are drawn: hide_weights hides only MXNet's _weight/_bias names
    assert edges == [("matmul0", "x", '""'), ("matmul0", "W", '""'), ("add1", "matmul0", '""'), ("add1", "b", '""'),
                     ("relu2", "add1", '""'), ("cumsum3", "relu2", '""'), ("cumsum3", "axis", '""')]
    done = run_here(capsys, "plot", foreign["dynamic"], "-o", tmp_path / "shapes.dot", "--input-shape", "x:5,4",
                    "--show-weights")
    assert done.returncode == 0, done.stderr
    edges = re.findall(r"^\t(\S+) -> (\S+) \[label=(\S*)", (tmp_path / "shapes.dot").read_text(), re.M)
    # MXNet's edge labels: the carried tensor's shape without its first axis (x (5, 4), W (4, 3), h (5, 3), ...)
    assert edges == [("matmul0", "x", "4"), ("matmul0", "W", "3"), ("add1", "matmul0", "3"), ("add1", "b", '""'),
                     ("relu2", "add1", "3"), ("cumsum3", "relu2", "3"), ("cumsum3", "axis", '""')]
    if shutil.which("dot"):
        done = run_here(capsys, "plot", foreign["pairs"], "-o", tmp_path / "pairs.svg", "--input-shape", "a:2,7",
                        "--input-shape", "b:2,7")
        assert done.returncode == 0, done.stderr
        image = (tmp_path / "pairs.svg").read_text()
        assert "<svg" in image and ">mul0<" in image and ">reducesum1<" in image


def test_run_a_foreign_model_with_dynamic_dimensions(capsys, foreign, tmp_path):
    x = np.random.RandomState(12).uniform(-1, 1, (5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = run_console("run", foreign["dynamic"], "--input", "x=x.npy", "-o", "y.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "y.npz") as saved:
        np.testing.assert_allclose(saved["y"], dynamic_reference(x, foreign), rtol=1e-5, atol=1e-6)
    one_line_error(run_console("run", foreign["dynamic"]), "run",
                   r"input 'x' \(N, 4\) has the dynamic dimension 'N' \(axis 0\): give its size with --input-shape "
                   r"x:1,4 \(or its array with --input x=FILE\.npy\)$")
    done = run_here(capsys, "run", foreign["dynamic"], "--input-shape", "x:6,4", "--seed", 3, "-o", "random.npz",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "input x: random (6, 4) float32 (seed 3)"
    drawn = np.random.default_rng(3).uniform(-1, 1, (6, 4)).astype(np.float32)   # as --help says: uniform [-1, 1]
    with np.load(tmp_path / "random.npz") as saved:
        assert saved["y"].shape == (6, 3)
        np.testing.assert_allclose(saved["y"], plain_ort(foreign["dynamic"], {"x": drawn})[0], rtol=1e-6)
    for argv, pattern in [
        (["--input-shape", "x:6,5"], r"--input-shape x:6,5: dimension 1 is 5 but the model's input 'x' \(N, 4\) "
                                     r"has 4$"),
        (["--input-shape", "x:6"], r"--input-shape x:6 has 1 dimensions; input 'x' has 2 \(N, 4\)$"),
        (["--input-shape", "x:6,4", "--input", "x=%s" % (tmp_path / "x.npy")],
         r"input 'x' has both --input and --input-shape; give one$"),
    ]:
        one_line_error(run_here(capsys, "run", foreign["dynamic"], *argv), "run", pattern)


def test_bench_a_foreign_model_with_dynamic_dimensions(capsys, foreign):
    done = run_console("bench", foreign["dynamic"], "--batch", 3, "--iterations", 2, "--warmup", 0)
    assert done.returncode == 0, done.stderr
    assert "inputs: x (3, 4) float32" in done.stdout and "exported again" not in done.stdout   # 'N' takes 3
    assert float(re.search(r"outputs agree within (\S+)\)", done.stdout).group(1)) < 1e-6
    one_line_error(run_here(capsys, "bench", foreign["dynamic"]), "bench",
                   r"input 'x' \(N, 4\) has the dynamic dimension 'N' \(axis 0\): give its size with --input-shape "
                   r"x:1,4 or --batch SIZE$")
    one_line_error(run_here(capsys, "bench", foreign["pairs"], "--batch", 2), "bench",
                   r"input 'a' \(B, L\) has the dynamic dimension 'L' \(axis 1\): give its size with --input-shape "
                   r"a:2,1 \(--batch sets only the first dimension\)$")
    done = run_here(capsys, "bench", foreign["pairs"], "--input-shape", "a:2,5", "--input-shape", "b:2,5",
                    "--iterations", 2, "--warmup", 0)
    assert done.returncode == 0, done.stderr
    assert "batch 2, 2 iterations after 0 warm-up; inputs: a (2, 5) float32, b (2, 5) float32" in done.stdout
    assert re.search(r"^ONNX Runtime +median \S+ ms", done.stdout, re.M)
    assert float(re.search(r"outputs agree within (\S+)\)", done.stdout).group(1)) < 1e-6
    one_line_error(run_here(capsys, "bench", foreign["pairs"], "--batch", 3, "--input-shape", "a:2,5",
                            "--input-shape", "b:2,5"), "bench",
                   r"--batch 3 but --input-shape a:2,5: the first dimension is the batch; give one of them$")


def test_inputs_without_a_shape_and_sequence_outputs(capsys, tmp_path):
    """An input that declares no shape (its rank is unknown) and a sequence output, as onnx.helper allows."""
    helper, TensorProto = onnx.helper, onnx.TensorProto
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("SequenceConstruct", ["y"],
                                                                                          ["s"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)])
    path = tmp_path / "sequence.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    code, out, err = run_cli(capsys, "info", path)
    assert code == 0, err
    assert "inputs (1):\n  x  float32  (unknown rank)\n" in out
    assert "outputs (2):\n  y  float32  (unknown rank)\n  s  sequence  (unknown rank)\n" in out
    assert out.endswith("onnxsym: cannot import it: input 'x' declares no shape: give it with --input-shape "
                        "x:D1,D2,...\n")
    one_line_error(run_here(capsys, "run", path), "run", r"input 'x' declares no shape: give it with --input-shape")
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    code, out, err = run_cli(capsys, "run", path, "--input", "x=%s" % (tmp_path / "x.npy"))
    assert code == 0, err
    assert re.search(r"^y  \(2, 3\)  float32  min 0  max 1  mean 0\.3$", out, re.M)    # relu(linspace(-1, 1, 6))
    assert re.search(r"^s  sequence of 1$", out, re.M)
    one_line_error(run_here(capsys, "run", path, "--input-shape", "x:2,3", "-o", tmp_path / "out.npz"), "run",
                   r"output 's' is a sequence, not a tensor: -o saves tensors only$")
    assert not (tmp_path / "out.npz").exists()


# ----- written files: the permissions open() gives -----

def test_written_files_get_the_mode_open_gives(models, tmp_path):
    """Every file the CLI writes is new with 0o666 & ~umask (not a temporary file's 0o600), and an existing file
    keeps its mode, as open(path, 'w') does."""
    umask = 0o027
    np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
    outputs = ["model.onnx", "out.npz", "graph.dot", "graph.gv"]
    commands = [["convert", models["mlp"], 1, "-o", "model.onnx", "--input-shape", "data:2,6"],
                ["run", models["mlp_onnx"], "--input", "data=x.npy", "-o", "out.npz"],
                ["plot", models["mlp_onnx"], "-o", "graph.dot"],
                ["plot", models["mlp"] + "-symbol.json", "-o", "graph.gv"]]
    if shutil.which("dot"):
        outputs += ["graph.svg", "graph.png"]
        commands += [["plot", models["mlp_onnx"], "-o", "graph.svg"], ["plot", models["mlp_onnx"], "-o", "graph.png"]]
    (tmp_path / "kept.npz").write_bytes(b"")
    os.chmod(tmp_path / "kept.npz", 0o604)
    outputs.append("kept.npz")
    commands.append(["run", models["mlp_onnx"], "--input", "data=x.npy", "-o", "kept.npz"])
    done = run_console(*commands[0], cwd=tmp_path, umask=umask)           # the console script itself
    assert done.returncode == 0, done.stderr
    script = "import sys\nfrom onnxsym.cli import main\nfor argv in %r:\n    assert main(argv) == 0, argv\n" % (
        [[str(a) for a in argv] for argv in commands[1:]],)
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: os.umask(umask))     # the others: one start, same umask
    assert done.returncode == 0, done.stderr
    modes = {name: oct(os.stat(tmp_path / name).st_mode & 0o777) for name in outputs}
    assert modes == {name: oct(0o604 if name == "kept.npz" else 0o666 & ~umask) for name in outputs}
    with np.load(tmp_path / "kept.npz") as saved:                  # written, not only chmod'ed
        assert saved["softmax_output"].shape == (2, 3)
    assert sorted(os.listdir(tmp_path)) == sorted(outputs + ["x.npy"])     # no temporary files left


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
