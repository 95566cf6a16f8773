"""mx.contrib.amp against MXNet 1.9.1 (tests/fixtures/mxnet/amp.json, recorded by make_amp_fixtures.py): the op
lists, convert_symbol's graphs (nodes, names, attributes, inputs), convert_model's parameter dtypes, what
amp.init()'s patched functions build; converted graphs run close to the float32 ones."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.contrib.amp import amp
from onnxsym.gluon import GluonNotProvidedError
from onnxsym.ops.registry import names
from tests.fixtures.amp_cases import CONVERT_MODEL, CONVERT_SYMBOL, DATA_NAMES, INPUT_SHAPES, SYMBOLS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "tests", "fixtures", "mxnet", "amp.json")) as _handle:
    RECORDED = json.load(_handle)


def graph(js):
    """(nodes as (op, name, attrs, inputs), heads) of a symbol JSON."""
    if not isinstance(js, dict):
        js = json.loads(js)
    return [(n["op"], n["name"], n.get("attrs", {}), n["inputs"]) for n in js["nodes"]], js["heads"]


def params_for(sym_name, seed=0):
    sym = SYMBOLS[sym_name](mx)
    arg_shapes, _, aux_shapes = sym.infer_shape(**INPUT_SHAPES[sym_name])
    rng = np.random.RandomState(seed)
    args = {n: mx.nd.array(rng.uniform(-0.5, 0.5, s)) for n, s in zip(sym.list_arguments(), arg_shapes)
            if n not in DATA_NAMES[sym_name]}
    auxs = {n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return sym, args, auxs


# ---------------------------------------------------------------- lists
LIST_FUNCTIONS = {"FP16_FUNCS": amp.list_lp16_ops, "FP16_FP32_FUNCS": amp.list_lp16_fp32_ops,
                  "FP32_FUNCS": amp.list_fp32_ops, "CONDITIONAL_FP32_FUNCS": amp.list_conditional_fp32_ops,
                  "WIDEST_TYPE_CASTS": amp.list_widest_type_cast,
                  "LOSS_OUTPUT_FUNCTIONS": amp.list_loss_output_functions}


@pytest.mark.parametrize("list_name", sorted(LIST_FUNCTIONS))
def test_lists_are_mxnets_restricted_to_onnxsym_ops(list_name):
    registered = set(names())
    expected = RECORDED["lists"][list_name]
    if list_name == "CONDITIONAL_FP32_FUNCS":
        expected = [tuple(entry) for entry in expected if entry[0] in registered]
        got = [tuple(entry) for entry in LIST_FUNCTIONS[list_name]("float16")]
    else:
        expected = [name for name in expected if name in registered]
        got = list(LIST_FUNCTIONS[list_name]("float16"))
    assert got == expected
    assert amp.list_lp16_use_fp32_params("float16") is None


def test_core_ops_are_classified():
    """The ops of the usual networks are in the list MXNet puts them in (not silently dropped)."""
    assert {"Convolution", "FullyConnected", "Deconvolution", "RNN"} <= set(amp.list_lp16_ops("float16"))
    assert {"SoftmaxOutput", "softmax", "exp", "sum", "norm"} <= set(amp.list_fp32_ops("float16"))
    assert {"BatchNorm", "Pooling", "Flatten", "Dropout"} <= set(amp.list_lp16_fp32_ops("float16"))
    assert {"Concat", "elemwise_add", "broadcast_mul"} <= set(amp.list_widest_type_cast("float16"))


# ---------------------------------------------------------------- convert_symbol / convert_model
@pytest.mark.parametrize("case", sorted(CONVERT_SYMBOL))
def test_convert_symbol_matches_mxnet(case):
    sym_name, kwargs = CONVERT_SYMBOL[case]
    converted = amp.convert_symbol(SYMBOLS[sym_name](mx), **kwargs)
    assert graph(converted.tojson(remove_amp_cast=False)) == graph(RECORDED["convert_symbol"][case])


@pytest.mark.parametrize("case", sorted(CONVERT_SYMBOL))
def test_tojson_removes_amp_casts_as_mxnet(case, tmp_path):
    sym_name, kwargs = CONVERT_SYMBOL[case]
    converted = amp.convert_symbol(SYMBOLS[sym_name](mx), **kwargs)
    assert graph(converted.tojson()) == graph(RECORDED["removed"][case])
    converted.save(str(tmp_path / "removed.json"))
    converted.save(str(tmp_path / "kept.json"), remove_amp_cast=False)
    assert graph(mx.sym.load(str(tmp_path / "removed.json")).tojson()) == graph(RECORDED["removed"][case])
    kept = mx.sym.load(str(tmp_path / "kept.json")).tojson(remove_amp_cast=False)
    assert graph(kept) == graph(RECORDED["convert_symbol"][case])


@pytest.mark.parametrize("case", sorted(CONVERT_MODEL))
def test_convert_model_matches_mxnet(case):
    sym_name, kwargs = CONVERT_MODEL[case]
    sym, args, auxs = params_for(sym_name)
    converted, args, auxs = amp.convert_model(sym, args, auxs, **kwargs)
    recorded = RECORDED["convert_model"][case]
    assert graph(converted.tojson(remove_amp_cast=False)) == graph(recorded["symbol"])
    assert {n: np.dtype(v.dtype).name for n, v in args.items()} == recorded["arg_dtypes"]
    assert {n: np.dtype(v.dtype).name for n, v in auxs.items()} == recorded["aux_dtypes"]


def run(sym, sym_name, args, auxs, seed=1):
    rng = np.random.RandomState(seed)
    data = {n: mx.nd.array(rng.uniform(-1, 1, INPUT_SHAPES[sym_name][n])) for n in DATA_NAMES[sym_name]}
    if "softmax_label" in data:
        data["softmax_label"] = mx.nd.array(rng.randint(0, 4, INPUT_SHAPES[sym_name]["softmax_label"]))
    exe = sym.bind(mx.cpu(), dict(args, **data), aux_states=dict(auxs), grad_req="null")
    return [o.asnumpy() for o in exe.forward(is_train=False)]


@pytest.mark.parametrize("case", sorted(CONVERT_MODEL))
def test_converted_model_runs_close_to_float32(case):
    sym_name, kwargs = CONVERT_MODEL[case]
    sym, args, auxs = params_for(sym_name)
    expected = run(sym, sym_name, args, auxs)
    converted, args16, auxs16 = amp.convert_model(sym, dict(args), dict(auxs), **kwargs)
    got = run(converted, sym_name, args16, auxs16)
    assert len(got) == len(expected)
    for out, ref in zip(got, expected):
        assert out.dtype == np.float32          # every output is cast back to float32
        np.testing.assert_allclose(out, ref, rtol=2e-2, atol=2e-2)
    internals = converted.get_internals()

    def out_type(name):
        node = internals[name]
        known = {n: np.float32 for n in DATA_NAMES[sym_name] if n in node.list_inputs()}
        known.update({n: np.dtype(v.dtype) for n, v in args16.items() if n in node.list_inputs()})
        return node.infer_type(**known)[1]

    fc = [n for n in internals.list_outputs() if n in ("fc1_output", "fc_output")][0]
    assert out_type(fc) == [np.float16]         # a float16 op computes in float16
    if "fc2" in kwargs.get("excluded_sym_names", []):
        assert out_type("fc2_output") == [np.float32]       # an excluded node stays in float32


def test_convert_leaves_the_input_symbol_alone():
    sym = SYMBOLS["mixed"](mx)
    before = sym.tojson()
    amp.convert_symbol(sym, data_names=["a"], cast_optional_params=True)
    assert sym.tojson() == before


def test_excluded_nodes_get_float32_inputs():
    converted = amp.convert_symbol(SYMBOLS["mlp"](mx), excluded_sym_names=["fc2"])
    nodes = {n["name"]: n for n in json.loads(converted.tojson(remove_amp_cast=False))["nodes"]}
    fc2_inputs = [json.loads(converted.tojson(remove_amp_cast=False))["nodes"][i[0]]["name"]
                  for i in nodes["fc2"]["inputs"]]
    assert fc2_inputs == ["relu1_output_amp_cast_float32", "fc2_weight", "fc2_bias"]


def test_bad_arguments_raise_as_mxnet():
    sym = SYMBOLS["mlp"](mx)
    with pytest.raises(AssertionError, match="Common ops in target_dtype_ops and fp32_ops"):
        amp.convert_symbol(sym, target_dtype_ops=["FullyConnected"], fp32_ops=["FullyConnected"])
    with pytest.raises(AssertionError, match="Common ops in target_dtype_ops and conditional_fp32_ops"):
        amp.convert_symbol(sym, target_dtype_ops=["Activation"],
                           conditional_fp32_ops=[("Activation", "act_type", ["relu"])])
    with pytest.raises(AssertionError, match="not in any of them"):
        amp.convert_symbol(sym, target_dtype_ops=["elemwise_add"])
    with pytest.raises(AssertionError, match="should be a list"):
        amp.convert_symbol(sym, fp32_ops="exp")
    with pytest.raises(AssertionError, match="First argument"):
        amp.convert_symbol("not a symbol")
    with pytest.raises(AssertionError, match="Only target_dtype"):
        amp.convert_symbol(sym, target_dtype="float64")
    with pytest.raises(mx.MXNetError, match="bfloat16"):
        amp.convert_symbol(sym, target_dtype="bfloat16")
    with pytest.raises(AssertionError, match="dict of name to ndarray"):
        amp.convert_model(sym, [], {})


def test_gluon_parts_refuse_naming_gluon():
    for call in (lambda: amp.init_trainer(None), lambda: amp.unscale(None),
                 lambda: amp.convert_hybrid_block(None)):
        with pytest.raises(GluonNotProvidedError, match="Gluon"):
            call()
    with pytest.raises(GluonNotProvidedError, match="gluon.Trainer"):
        with amp.scale_loss(None, None):
            pass


# ---------------------------------------------------------------- init (patches mx.sym / mx.nd: own process)
INIT_SCRIPT = r"""
import json
import onnxsym.compat
onnxsym.compat.install()
import mxnet as mx
from mxnet.contrib.amp import amp
from tests.fixtures.amp_cases import after_init
print(json.dumps(after_init(mx, amp)))
"""


def test_init_patches_sym_and_nd_as_mxnet():
    proc = subprocess.run([sys.executable, "-c", INIT_SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["nd_dtypes"] == RECORDED["init"]["nd_dtypes"]
    # mx.nd loss heads: grad_scale times the loss scale (2**16)
    assert got["loss_scaled_grad"]["dtype"] == RECORDED["init"]["loss_scaled_grad"]["dtype"]
    np.testing.assert_allclose(got["loss_scaled_grad"]["grad"], RECORDED["init"]["loss_scaled_grad"]["grad"],
                               rtol=1e-5)
    for name in SYMBOLS:
        assert graph(got["graphs"][name]) == graph(RECORDED["init"]["graphs"][name]), name


def test_import_as_mxnet_contrib_amp():
    script = ("import onnxsym.compat; onnxsym.compat.install()\n"
              "from mxnet.contrib.amp import amp\nimport mxnet as mx\n"
              "assert mx.contrib.amp.amp is amp and mx.contrib.amp.convert_model is amp.convert_model\n"
              "from mxnet.contrib.amp.lists import symbol_fp16\n"
              "assert symbol_fp16.FP16_FUNCS == amp.list_lp16_ops('float16')\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


# ---------------------------------------------------------------- MXNet's cases (tests/python/gpu/test_contrib_amp.py)
def test_mxnet_test_amp_conversion_cases():
    """check_amp_convert_symbol of MXNet 1.9.1's test_amp_conversion: converted graphs have the structure of
    graphs written by hand, and overlapping lists are refused."""
    from onnxsym.test_utils import same_symbol_structure
    x, y = mx.sym.var("x"), mx.sym.var("y")
    res = mx.sym.FullyConnected(x, y, num_hidden=10, no_bias=True) + mx.sym.sin(y)
    converted = amp.convert_symbol(res, target_dtype="float16", target_dtype_ops=["FullyConnected"],
                                   fp32_ops=["sin"])
    z = mx.sym.FullyConnected(mx.sym.amp_cast(x, dtype="float16"), mx.sym.amp_cast(y, dtype="float16"),
                              num_hidden=10, no_bias=True)
    assert same_symbol_structure(converted, mx.sym.amp_cast(z, dtype="float32") + mx.sym.sin(y))
    for kwargs in (dict(target_dtype_ops=["FullyConnected"], fp32_ops=["elemwise_add"]),
                   dict(target_dtype_ops=["FullyConnected"], fp32_ops=["Activation"],
                        conditional_fp32_ops=[("Activation", "act_type", ["selu"])]),
                   dict(target_dtype_ops=["Activation"], fp32_ops=["Activation"],
                        conditional_fp32_ops=[("Activation", "act_type", ["selu"])]),
                   dict(target_dtype_ops=["FullyConnected"], fp32_ops=["FullyConnected"])):
        with pytest.raises(AssertionError):
            amp.convert_symbol(res, target_dtype="float16", **kwargs)
    fc_cond = mx.sym.FullyConnected(x, y, num_hidden=10, no_bias=True)
    converted = amp.convert_symbol(fc_cond, target_dtype="float16", target_dtype_ops=[], fp32_ops=["sin"],
                                   conditional_fp32_ops=[("FullyConnected", "no_bias", ["False"])])
    assert same_symbol_structure(converted, mx.sym.FullyConnected(x, y, num_hidden=10, no_bias=True))
    ops = [n["op"] for n in json.loads(converted.tojson(remove_amp_cast=False))["nodes"]]
    assert ops == ["null", "null", "FullyConnected", "amp_cast"]      # only the output's cast back to float32
    converted = amp.convert_symbol(fc_cond, target_dtype="float16", target_dtype_ops=[], fp32_ops=["sin"],
                                   conditional_fp32_ops=[("FullyConnected", "no_bias", ["True"])])
    expected = mx.sym.FullyConnected(mx.sym.amp_cast(x, dtype="float32"), mx.sym.amp_cast(y, dtype="float32"),
                                     num_hidden=10, no_bias=True)
    assert same_symbol_structure(converted, expected)
    ops = [n["op"] for n in json.loads(converted.tojson(remove_amp_cast=False))["nodes"]]
    assert ops == ["null", "amp_cast", "null", "amp_cast", "FullyConnected"]
