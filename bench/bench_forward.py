"""Executor.forward latency vs raw ONNX Runtime on the same ONNX model, in the same process.

    python bench/bench_forward.py [--repeat 7] [--number 2000]

Raw ORT = an InferenceSession with the same session options and IOBinding (inputs pre-bound, outputs into
pre-allocated buffers), calling run_with_iobinding in a loop. Prints per-call times and the ratio.
"""
import argparse
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import onnxsym as mx  # noqa: E402
from _common import per_call  # noqa: E402
from onnxsym.models import mlp  # noqa: E402
from onnxsym.runtime.ort import session_options  # noqa: E402


def raw_ort(executor):
    lowered = executor._lowered
    session = ort.InferenceSession(lowered.model.SerializeToString(), session_options(),
                                   providers=["CPUExecutionProvider"])
    io = session.io_binding()
    feeds = {n: a.asnumpy() for n, a in executor._by_name.items()}
    for name in lowered.input_names:
        io.bind_cpu_input(name, feeds[name])
    outs = [np.empty_like(o.asnumpy()) for o in executor.outputs]
    for name, out in zip(lowered.output_names, outs):
        io.bind_output(name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
    # (the IOBinding points into feeds and outs: the closure keeps them alive; without it the buffers were freed
    # and later allocations wrote over what ORT reads and writes)
    return lambda: (session.run_with_iobinding(io), feeds, outs)[0]


def tiny():
    A, B, D = mx.sym.Variable("A"), mx.sym.Variable("B"), mx.sym.Variable("D")
    E = A * B + D
    return E.bind(mx.cpu(), {"A": mx.nd.ones(1) * 3, "B": mx.nd.ones(1), "D": mx.nd.ones(1)})


def mlp_784():
    net = mlp.get_symbol(10).get_internals()["fc3_output"]         # the logits (no loss head)
    exe = net.simple_bind(mx.cpu(), grad_req="null", data=(100, 784))
    rng = np.random.RandomState(0)
    for array in exe.arg_arrays:
        array[:] = rng.uniform(-0.1, 0.1, array.shape)
    return exe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    print("%-28s %14s %14s %8s" % ("graph", "onnxsym us", "raw ORT us", "ratio"))
    for name, make, number in (("tiny E = A*B + D (1 elem)", tiny, args.number),
                               ("MLP 784-128-64-10, N=100", mlp_784, max(args.number // 10, 50))):
        exe = make()
        raw = raw_ort(exe)
        for fn in (exe.forward, raw):          # warm up both
            for _ in range(50):
                fn()
        ours = min(per_call(exe.forward, number, args.repeat) for _ in range(2))
        theirs = min(per_call(raw, number, args.repeat) for _ in range(2))
        print("%-28s %14.2f %14.2f %7.2fx" % (name, ours * 1e6, theirs * 1e6, ours / theirs))


if __name__ == "__main__":
    main()
