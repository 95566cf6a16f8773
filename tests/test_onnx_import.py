"""Importing ONNX models that onnxsym did not write (built here with onnx.helper): the Symbol runs with the
numbers ORT gives for the original file, and trains."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import onnxsym as mx

RNG = np.random.RandomState(0)


def init(name, *shape, scale=0.3):
    return numpy_helper.from_array((RNG.randn(*shape) * scale).astype(np.float32), name)


def save(tmp_path, name, nodes, inputs, outputs, initializers, opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    path = str(tmp_path / (name + ".onnx"))
    onnx.save(model, path)
    return path


def conv_net(tmp_path, opset=17):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p1"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    return save(tmp_path, "convnet", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 3, 8, 8])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [2, 4])],
                [init("w1", 6, 3, 3, 3), init("b1", 6), init("w2", 4, 6), init("b2", 4)], opset)


def attention(tmp_path):
    d = 8
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Softmax", ["ss"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "v"], ["o"]),
             helper.make_node("Add", ["o", "x"], ["res"]),
             helper.make_node("LayerNormalization", ["res", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    inits = [init("wq", d, d), init("wk", d, d), init("wv", d, d),
             numpy_helper.from_array(np.array(1 / np.sqrt(d), np.float32), "scale"),
             numpy_helper.from_array(np.ones(d, np.float32), "gamma"),
             numpy_helper.from_array(np.zeros(d, np.float32), "beta")]
    return save(tmp_path, "attention", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 5, d])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [2, 5, d])], inits)


def embedding_where_resize(tmp_path):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("Greater", ["e", "zero"], ["pos"]),
             helper.make_node("Where", ["pos", "e", "neg"], ["w"]),
             helper.make_node("Unsqueeze", ["w", "axes"], ["u"]),
             helper.make_node("Resize", ["u", "", "scales"], ["r"], mode="nearest"),
             helper.make_node("ReduceSum", ["r", "rax"], ["y"], keepdims=0)]
    inits = [init("table", 10, 4), numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.full((3, 4), -1.0, np.float32), "neg"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([1, 1, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array([2], np.int64), "rax")]
    return save(tmp_path, "misc", nodes, [helper.make_tensor_value_info("ids", TP.INT64, [3])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [1, 3])], inits)


def run_both(path, feeds, **kwargs):
    sym, args, auxs = mx.onnx.import_model(path, **kwargs)
    arrays = {k: mx.nd.array(v, dtype=v.dtype) for k, v in feeds.items()}
    exe = sym.bind(mx.cpu(), {**args, **arrays}, aux_states=auxs)
    ours = [o.asnumpy() for o in exe.forward()]
    theirs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    return sym, args, ours, theirs


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_conv_net_any_opset(tmp_path, opset):
    path = conv_net(tmp_path, opset)
    x = RNG.rand(2, 3, 8, 8).astype(np.float32)
    _, _, ours, theirs = run_both(path, {"x": x})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    # mx.sym.load reads an .onnx too (the Symbol import_model gives)
    assert mx.sym.load(path).tojson() == mx.onnx.import_model(path)[0].tojson()


def test_attention_block(tmp_path):
    path = attention(tmp_path)
    _, _, ours, theirs = run_both(path, {"x": RNG.rand(2, 5, 8).astype(np.float32)})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, atol=1e-5)


def test_embedding_where_resize(tmp_path):
    path = embedding_where_resize(tmp_path)
    _, _, ours, theirs = run_both(path, {"ids": np.array([1, 7, 3], np.int64)})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)


def test_imported_model_fine_tunes_with_module(tmp_path):
    path = conv_net(tmp_path)
    sym, args, auxs = mx.onnx.import_model(path)
    net = mx.sym.SoftmaxOutput(sym, name="softmax")
    mod = mx.mod.Module(net, data_names=("x",))
    x = RNG.rand(8, 3, 8, 8).astype(np.float32)
    it = mx.io.NDArrayIter({"x": x}, {"softmax_label": np.arange(8) % 4}, batch_size=2)
    mod.fit(it, arg_params=args, aux_params=auxs, num_epoch=2, optimizer_params={"learning_rate": 0.1})
    new = mod.get_params()[0]
    assert np.abs(new["w1"].asnumpy() - args["w1"].asnumpy()).max() > 0


def test_imported_graph_gradients_match_finite_differences(tmp_path):
    from onnxsym.test_utils import check_numeric_gradient
    path = attention(tmp_path)
    sym, args, _ = mx.onnx.import_model(path)
    location = {k: v.asnumpy() for k, v in args.items()}
    location["x"] = RNG.rand(2, 5, 8).astype(np.float32)
    check_numeric_gradient(sym, location, grad_nodes=["wq", "wv", "x"], rtol=3e-2, atol=2e-3)


def test_dynamic_input_needs_shapes(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    path = save(tmp_path, "dyn", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
                [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 4])], [])
    with pytest.raises(mx.MXNetError, match="input 'x' has a dynamic shape.*input_shapes"):
        mx.onnx.import_model(path)
    _, _, ours, theirs = run_both(path, {"x": RNG.randn(3, 4).astype(np.float32)}, input_shapes={"x": (3, 4)})
    np.testing.assert_allclose(ours[0], theirs[0])


def test_unknown_op_is_a_clear_error(tmp_path):
    nodes = [helper.make_node("NoSuchOp", ["x"], ["y"], domain="my.domain")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TP.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("my.domain", 1)], ir_version=8)
    path = str(tmp_path / "bad.onnx")
    onnx.save(model, path)
    with pytest.raises(mx.MXNetError, match="NoSuchOp"):
        sym, args, _ = mx.onnx.import_model(path)
        sym.bind(mx.cpu(), {"x": mx.nd.ones(2)}).forward()


def test_zero_dimensional_tensors_keep_their_shape(tmp_path):
    """0-d tensors (ONNX scalars) stay 0-d through binding, head gradients, export and plain ORT: numpy's
    ascontiguousarray makes them (1,), which ORT accepted silently for a [] input and export wrote as [1]."""
    nodes = [helper.make_node("Mul", ["x", "scale"], ["m"]),
             helper.make_node("ReduceSum", ["m"], ["y"], keepdims=0)]
    path = save(tmp_path, "scalar", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 3])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [])],
                [numpy_helper.from_array(np.array(1.5, np.float32), "scale")])
    sym, args, auxs = mx.onnx.import_model(path)
    assert args["scale"].shape == ()
    x = RNG.randn(2, 3).astype(np.float32)
    grads = {"x": mx.nd.zeros((2, 3)), "scale": mx.nd.NDArray(np.zeros((), np.float32))}
    exe = sym.bind(mx.cpu(), {"x": mx.nd.array(x), "scale": args["scale"]}, args_grad=grads)
    (y,) = exe.forward(is_train=True)
    assert y.shape == () and np.isclose(y.asnumpy(), 1.5 * x.sum(), rtol=1e-6)
    exe.backward([mx.nd.NDArray(np.array(2.0, np.float32))])
    np.testing.assert_allclose(grads["x"].asnumpy(), np.full((2, 3), 3.0), rtol=1e-6)
    assert grads["scale"].shape == () and np.isclose(grads["scale"].asnumpy(), 2.0 * x.sum(), rtol=1e-5)
    out = str(tmp_path / "back.onnx")
    mx.onnx.export_model(sym, {**args, **auxs}, [(2, 3)], np.float32, out)
    exported = onnx.load(out)
    scale = next(t for t in exported.graph.initializer if t.name == "scale")
    assert list(scale.dims) == []
    served = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert served.shape == () and np.isclose(served, 1.5 * x.sum(), rtol=1e-6)


def _opset18_model(tmp_path):
    """Pad-18, Split-18 (num_outputs) and ReduceMean-18 (axes as an input): forms opset 17 does not have."""
    nodes = [helper.make_node("Pad", ["x", "pads", "", "pad_axes"], ["p"], mode="constant"),
             helper.make_node("Split", ["p"], ["s0", "s1"], axis=1, num_outputs=2),
             helper.make_node("Mul", ["s0", "s1"], ["m"]),
             helper.make_node("ReduceMean", ["m", "axes"], ["y"], keepdims=1)]
    inits = [numpy_helper.from_array(np.array([1, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array([2], np.int64), "pad_axes"),
             numpy_helper.from_array(np.array([2], np.int64), "axes")]
    return save(tmp_path, "opset18", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 4, 3])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [2, 2, 1])], inits, opset=18)


def test_newer_opsets_are_kept_and_mix_with_mxnet_ops(tmp_path):
    """An opset-18 model imports without down-conversion; composed with MXNet ops (whose lowering writes opset-17
    forms: mean's ReduceMean with an axes attribute) the graph declares opset 18 and runs, exports and trains."""
    path = _opset18_model(tmp_path)
    x = RNG.randn(2, 4, 3).astype(np.float32)
    sym, args, ours, theirs = run_both(path, {"x": x})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    net = mx.sym.mean(mx.sym.LayerNorm(sym * mx.sym.Variable("w"), axis=1, name="ln"), axis=1)
    from onnxsym.lower.to_onnx import lower_symbol
    shapes = {"x": (2, 4, 3), "w": (2, 2, 1), "ln_gamma": (2,), "ln_beta": (2,)}
    lowered = lower_symbol(net, shapes, {n: np.float32 for n in shapes})
    assert [o.version for o in lowered.model.opset_import if o.domain == ""] == [18]
    reduce_means = [n for n in lowered.model.graph.node if n.op_type == "ReduceMean"]
    assert len(reduce_means) >= 2 and all(len(n.input) == 2 and all(a.name != "axes" for a in n.attribute)
                                          for n in reduce_means)
    onnx.checker.check_model(lowered.model, full_check=True)
    # gradients at opset 18 (the VJP rules' opset-17 nodes rewritten too) against central differences (float32
    # graph: differences of a float64 sum, step 1e-2, on a function quadratic in each input)
    # (x's gradient would go through Pad, whose pads are a bound input here: issue 13's imported-gradient work)
    values = {"x": x, "w": RNG.rand(2, 2, 1).astype(np.float32), "ln_gamma": RNG.rand(2).astype(np.float32) + 0.5,
              "ln_beta": RNG.rand(2).astype(np.float32)}
    head = RNG.rand(2, 1)
    grads = {n: mx.nd.zeros(values[n].shape) for n in ("w", "ln_gamma")}
    exe = net.bind(mx.cpu(), {**args, **{n: mx.nd.array(v) for n, v in values.items()}}, args_grad=grads,
                   grad_req={n: "write" if n in grads else "null" for n in net.list_arguments()})
    exe.forward(is_train=True)
    exe.backward(mx.nd.array(head))

    def loss(**changed):
        feeds = {**args, **{n: mx.nd.array(changed.get(n, v)) for n, v in values.items()}}
        return float((net.bind(mx.cpu(), feeds).forward()[0].asnumpy().astype(np.float64) * head).sum())
    for name in grads:
        value = values[name]
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[index] += 1e-2
            minus[index] -= 1e-2
            numeric[index] = (loss(**{name: plus}) - loss(**{name: minus})) / 2e-2
        np.testing.assert_allclose(grads[name].asnumpy(), numeric, rtol=2e-3, atol=2e-4, err_msg=name)
    out = str(tmp_path / "mixed.onnx")
    w = RNG.rand(2, 2, 1).astype(np.float32)
    params = {**args, "w": mx.nd.array(w), "ln_gamma": mx.nd.ones(2), "ln_beta": mx.nd.zeros(2)}
    mx.onnx.export_model(net, params, [(2, 4, 3)], np.float32, out)
    served = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    exe = net.bind(mx.cpu(), {**params, "x": mx.nd.array(x)})
    np.testing.assert_allclose(served, exe.forward()[0].asnumpy(), rtol=1e-6)


def test_old_opsets_convert_and_too_new_ones_are_refused(tmp_path):
    from onnxsym.runtime.ort import max_opset
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    io_ = ([helper.make_tensor_value_info("x", TP.FLOAT, [3])], [helper.make_tensor_value_info("y", TP.FLOAT, [3])])
    old = save(tmp_path, "old", nodes, *io_, [], opset=6)
    _, _, ours, theirs = run_both(old, {"x": np.array([-1, 0, 2], np.float32)})
    np.testing.assert_array_equal(ours[0], theirs[0])
    graph = helper.make_graph(nodes, "new", *io_)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max_opset() + 1)], ir_version=8)
    path = str(tmp_path / "new.onnx")
    onnx.save(model, path)
    with pytest.raises(mx.MXNetError, match=r"opset %d is newer than the installed onnx and onnxruntime"
                                            % (max_opset() + 1)):
        mx.onnx.import_model(path)


