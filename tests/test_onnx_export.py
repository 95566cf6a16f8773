"""mx.onnx export/import: the .onnx runs in ORT with onnxsym's numbers, passes onnx.checker, and comes back as
the same Symbol (custom ops included); unsafe or broken files are clear errors."""
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxsym as mx
from tests.ops import test_custom  # noqa: F401  (registers the custom ops used below)


def assert_every_initializer_read(model):
    """Every initializer of the model (a path or ModelProto) is read by a node of the graph or of a subgraph, so
    plain ONNX Runtime has nothing to remove (and to warn about) when it loads the file."""
    model = onnx.load(model) if isinstance(model, str) else model

    def read(graph):
        names = {o.name for o in graph.output}
        for node in graph.node:
            names.update(node.input)
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                    names |= read(subgraph)
        return names

    used = read(model.graph)
    assert [t.name for t in model.graph.initializer if t.name not in used] == []
    return model


def bound(sym, shapes, seed=0):
    exe = sym.simple_bind(mx.cpu(), grad_req="null", **shapes)
    rng = np.random.RandomState(seed)
    for name, array in exe.arg_dict.items():
        array[:] = rng.uniform(-0.5, 0.5, array.shape)
    for name, array in exe.aux_dict.items():
        array[:] = rng.uniform(0.5, 1.5, array.shape)
    params = {n: a for n, a in exe.arg_dict.items() if n not in shapes and not n.endswith("label")}
    params.update(exe.aux_dict)
    return exe, params


def convnet():
    data = mx.sym.Variable("data")
    net = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, pad=(1, 1), name="conv")
    net = mx.sym.BatchNorm(net, name="bn")                        # fix_gamma=True: gamma must be ignored
    net = mx.sym.LeakyReLU(net, act_type="prelu", name="prelu")
    net = mx.sym.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = mx.sym.Dropout(net, p=0.3)
    net = mx.sym.Reshape(net, shape=(0, -1))
    net = mx.sym.FullyConnected(net, num_hidden=5, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def test_export_runs_in_ort_and_round_trips(tmp_path):
    sym = convnet()
    exe, params = bound(sym, {"data": (2, 3, 8, 8)})
    params["bn_gamma"][:] = 5.0                                     # ignored: fix_gamma
    path = mx.onnx.export_model(sym, params, [(2, 3, 8, 8)], onnx_file_path=str(tmp_path / "net.onnx"))
    model = assert_every_initializer_read(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10 and [i.name for i in model.graph.input] == ["data"]
    x = np.random.RandomState(1).rand(2, 3, 8, 8).astype(np.float32)
    exe.arg_dict["data"][:] = x
    ours = exe.forward()[0].asnumpy()
    theirs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    sym2, args, auxs = mx.onnx.import_model(path)
    assert sym2.tojson() == sym.tojson()
    assert mx.sym.load(path).tojson() == sym.tojson()
    assert sorted(args) == sorted(n for n in params if n in sym.list_arguments())
    np.testing.assert_array_equal(args["fc_weight"].asnumpy(), params["fc_weight"].asnumpy())
    np.testing.assert_array_equal(args["bn_gamma"].asnumpy(), np.full(4, 5.0))     # from the metadata
    assert mx.onnx.get_model_metadata(path) == {"input_tensor_data": [("data", ("N", 3, 8, 8))],
                                                "output_tensor_data": [("softmax_output", ("N", 5))]}
    # the batch dimension is symbolic: other batch sizes give onnxsym's numbers too
    x5 = np.random.RandomState(5).rand(5, 3, 8, 8).astype(np.float32)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x5})[0]
    exe5 = sym.bind(mx.cpu(), {**{k: v for k, v in params.items() if k in sym.list_arguments()},
                               "data": mx.nd.array(x5), "softmax_label": mx.nd.zeros(5)},
                    aux_states={k: v for k, v in params.items() if k in sym.list_auxiliary_states()})
    np.testing.assert_allclose(served, exe5.forward()[0].asnumpy(), rtol=1e-5, atol=1e-6)
    # the imported model trains on
    mod = mx.mod.Module(sym2)
    it = mx.io.NDArrayIter(np.random.RandomState(2).rand(8, 3, 8, 8).astype(np.float32), np.arange(8) % 5,
                           batch_size=2)
    mod.fit(it, arg_params=args, aux_params=auxs, num_epoch=1)
    assert np.abs(mod.get_params()[0]["fc_weight"].asnumpy() - args["fc_weight"].asnumpy()).max() > 0


