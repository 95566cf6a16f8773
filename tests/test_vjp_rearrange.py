"""onnxsym's VJP rules of rearranging ops (onnxsym/autograd/vjp/rearrange.py) and of the max/min/mul scatter
reductions (vjp/indexing.py), on one-node float64 models against central finite differences of onnx's reference
evaluator: both DepthToSpace modes, ReverseSequence on either axis, every CumProd flag with zeros in x, LpNormalization
p=1 and 2, Col2Im windows, Unique with and without an axis, TensorScatter modes, and duplicate scatter indices."""
import numpy as np
import onnx
import pytest
from onnx import helper

from onnxsym.autograd.reverse import gradient_model
from onnxsym.base import MXNetError
from onnxsym.runtime.ort import create_session, ort

from .test_vjp_math import check_vjp

I64 = np.int64


def _uniform(shape, low=-1.0, high=1.0, seed=0):
    return np.random.RandomState(seed).uniform(low, high, size=shape)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    check_vjp("DepthToSpace", {"x": _uniform((2, 8, 2, 3))}, ["x"], {"blocksize": 2, "mode": mode})


def test_space_to_depth():
    check_vjp("SpaceToDepth", {"x": _uniform((2, 3, 4, 6))}, ["x"], {"blocksize": 2})


@pytest.mark.parametrize("batch_axis, time_axis", [(0, 1), (1, 0)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = (3, 4, 2) if batch_axis == 0 else (4, 3, 2)
    check_vjp("ReverseSequence", {"x": _uniform(shape), "lens": np.array([4, 1, 3], I64)}, ["x"],
              {"batch_axis": batch_axis, "time_axis": time_axis})


# zeros alone and in pairs along both axes: the product without x_j must not divide by x_j
_WITH_ZEROS = np.array([[0.5, 0.0, -1.5, 2.0],
                        [0.0, 0.0, 1.2, -0.7],
                        [1.1, -0.9, 0.8, 0.0]])


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cum_prod_with_zeros(exclusive, reverse, axis):
    check_vjp("CumProd", {"x": _WITH_ZEROS, "axis": np.array(axis, I64)}, ["x"],
              {"exclusive": exclusive, "reverse": reverse}, opset=26)


def test_cum_prod_3d_middle_axis():
    x = _uniform((2, 5, 3))
    x[0, 2, :] = 0
    check_vjp("CumProd", {"x": x, "axis": np.array(1, I64)}, ["x"], opset=26)


def test_cum_prod_needs_a_constant_axis():
    node = helper.make_node("CumProd", ["x", "axis"], ["y"], name="cp")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, (3,)),
                                            helper.make_tensor_value_info("axis", onnx.TensorProto.INT64, ())],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, (3,))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)], ir_version=8)
    with pytest.raises(MXNetError, match="CumProd needs a constant axis.*node cp"):
        gradient_model(model, [("y", None)], ["x"])


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, -1])
def test_lp_normalization(p, axis):
    """(A numpy reference: onnx's sums x ** p, not |x| ** p, for p=1.)"""
    x = _uniform((3, 4), 0.2, 1.5) * np.sign(_uniform((3, 4), seed=1))     # away from |x|'s kink
    norm = lambda x: (np.abs(x) ** p).sum(axis=axis, keepdims=True) ** (1 / p)
    check_vjp("LpNormalization", {"x": x}, ["x"], {"p": p, "axis": axis}, opset=17, reference=lambda x: [x / norm(x)])