def test_shapes_that_depend_on_data_are_decided_at_each_run(tmp_path):
    """ConstantOfShape of an input's values: the output shape is only known when the graph runs; the executor's
    output takes whatever ORT gives, run after run."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"],
                              value=numpy_helper.from_array(np.array([2.0], np.float32))),
             helper.make_node("Mul", ["c", "scale"], ["y"])]
    path = save(tmp_path, "dynamic", nodes, [helper.make_tensor_value_info("shape", TP.INT64, [2]),
                                             helper.make_tensor_value_info("scale", TP.FLOAT, [1])],
                [helper.make_tensor_value_info("y", TP.FLOAT, ["rows", "cols"])], [])
    sym, args, _ = mx.onnx.import_model(path)
    exe = sym.bind(mx.cpu(), {"shape": mx.nd.array([2, 3], dtype=np.int64), "scale": mx.nd.array([1.5])})
    np.testing.assert_array_equal(exe.forward()[0].asnumpy(), np.full((2, 3), 3.0, np.float32))
    exe.arg_dict["shape"][:] = np.array([4, 1])
    out = exe.forward()[0]
    assert out.shape == (4, 1)
    np.testing.assert_array_equal(out.asnumpy(), np.full((4, 1), 3.0, np.float32))
    # an MXNet op cannot take a shape decided at run time: still one clear error at bind
    with pytest.raises(mx.MXNetError, match="(?i)cannot decide the shape"):
        mx.sym.FullyConnected(sym, num_hidden=2).simple_bind(mx.cpu(), shape=(2,), scale=(1,))


def test_empty_tensors_are_real_in_imported_graphs(tmp_path):
    """A zero-size dimension is a size in ONNX (MXNet 1.x reads 0 as unknown: that convention stays for MXNet
    symbols): ReduceSum over an empty axes input, and an empty data input."""
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1, noop_with_empty_axes=1),
             helper.make_node("Concat", ["s", "empty"], ["y"], axis=0)]
    path = save(tmp_path, "empty", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 3]),
                                           helper.make_tensor_value_info("axes", TP.INT64, [0]),
                                           helper.make_tensor_value_info("empty", TP.FLOAT, [0, 3])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [2, 3])], [])
    feeds = {"x": RNG.randn(2, 3).astype(np.float32), "axes": np.zeros(0, np.int64),
             "empty": np.zeros((0, 3), np.float32)}
    sym, args, _ = mx.onnx.import_model(path)
    exe = sym.bind(mx.cpu(), {k: mx.nd.NDArray(v) for k, v in feeds.items()})
    theirs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_array_equal(exe.forward()[0].asnumpy(), theirs[0])


def test_control_flow_bodies_read_outer_values(tmp_path):
    """If/Loop bodies may read any outer value by its ONNX name, also values only they read: import passes them to
    the node and lowering gives the bodies the names those values get."""
    then_branch = helper.make_graph([helper.make_node("Add", ["doubled", "shift"], ["then_out"])], "then", [],
                                    [helper.make_tensor_value_info("then_out", TP.FLOAT, [3])])
    else_branch = helper.make_graph([helper.make_node("Sub", ["doubled", "shift"], ["else_out"])], "else", [],
                                    [helper.make_tensor_value_info("else_out", TP.FLOAT, [3])])
    nodes = [helper.make_node("Mul", ["x", "two"], ["doubled"]),
             helper.make_node("Exp", ["x"], ["shift"]),            # read by the bodies only
             helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    inits = [numpy_helper.from_array(np.array(2, np.float32), "two"),
             numpy_helper.from_array(np.array(0, np.float32), "zero")]
    path = save(tmp_path, "branches", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [3])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [3])], inits)
    for x in (np.array([1, 2, -0.5], np.float32), np.array([-1, -2, 0.5], np.float32)):
        _, _, ours, theirs = run_both(path, {"x": x})
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
        np.testing.assert_allclose(ours[0], 2 * x + np.exp(x) if x.sum() > 0 else 2 * x - np.exp(x), rtol=1e-6)


def test_graphs_with_run_time_shapes_train(tmp_path):
    """y = ConstantOfShape(shape; 2) * scale * x[0]: y's shape comes from the values of `shape`. A training forward
    finds the shapes ORT decides with a run on the bound inputs and differentiates the graph made for them; another
    `shape` later makes it again. Truth: d sum(head * y) / d scale = 2 x[0] sum(head)."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"],
                              value=numpy_helper.from_array(np.array([2.0], np.float32))),
             helper.make_node("Mul", ["scale", "x"], ["sx"]),
             helper.make_node("Mul", ["c", "sx"], ["y"])]
    path = save(tmp_path, "dyntrain", nodes, [helper.make_tensor_value_info("shape", TP.INT64, [2]),
                                              helper.make_tensor_value_info("scale", TP.FLOAT, [1]),
                                              helper.make_tensor_value_info("x", TP.FLOAT, [1])],
                [helper.make_tensor_value_info("y", TP.FLOAT, ["rows", "cols"])], [])
    sym, _, _ = mx.onnx.import_model(path)
    grads = {"scale": mx.nd.zeros((1,)), "x": mx.nd.zeros((1,))}
    exe = sym.bind(mx.cpu(), {"shape": mx.nd.array([2, 3], dtype=np.int64), "scale": mx.nd.array([1.5]),
                              "x": mx.nd.array([0.5])}, args_grad=grads)
    for shape in ((2, 3), (4, 1), (2, 3)):
        exe.arg_dict["shape"][:] = np.array(shape)
        out = exe.forward(is_train=True)[0]
        assert out.shape == shape
        np.testing.assert_array_equal(out.asnumpy(), np.full(shape, 1.5, np.float32))
        head = RNG.uniform(-1, 1, shape).astype(np.float32)
        exe.backward(mx.nd.array(head))
        np.testing.assert_allclose(grads["scale"].asnumpy(), [2 * 0.5 * head.sum()], rtol=1e-6)
        np.testing.assert_allclose(grads["x"].asnumpy(), [2 * 1.5 * head.sum()], rtol=1e-6)
        assert exe.forward()[0].shape == shape          # inference in between
    exe.arg_dict["scale"][:] = 3.0
    assert exe.forward(is_train=True)[0].asnumpy().tolist() == [[3.0] * 3] * 2     # the training graph's outputs


