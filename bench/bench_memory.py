"""Peak resident memory (ru_maxrss) of a process training ResNet-18 (or LeNet / the MLP) for a few steps, and of one
serving it, each in a fresh process; with --mxnet PYTHON, MXNet 1.9.1 runs the same symbol in the same way.

    python bench/bench_memory.py [--model resnet18|lenet|mlp] [--batch 16] [--steps 3] [--threads 2]
        [--mxnet /path/to/mxnet-venv/bin/python]

Training: Module.bind(for_training=True) + init_params + SGD momentum, `--steps` forward_backward + update at batch
`--batch`; serving: a simple_bind(grad_req='null') executor, `--steps` forward(is_train=False) + asnumpy. Prints the
peak RSS in MiB after the last step and the last step's seconds. The child processes import `mxnet` or `onnxsym` as
`mx` and run the same code (below), so the two columns measure the same program.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
impl, kind, path, batch, steps, threads = sys.argv[1:7]
batch, steps = int(batch), int(steps)
if impl == "onnxsym":
    import onnxsym as mx
    from onnxsym.runtime.ort import set_num_threads
    set_num_threads(int(threads))
else:
    import mxnet as mx
net = mx.sym.load(path)
shapes = json.loads(os.environ["BENCH_MEMORY_SHAPE"])
rs = np.random.RandomState(0)
data = rs.uniform(-1, 1, [batch] + shapes).astype(np.float32)
times = []
if kind == "train":
    mod = mx.mod.Module(net, context=mx.cpu())
    mod.bind(data_shapes=[("data", data.shape)], label_shapes=[("softmax_label", (batch,))], for_training=True)
    mod.init_params(mx.init.Xavier(magnitude=2))
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-5})
    b = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(rs.randint(0, 10, batch).astype(np.float32))])
    for _ in range(steps):
        start = time.perf_counter()
        mod.forward_backward(b)
        mod.update()
        mx.nd.waitall()
        times.append(time.perf_counter() - start)
else:
    ex = net.simple_bind(mx.cpu(), data=data.shape, grad_req="null")
    for name, array in ex.arg_dict.items():
        if name not in ("data", "softmax_label"):
            array[:] = mx.nd.array(rs.normal(0, 0.05, array.shape).astype(np.float32))
    for array in ex.aux_dict.values():
        array[:] = 1
    x = mx.nd.array(data)
    for _ in range(steps):
        start = time.perf_counter()
        ex.forward(is_train=False, data=x)
        ex.outputs[0].asnumpy()
        times.append(time.perf_counter() - start)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "last_step_s": times[-1]}))
"""


def symbol(name):
    sys.path.insert(0, ROOT)
    from models import lenet, mlp, resnet
    if name == "resnet18":
        return resnet.get_symbol(1000, 18, "3,224,224"), [3, 224, 224]
    if name == "lenet":
        return lenet.get_symbol(10), [1, 28, 28]
    return mlp.get_symbol(10), [784]


def child(python, impl, kind, path, shape, args):
    env = dict(os.environ, BENCH_MEMORY_SHAPE=json.dumps(shape), OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=ROOT if impl == "onnxsym" else "")
    out = subprocess.run([python, "-c", CHILD, impl, kind, path, str(args.batch), str(args.steps),
                          str(args.threads)], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit("%s %s failed:\n%s" % (impl, kind, out.stderr[-2000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=("resnet18", "lenet", "mlp"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mxnet", help="a Python with mxnet 1.9.1 installed: measure it too")
    args = parser.parse_args()
    net, shape = symbol(args.model)
    sides = [("onnxsym", sys.executable)] + ([("mxnet", args.mxnet)] if args.mxnet else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net-symbol.json")
        net.save(path)
        print("%s batch %d, %d steps, %d threads: peak RSS MiB (last step s)" % (args.model, args.batch, args.steps,
                                                                              args.threads))
        for kind in ("train", "serve"):
            cells = []
            for impl, python in sides:
                r = child(python, impl, kind, path, shape, args)
                cells.append("%s %7.0f (%.3f)" % (impl, r["peak_rss_mib"], r["last_step_s"]))
            print("  %-6s %s" % (kind, "   ".join(cells)))


if __name__ == "__main__":
    main()
