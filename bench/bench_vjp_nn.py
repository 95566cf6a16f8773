"""Formulations of the Conv and pooling gradients (autograd/vjp/nn.py) timed in ORT at ResNet-like sizes.

    PYTHONPATH=. python bench/bench_vjp_nn.py [--threads 2] [--case conv3x3] [--repeat 5] [--rules]

Each formulation is one small ONNX graph from (x, w, dy) to the gradient; com.microsoft ConvGrad / MaxPoolGrad
(onnxruntime-training builds only, what onnxsym used before its own autograd) are the reference timings."""
import argparse
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

F = TensorProto.FLOAT


def _session(nodes, inputs, outputs, threads, initializers=()):
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, F, None) for n in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _time(session, feeds, repeat):
    session.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def conv_cases(n, c, m, hw, k, stride, pad):
    """{name: (nodes, initializers)} computing dX or dW of Conv(x (n,c,hw,hw), w (m,c,k,k), stride, pad)."""
    out = (hw + 2 * pad - k) // stride + 1
    pads = [pad, pad, pad, pad]
    rest = hw + pad - ((out - 1) * stride + k - pad)   # positions past the last window (ConvTranspose extra)
    common = dict(kernel_shape=[k, k], pads=pads)
    cases = {}
    cases["dX ConvGrad (ORT training, reference)"] = ([helper.make_node(
        "ConvGrad", ["dy", "x", "w"], ["dx", "", ""], domain="com.microsoft", strides=[stride] * 2,
        dilations=[1, 1], group=1, **common)], [])
    cases["dX ConvTranspose"] = ([helper.make_node(
        "ConvTranspose", ["dy", "w"], ["dx"], strides=[stride] * 2, output_padding=[rest, rest], **common)], [])
    if stride == 1:
        big = np.iinfo(np.int64).max
        cases["dX Conv, flipped kernel"] = ([
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0, 2, 3]),
            helper.make_node("Slice", ["wt", "s", "e", "a", "st"], ["wf"]),
            helper.make_node("Conv", ["dy", "wf"], ["dx"], kernel_shape=[k, k], pads=[k - 1 - pad] * 4)],
            [_ints("s", [-1, -1]), _ints("e", [-big, -big]), _ints("a", [2, 3]), _ints("st", [-1, -1])])
    cases["dW ConvGrad (ORT training, reference)"] = ([helper.make_node(
        "ConvGrad", ["dy", "x", "w"], ["", "dw", ""], domain="com.microsoft", strides=[stride] * 2,
        dilations=[1, 1], group=1, **common)], [])
    end = (out - 1) * stride + k - pad - hw
    crop = []
    x_in = "x"
    if end < 0:
        crop = [helper.make_node("Slice", ["x", "z2", "ends", "a"], ["xc"])]
        x_in, end = "xc", 0
    cases["dW batch-as-channels Conv"] = (crop + [
        helper.make_node("Transpose", [x_in], ["xt"], perm=[1, 0, 2, 3]),
        helper.make_node("Transpose", ["dy"], ["dyt"], perm=[1, 0, 2, 3]),
        helper.make_node("Conv", ["xt", "dyt"], ["dwt"], kernel_shape=[out, out], dilations=[stride] * 2,
                         pads=[pad, pad, end, end]),
        helper.make_node("Transpose", ["dwt"], ["dw"], perm=[1, 0, 2, 3])],
        [_ints("z2", [0, 0]), _ints("ends", [hw + min(0, end)] * 2), _ints("a", [2, 3])])
    # im2col as a Conv with one-hot kernels (c*k*k, 1, k, k), group=c, then one Gemm over (n*out*out)
    onehot = np.zeros((c * k * k, 1, k, k), np.float32)
    for ch in range(c):
        for t in range(k * k):
            onehot[ch * k * k + t, 0, t // k, t % k] = 1
    cases["dW im2col Conv + Gemm"] = ([
        helper.make_node("Conv", ["x", "onehot"], ["cols"], group=c, strides=[stride] * 2, **common),
        helper.make_node("Transpose", ["cols"], ["colst"], perm=[1, 0, 2, 3]),
        helper.make_node("Reshape", ["colst", "flat"], ["cols2"]),
        helper.make_node("Transpose", ["dy"], ["dyt"], perm=[1, 0, 2, 3]),
        helper.make_node("Reshape", ["dyt", "flat"], ["dy2"]),
        helper.make_node("Gemm", ["dy2", "cols2"], ["dw2"], transB=1),
        helper.make_node("Reshape", ["dw2", "wshape"], ["dw"])],
        [helper.make_tensor("onehot", F, onehot.shape, onehot.reshape(-1).tolist()), _ints("flat", [0, -1]),
         _ints("wshape", [m, c, k, k])])
    cases["dW im2col Conv + batched MatMul + ReduceSum"] = ([
        helper.make_node("Conv", ["x", "onehot"], ["cols"], group=c, strides=[stride] * 2, **common),
        helper.make_node("Reshape", ["cols", "nflat"], ["cols3"]),
        helper.make_node("Transpose", ["cols3"], ["cols3t"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["dy", "nflat"], ["dy3"]),
        helper.make_node("MatMul", ["dy3", "cols3t"], ["dwn"]),
        helper.make_node("ReduceSum", ["dwn", "zero_axis"], ["dw2"], keepdims=0),
        helper.make_node("Reshape", ["dw2", "wshape"], ["dw"])],
        [helper.make_tensor("onehot", F, onehot.shape, onehot.reshape(-1).tolist()), _ints("nflat", [0, 0, -1]),
         _ints("zero_axis", [0]), _ints("wshape", [m, c, k, k])])
    # shifted-slice Gemms: dW[:, :, i, j] = dy (m, n*out*out) @ x_shift(i, j) (n*out*out, c)
    if stride == 1:
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2, 3]),
                 helper.make_node("Pad", ["xt", "xpads"], ["xp"]),
                 helper.make_node("Transpose", ["dy"], ["dyt"], perm=[1, 0, 2, 3]),
                 helper.make_node("Reshape", ["dyt", "flat"], ["dy2"])]
        inits = [_ints("xpads", [0, 0, pad, pad, 0, 0, pad, pad]), _ints("flat", [0, -1]), _ints("a", [2, 3]),
                 _ints("wshape", [m, c, k, k])]
        taps = []
        for i in range(k):
            for j in range(k):
                inits += [_ints("s%d%d" % (i, j), [i, j]), _ints("e%d%d" % (i, j), [i + out, j + out])]
                tap = "%d%d" % (i, j)
                nodes += [helper.make_node("Slice", ["xp", "s" + tap, "e" + tap, "a"], ["xs" + tap]),
                          helper.make_node("Reshape", ["xs%d%d" % (i, j), "flat"], ["x2%d%d" % (i, j)]),
                          helper.make_node("Gemm", ["dy2", "x2%d%d" % (i, j)], ["t%d%d" % (i, j)], transB=1)]
                taps.append("t%d%d" % (i, j))
        nodes += [helper.make_node("Concat", taps, ["tc"], axis=1),
                  helper.make_node("Reshape", ["tc", "kmc"], ["tk"]),
                  helper.make_node("Transpose", ["tk"], ["dwf"], perm=[0, 2, 1]),
                  helper.make_node("Reshape", ["dwf", "wshape"], ["dw"])]
        inits.append(_ints("kmc", [m, k * k, c]))
        cases["dW shifted slices + k*k Gemms"] = (nodes, inits)
    shapes = dict(x=(n, c, hw, hw), w=(m, c, k, k), dy=(n, m, out, out))
    return cases, shapes


