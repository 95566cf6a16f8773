"""One worker of tests/test_dist.py, started by `onnxsym launch -n 2` (or alone: one process, the whole batch).

    python tests/dist_worker.py train OUT --model mlp --kvstore dist_sync    (each of N workers: its part of each batch)
    python tests/dist_worker.py train OUT --model mlp --kvstore none         (one process: the whole batch)
    python tests/dist_worker.py train OUT --devices 2 ...                     (2 contexts per process)
    python tests/dist_worker.py api OUT                                       (mx.kv.create('dist_sync')'s API)

`train` fits the model on a small synthetic set (fixed seed and order, batches of 8): a worker of N takes its
contiguous 8/N rows of every batch (as num_parts/part_index shard a data set, here by batch so that the
reference sees the same batches). Rank r > 0 starts from other random parameters, which init_optimizer replaces
with rank 0's. After every step each worker compares its parameters with rank 0's (MPI broadcast) and records the
largest difference. Writes OUT/rank<r>.npz (the parameters and that difference); rank 0 also saves the checkpoint
OUT/model-symbol.json and OUT/model-0003.params. `api` checks the store's calls and writes OUT/api<r>.ok.
"""
import argparse
import os
import sys

import numpy as np

import onnxsym as mx
from onnxsym.models import lenet, mlp

SAMPLES, BATCH, EPOCHS = 32, 8, 3
SHAPES = {"mlp": (1, 8, 8), "lenet": (1, 28, 28)}


def dataset(model):
    rng = np.random.RandomState(7)
    x = rng.uniform(-1, 1, (SAMPLES,) + SHAPES[model]).astype(np.float32)
    y = (np.arange(SAMPLES) % 10).astype(np.float32)
    return x, y


def shard(array, rank, workers):
    """Rows [rank * 8/N, (rank + 1) * 8/N) of every batch of 8."""
    part = BATCH // workers
    batches = array.reshape((-1, BATCH) + array.shape[1:])
    return batches[:, rank * part:(rank + 1) * part].reshape((-1,) + array.shape[1:])


def train(out, model, kvstore, devices=1):
    kv = None if kvstore == "none" else mx.kv.create(kvstore)
    rank, workers = (kv.rank, kv.num_workers) if kvstore.startswith("dist") else (0, 1)
    if kvstore == "local":      # the control: the same shards, the workers never talk
        from mpi4py import MPI
        rank, workers = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    x, y = dataset(model)
    x, y = shard(x, rank, workers), shard(y, rank, workers)
    train_iter = mx.io.NDArrayIter(x, y, batch_size=BATCH // workers, shuffle=False)
    symbol = (mlp if model == "mlp" else lenet).get_symbol(num_classes=10)
    mx.random.seed(11 + rank)       # rank 1 initializes differently: rank 0's parameters must reach it
    mod = mx.mod.Module(symbol, context=[mx.cpu(i) for i in range(devices)])
    if model == "mlp":
        optimizer, params = "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}
    else:
        optimizer, params = "adam", {"learning_rate": 0.01}      # (the updater's path, not the fast SGD one)
    step_diffs = []

    def compare_with_rank0(_):
        flat = np.concatenate([a.asnumpy().ravel() for _, a in sorted(mod.get_params()[0].items())])
        if kv is not None and kvstore.startswith("dist"):
            reference = kv.broadcast_arrays([flat.copy()])[0]
            step_diffs.append(float(np.abs(flat - reference).max()))

    mod.fit(train_iter, num_epoch=EPOCHS, kvstore=kv if kv is not None else "local", optimizer=optimizer,
            optimizer_params=params, initializer=mx.init.Xavier(), batch_end_callback=compare_with_rank0)
    args, auxs = mod.get_params()
    np.savez(os.path.join(out, "rank%d.npz" % rank), step_diff=np.array(step_diffs + [0.0]).max(),
             steps=len(step_diffs), **{"arg:" + k: v.asnumpy() for k, v in args.items()})
    if rank == 0:
        mod.save_checkpoint(os.path.join(out, "model"), EPOCHS)


def api(out):
    """dist_sync's calls with 2 workers: init takes rank 0's value, push sums devices then workers, pull gives the
    sum or the updated weight, the optimizer's states save and load, rank/num_workers/barrier."""
    kv = mx.kv.create("dist_sync")
    rank, n = kv.rank, kv.num_workers
    assert (kv.type, n) == ("dist_sync", 2), (kv.type, n)
    shape = (2, 3)
    kv.init("w", mx.nd.ones(shape) * (rank + 5))        # rank 0's 5 wins
    out_a = mx.nd.zeros(shape)
    kv.pull("w", out=out_a)
    assert np.all(out_a.asnumpy() == 5), out_a.asnumpy()
    # push of two devices' values: (rank + 1) + 2 * (rank + 1) on each worker, summed: 3 * (1 + 2) = 9
    kv.push("w", [mx.nd.ones(shape) * (rank + 1), mx.nd.ones(shape) * 2 * (rank + 1)])
    kv.pull("w", out=[out_a, mx.nd.zeros(shape)])
    assert np.all(out_a.asnumpy() == 9), out_a.asnumpy()
    # several keys in one push (one allreduce per dtype), int keys too on another store
    kv2 = mx.kv.create("dist_device_sync")
    kv2.init([3, 1], [mx.nd.zeros(shape), mx.nd.zeros((4,), dtype="float64")])
    kv2.pushpull([3, 1], [mx.nd.ones(shape) * rank, mx.nd.ones((4,), dtype="float64") * (rank + 1)],
                 out=[out_a, mx.nd.zeros((4,), dtype="float64")])
    assert np.all(out_a.asnumpy() == 1)
    got = mx.nd.zeros((4,), dtype="float64")
    kv2.pull(1, out=got)
    assert np.all(got.asnumpy() == 3) and got.dtype == np.float64
    # an optimizer on the store: both workers apply SGD to the summed gradient
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.5, rescale_grad=0.5))
    kv.push("w", mx.nd.ones(shape) * (rank + 1))      # sum 3, rescaled 1.5: w = 9 - 0.15
    kv.pull("w", out=out_a)
    np.testing.assert_allclose(out_a.asnumpy(), 9 - 0.15, rtol=1e-6)
    states = os.path.join(out, "states%d" % rank)
    kv.save_optimizer_states(states)
    kv.load_optimizer_states(states)
    kv.barrier()
    # horovod: allreduce and broadcast without a store
    hvd = mx.kv.create("horovod")
    assert hvd.type == "horovod" and not hvd.is_capable("optimizer") and hvd.num_workers == 2
    value = mx.nd.ones(shape) * (rank + 1)
    hvd.pushpull("g", value)
    assert np.all(value.asnumpy() == 3)
    hvd.broadcast("b", mx.nd.ones(shape) * (rank + 7), out=out_a)
    assert np.all(out_a.asnumpy() == 7)
    with open(os.path.join(out, "api%d.ok" % rank), "w") as handle:
        handle.write("ok")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["train", "api"])
    parser.add_argument("out")
    parser.add_argument("--model", choices=sorted(SHAPES), default="mlp")
    parser.add_argument("--kvstore", default="dist_sync")
    parser.add_argument("--devices", type=int, default=1, help="contexts per worker (mx.cpu(i)), each a share")
    args = parser.parse_args(argv)
    if args.what == "train":
        train(args.out, args.model, args.kvstore, args.devices)
    else:
        api(args.out)


if __name__ == "__main__":
    sys.exit(main())
