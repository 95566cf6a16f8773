"""Module.predict over an NDArrayIter against raw ONNX Runtime serving the exported .onnx batch by batch, in one
process, interleaved: what onnxsym adds to the session runs (issue 16: "predict over an NDArrayIter should cost
little more than the session runs").

    python bench/bench_predict.py [--model mlp|lenet] [--samples 6000] [--batch 100] [--threads 1] [--rounds 30]

Prints ms per pass over the samples (median of --rounds, interleaved) for: Module.predict (batches bound where the
iterator holds them); the same batches through iter_predict (each copied into the executor, as forward() does);
raw ORT `session.run` per batch + concatenate on the exported file; and the time Module.predict spent inside its
session runs, so that the difference is onnxsym's own work per pass.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=("mlp", "lenet"))
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)     # (read at import, as MXNet reads it)
    import onnxruntime as ort
    import onnxsym as mx
    from models import lenet, mlp
    from onnxsym.runtime import binding

    sym, shape = (mlp.get_symbol(10), (784,)) if args.model == "mlp" else (lenet.get_symbol(10), (1, 28, 28))
    rng = np.random.RandomState(0)
    data = rng.uniform(-1, 1, (args.samples,) + shape).astype(np.float32)
    it = mx.io.NDArrayIter(data, batch_size=args.batch, shuffle=False)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=it.provide_data, for_training=False)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg_params, aux_params = mod.get_params()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        mx.onnx.export_model(sym, {**arg_params, **aux_params}, [(args.batch,) + shape], np.float32, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batches = [data[i:i + args.batch] for i in range(0, args.samples, args.batch)]

    inside = [0.0]
    run = binding.BoundRun.run

    def timed_run(self, *rest):
        start = time.perf_counter()
        try:
            return run(self, *rest)
        finally:
            inside[0] += time.perf_counter() - start
    binding.BoundRun.run = timed_run

    def predict():
        mod.predict(it).asnumpy()

    def copied():
        np.concatenate([outputs[0].asnumpy() for outputs, _, _ in mod.iter_predict(it)])

    def raw():
        np.concatenate([session.run(None, {name: batch})[0] for batch in batches])

    cases = {"Module.predict": predict, "iter_predict (batches copied)": copied, "raw ORT on the exported file": raw}
    expected = np.concatenate([session.run(None, {name: batch})[0] for batch in batches])
    np.testing.assert_allclose(mod.predict(it).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    for fn in cases.values():
        fn()
    times = {label: [] for label in cases}
    sessions = []
    for _ in range(args.rounds):
        for label, fn in cases.items():
            inside[0] = 0.0
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
            if fn is predict:
                sessions.append(inside[0])
    print("%s, %d samples in batches of %d, %d thread(s): ms per pass (median of %d interleaved rounds)"
          % (args.model, args.samples, args.batch, args.threads, args.rounds))
    for label, values in times.items():
        print("  %-32s %8.2f" % (label, statistics.median(values) * 1000))
    print("  %-32s %8.2f" % ("Module.predict's session runs", statistics.median(sessions) * 1000))


if __name__ == "__main__":
    main()
