"""dist_sync's cost: LeNet training with 1 process vs N workers on this machine (onnxsym launch, MPI loopback).

    python bench/bench_dist.py [--workers 2] [--batch 64] [--steps 40] [--threads auto]

The global batch stays `--batch` (strong scaling: each of N workers takes batch/N images per step, as the
equality tests do), so images/s compares the same training. Each configuration runs in fresh processes
(`onnxsym launch -n N -- python bench/bench_dist.py --worker ...`); rank 0 reports the wall time of `--steps`
timed steps (forward, backward, update) after 5 untimed ones, the time of the gradient allreduce inside them
(Module._allreduce_gradients: one MPI allreduce over the gradient arena; it includes waiting for the slower
worker), the same allreduce alone (`--steps` back to back after a barrier: the transfer itself) and the bytes of
that buffer (each worker's contribution per step). ORT's
threads per session: `auto` = cores // workers (one process per core's share; ORT's default, one thread per
core in every process, oversubscribes the cores), or a number.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WARMUP = 5


def worker(args):
    import onnxsym as mx
    from onnxsym.models import lenet
    from onnxsym.runtime.ort import set_num_threads

    kv = mx.kv.create("dist_sync")
    workers, rank = kv.num_workers, kv.rank
    threads = max(1, (os.cpu_count() or 1) // workers) if args.threads == "auto" else int(args.threads)
    set_num_threads(threads)
    local = args.batch // workers
    rng = np.random.RandomState(rank)
    x = rng.uniform(-1, 1, (local, 1, 28, 28)).astype(np.float32)
    y = rng.randint(0, 10, local).astype(np.float32)
    batch = mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)])
    mod = mx.mod.Module(lenet.get_symbol(num_classes=10))
    mod.bind(data_shapes=[("data", x.shape)], label_shapes=[("softmax_label", y.shape)])
    mod.init_params(initializer=mx.init.Xavier())
    mod.init_optimizer(kvstore=kv, optimizer="sgd", optimizer_params={"learning_rate": 0.01, "momentum": 0.9})
    spent = [0.0]
    allreduce = mod._allreduce_gradients

    def timed_allreduce():
        start = time.perf_counter()
        allreduce()
        spent[0] += time.perf_counter() - start

    mod._allreduce_gradients = timed_allreduce
    for _ in range(WARMUP):
        mod.forward_backward(batch)
        mod.update()
    kv.barrier()
    spent[0] = 0.0
    start = time.perf_counter()
    for _ in range(args.steps):
        mod.forward_backward(batch)
        mod.update()
    wall = time.perf_counter() - start
    # the allreduce alone: the same buffer, all workers already waiting (no skew between them)
    grads = mod._arena["grads"]
    kv.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        kv.allreduce_arrays([grads], in_place=True)
    alone = (time.perf_counter() - start) / args.steps
    kv.barrier()
    if rank == 0:
        print(json.dumps({"workers": workers, "threads": threads, "local_batch": local, "steps": args.steps,
                          "wall_s": wall, "allreduce_s": spent[0], "alone_s": alone, "bytes": int(grads.nbytes),
                          "images_per_s": args.batch * args.steps / wall}))


def run(workers, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--batch", str(args.batch), "--steps",
               str(args.steps), "--threads", str(args.threads)]
    if workers > 1:
        command = [sys.executable, "-m", "onnxsym", "launch", "-n", str(workers), "--"] + command
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        sys.exit("bench_dist: %s failed:\n%s" % (" ".join(command), done.stderr[-3000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="global batch per step (64)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", default="auto", help="ORT threads per session: auto or a number")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print("LeNet 1x28x28, global batch %d, %d steps, %d cores" % (args.batch, args.steps, os.cpu_count() or 1))
    print("%8s %8s %12s %10s %10s %16s %14s %12s" % ("workers", "threads", "batch/worker", "images/s", "step ms",
                                                       "allreduce ms", "(alone) ms", "bytes/step"))
    for workers in sorted({1, args.workers}):
        r = run(workers, args)
        print("%8d %8d %12d %10.0f %10.2f %16.3f %14.3f %12d" % (
            r["workers"], r["threads"], r["local_batch"], r["images_per_s"], 1e3 * r["wall_s"] / r["steps"],
            1e3 * r["allreduce_s"] / r["steps"], 1e3 * r["alone_s"], r["bytes"]))


if __name__ == "__main__":
    main()
