"""What an exported .onnx holds: only initializers that some node reads (plain ONNX Runtime loads it without a
"Removing initializer" warning), while `import_model` still gives back the Symbol and every parameter exactly,
those the inference graph ignores (fix_gamma's gamma, shape-only inputs) included, and a checkpoint saved from
the imported parameters serves the same numbers."""
import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxsym as mx
from tests.fixtures.make_models_fixtures import CASES, seeded_inputs
from tests.test_onnx_export import assert_every_initializer_read, convnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _batchnorm(fix_gamma):
    return mx.sym.BatchNorm(mx.sym.Variable("data"), fix_gamma=fix_gamma, eps=1e-4, name="bn"), (2, 3, 4, 5)


def _regression_with_dropout():
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=8, name="fc1")
    net = mx.sym.Dropout(mx.sym.Activation(net, act_type="relu"), p=0.5)
    net = mx.sym.FullyConnected(net, num_hidden=2, name="fc2")
    return mx.sym.LinearRegressionOutput(net, name="lro"), (3, 5)


def _shape_only_parameters():
    """`like` is read for its shape only; a fix_gamma BatchNorm over the last axis is lowered without ONNX
    BatchNormalization (Sub/Mul/Add): its gamma is ignored there too."""
    data = mx.sym.Variable("data")
    net = mx.sym.slice_like(data, mx.sym.Variable("like", shape=(1, 1, 3)), axes=(2,))
    net = mx.sym.BatchNorm(net, axis=-1, name="bn_last")
    return mx.sym.FullyConnected(net, num_hidden=3, name="fc"), (2, 4, 8)


def _zoo(case):
    module, kwargs, shape, _ = CASES[case]
    with mx.name.NameManager():
        return importlib.import_module("models." + module).get_symbol(**kwargs), (2,) + tuple(shape[1:])


NETS = {
    "batchnorm_fix_gamma": lambda: _batchnorm(True),
    "batchnorm": lambda: _batchnorm(False),
    "convnet_with_label_and_dropout": lambda: (convnet(), (2, 3, 8, 8)),     # BatchNorm fix_gamma, SoftmaxOutput
    "regression_with_dropout": _regression_with_dropout,
    "shape_only_parameters": _shape_only_parameters,
    "resnet20_cifar": lambda: _zoo("resnet20_cifar"),
    "inception_bn_28": lambda: _zoo("inception_bn_28"),
    "mobilenet": lambda: _zoo("mobilenet"),
}


def parameters(sym, data_shape, seed=0):
    """Seeded parameters (gamma too, away from 1: a fix_gamma gamma must still come back exactly)."""
    arg_shapes, _, aux_shapes = sym.infer_shape(data=data_shape)
    names = sym.list_arguments() + sym.list_auxiliary_states()
    values = seeded_inputs(names, list(arg_shapes) + list(aux_shapes), seed, 2)
    labels = [n for n in sym.list_arguments() if n.endswith("label")]
    return {n: mx.nd.array(v) for n, v in values.items() if n != "data" and n not in labels}