def test_lp_normalization_of_zeros_is_zero():
    """A zero row: y is 0 by definition and its gradient 0; the other rows as usual."""
    x = _uniform((3, 4), 0.2, 1.5)
    x[1] = 0
    node = helper.make_node("LpNormalization", ["x"], ["y"], axis=1, p=2)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, x.shape),
                                            helper.make_tensor_value_info("h", onnx.TensorProto.DOUBLE, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    grad, _, _ = gradient_model(model, [("y", "h")], ["x"])
    h = _uniform(x.shape, seed=2)
    dx = create_session(grad).run(["x_grad"], {"x": x, "h": h})[0]
    norm = np.sqrt((x[0] ** 2).sum())
    np.testing.assert_allclose(dx[1], 0)
    np.testing.assert_allclose(dx[0], (h[0] - x[0] / norm * (h[0] * x[0] / norm).sum()) / norm, rtol=1e-12)


@pytest.mark.parametrize("attrs, image, block, length", [
    ({}, [4, 5], [2, 2], 12),
    ({"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2]}, [5, 4], [2, 2], 9),
    ({"strides": [2], "pads": [1, 2]}, [7], [3], 4),
])
def test_col2im(attrs, image, block, length):
    """(ONNX Runtime has no float64 Col2Im kernel: the graph runs in float32.)"""
    if len(image) == 1 and tuple(int(v) for v in ort.__version__.split(".")[:2]) < (1, 24):
        pytest.skip("onnxruntime %s's Col2Im gives other numbers than onnx's definition for 1-D images "
                    "(1.32 agrees)" % ort.__version__)
    check_vjp("Col2Im", {"x": _uniform((2, 2 * int(np.prod(block)), length)), "image": np.array(image, I64),
                         "block": np.array(block, I64)}, ["x"], attrs, opset=18, dtype=np.float32)


def _unique(x, axis, sorted_):
    """Unique's four outputs by numpy (onnx's reference mishandles sorted=0)."""
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    order = np.arange(len(first)) if sorted_ else np.argsort(first)
    rank = np.argsort(order)
    return [np.take(y, order, axis=axis or 0), first[order], rank[inverse.reshape(-1)], counts[order]]


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("sorted_", [0, 1])
def test_unique_of_distinct_values(axis, sorted_):
    """Distinct elements (or slices): finite differences keep Y's shape."""
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    check_vjp("Unique", {"x": _uniform((3, 4))}, ["x"], attrs, outputs=4, seeded=[0],
              reference=lambda x: _unique(x, axis, sorted_))


def _unique_model(x, outputs, axis=None):
    attrs = {} if axis is None else {"axis": axis}
    node = helper.make_node("Unique", ["x"], outputs, name="u", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, x.shape)],
                              [helper.make_tensor_value_info(outputs[0], onnx.TensorProto.DOUBLE, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("axis", [None, 1])
def test_unique_with_duplicates_goes_to_first_occurrences(axis):
    """Y's gradient lands where each unique value first occurs (finite differences would change Y's shape)."""
    x = np.array([[2.0, 1.0, 2.0, 3.0], [1.0, 0.5, 1.0, 4.0]])
    grad, _, _ = gradient_model(_unique_model(x, ["y", "indices"], axis), [("y", None)], ["x"])
    dx = create_session(grad).run(["x_grad"], {"x": x})[0]
    _, first = np.unique(x if axis is None else x.T.copy(), return_index=True, axis=None if axis is None else 0)
    expected = np.zeros(x.size if axis is None else x.shape[1])
    expected[first] = 1
    np.testing.assert_array_equal(dx, expected.reshape(x.shape) if axis is None else np.broadcast_to(expected, x.shape))


def test_unique_needs_its_indices_output():
    with pytest.raises(MXNetError, match="Unique needs its `indices` output.*node u"):
        gradient_model(_unique_model(np.zeros((2, 3)), ["y"]), [("y", None)], ["x"])


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("axis", [-2, 2])
def test_tensor_scatter(mode, indexed, axis):
    past, update = _uniform((2, 3, 5, 4)), _uniform((2, 3, 2, 4), seed=1) if axis == -2 else _uniform((2, 3, 5, 4))
    if axis == 2:
        past, update = _uniform((2, 3, 6, 4)), _uniform((2, 3, 3, 4), seed=1)
    arrays = {"past": past, "update": update}
    if indexed:
        arrays["where"] = np.array([1, 3] if mode == "linear" else [4, 5], I64)
    check_vjp("TensorScatter", arrays, ["past", "update"], {"mode": mode, "axis": axis}, opset=24)


# duplicate targets: (0, 1) three times, (2, 0) twice, so reductions combine several updates with data
_ELEMENT_INDICES = np.array([[0, 1, 0], [2, 0, 2], [0, 1, 2]], I64)
_ND_INDICES = np.array([[0, 1], [2, 0], [0, 1], [1, 2], [2, 0], [0, 1]], I64)


def _scatter_case(op_type, seed=0):
    if op_type == "ScatterElements":
        return {"data": _uniform((3, 3), seed=seed), "i": _ELEMENT_INDICES, "u": _uniform((3, 3), seed=seed + 1)}
    return {"data": _uniform((3, 3, 2), seed=seed), "i": _ND_INDICES, "u": _uniform((6, 2), seed=seed + 1)}


@pytest.mark.parametrize("op_type", ["ScatterElements", "ScatterND"])
@pytest.mark.parametrize("reduction", ["max", "min"])
def test_scatter_extremum_with_duplicates(op_type, reduction):
    check_vjp(op_type, _scatter_case(op_type), ["data", "u"], {"reduction": reduction}, opset=18)


@pytest.mark.parametrize("op_type", ["ScatterElements", "ScatterND"])
@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_scatter_mul_with_duplicates_and_zeros(op_type, zeros):
    """No zero, one zero, and two zeros among updates written at one position (and a zero in data where two
    updates land)."""
    arrays = _scatter_case(op_type)
    u = arrays["u"]
    if op_type == "ScatterElements":      # u[0, 1] and u[2, 1] write data[1, 1]; u[0, 0] and u[2, 0] data[0, 0]
        targets = [(0, 1), (2, 1)]
        arrays["data"][0, 0] = 0
    else:                                  # rows 0, 2, 5 of u write data[0, 1]; rows 1, 4 data[2, 0]
        targets = [(0, 0), (2, 0)]
        arrays["data"][2, 0, 1] = 0
    for at in targets[:zeros]:
        u[at] = 0
    check_vjp(op_type, arrays, ["data", "u"], {"reduction": "mul"}, opset=18)


def test_scatter_max_ties_split_evenly():
    """data equal to an update written there: the two share dy."""
    arrays = {"data": np.array([1.0, 2.0, 3.0]), "i": np.array([[1]], I64), "u": np.array([2.0])}
    node = helper.make_node("ScatterND", ["data", "i", "u"], ["y"], reduction="max")
    double = onnx.TensorProto.DOUBLE
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("data", double, (3,)),
                                            helper.make_tensor_value_info("u", double, (1,))],
                              [helper.make_tensor_value_info("y", double, (3,))],
                              [onnx.numpy_helper.from_array(arrays["i"], "i")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    grad, _, _ = gradient_model(model, [("y", None)], ["data", "u"])
    d_data, d_u = create_session(grad).run(["data_grad", "u_grad"], {"data": arrays["data"], "u": arrays["u"]})
    np.testing.assert_array_equal(d_data, [1, 0.5, 1])
    np.testing.assert_array_equal(d_u, [0.5])