def test_export_from_checkpoint_files(tmp_path):
    sym = convnet()
    exe, params = bound(sym, {"data": (1, 3, 8, 8)})
    prefix = str(tmp_path / "net")
    mx.model.save_checkpoint(prefix, 0, sym, {k: v for k, v in params.items() if k in sym.list_arguments()},
                             {k: v for k, v in params.items() if k in sym.list_auxiliary_states()})
    path = mx.onnx.export_model(prefix + "-symbol.json", prefix + "-0000.params", [(1, 3, 8, 8)],
                                onnx_file_path=str(tmp_path / "from_files.onnx"))
    assert_every_initializer_read(path)
    x = np.random.RandomState(3).rand(1, 3, 8, 8).astype(np.float32)
    exe.arg_dict["data"][:] = x
    np.testing.assert_allclose(ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"data": x})[0], exe.forward()[0].asnumpy(), rtol=1e-5, atol=1e-6)


def test_python_custom_op_survives_export_and_import(tmp_path):
    from onnxsym.custom import operator as registry
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=6, name="fc")
    sym = mx.sym.Custom(net, name="softmax", op_type="test_softmax")
    exe, params = bound(sym, {"data": (4, 5)})
    # a Python op reads its label input even at inference, so the label stays an input of the file
    with pytest.warns(UserWarning, match="custom Python op"):
        path = mx.onnx.export_model(sym, params, [(4, 5), (4,)], onnx_file_path=str(tmp_path / "custom.onnx"))
    assert_every_initializer_read(path)
    nodes = [n for n in onnx.load(path).graph.node if n.domain == "ai.onnx.contrib"]
    assert len(nodes) == 1 and '"op_type": "test_softmax"' in nodes[0].attribute[0].s.decode()
    sym2, args, auxs = mx.onnx.import_model(path)
    assert sym2.list_arguments() == sym.list_arguments()
    exe2 = sym2.bind(mx.cpu(), {**args, "data": exe.arg_dict["data"], "softmax_label": mx.nd.array([0, 1, 2, 3])},
                     args_grad={"fc_weight": mx.nd.zeros((6, 5))})
    exe2.forward(is_train=True)
    exe2.backward()
    np.testing.assert_allclose(exe2.outputs[0].asnumpy(), exe.forward()[0].asnumpy(), rtol=1e-6)
    assert np.abs(exe2.grad_dict["fc_weight"].asnumpy()).sum() > 0
    saved = registry._PROPS.pop("test_softmax")
    try:
        with pytest.raises(mx.MXNetError, match="test_softmax.*not registered"):
            mx.onnx.import_model(path)
    finally:
        registry._PROPS["test_softmax"] = saved


def test_composite_op_exports_as_an_onnx_function(tmp_path):
    x = mx.sym.Variable("x")
    sym = mx.sym.Custom(x, op_type="test_swish", beta=1.5) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a composite op is standard ONNX: nothing to register, no warning
        path = mx.onnx.export_model(sym, {}, [(3, 4)], onnx_file_path=str(tmp_path / "swish.onnx"))
    model = assert_every_initializer_read(path)
    assert [f.name for f in model.functions] == ["test_swish"]
    assert all(n.domain != "ai.onnx.contrib" for n in model.graph.node)
    data = np.random.RandomState(4).randn(3, 4).astype(np.float32)
    out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": data})[0]
    np.testing.assert_allclose(out, 2 * data / (1 + np.exp(-1.5 * data)), rtol=1e-5, atol=1e-6)


def test_bad_files_are_clear_errors(tmp_path):
    sym = convnet()
    _, params = bound(sym, {"data": (1, 3, 8, 8)})
    path = mx.onnx.export_model(sym, params, [(1, 3, 8, 8)], onnx_file_path=str(tmp_path / "ok.onnx"))
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(mx.MXNetError, match="not a readable ONNX model"):
        mx.onnx.import_model(str(truncated))
    with pytest.raises(mx.MXNetError, match="not a readable ONNX model"):
        mx.sym.load(str(truncated))
    model = onnx.load(path)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(model.SerializeToString())
    with pytest.raises(mx.MXNetError, match="outside the model's folder"):
        mx.onnx.import_model(str(outside))
    with pytest.raises(mx.MXNetError, match="in_shapes"):
        mx.onnx.export_model(sym, params, None, onnx_file_path=str(tmp_path / "x.onnx"))
    with pytest.raises(mx.MXNetError, match="2 shapes given for the 1 data inputs"):
        mx.onnx.export_model(sym, params, [(1, 3, 8, 8), (1,)], onnx_file_path=str(tmp_path / "x.onnx"))
    assert not os.path.exists(tmp_path / "x.onnx")