def test_data_dependent_selection_trains(tmp_path):
    """y = w * x[x > 0] (NonZero + GatherND): how many elements pass depends on x's values; the gradient reaches
    exactly the selected elements (w there) and w (their sum), batch after batch."""
    nodes = [helper.make_node("Greater", ["x", "zero"], ["pos"]), helper.make_node("NonZero", ["pos"], ["idx"]),
             helper.make_node("Transpose", ["idx"], ["idx_t"], perm=[1, 0]),
             helper.make_node("GatherND", ["x", "idx_t"], ["vals"]), helper.make_node("Mul", ["vals", "w"], ["y"])]
    path = save(tmp_path, "select", nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [2, 3]),
                                            helper.make_tensor_value_info("w", TP.FLOAT, [1])],
                [helper.make_tensor_value_info("y", TP.FLOAT, ["n"])],
                [numpy_helper.from_array(np.array(0, np.float32), "zero")])
    sym, args, _ = mx.onnx.import_model(path)
    grads = {"x": mx.nd.zeros((2, 3)), "w": mx.nd.zeros((1,))}
    x = np.array([[1, -2, 3], [-1, 5, 6]], np.float32)
    exe = sym.bind(mx.cpu(), {"x": mx.nd.array(x), "w": mx.nd.array([2.0]), **args}, args_grad=grads,
                   grad_req={n: ("write" if n in grads else "null") for n in sym.list_arguments()})
    for batch in (x, -x, np.full((2, 3), 0.5, np.float32)):
        exe.arg_dict["x"][:] = batch
        out = exe.forward(is_train=True)[0]
        np.testing.assert_array_equal(out.asnumpy(), 2 * batch[batch > 0])
        head = RNG.uniform(-1, 1, out.shape).astype(np.float32)
        exe.backward(mx.nd.array(head))
        expected = np.zeros((2, 3), np.float32)
        expected[batch > 0] = 2 * head
        np.testing.assert_allclose(grads["x"].asnumpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(grads["w"].asnumpy(), [(head * batch[batch > 0]).sum()], rtol=1e-5)


def test_other_domains_keep_their_opset(tmp_path):
    """An ai.onnx.ml node runs at the ai.onnx.ml opset of its file (LabelEncoder's int64 -> float mapping is opset
    2; the lowered graph used to declare version 1, which ORT refuses)."""
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", keys_int64s=[1, 2, 3],
                            values_floats=[0.5, 1.5, 2.5], default_float=-1.0)
    graph = helper.make_graph([node], "ml", [helper.make_tensor_value_info("x", TP.INT64, [4])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)],
                              ir_version=8)
    path = str(tmp_path / "ml.onnx")
    onnx.save(model, path)
    x = np.array([3, 1, 7, 2], np.int64)
    _, _, ours, theirs = run_both(path, {"x": x})
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[0], [2.5, 0.5, -1.0, 1.5])
