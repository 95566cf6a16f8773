"""Inference through a bound Module (parameters folded into the graph as constants, runtime/folding.py) against
the same Module with parameters as graph inputs, and against raw ONNX Runtime serving the checkpoint exported by
`mx.onnx.export_model` (what issue 16 calls "the exported file"), in the same process.

    python bench/bench_inference.py [--model resnet18|lenet|mlp] [--batch 16] [--size 224] [--repeat 5]
        [--threads 2]

Prints ms per batch (median of --repeat timings) for: Module.forward + asnumpy with folding, without it (the graph
with parameters as inputs), raw ORT on the exported .onnx (inputs bound once, outputs preallocated); and the time
the folded session took to make (once per set of parameter values).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import onnxsym as mx  # noqa: E402
from models import lenet, mlp, resnet  # noqa: E402
from onnxsym.runtime.ort import set_num_threads  # noqa: E402


def symbol(name, size):
    if name == "resnet18":
        return resnet.get_symbol(1000, 18, "3,%d,%d" % (size, size)), (3, size, size)
    if name == "lenet":
        return lenet.get_symbol(10), (1, 28, 28)
    return mlp.get_symbol(10), (784,)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=("resnet18", "lenet", "mlp"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_num_threads(args.threads)
    sym, shape = symbol(args.model, args.size)
    rng = np.random.RandomState(0)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind([("data", (args.batch,) + shape)], for_training=False)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg, aux = mod.get_params()
    aux = {k: mx.nd.array(rng.uniform(0.5, 1.5, v.shape)) for k, v in aux.items()}
    mod.set_params(arg, aux)
    batch = mx.io.DataBatch([mx.nd.array(rng.uniform(-1, 1, (args.batch,) + shape))])
    exe = mod._exec_group.execs[0]

    def forward():
        mod.forward(batch, is_train=False)
        return mod.get_outputs()[0].asnumpy()

    start = time.perf_counter()
    folded_out = forward()
    first = (time.perf_counter() - start) * 1000
    folded = timed(forward, args.repeat)
    builds = exe._folding.builds if exe._folding is not None else 0
    folding, exe._folding = exe._folding, None
    unfolded_out = forward()
    unfolded = timed(forward, args.repeat)
    exe._folding = folding
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "net")
        mod.save_checkpoint(prefix, 0)
        path = mx.onnx.export_model(prefix + "-symbol.json", prefix + "-0000.params",
                                    [(args.batch,) + shape], np.float32, prefix + ".onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    io = session.io_binding()
    x = batch.data[0].asnumpy()
    io.bind_cpu_input(session.get_inputs()[0].name, x)
    out = np.empty_like(folded_out)
    io.bind_output(session.get_outputs()[0].name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
    session.run_with_iobinding(io)
    raw = timed(lambda: session.run_with_iobinding(io), args.repeat)
    print("%s batch %d, %d threads (ms per batch, median of %d)" % (args.model, args.batch, args.threads,
                                                                    args.repeat))
    print("  Module, folded constants : %8.1f   (first forward %.1f, incl. making the session; %d made)"
          % (folded, first, builds))
    print("  Module, parameters inputs: %8.1f" % unfolded)
    print("  raw ORT, exported .onnx  : %8.1f" % raw)
    print("  folded / raw ORT speed   : %8.2f" % (raw / folded))
    print("  largest difference folded vs unfolded: %.2e (outputs up to %.2e); exported vs folded: %.2e"
          % (np.abs(folded_out - unfolded_out).max(), np.abs(unfolded_out).max(), np.abs(out - folded_out).max()))


if __name__ == "__main__":
    main()