def test_batch_dependent_graph_falls_back_to_static_shapes(tmp_path):
    x = mx.sym.Variable("x")
    sym = mx.sym.Reshape(x, shape=(8, -1)) * 2          # the batch size is baked into the graph
    with pytest.warns(UserWarning, match="symbolic batch"):
        path = mx.onnx.export_model(sym, {}, [(4, 6)], onnx_file_path=str(tmp_path / "static.onnx"))
    assert mx.onnx.get_model_metadata(path)["input_tensor_data"] == [("x", (4, 6))]
    with pytest.raises(mx.MXNetError, match="symbolic batch"):
        mx.onnx.export_model(sym, {}, [(4, 6)], onnx_file_path=str(tmp_path / "s2.onnx"), dynamic=True)
    path = mx.onnx.export_model(sym, {}, [(4, 6)], onnx_file_path=str(tmp_path / "s3.onnx"), dynamic=False)
    assert mx.onnx.get_model_metadata(path)["input_tensor_data"] == [("x", (4, 6))]


def test_batch_check_compares_relative_to_each_outputs_magnitude():
    """Rounding that grows with the outputs passes (logits of ~500 whose near-zero entries move by 2.5e-4, a
    5e-7 relative change, which an absolute 1e-5 rejected); a whole sample's difference, a shape, NaN or inf
    positions or integer values do not."""
    from onnxsym.converters.onnx_export import batch_difference
    rng = np.random.RandomState(0)
    ours = rng.uniform(-500, 500, (5, 10)).astype(np.float32)
    ours[0, :3] = [1e-3, -2e-4, 0.0]
    theirs = ours + (rng.uniform(-1, 1, ours.shape) * 2.5e-4).astype(np.float32)
    assert not np.allclose(theirs, ours, rtol=1e-4, atol=1e-5)     # the old check fell back to a static batch
    assert batch_difference(ours, theirs) is None
    summed = ours.sum(axis=0)
    assert "max |difference|" in batch_difference(summed, summed - ours[-1])     # one sample left out
    assert "max |difference|" in batch_difference(summed, summed * 4 / 5)         # a mean over 4, not 5
    assert "shape" in batch_difference(ours, ours[:4])
    special = ours.copy()
    special[1, 1], special[2, 2] = np.nan, np.inf
    assert batch_difference(special, special.copy()) is None
    moved = special.copy()
    moved[1, 1], moved[1, 2] = 1.0, np.nan
    assert batch_difference(special, moved) == "non-finite values differ"
    assert batch_difference(np.arange(6), np.arange(6)) is None
    assert batch_difference(np.arange(6), np.arange(6) + (np.arange(6) == 5)) == "values differ"
    half = ours.astype(np.float16)
    assert batch_difference(half, np.nextafter(half, np.float16(np.inf))) is None    # one float16 ulp


def test_large_outputs_keep_the_symbolic_batch(tmp_path):
    """models/resnet_v1 (18 layers, 32x32) with weights 1.2x He scale: logits of magnitude ~800, whose rounding
    at other batch sizes an absolute tolerance took for batch dependence."""
    import importlib
    from tests.fixtures.make_models_fixtures import seeded_inputs
    with mx.name.NameManager():
        net = importlib.import_module("models.resnet_v1").get_symbol(num_classes=10, num_layers=18,
                                                                       image_shape="3,32,32")
    sym = net.get_internals()["fc1_output"]
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(2, 3, 32, 32))
    names = sym.list_arguments() + sym.list_auxiliary_states()
    values = seeded_inputs(names, list(arg_shapes) + list(aux_shapes), 0, 10)
    params = {n: mx.nd.array(v * (1.2 if n.endswith("_weight") else 1)) for n, v in values.items() if n != "data"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = mx.onnx.export_model(sym, params, [(2, 3, 32, 32)], onnx_file_path=str(tmp_path / "big.onnx"))
    assert mx.onnx.get_model_metadata(path)["input_tensor_data"] == [("data", ("N", 3, 32, 32))]
    x = np.random.RandomState(7).uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    args = {n: v for n, v in params.items() if n in sym.list_arguments()}
    auxs = {n: v for n, v in params.items() if n in sym.list_auxiliary_states()}
    ours = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(x)}, aux_states=auxs).forward()[0].asnumpy()
    assert 200 < np.abs(ours).max() < 5000
    np.testing.assert_allclose(served, ours, rtol=0, atol=1e-5 * np.abs(ours).max())


