"""Gather's gradient (a scatter-add of dy into zeros) in ORT: ScatterElements(add) with expanded indices,
ScatterND(add) of whole rows (Transposes around it when the axis is not the first), OneHot(indices) @ dy.
onnxsym/autograd/vjp/indexing.py (_scatter_rows) picks by these numbers.

python bench/gather_grad.py  -> median ms per run of each formulation (CPU; pass `cuda` for the CUDA provider)."""
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, output, inits):
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def formulations(data_shape, index_shape, axis):
    outer = int(np.prod(data_shape[:axis]))
    n = data_shape[axis]
    inner = int(np.prod(data_shape[axis + 1:]))
    k = int(np.prod(index_shape))
    ints = lambda name, v: numpy_helper.from_array(np.asarray(v, np.int64), name)
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    inputs = [helper.make_tensor_value_info("dy", TensorProto.FLOAT, None),
              helper.make_tensor_value_info("idx", TensorProto.INT64, None)]
    out = {}
    # ScatterElements along axis 1 of (outer, n, inner), indices expanded
    out["ScatterElements"] = model([
        helper.make_node("Expand", ["zero", "zshape"], ["z"]),
        helper.make_node("Reshape", ["idx", "ishape"], ["i3"]),
        helper.make_node("Expand", ["i3", "dshape"], ["ie"]),
        helper.make_node("Reshape", ["dy", "dshape"], ["d3"]),
        helper.make_node("ScatterElements", ["z", "ie", "d3"], ["y"], axis=1, reduction="add"),
    ], inputs, "y", [zero, ints("zshape", [outer, n, inner]), ints("ishape", [1, k, 1]),
                     ints("dshape", [outer, k, inner])])
    # ScatterND on rows: data axis moved first (a Transpose of dy and of the result when outer > 1)
    nodes = [helper.make_node("Expand", ["zero", "zshape"], ["z"]),
             helper.make_node("Reshape", ["idx", "ishape"], ["i2"]),
             helper.make_node("Reshape", ["dy", "dshape"], ["d3"])]
    if outer > 1:
        nodes += [helper.make_node("Transpose", ["d3"], ["dt"], perm=[1, 0, 2]),
                  helper.make_node("ScatterND", ["z", "i2", "dt"], ["yt"], reduction="add"),
                  helper.make_node("Transpose", ["yt"], ["y"], perm=[1, 0, 2])]
    else:
        nodes += [helper.make_node("ScatterND", ["z", "i2", "d3"], ["y"], reduction="add")]
    zshape, dshape = ([n, outer, inner], [outer, k, inner]) if outer > 1 else ([n, inner], [k, inner])
    out["ScatterND"] = model(nodes, inputs, "y", [zero, ints("zshape", zshape), ints("ishape", [k, 1]),
                                                  ints("dshape", dshape)])
    # MatMul with a one-hot matrix (n, k) (only sensible for small n)
    if n * k <= 4_000_000:
        out["OneHot MatMul"] = model([
            helper.make_node("Reshape", ["idx", "flat"], ["i1"]),
            helper.make_node("OneHot", ["i1", "depth", "onoff"], ["hot"], axis=0),
            helper.make_node("Reshape", ["dy", "dshape"], ["d3"]),
            helper.make_node("MatMul", ["hot", "d3"], ["y"]),
        ], inputs, "y", [ints("flat", [-1]), ints("depth", [n]), numpy_helper.from_array(
            np.array([0, 1], np.float32), "onoff"), ints("dshape", [outer, k, inner])])
    return out


def main():
    provider = ["CUDAExecutionProvider"] if "cuda" in sys.argv else ["CPUExecutionProvider"]
    cases = [((10000, 128), (64, 32), 0), ((16, 128), (64, 32), 0), ((32, 50, 64), (20,), 1),
             ((32, 64, 64), (10,), 1), ((8, 16, 32, 32), (5, 3), 2), ((64, 1000), (64,), 1)]
    rng = np.random.default_rng(0)
    for data_shape, index_shape, axis in cases:
        out_shape = data_shape[:axis] + index_shape + data_shape[axis + 1:]
        feeds = {"dy": rng.standard_normal(out_shape).astype(np.float32),
                 "idx": rng.integers(0, data_shape[axis], index_shape).astype(np.int64)}
        expected = None
        line = []
        for name, m in formulations(data_shape, index_shape, axis).items():
            session = ort.InferenceSession(m.SerializeToString(), providers=provider)
            result = session.run(None, feeds)[0]
            result = result.reshape(data_shape)
            expected = result if expected is None else expected
            assert np.allclose(result, expected, atol=1e-4), name
            times = []
            for _ in range(30):
                start = time.perf_counter()
                session.run(None, feeds)
                times.append(time.perf_counter() - start)
            line.append("%s %.3f ms" % (name, 1000 * np.median(times)))
        print(data_shape, index_shape, "axis", axis, ":", ", ".join(line))


if __name__ == "__main__":
    main()