def pool_cases(n, c, hw, k, stride, pad):
    out = (hw + 2 * pad - k) // stride + 1
    pads = [pad] * 4
    cases = {}
    cases["MaxPool fwd (plain)"] = ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k],
                                                      strides=[stride] * 2, pads=pads)], [])
    cases["MaxPool dX MaxPoolGrad (ORT training, reference)"] = ([
        helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[k, k], strides=[stride] * 2, pads=pads),
        helper.make_node("MaxPoolGrad", ["dy", "idx"], ["dx"], domain="com.microsoft")], [])
    cases["MaxPool dX Indices + ScatterElements(add)"] = ([
        helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[k, k], strides=[stride] * 2, pads=pads),
        helper.make_node("Reshape", ["idx", "m1"], ["idxf"]),
        helper.make_node("Reshape", ["dy", "m1"], ["dyf"]),
        helper.make_node("Expand", ["zero", "size"], ["zeros"]),
        helper.make_node("ScatterElements", ["zeros", "idxf", "dyf"], ["dxf"], axis=0, reduction="add"),
        helper.make_node("Reshape", ["dxf", "xshape"], ["dx"])],
        [_ints("m1", [-1]), helper.make_tensor("zero", F, [], [0.0]), _ints("size", [n * c * hw * hw]),
         _ints("xshape", [n, c, hw, hw])])
    cases["MaxPool dX Indices + ScatterND(add)"] = ([
        helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[k, k], strides=[stride] * 2, pads=pads),
        helper.make_node("Reshape", ["idx", "m11"], ["idxf"]),
        helper.make_node("Reshape", ["dy", "m1"], ["dyf"]),
        helper.make_node("Expand", ["zero", "size"], ["zeros"]),
        helper.make_node("ScatterND", ["zeros", "idxf", "dyf"], ["dxf"], reduction="add"),
        helper.make_node("Reshape", ["dxf", "xshape"], ["dx"])],
        [_ints("m1", [-1]), _ints("m11", [-1, 1]), helper.make_tensor("zero", F, [], [0.0]),
         _ints("size", [n * c * hw * hw]), _ints("xshape", [n, c, hw, hw])])
    taps = k * k
    onehot = np.eye(taps, dtype=np.float32).reshape(taps, 1, k, k)
    lowest = np.finfo(np.float32).min
    rest_ = hw + pad - ((out - 1) * stride + k - pad)
    cases["MaxPool dX im2col Conv + ArgMax + one-hot ConvTranspose"] = ([
        helper.make_node("Reshape", ["x", "flatx"], ["x1"]),
        helper.make_node("Pad", ["x1", "ppads", "low"], ["xp"]),
        helper.make_node("Conv", ["xp", "onehot"], ["cols"], kernel_shape=[k, k], strides=[stride] * 2),
        helper.make_node("ArgMax", ["cols"], ["am"], axis=1, keepdims=1),
        helper.make_node("Equal", ["am", "range"], ["mask"]),
        helper.make_node("Cast", ["mask"], ["maskf"], to=F),
        helper.make_node("Reshape", ["dy", "flaty"], ["dy1"]),
        helper.make_node("Mul", ["maskf", "dy1"], ["vals"]),
        helper.make_node("ConvTranspose", ["vals", "onehot"], ["dx1"], kernel_shape=[k, k], strides=[stride] * 2,
                         pads=[pad] * 4, output_padding=[rest_, rest_]),
        helper.make_node("Reshape", ["dx1", "xshape"], ["dx"])],
        [_ints("flatx", [-1, 1, hw, hw]), _ints("ppads", [0, 0, pad, pad, 0, 0, pad, pad]),
         helper.make_tensor("low", F, [], [lowest]),
         helper.make_tensor("onehot", F, onehot.shape, onehot.reshape(-1).tolist()),
         _ints("flaty", [-1, 1, out, out]), _ints("xshape", [n, c, hw, hw]),
         helper.make_tensor("range", TensorProto.INT64, [1, taps, 1, 1], list(range(taps)))])
    if stride == k and pad == 0 and hw % k == 0:
        cases["MaxPool dX window ArgMax + one-hot (non-overlapping)"] = ([
            helper.make_node("Reshape", ["x", "s6"], ["x6"]),
            helper.make_node("Transpose", ["x6"], ["xt"], perm=[0, 1, 2, 4, 3, 5]),
            helper.make_node("Reshape", ["xt", "s5"], ["x5"]),
            helper.make_node("ArgMax", ["x5"], ["am"], axis=-1, keepdims=1),
            helper.make_node("Equal", ["am", "taps"], ["mask"]),
            helper.make_node("Cast", ["mask"], ["maskf"], to=F),
            helper.make_node("Unsqueeze", ["dy", "last"], ["dyu"]),
            helper.make_node("Mul", ["maskf", "dyu"], ["v5"]),
            helper.make_node("Reshape", ["v5", "t6"], ["v6"]),
            helper.make_node("Transpose", ["v6"], ["vt"], perm=[0, 1, 2, 4, 3, 5]),
            helper.make_node("Reshape", ["vt", "xshape"], ["dx"])],
            [_ints("s6", [n, c, out, k, out, k]), _ints("s5", [n, c, out, out, k * k]),
             _ints("t6", [n, c, out, out, k, k]), _ints("last", [4]),
             helper.make_tensor("taps", TensorProto.INT64, [k * k], list(range(k * k))),
             _ints("xshape", [n, c, hw, hw])])
    t_pads = [pad, pad, pad, pad]
    rest = hw + pad - ((out - 1) * stride + k - pad)
    ones = np.ones((1, 1, k, k), np.float32)
    cases["AveragePool dX AveragePoolGrad (ORT training, reference)"] = ([
        helper.make_node("AveragePoolGrad", ["dy"], ["dx"], domain="com.microsoft", kernel_shape=[k, k],
                         strides=[stride] * 2, pads=pads, count_include_pad=1)], [])
    cases["AveragePool dX ones-kernel ConvTranspose (N*C, 1)"] = ([
        helper.make_node("Reshape", ["dy", "flat"], ["dyf"]),
        helper.make_node("ConvTranspose", ["dyf", "ones"], ["dxf"], kernel_shape=[k, k], strides=[stride] * 2,
                         pads=t_pads, output_padding=[rest, rest]),
        helper.make_node("Reshape", ["dxf", "xshape"], ["dx"])],
        [_ints("flat", [-1, 1, out, out]), helper.make_tensor("ones", F, ones.shape, ones.reshape(-1).tolist()),
         _ints("xshape", [n, c, hw, hw])])
    dw = np.ones((c, 1, k, k), np.float32)
    cases["AveragePool dX depthwise ConvTranspose (group=C), the rule"] = ([
        helper.make_node("ConvTranspose", ["dy", "ones"], ["dx"], kernel_shape=[k, k], strides=[stride] * 2,
                         pads=t_pads, output_padding=[rest, rest], group=c)],
        [helper.make_tensor("ones", F, dw.shape, dw.reshape(-1).tolist())])
    if stride == k and pad == 0 and hw % k == 0:
        cases["AveragePool dX Reshape + Expand (non-overlapping)"] = ([
            helper.make_node("Reshape", ["dy", "s6"], ["d6"]),
            helper.make_node("Expand", ["d6", "e6"], ["x6"]),
            helper.make_node("Reshape", ["x6", "xshape"], ["dx"])],
            [_ints("s6", [n, c, out, 1, out, 1]), _ints("e6", [n, c, out, k, out, k]),
             _ints("xshape", [n, c, hw, hw])])
    return cases, dict(x=(n, c, hw, hw), dy=(n, c, out, out))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--case", default="all")
    parser.add_argument("--rules", action="store_true", help="time the rules against onnxruntime-training")
    args = parser.parse_args()
    if args.rules:
        return rule_vs_ort_training(args.threads, args.repeat)
    rng = np.random.default_rng(0)
    suites = {
        "conv3x3 16x64x56x56 -> 64, stride 1, pad 1": conv_cases(16, 64, 64, 56, 3, 1, 1),
        "conv3x3 16x64x56x56 -> 128, stride 2, pad 1": conv_cases(16, 64, 128, 56, 3, 2, 1),
        "conv1x1 16x256x14x14 -> 64": conv_cases(16, 256, 64, 14, 1, 1, 0),
        "conv5x5 64x20x12x12 -> 50 (LeNet conv2)": conv_cases(64, 20, 50, 12, 5, 1, 0),
        "conv5x5 64x1x28x28 -> 20 (LeNet conv1)": conv_cases(64, 1, 20, 28, 5, 1, 0),
        "maxpool/avgpool 3x3 s2 p1 16x64x112x112": pool_cases(16, 64, 112, 3, 2, 1),
        "maxpool/avgpool 2x2 s2 16x64x56x56": pool_cases(16, 64, 56, 2, 2, 0),
        "maxpool/avgpool 2x2 s2 64x20x24x24 (LeNet)": pool_cases(64, 20, 24, 2, 2, 0),
        "maxpool/avgpool 2x2 s2 64x50x8x8 (LeNet)": pool_cases(64, 50, 8, 2, 2, 0),
    }
    for title, (cases, shapes) in suites.items():
        if args.case != "all" and args.case not in title:
            continue
        print("==", title, "(%d threads; ms: min / median of %d)" % (args.threads, args.repeat))
        feeds_all = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
        for name, (nodes, inits) in cases.items():
            used = {i for node in nodes for i in node.input}
            inputs = [(k, s) for k, s in shapes.items() if k in used]
            try:
                session = _session(nodes, inputs, [nodes[-1].output[0]] if "fwd" in name else
                                   ["dx" if "dX" in name else "dw"], args.threads, inits)
            except Exception as error:  # noqa: BLE001 - a reference op missing from a plain ORT build
                print("  %-55s unavailable (%s)" % (name, str(error).splitlines()[0][:60]))
                continue
            best, median = _time(session, {k: feeds_all[k] for k, _ in inputs}, args.repeat)
            print("  %-55s %8.1f / %8.1f" % (name, best * 1e3, median * 1e3))


