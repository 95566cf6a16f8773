"""Training step time of the gradient backend in use: Executor.forward(is_train=True) + backward().

    python bench/bench_backends.py [--repeat 3] [--models mlp,lenet,resnet18]

Run it once per configuration and compare the lines, e.g. onnxsym's own AD on current onnxruntime against
onnxruntime-training 1.19.2's builders in their own venv:

    ONNXSYM_AUTOGRAD=onnxsym python bench/bench_backends.py
    ONNXSYM_AUTOGRAD=ort-training /path/to/training-venv/bin/python bench/bench_backends.py

Models: the MLP 784-128-64-10 (batch 100), LeNet with tanh (batch 64, 28x28), ResNet-18 (224x224, batch 16; and
at 32x32, batch 8: resnet18-32).
Prints the backend, the onnxruntime version and the median milliseconds per step.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import onnxsym as mx  # noqa: E402
from _common import per_call  # noqa: E402
from onnxsym.autograd.training import backend  # noqa: E402
from onnxsym.models import lenet, mlp, resnet  # noqa: E402
from onnxsym.runtime.ort import ort  # noqa: E402

MODELS = {
    "mlp": ("MLP 784-128-64-10, batch 100", lambda: mlp.get_symbol(10), {"data": (100, 784)}, 10, 100),
    "lenet": ("LeNet tanh, batch 64", lambda: lenet.get_symbol(10), {"data": (64, 1, 28, 28)}, 10, 20),
    "resnet18-32": ("ResNet-18 32x32, batch 8", lambda: resnet.get_symbol(
        num_classes=10, num_layers=18, image_shape=(3, 224, 224)), {"data": (8, 3, 32, 32)}, 10, 5),
    "resnet18": ("ResNet-18 224x224, batch 16", lambda: resnet.get_symbol(
        num_classes=1000, num_layers=18, image_shape=(3, 224, 224)), {"data": (16, 3, 224, 224)}, 1000, 2),
}


def bound(sym, shapes, classes):
    exe = sym.simple_bind(mx.cpu(), **shapes)
    rng = np.random.RandomState(0)
    for name, array in exe.arg_dict.items():
        array[:] = rng.randint(0, classes, array.shape) if name == "softmax_label" else \
            rng.uniform(-0.1, 0.1, array.shape)
    for name, array in exe.aux_dict.items():
        array[:] = 1.0 if name.endswith("var") else 0.0
    return exe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="mlp,lenet,resnet18")
    args = parser.parse_args()
    print("backend %s, onnxruntime %s" % (backend(), ort.__version__))
    for key in args.models.split(","):
        name, make, shapes, classes, number = MODELS[key]
        exe = bound(make(), shapes, classes)

        def step():
            exe.forward(is_train=True)
            exe.backward()

        step()
        print("%-30s %10.2f ms/step" % (name, per_call(step, number, args.repeat) * 1e3), flush=True)


if __name__ == "__main__":
    main()
