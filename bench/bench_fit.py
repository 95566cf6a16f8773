"""Module.fit throughput vs a raw ORT training loop, in the same process.

    python bench/bench_fit.py [--batches 60]

Raw ORT = the fused forward+backward graph onnxsym's AD makes from the same training-mode ONNX model,
run by one session with IOBinding on preallocated arrays, followed by an in-place numpy SGD-momentum update of
every parameter (the same update Module's optimizer applies). Also reports how much of onnxsym's step the
optimizer update takes. Prints samples/second and the ratio.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import onnxsym as mx  # noqa: E402
from _common import fused_training_session  # noqa: E402
from onnxsym.models import lenet, mlp  # noqa: E402

LR, MOMENTUM = 0.01, 0.9


def make_iter(shape, batches, classes=10):
    rng = np.random.RandomState(0)
    n = shape[0] * batches
    x = rng.uniform(-1, 1, (n,) + shape[1:]).astype(np.float32)
    y = rng.randint(0, classes, n).astype(np.float32)
    return mx.io.NDArrayIter(x, y, batch_size=shape[0]), x, y


def run_fit(sym, shape, batches):
    it, _, _ = make_iter(shape, batches)
    mod = mx.mod.Module(sym)
    mod.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    mod.init_params(initializer=mx.init.Xavier())
    mod.fit(it, num_epoch=1, optimizer_params={"learning_rate": LR, "momentum": MOMENTUM})   # warm-up epoch
    fit_time = float("inf")
    for epoch in range(1, 6):           # best of 5 epochs: the machine is shared
        it.reset()
        start = time.perf_counter()
        mod.fit(it, begin_epoch=epoch, num_epoch=epoch + 1,
                optimizer_params={"learning_rate": LR, "momentum": MOMENTUM})
        fit_time = min(fit_time, time.perf_counter() - start)
    # the optimizer's share of a step
    exe = mod._exec
    start = time.perf_counter()
    for _ in range(batches):
        mod.update()
    update_time = time.perf_counter() - start
    return shape[0] * batches / fit_time, update_time / fit_time, mod


def run_raw(mod, shape, batches):
    exe = mod._exec
    model, session = fused_training_session(exe, mod._param_names)
    io = session.io_binding()
    arrays = {n: a._data.copy() for n, a in exe._by_name.items()}
    for value in model.graph.input:
        io.bind_cpu_input(value.name, arrays[value.name])
    grads = {}
    for value in model.graph.output:
        if value.name.endswith("_grad") and value.name[:-5] in arrays:
            buf = grads[value.name[:-5]] = np.zeros_like(arrays[value.name[:-5]])
            io.bind_output(value.name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        else:
            io.bind_output(value.name, "cpu")
    moms = {n: np.zeros_like(arrays[n]) for n in grads}
    _, x, y = make_iter(shape, batches)
    batch = shape[0]
    rescale = 1.0 / batch

    def step(i):
        arrays["data"][...] = x[i * batch:(i + 1) * batch]
        arrays["softmax_label"][...] = y[i * batch:(i + 1) * batch]
        session.run_with_iobinding(io)
        for name, grad in grads.items():
            mom = moms[name]
            mom *= MOMENTUM
            mom -= LR * rescale * grad
            arrays[name] += mom

    for i in range(batches):
        step(i)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for i in range(batches):
            step(i)
        best = min(best, time.perf_counter() - start)
    return batch * batches / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    import logging
    logging.getLogger().setLevel(logging.WARNING)
    print("%-32s %14s %14s %7s %12s" % ("model", "fit samples/s", "raw samples/s", "ratio", "update share"))
    for name, sym, shape in (("MLP 784-128-64-10, batch 100", mlp.get_symbol(10), (100, 784)),
                             ("LeNet, batch 64", lenet.get_symbol(10), (64, 1, 28, 28))):
        ours, share, mod = run_fit(sym, shape, args.batches)
        theirs = run_raw(mod, shape, args.batches)
        print("%-32s %14.0f %14.0f %6.2fx %11.1f%%" % (name, ours, theirs, ours / theirs, share * 100))


if __name__ == "__main__":
    main()