def test_batch_dependent_values_still_fall_back(tmp_path):
    """The shapes fit at every batch size but the values do not: SequenceReverse over axis 0 gathers the first
    `batch` steps of its static graph, so a sum over axis 0 misses the new samples."""
    x = mx.sym.Variable("x")
    sym = mx.sym.sum(mx.sym.SequenceReverse(x), axis=0) * 500       # outputs of magnitude ~1000
    with pytest.warns(UserWarning, match="symbolic batch.*differs at batch size 5: max"):
        path = mx.onnx.export_model(sym, {}, [(4, 6)], onnx_file_path=str(tmp_path / "seq.onnx"))
    assert mx.onnx.get_model_metadata(path)["input_tensor_data"] == [("x", (4, 6))]
    with pytest.raises(mx.MXNetError, match="symbolic batch"):
        mx.onnx.export_model(sym, {}, [(4, 6)], onnx_file_path=str(tmp_path / "seq2.onnx"), dynamic=True)


def test_amp_casts_are_stripped(tmp_path):
    x = mx.sym.Variable("x")
    sym = mx.sym.FullyConnected(mx.sym.amp_cast(x, dtype="float16"), num_hidden=3, name="fc")
    sym = mx.sym.amp_cast(sym, dtype="float32")
    params = {"fc_weight": mx.nd.ones((3, 4)), "fc_bias": mx.nd.zeros(3)}
    path = mx.onnx.export_model(sym, params, [(2, 4)], onnx_file_path=str(tmp_path / "amp.onnx"))
    model = assert_every_initializer_read(path)
    assert "Cast" not in [n.op_type for n in model.graph.node]
    out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": np.ones((2, 4), np.float32)})
    np.testing.assert_allclose(out[0], np.full((2, 3), 4.0))


def test_rendering_with_graphviz(tmp_path):
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    graph = mx.viz.plot_network(convnet(), shape={"data": (1, 3, 8, 8)}, save_format="svg")
    out = graph.render(str(tmp_path / "net"), cleanup=True)
    text = open(out).read()
    assert text.startswith("<?xml") and "Convolution" in text and "3x8x8" in text


def test_custom_op_export_warns_how_plain_ort_loads_it(tmp_path):
    """Exporting a Python op warns once, naming the op, its node types and domain and the steps plain ONNX Runtime
    needs; a fresh process that follows those steps (parsed from the warning) serves onnxsym's numbers."""
    import re
    import subprocess
    import sys
    net = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=3, name="fc")
    b = mx.sym.Variable("b")
    sym = mx.sym.Custom(net, b, op_type="test_scaled_product", scale=2.0)
    sym = mx.sym.Custom(mx.sym.Custom(sym, op_type="test_swish"), b, op_type="test_scaled_product")
    exe, params = bound(sym, {"data": (2, 4), "b": (2, 3)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = mx.onnx.export_model(sym, params, [(2, 4), (2, 3)], onnx_file_path=str(tmp_path / "c.onnx"))
    assert [w.category for w in caught] == [UserWarning]            # one warning for the export
    message = str(caught[0].message)
    assert caught[0].filename == __file__                           # attributed to the caller
    for part in ("'test_scaled_product'", "'MXCustom_ff_f'", "'ai.onnx.contrib'", "mx.operator.register",
                 "onnxsym.runtime.pyops.ensure_registered", "register_custom_ops_library",
                 "onnxruntime_extensions.get_library_path()"):
        assert part in message, part
    assert "test_swish" not in message                  # a composite op: an ONNX function, nothing to register
    node_types = re.search(r"ensure_registered\(t\) for t in (\[[^]]*\])", message).group(1)
    assert sorted(eval(node_types)) == sorted({n.op_type for n in onnx.load(path).graph.node
                                               if n.domain == "ai.onnx.contrib"})
    x, b = np.ones((2, 4), np.float32), np.full((2, 3), 0.5, np.float32)
    exe.arg_dict["data"][:] = x
    exe.arg_dict["b"][:] = b
    expected = exe.forward()[0].asnumpy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "b.npy", b)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ("import sys, numpy as np, onnxruntime as ort, onnxruntime_extensions; sys.path.insert(0, %r)\n"
              "import tests.ops.test_custom\n"                   # registers the ops (mx.operator.register)
              "from onnxsym.runtime.pyops import ensure_registered\n"
              "for t in %s:\n"
              "    ensure_registered(t)\n"
              "options = ort.SessionOptions()\n"
              "options.register_custom_ops_library(onnxruntime_extensions.get_library_path())\n"
              "s = ort.InferenceSession(%r, options, providers=['CPUExecutionProvider'])\n"
              "out = s.run(None, {'data': np.load(%r), 'b': np.load(%r)})[0]\n"
              "np.save(%r, out)\n" % (root, node_types, path, str(tmp_path / "x.npy"), str(tmp_path / "b.npy"),
                                      str(tmp_path / "out.npy")))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6)