def outputs_of(sym, args, auxs, x):
    """Forward through an onnxsym Module (labels are zeros: inference does not read them)."""
    labels = [n for n in sym.list_arguments() if n.endswith("label")]
    mod = mx.mod.Module(sym, data_names=["data"], label_names=labels or None)
    arg_shapes, _, _ = sym.infer_shape(data=x.shape)
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    mod.bind([("data", x.shape)], [(n, shapes[n]) for n in labels] or None, for_training=False)
    mod.set_params(args, auxs)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros(shapes[n]) for n in labels]), is_train=False)
    return [o.asnumpy() for o in mod.get_outputs()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (path, sym, params, x)}: each net exported once."""
    folder = tmp_path_factory.mktemp("exports")
    files = {}
    for name, build in NETS.items():
        sym, shape = build()
        params = parameters(sym, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no fallback to a static batch, no other warning
            path = mx.onnx.export_model(sym, params, [shape], onnx_file_path=str(folder / (name + ".onnx")))
        x = np.random.RandomState(1).uniform(-1, 1, shape).astype(np.float32)
        files[name] = path, sym, params, x
    return files


@pytest.mark.parametrize("name", sorted(NETS))
def test_export_holds_only_read_initializers_and_round_trips_exactly(exported, name, tmp_path):
    path, sym, params, x = exported[name]
    model = onnx.load(path)
    assert_every_initializer_read(model)
    ignored = {"batchnorm_fix_gamma": ["bn_gamma"], "convnet_with_label_and_dropout": ["bn_gamma"],
               "shape_only_parameters": ["bn_last_gamma", "like"], "resnet20_cifar": ["bn_data_gamma"],
               "mobilenet": [n for n in params if n.endswith("batchnorm_gamma")]}.get(name, [])
    in_file = {t.name for t in model.graph.initializer}
    assert sorted(n for n in params if n not in in_file) == sorted(ignored)
    args = {n: v for n, v in params.items() if n in sym.list_arguments()}
    auxs = {n: v for n, v in params.items() if n in sym.list_auxiliary_states()}
    expected = outputs_of(sym, args, auxs, x)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x})
    for out, exp in zip(served, expected):
        np.testing.assert_allclose(out, exp, rtol=1e-5, atol=1e-5)
    # import_model gives back the Symbol and every parameter, bit for bit
    sym2, args2, auxs2 = mx.onnx.import_model(path)
    assert sym2.tojson() == sym.tojson()
    assert sorted(args2) == sorted(args) and sorted(auxs2) == sorted(auxs)
    for name_, value in {**args, **auxs}.items():
        got = (args2[name_] if name_ in args2 else auxs2[name_]).asnumpy()
        assert got.dtype == value.dtype and got.shape == value.shape, name_
        np.testing.assert_array_equal(got, value.asnumpy(), err_msg=name_)
    for out, exp in zip(outputs_of(sym2, args2, auxs2, x), expected):
        np.testing.assert_array_equal(out, exp)
    # and a checkpoint of the imported model loads with the same numbers
    prefix = str(tmp_path / "reimported")
    mx.model.save_checkpoint(prefix, 0, sym2, args2, auxs2)
    sym3, args3, auxs3 = mx.model.load_checkpoint(prefix, 0)
    for out, exp in zip(outputs_of(sym3, args3, auxs3, x), expected):
        np.testing.assert_array_equal(out, exp)


def test_plain_ort_loads_every_export_without_a_warning(exported):
    """A fresh process with plain ONNX Runtime at log level INFO: no warning or error line on stderr, and none of
    ORT's "Removing initializer ... not used by any node" lines (its own fusions' leftovers are INFO lines)."""
    script = ("import sys, onnxruntime as ort\n"
              "options = ort.SessionOptions()\n"
              "options.log_severity_level = 1\n"
              "options.intra_op_num_threads = 1\n"      # no thread pool: no affinity warnings in containers
              "for path in sys.argv[1:]:\n"
              "    ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])\n"
              "print('loaded', len(sys.argv) - 1)\n")
    paths = [exported[name][0] for name in sorted(exported)]
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "loaded %d" % len(paths), result.stderr
    assert "Session successfully initialized" in result.stderr      # the INFO log was captured
    complaints = [line for line in result.stderr.splitlines()
                  if "[W:" in line or "[E:" in line or "not used by any node" in line]
    assert complaints == []
    # the same check sees the warning on a file that keeps an unread initializer
    model = onnx.load(paths[0])
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(3, np.float32), "left_over"))
    noisy = os.path.join(os.path.dirname(paths[0]), "noisy.onnx")
    onnx.save(model, noisy)
    result = subprocess.run([sys.executable, "-c", script, noisy], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert "Removing initializer 'left_over'. It is not used by any node" in result.stderr


def test_ignored_parameters_come_back_bit_for_bit(tmp_path):
    """Constant arrays travel as one element, others whole; NaN payloads, -0.0 and integer dtypes survive."""
    data = mx.sym.Variable("data")
    net = mx.sym.slice_like(data, mx.sym.Variable("like"), axes=(1,))
    net = mx.sym.slice_like(net, mx.sym.Variable("ids"), axes=(2,))
    sym = mx.sym.BatchNorm(net, fix_gamma=True, name="bn")
    odd = np.array([[np.nan, -0.0, 1.5], [np.inf, 0.0, -2.0]], np.float32)
    odd.view(np.uint32)[0, 0] = 0x7FC00123                  # a NaN with a payload
    params = {"like": mx.nd.array(odd), "ids": mx.nd.array(np.arange(4).reshape(1, 1, 4), dtype=np.int64),
              "bn_gamma": mx.nd.array(np.full(3, -0.0, np.float32)), "bn_beta": mx.nd.ones(3),
              "bn_moving_mean": mx.nd.zeros(3), "bn_moving_var": mx.nd.ones(3)}
    path = mx.onnx.export_model(sym, params, [(2, 3, 5)], onnx_file_path=str(tmp_path / "odd.onnx"))
    model = assert_every_initializer_read(path)
    import json
    stored = json.loads({p.key: p.value for p in model.metadata_props}["mxnet_unused_params"])
    assert sorted(stored) == ["bn_gamma", "ids", "like"]
    assert "fill" in stored["bn_gamma"] and "data" in stored["like"] and stored["ids"]["dtype"] == "int64"
    _, args, _ = mx.onnx.import_model(path)
    for name in ("like", "ids", "bn_gamma"):
        got, want = args[name].asnumpy(), params[name].asnumpy()
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), name


def _with_unused_metadata(path, folder, text):
    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == "mxnet_unused_params":
            prop.value = text
    target = str(folder / "edited.onnx")
    onnx.save(model, target)
    return target


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "not a JSON object"),
    ("{", "not JSON"),
    ('{"bn_gamma": {"shape": [3], "dtype": "float32"}}', "shape, dtype, fill or data"),
    ('{"bn_gamma": {"shape": [-3], "dtype": "float32", "fill": "AACAPw=="}}', "shape"),
    ('{"bn_gamma": {"shape": [3], "dtype": "object", "fill": "AACAPw=="}}', "dtype"),
    ('{"bn_gamma": {"shape": [3], "dtype": "float32", "fill": "AACA"}}', "bytes of fill"),
    ('{"bn_gamma": {"shape": [3], "dtype": "float32", "data": "AACAPw=="}}', "bytes of data"),
    ('{"bn_gamma": {"shape": [3], "dtype": "float32", "fill": "not base64!"}}', "no bytes"),
    ('{"bn_gamma": {"shape": [1099511627776, 1099511627776], "dtype": "float32", "fill": "AACAPw=="}}',
     "larger than this machine's memory"),
    ('{"nothing_here": {"shape": [3], "dtype": "float32", "fill": "AACAPw=="}}', "not an input"),
    ('{"bn_beta": {"shape": [3], "dtype": "float32", "fill": "AACAPw=="}}', "an initializer too"),
])
def test_malformed_unused_parameters_are_clear_errors(tmp_path, text, message):
    sym = mx.sym.BatchNorm(mx.sym.Variable("data"), name="bn")
    params = {"bn_gamma": mx.nd.ones(3), "bn_beta": mx.nd.zeros(3), "bn_moving_mean": mx.nd.zeros(3),
              "bn_moving_var": mx.nd.ones(3)}
    path = mx.onnx.export_model(sym, params, [(1, 3, 2, 2)], onnx_file_path=str(tmp_path / "bn.onnx"))
    edited = _with_unused_metadata(path, tmp_path, text)
    with pytest.raises(mx.MXNetError, match="edited.onnx") as err:
        mx.onnx.import_model(edited)
    assert message in str(err.value)


def test_mutated_unused_parameter_metadata_is_refused_or_decoded(tmp_path):
    """Byte edits of the metadata entry (JSON punctuation, digits, base64 letters): import_model either raises
    MXNetError or returns arrays of the shape and dtype the edited entry declares, never another error."""
    import json
    from hypothesis import HealthCheck, given, settings, strategies as st
    sym = mx.sym.BatchNorm(mx.sym.Variable("data"), name="bn")
    params = {"bn_gamma": mx.nd.array([0.5, 1.0, 2.0]), "bn_beta": mx.nd.zeros(3), "bn_moving_mean": mx.nd.zeros(3),
              "bn_moving_var": mx.nd.ones(3)}
    path = mx.onnx.export_model(sym, params, [(1, 3, 2, 2)], onnx_file_path=str(tmp_path / "bn.onnx"))
    text = {p.key: p.value for p in onnx.load(path).metadata_props}["mxnet_unused_params"].encode()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(b'{}[]":,0123456789-e.+ afilstAQ=/')),
                          min_size=1, max_size=4))
    def check(edits):
        mutated = bytearray(text)
        for position, value in edits:
            mutated[position % len(mutated)] = value
        edited = _with_unused_metadata(path, tmp_path, mutated.decode())
        try:
            _, args, _ = mx.onnx.import_model(edited)
        except mx.MXNetError:
            return
        declared = json.loads(mutated.decode())["bn_gamma"]
        assert args["bn_gamma"].shape == tuple(declared["shape"])
        assert np.dtype(args["bn_gamma"].dtype).name == declared["dtype"]

    check()
