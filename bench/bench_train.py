"""Training step time: Executor.forward(is_train=True) + backward() vs raw ORT running the same gradient graph.

    python bench/bench_train.py [--repeat 5]

Raw ORT = one InferenceSession of the fused forward+backward graph that onnxsym's own AD (autograd/reverse.py)
makes from the same training-mode ONNX model onnxsym lowers, with inputs and outputs bound
once through IOBinding, run in a loop in this process. Prints milliseconds per step and the ratio.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import onnxsym as mx  # noqa: E402
from _common import fused_training_session, per_call  # noqa: E402
from onnxsym.models import mlp, resnet  # noqa: E402


def mlp_784():
    return mlp.get_symbol(10), {"data": (100, 784)}, 10


def resnet18():
    sym = resnet.get_symbol(num_classes=10, num_layers=18, image_shape=(3, 224, 224))
    return sym, {"data": (8, 3, 32, 32)}, 10


def bind(sym, shapes, classes):
    exe = sym.simple_bind(mx.cpu(), **shapes)
    rng = np.random.RandomState(0)
    for name, array in exe.arg_dict.items():
        if name == "softmax_label":
            array[:] = rng.randint(0, classes, array.shape)
        else:
            array[:] = rng.uniform(-0.1, 0.1, array.shape)
    for name, array in exe.aux_dict.items():
        array[:] = 1.0 if name.endswith("var") else 0.0
    return exe


def raw_step(exe):
    """The fused gradient graph of the same training model, run by a plain session with IOBinding."""
    fused, session = fused_training_session(exe, exe._training.wrt)
    io = session.io_binding()
    feeds = {n: a._data.copy() for n, a in exe._by_name.items()}
    for value in fused.graph.input:
        io.bind_cpu_input(value.name, feeds[value.name])
    for value in fused.graph.output:
        io.bind_output(value.name, "cpu")
    return lambda: (session.run_with_iobinding(io), feeds)[0]     # (the binding points into feeds: kept alive)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("%-34s %12s %12s %8s" % ("model", "onnxsym ms", "raw ORT ms", "ratio"))
    for name, make, number in (("MLP 784-128-64-10, batch 100", mlp_784, 200),
                               ("ResNet-18 (32x32, batch 8)", resnet18, 5)):
        sym, shapes, classes = make()
        exe = bind(sym, shapes, classes)

        def step():
            exe.forward(is_train=True)
            exe.backward()

        step()
        raw = raw_step(exe)
        for fn in (step, raw, step, raw):
            fn()
        ours = min(per_call(step, number, args.repeat) for _ in range(2))
        theirs = min(per_call(raw, number, args.repeat) for _ in range(2))
        print("%-34s %12.3f %12.3f %7.2fx" % (name, ours * 1e3, theirs * 1e3, ours / theirs))


if __name__ == "__main__":
    main()