def test_export_without_custom_ops_warns_nothing(tmp_path):
    sym = convnet()
    _, params = bound(sym, {"data": (2, 3, 8, 8)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = mx.onnx.export_model(sym, params, [(2, 3, 8, 8)], onnx_file_path=str(tmp_path / "quiet.onnx"))
    assert_every_initializer_read(path)


@pytest.mark.parametrize("fix_gamma", [True, False])
def test_batchnorm_exports_as_the_standard_node(tmp_path, fix_gamma):
    """Inference BatchNorm is ONNX BatchNormalization (what serving runtimes fuse into Conv), with MXNet's numbers:
    (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta, gamma = 1 when fix_gamma."""
    sym = mx.sym.BatchNorm(mx.sym.Variable("data"), fix_gamma=fix_gamma, eps=1e-4, name="bn")
    rng = np.random.RandomState(4)
    gamma, beta, mean = rng.uniform(-2, 2, (3, 3))
    var = rng.uniform(0.1, 2, 3)
    params = {k: mx.nd.array(v) for k, v in dict(bn_gamma=gamma, bn_beta=beta, bn_moving_mean=mean,
                                                 bn_moving_var=var).items()}
    path = mx.onnx.export_model(sym, params, [(2, 3, 4, 5)], onnx_file_path=str(tmp_path / "bn.onnx"))
    assert [n.op_type for n in assert_every_initializer_read(path).graph.node] == ["BatchNormalization"]
    x = rng.rand(2, 3, 4, 5).astype(np.float32)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    scale = (np.ones(3) if fix_gamma else gamma) / np.sqrt(var + 1e-4)
    expected = (x - mean[:, None, None]) * scale[:, None, None] + beta[:, None, None]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_module_and_symbol_export_conveniences(tmp_path):
    """Module.export_onnx writes the trained module with the shapes it is bound with; ORT serves it with
    Module.predict's numbers. Symbol.export_onnx is mx.onnx.export_model's shorthand."""
    rng = np.random.RandomState(6)
    x, y = rng.rand(12, 3, 8, 8).astype(np.float32), np.arange(12) % 5
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    mod = mx.mod.Module(convnet())
    mod.fit(it, num_epoch=1, optimizer_params={"learning_rate": 0.1})
    path = mod.export_onnx(str(tmp_path / "mod.onnx"))
    assert_every_initializer_read(path)
    served = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"data": x[:4]})[0]
    np.testing.assert_allclose(served, mod.predict(mx.io.NDArrayIter(x[:4], batch_size=4)).asnumpy(),
                               rtol=1e-5, atol=1e-6)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    args, auxs = mod.get_params()
    path2 = mod.symbol.export_onnx({**args, **auxs}, [(4, 3, 8, 8)], onnx_file_path=str(tmp_path / "sym.onnx"))
    served2 = ort.InferenceSession(path2, providers=["CPUExecutionProvider"]).run(None, {"data": x[:4]})[0]
    np.testing.assert_array_equal(served2, served)
    with pytest.raises(mx.MXNetError, match="bound module"):
        mx.mod.Module(convnet()).export_onnx(str(tmp_path / "unbound.onnx"))
