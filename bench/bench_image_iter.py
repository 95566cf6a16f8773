"""Images per second of mx.io.ImageRecordIter: onnxsym against MXNet 1.9.1 on the same generated .rec file.

    python bench/bench_image_iter.py                                    # onnxsym only
    python bench/bench_image_iter.py --mxnet /tmp/gcvvenv/bin/python    # and MXNet's, in a subprocess

The file holds `--images` JPEGs (quality 90) of 240-300 x 200-260 pixels (smooth gradients plus noise, so JPEG
decoding does real work), packed by onnxsym's mx.recordio. Both iterators read it with the options of an ImageNet
training script: resize 256 (shorter edge), random 224x224 crop, random mirror, mean/std normalization, float32,
batch 32, `--threads` preprocess threads. Reported: images/s over `--epochs` epochs after one warm-up batch (the
median of `--repeat` runs), and the ratio onnxsym / MXNet.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

OPTIONS = dict(data_shape=(3, 224, 224), batch_size=32, resize=256, rand_crop=True, rand_mirror=True,
               mean_r=123.68, mean_g=116.28, mean_b=103.53, std_r=58.395, std_g=57.12, std_b=57.375)


def make_rec(path, count):
    """Write `count` JPEG records to path (.rec) and path's .idx."""
    import cv2

    sys.path.insert(0, ROOT)
    from onnxsym import recordio

    rng = np.random.RandomState(0)
    rec = recordio.MXIndexedRecordIO(path[:-4] + ".idx", path, "w")
    for i in range(count):
        h, w = rng.randint(200, 261), rng.randint(240, 301)
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=2)
        img = np.clip(img + rng.randint(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        rec.write_idx(i, recordio.pack(recordio.IRHeader(0, float(i % 10), i, 0), buf.tobytes()))
    rec.close()


def measure(mx, path, threads, epochs, repeat):
    """images/s (median of `repeat`) of mx.io.ImageRecordIter over `epochs` epochs of the file."""
    rates = []
    for _ in range(repeat):
        it = mx.io.ImageRecordIter(path_imgrec=path, preprocess_threads=threads, **OPTIONS)
        it.next()           # warm-up: thread start, first decode
        it.reset()
        count = 0
        start = time.perf_counter()
        for epoch in range(epochs):
            if epoch:
                it.reset()
            for batch in it:
                batch.data[0].asnumpy()
                count += OPTIONS["batch_size"] - batch.pad
        rates.append(count / (time.perf_counter() - start))
        del it
    return statistics.median(rates)


def child(args):
    if args.child == "mxnet":
        import mxnet as mx
    else:
        sys.path.insert(0, ROOT)
        import onnxsym as mx
    print(json.dumps(measure(mx, args.rec, args.threads, args.epochs, args.repeat)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mxnet", help="a Python with MXNet 1.9.1 to time MXNet's iterator in a subprocess")
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["mxnet", "onnxsym"], help=argparse.SUPPRESS)
    parser.add_argument("--rec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, "bench.rec")
        make_rec(rec, args.images)
        print("%d JPEG images (%.1f MB), batch 32, 224x224 random crops of resize-256, %d threads, %d epochs"
              % (args.images, os.path.getsize(rec) / 1e6, args.threads, args.epochs))
        common = ["--rec", rec, "--threads", str(args.threads), "--epochs", str(args.epochs),
                  "--repeat", str(args.repeat)]
        rates = {}
        runs = [("onnxsym", sys.executable)] + ([("mxnet", args.mxnet)] if args.mxnet else [])
        for name, python in runs:
            env = dict(os.environ, MXNET_MKLDNN_ENABLED="0", PYTHONPATH=ROOT if name == "onnxsym" else "")
            out = subprocess.run([python, os.path.abspath(__file__), "--child", name] + common, env=env,
                                 capture_output=True, text=True, check=True)
            rates[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print("%-8s %8.1f images/s" % (name, rates[name]))
        if "mxnet" in rates:
            print("ratio onnxsym / MXNet: %.2f" % (rates["onnxsym"] / rates["mxnet"]))


if __name__ == "__main__":
    main()