def rule_vs_ort_training(threads, repeat):
    """Forward + backward of one op (loss = sum(y * head)): onnxsym's rule (gradient_model) against
    onnxruntime-training's gradient graph of the same model, in plain ORT sessions."""
    from onnxsym.autograd.reverse import gradient_model
    from onnxsym.runtime.ort import C, quiet_logging, session_options
    rng = np.random.default_rng(0)
    cases = [
        ("Conv 3x3 s1 16x64x56x56->64", "Conv", dict(kernel_shape=[3, 3], pads=[1] * 4),
         dict(x=(16, 64, 56, 56), w=(64, 64, 3, 3))),
        ("Conv 3x3 s2 16x64x56x56->128", "Conv", dict(kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]),
         dict(x=(16, 64, 56, 56), w=(128, 64, 3, 3))),
        ("Conv 1x1 16x256x14x14->64", "Conv", dict(kernel_shape=[1, 1]), dict(x=(16, 256, 14, 14), w=(64, 256, 1, 1))),
        ("MaxPool 3x3 s2 p1 16x64x112x112", "MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4),
         dict(x=(16, 64, 112, 112))),
        ("MaxPool 2x2 s2 16x64x56x56", "MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), dict(x=(16, 64, 56, 56))),
        ("AveragePool 3x3 s2 p1 16x64x56x56", "AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4),
         dict(x=(16, 64, 56, 56))),
        ("LayerNormalization 64x128x768", "LayerNormalization", dict(axis=-1),
         dict(x=(64, 128, 768), w=(768,), b=(768,))),
    ]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    print("== forward + backward of one op, %d threads; ms min / median of %d" % (threads, repeat))
    for title, op_type, attrs, shapes in cases:
        names = list(shapes)
        y_shape = ort.InferenceSession(onnx.shape_inference.infer_shapes(helper.make_model(helper.make_graph(
            [helper.make_node(op_type, names, ["y"], **attrs)], "s",
            [helper.make_tensor_value_info(n, F, s) for n, s in shapes.items()],
            [helper.make_tensor_value_info("y", F, None)]), opset_imports=[helper.make_opsetid("", 17)],
            ir_version=8)).SerializeToString()).get_outputs()[0].shape
        outs = ["y", "mean", "inv_std"] if op_type == "LayerNormalization" else ["y"]   # ORT's builder needs all
        graph = helper.make_graph(
            [helper.make_node(op_type, names, outs, **attrs), helper.make_node("Mul", ["y", "head"], ["p"]),
             helper.make_node("ReduceSum", ["p"], ["loss"], keepdims=0)], "b",
            [helper.make_tensor_value_info(n, F, s) for n, s in shapes.items()] +
            [helper.make_tensor_value_info("head", F, y_shape)], [helper.make_tensor_value_info("loss", F, [])])
        model = onnx.shape_inference.infer_shapes(helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
        feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
        feeds["head"] = rng.standard_normal(y_shape).astype(np.float32)
        ours, grads, _ = gradient_model(model, [("loss", None)], names)
        row = []
        for built in (ours, None):
            if built is None:
                builder = C.GradientGraphBuilder(model.SerializeToString(), {"loss"}, set(names), "loss",
                                                 session_options())
                with quiet_logging():
                    builder.build()
                built = onnx.load_from_string(builder.get_model())
                for name in names:
                    built.graph.output.append(helper.make_tensor_value_info(name + "_grad", F, None))
            session = ort.InferenceSession(built.SerializeToString(), options, providers=["CPUExecutionProvider"])
            outputs = [n + "_grad" for n in names]
            session.run(outputs, feeds)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                session.run(outputs, feeds)
                times.append(time.perf_counter() - start)
            row.append("%7.1f / %7.1f" % (min(times) * 1e3, statistics.median(times) * 1e3))
        print("  %-36s onnxsym %s   ort-training %s" % (title, row[0], row[1]))


if __name__ == "__main__":
    main()
