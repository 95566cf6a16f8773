"""onnxsym's VJP rules of indexing ops (onnxsym/autograd/vjp/indexing.py) on one-node ONNX models, against float64
central differences of onnx's reference evaluator: the cases the op suites miss (negative and scalar indices, every
Gather axis and both scatter-add paths, batch_dims, duplicate scatter indices, Pad modes with crops, CumSum flags)."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxsym.autograd.reverse import gradient_model

I64 = np.int64


def _model(op_type, inputs, attrs, outputs=1, fed=(), dtype=np.float64):
    """inputs: [(name, shape tuple -> random float64 graph input | float64 array -> that graph input | other array
    -> initializer, or a graph input fed with it if the name is in `fed`)].
    Returns (model, float arrays, fed arrays)."""
    rng = np.random.RandomState(0)
    arrays, feeds, graph_inputs, inits = {}, {}, [], []
    for name, spec in inputs:
        if isinstance(spec, tuple) or np.asarray(spec).dtype == np.float64:
            arrays[name] = (rng.uniform(-1, 1, spec) if isinstance(spec, tuple) else np.array(spec)).astype(dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                              arrays[name].shape))
        elif name in fed:
            feeds[name] = np.asarray(spec)
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, feeds[name].shape))
        else:
            inits.append(numpy_helper.from_array(np.asarray(spec), name))
    names = ["y%d" % i for i in range(outputs)]
    node = helper.make_node(op_type, [n for n, _ in inputs], names, **attrs)
    graph = helper.make_graph([node], op_type, graph_inputs,
                              [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in names], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), arrays, feeds


class _CroppingPad:
    """Pad with negative pads (crops), which onnx's reference rejects: numpy's pad of the positive parts, then the
    crop."""

    def __init__(self, inputs, attrs):
        self.pads = dict(inputs)["p"]
        self.value = "v" in dict(inputs)
        self.mode = attrs.get("mode", "constant")

    def run(self, _, arrays):
        x = arrays["x"]
        rank = x.ndim
        width = [(max(int(self.pads[a]), 0), max(int(self.pads[rank + a]), 0)) for a in range(rank)]
        extra = {"constant_values": float(arrays["v"][0])} if self.value else {}
        y = np.pad(x, width, mode=self.mode, **extra)
        crop = tuple(slice(max(-int(self.pads[a]), 0), y.shape[a] - max(-int(self.pads[rank + a]), 0))
                     for a in range(rank))
        return [y[crop]]


# ORT has no float64 kernel of these forward ops: their gradients run in float32
FLOAT32 = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceProd", "OneHot")


def check(op_type, inputs, attrs=None, outputs=1, fed=(), eps=1e-6):
    dtype = np.float32 if op_type in FLOAT32 else np.float64
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-6, atol=1e-7)
    model32, arrays32, _ = _model(op_type, inputs, attrs or {}, outputs, fed, dtype)
    model, arrays, feeds = _model(op_type, inputs, attrs or {}, outputs, fed)
    cropping = op_type == "Pad" and (dict(inputs)["p"] < 0).any()
    reference = _CroppingPad(inputs, attrs or {}) if cropping else ReferenceEvaluator(model)
    out = reference.run(None, {**arrays, **feeds})[0]
    projection = np.random.RandomState(1).uniform(0.1, 1.1, out.shape)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model32.graph.input.append(helper.make_tensor_value_info("dy", elem, out.shape))
    del model32.graph.output[1:]
    model32.graph.output[0].CopyFrom(helper.make_tensor_value_info("y0", elem, out.shape))
    full, grads, _ = gradient_model(model32, [("y0", "dy")], list(arrays32))
    session = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [name + "_grad" for name in arrays if name in grads]
    results = dict(zip(names, session.run(names, {**arrays32, **feeds, "dy": projection.astype(dtype)})))
    for name, value in arrays.items():
        numeric = np.zeros(value.size)
        flat = value.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = float((reference.run(None, {**arrays, **feeds})[0] * projection).sum())
            flat[i] = original - eps
            minus = float((reference.run(None, {**arrays, **feeds})[0] * projection).sum())
            flat[i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        got = results.get(name + "_grad", np.zeros(value.shape))
        np.testing.assert_allclose(got, numeric.reshape(value.shape), err_msg=name, **tolerance)


CASES = {
    "Gather-axis0-rows": ("Gather", [("x", (70, 3)), ("i", np.array([[0, 5, -1], [5, 69, 0]], I64))], {}),
    "Gather-axis0": ("Gather", [("x", (5, 3)), ("i", np.array([[0, 4, -1], [4, 2, 0]], I64))], {}),
    "Gather-last-axis-onehot": ("Gather", [("x", (2, 3, 5)), ("i", np.array([[0, 4, -1], [4, 2, 0]], I64))],
                                {"axis": 2}),
    "Gather-axis1-scalar": ("Gather", [("x", (2, 6, 3)), ("i", np.array(-2, I64))], {"axis": 1}),
    "Gather-axis2-rows": ("Gather", [("x", (2, 3, 80)), ("i", np.array([3, 3, -80, 7], I64))], {"axis": -1}),
    "Gather-axis1-onehot": ("Gather", [("x", (2, 4, 3)), ("i", np.array([[3, 3], [-4, 1]], I64))], {"axis": 1}),
    "Gather-computed-indices": ("Gather", [("x", (2, 3, 80)), ("i", np.array([3, 3, -80, 7], I64))], {"axis": 2},
                                1, ("i",)),
    "GatherND-batch-computed-indices": ("GatherND", [("x", (2, 3, 4)), ("i", np.array([[[1], [1]], [[0], [-1]]], I64))],
                                        {"batch_dims": 1}, 1, ("i",)),
    "ScatterElements-computed-duplicates": ("ScatterElements", [("x", (3, 4)), ("i", np.array([[0, -1], [0, 2]], I64)),
                                                                ("u", (2, 2))], {"axis": 0}, 1, ("i",)),
    "GatherElements": ("GatherElements", [("x", (3, 4)), ("i", np.array([[0, -1, 2, 2], [1, 1, 0, 0]], I64))],
                       {"axis": 0}),
    "GatherND": ("GatherND", [("x", (3, 4, 2)), ("i", np.array([[0, 1], [2, -1], [0, 1]], I64))], {}),
    "GatherND-batch": ("GatherND", [("x", (2, 3, 4)), ("i", np.array([[[1], [1]], [[0], [-1]]], I64))],
                       {"batch_dims": 1}),
    "ScatterElements-duplicates": ("ScatterElements", [("x", (3, 4)), ("i", np.array([[0, 2], [0, 2]], I64)),
                                                       ("u", (2, 2))], {"axis": 0}),
    "ScatterElements-add-duplicates": ("ScatterElements", [("x", (3, 4)), ("i", np.array([[1, -1], [1, 2]], I64)),
                                                           ("u", (2, 2))], {"axis": 1, "reduction": "add"}),
    "ScatterND-duplicates": ("ScatterND", [("x", (3, 4)), ("i", np.array([[2], [0], [2]], I64)), ("u", (3, 4))], {}),
    "ScatterND-distinct": ("ScatterND", [("x", (3, 4)), ("i", np.array([[2, -1], [0, 3]], I64)), ("u", (2,))], {}),
    "ScatterElements-distinct": ("ScatterElements", [("x", (3, 4)), ("i", np.array([[0, 2], [1, -1]], I64)),
                                                     ("u", (2, 2))], {"axis": 1}),
    "ScatterND-add": ("ScatterND", [("x", (3, 4)), ("i", np.array([[2, 1], [2, 1]], I64)), ("u", (2,))],
                      {"reduction": "add"}),
    "TopK": ("TopK", [("x", (3, 5)), ("k", np.array([2], I64))], {"axis": 0}, 2),
    "TopK-smallest": ("TopK", [("x", (3, 5)), ("k", np.array([3], I64))], {"largest": 0}, 2),
    "Pad-constant-crop": ("Pad", [("x", (3, 4)), ("p", np.array([1, -1, -1, 2], I64)), ("v", (1,))], {}),
    "Pad-constant-computed-pads": ("Pad", [("x", (3, 4)), ("p", np.array([1, -1, -1, 2], I64)), ("v", (1,))], {},
                                   1, ("p",)),
    "Pad-constant": ("Pad", [("x", (2, 3, 4)), ("p", np.array([0, 2, 0, 0, 1, 3], I64)), ("v", (1,))], {}),
    "Pad-reflect": ("Pad", [("x", (2, 4, 5)), ("p", np.array([0, 3, 2, 0, 1, 4], I64))], {"mode": "reflect"}),
    "Pad-edge-crop": ("Pad", [("x", (2, 70)), ("p", np.array([1, 3, 0, -2], I64))], {"mode": "edge"}),
    "Compress": ("Compress", [("x", (3, 5, 2)), ("c", np.array([True, False, True, True]))], {"axis": 1}),
    "Compress-flat": ("Compress", [("x", (2, 3)), ("c", np.array([False, True, True, False, True]))], {}),
    "Split": ("Split", [("x", (2, 7)), ("s", np.array([3, 4], I64))], {"axis": 1}, 2),
    "CumSum-exclusive-reverse": ("CumSum", [("x", (3, 4)), ("a", np.array(1, I64))], {"exclusive": 1, "reverse": 1}),
    "CumSum": ("CumSum", [("x", (3, 4)), ("a", np.array(0, I64))], {}),
    "Trilu": ("Trilu", [("x", (2, 3, 4)), ("k", np.array(1, I64))], {"upper": 0}),
    "OneHot": ("OneHot", [("i", np.array([[0, 2], [-1, 5]], I64)), ("d", np.array(3, I64)), ("v", (2,))],
               {"axis": 1}),
    "ReduceMax": ("ReduceMax", [("x", (3, 4, 2))], {"axes": [0, 2], "keepdims": 0}),
    "ReduceMin": ("ReduceMin", [("x", (3, 4))], {"axes": [-1]}),
    "ReduceProd-zeros": ("ReduceProd", [("x", np.array([[0.5, 0, 2], [0, 0, 3], [1.5, -2, 0.7], [0, 1.2, -0.4]]))],
                         {"axes": [1], "keepdims": 0}),
    "ReduceProd-all": ("ReduceProd", [("x", np.array([[0.5, 0, 2], [1.1, -1, 3]]))], {"keepdims": 0}),
    "ReduceL1": ("ReduceL1", [("x", (3, 4))], {"axes": [0]}),
    "ReduceL2": ("ReduceL2", [("x", (3, 4))], {"axes": [1], "keepdims": 0}),
    "ReduceSumSquare": ("ReduceSumSquare", [("x", (3, 4))], {"axes": [1]}),
    "ReduceLogSumExp": ("ReduceLogSumExp", [("x", (3, 4))], {"axes": [0], "keepdims": 0}),
    "ReduceLogSum": ("ReduceLogSum", [("x", np.array([[0.5, 1.0, 2.0], [0.3, 0.1, 3.0]]))], {"axes": [1]}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_indexing_vjp(name):
    check(*CASES[name])


EINSUM = {  # equation: operand shapes
    "bij,bjk->bik": [(2, 3, 4), (2, 4, 5)],
    "bid,bjd->bij": [(2, 3, 4), (2, 5, 4)],
    "i,j": [(3,), (4,)],
    "ii,i->i": [(3, 3), (3,)],
    "ij,jk,kl->li": [(2, 3), (3, 4), (4, 2)],
    "...ij,...jk->...ik": [(2, 1, 3, 4), (1, 5, 4, 2)],
    "ij,ij->": [(2, 3), (2, 3)],
    "ijk,k->j": [(2, 3, 4), (4,)],
    "ii->": [(3, 3)],
    "i...,ij->...j": [(2, 3), (2, 4)],
    "...i,i->...": [(3,), (3,)],
    "bi...,bj...->...bij": [(2, 3, 1, 2), (2, 4, 3, 1)],
    "xi...y,i->...": [(2, 3, 4, 5, 2), (3,)],
}


@pytest.mark.parametrize("equation", list(EINSUM))
def test_einsum_vjp(equation):
    check("Einsum", [("x%d" % i, shape) for i, shape in enumerate(EINSUM[equation])], {"equation": equation})


def test_reduce_max_splits_ties_evenly():
    model, arrays, _ = _model("ReduceMax", [("x", np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))],
                              {"axes": [1], "keepdims": 0})
    model.graph.input.append(helper.make_tensor_value_info("dy", TensorProto.DOUBLE, (2,)))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y0", TensorProto.DOUBLE, (2,)))
    full, _, _ = gradient_model(model, [("y0", "dy")], ["x"])
    session = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["x_grad"], {"x": arrays["x"], "dy": np.array([1.0, 3.0])})[0]
    np.testing.assert_allclose(got, [[0, 0.5, 0.5], [1, 1, 1]])
