"""MXNet's example/image-classification/train_*.py flow on onnxsym, from generated images to ONNX Runtime.

1. Generates a small separable image set (four classes of coloured stripes, rings and blobs, 32x32 PNG files in one
   folder per class) and packs it as a user would with MXNet's tools/im2rec.py, here `onnxsym im2rec`:

       onnxsym im2rec DATA/shapes DATA/images --list --recursive --train-ratio 0.8
       onnxsym im2rec DATA/shapes DATA/images --encoding .png --quality 9

2. Trains MXNet's pre-activation ResNet (models/resnet.py, CIFAR layout: 8 layers for 28x28 crops) as
   common/fit.py does: ImageRecordIter train/val iterators built as common/data.py builds them (mean/std,
   data_shape crop, pad, rand_crop, rand_mirror), a Module on several contexts (--cpus 0,1 by default, --gpus like
   MXNet's scripts), the kvstore, SGD with momentum and weight decay, a MultiFactorScheduler stepping at
   --lr-step-epochs, accuracy and top-k metrics, Speedometer and do_checkpoint (--model-prefix); --load-epoch
   resumes from a checkpoint with begin_epoch as fit.py does.
3. Converts the last checkpoint with the `onnxsym convert` command line (a subprocess) and serves the .onnx with
   plain onnxruntime.InferenceSession on the validation batches, next to the Module's outputs for them.

    pip install ".[image]" && python examples/train_image_classification.py [--num-epochs 6] [--data-dir DIR]

The defaults run in about 15 seconds on two CPU cores; a second run reuses the data set in --data-dir.
"""
import argparse
import logging
import math
import os
import subprocess
import sys

import numpy as np

import onnxsym as mx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from models import resnet  # noqa: E402  (the repository's models/ folder, as MXNet's symbols/)

CLASSES = ("hstripes", "vstripes", "rings", "blobs")


# ----- the data set -----

def make_image(label, rng, size=32):
    """One size x size BGR uint8 image of class `label`: horizontal stripes, vertical stripes, concentric rings or
    a few soft blobs, in random colours and phases, with pixel noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    period = rng.uniform(5.0, 9.0)
    phase = rng.uniform(0, 2 * np.pi)
    if label == 0:
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * y / period + phase)
    elif label == 1:
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * x / period + phase)
    elif label == 2:
        cy, cx = rng.uniform(10, 22, 2)
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(y - cy, x - cx) / period + phase)
    else:
        mask = np.zeros((size, size))
        for _ in range(3):
            cy, cx = rng.uniform(4, 28, 2)
            mask += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * rng.uniform(3.0, 5.0) ** 2))
        mask = np.clip(mask, 0, 1)
    fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = mask[:, :, None] * fg + (1 - mask[:, :, None]) * bg + rng.normal(0, 8.0, (size, size, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_images(folder, per_class=100, seed=0):
    """Writes folder/<class>/<class>_NNN.png, `per_class` images per class, from numpy's seeded legacy stream."""
    import cv2
    rng = np.random.RandomState(seed)
    for label, name in enumerate(CLASSES):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(per_class):
            path = os.path.join(folder, name, "%s_%03d.png" % (name, i))
            if not cv2.imwrite(path, make_image(label, rng)):
                raise OSError("cannot write %s" % path)


def im2rec(*arguments):
    """Runs `onnxsym im2rec ARGUMENTS` as a user would (this interpreter, this checkout's onnxsym)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-m", "onnxsym.cli", "im2rec", *arguments], check=True, env=env)


def make_dataset(data_dir, per_class=100, seed=0):
    """Images under data_dir/images, then data_dir/shapes_train.{lst,rec,idx} and shapes_val.{lst,rec,idx}."""
    images, prefix = os.path.join(data_dir, "images"), os.path.join(data_dir, "shapes")
    make_images(images, per_class, seed)
    im2rec(prefix, images, "--list", "--recursive", "--train-ratio", "0.8")
    # lossless records, so every decoder reads the same pixels; with .png, --quality is the compression level (0-9)
    im2rec(prefix, images, "--encoding", ".png", "--quality", "9")
    return prefix + "_train", prefix + "_val"


# ----- common/data.py and common/fit.py -----

def get_rec_iter(args, kv=None):
    """common/data.py's train and val ImageRecordIter (shuffle only with --shuffle: off keeps runs comparable)."""
    image_shape = tuple(int(v) for v in args.image_shape.split(","))
    rank, nworker = (kv.rank, kv.num_workers) if kv else (0, 1)
    mean = [float(v) for v in args.rgb_mean.split(",")]
    std = [float(v) for v in args.rgb_std.split(",")]
    common = dict(label_width=1, mean_r=mean[0], mean_g=mean[1], mean_b=mean[2], std_r=std[0], std_g=std[1],
                  std_b=std[2], data_name="data", label_name="softmax_label", data_shape=image_shape,
                  batch_size=args.batch_size, preprocess_threads=args.data_nthreads, num_parts=nworker,
                  part_index=rank)
    train = mx.io.ImageRecordIter(path_imgrec=args.data_train + ".rec", path_imgidx=args.data_train + ".idx",
                                  rand_crop=args.random_crop, rand_mirror=args.random_mirror, pad=args.pad_size,
                                  fill_value=args.fill_value, shuffle=args.shuffle, **common)
    val = mx.io.ImageRecordIter(path_imgrec=args.data_val + ".rec", path_imgidx=args.data_val + ".idx",
                                rand_crop=False, rand_mirror=False, **common)
    return train, val


def get_epoch_size(args, kv):
    return math.ceil(int(args.num_examples / kv.num_workers) / args.batch_size)


def get_lr_scheduler(args, kv):
    """fit.py's: the learning rate of begin_epoch and a MultiFactorScheduler for the steps still ahead."""
    if args.lr_factor >= 1:
        return args.lr, None
    epoch_size = get_epoch_size(args, kv)
    begin_epoch = args.load_epoch if args.load_epoch else 0
    step_epochs = [int(v) for v in args.lr_step_epochs.split(",") if v.strip()]
    lr = args.lr
    for step in step_epochs:
        if begin_epoch >= step:
            lr *= args.lr_factor
    if lr != args.lr:
        logging.info("Adjust learning rate to %e for epoch %d", lr, begin_epoch)
    steps = [epoch_size * (x - begin_epoch) for x in step_epochs if x - begin_epoch > 0]
    if steps:
        return lr, mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=args.lr_factor, base_lr=args.lr)
    return lr, None


def contexts(args):
    if args.gpus:
        return [mx.gpu(int(i)) for i in args.gpus.split(",")]
    return [mx.cpu(int(i)) for i in args.cpus.split(",")]


def fit(args, network, data_loader, **kwargs):
    """common/fit.py's fit: returns the trained Module and the validation iterator. kwargs: arg_params and
    aux_params (the starting values), batch_end_callback and eval_end_callback (added to Speedometer's),
    initializer."""
    kv = mx.kvstore.create(args.kv_store)
    train, val = data_loader(args, kv)
    if "arg_params" in kwargs and "aux_params" in kwargs:
        arg_params, aux_params = kwargs["arg_params"], kwargs["aux_params"]
    elif args.load_epoch is not None:
        sym, arg_params, aux_params = mx.model.load_checkpoint(args.model_prefix, args.load_epoch)
        logging.info("Loaded model %s-%04d.params", args.model_prefix, args.load_epoch)
        assert sym.tojson() == network.tojson()
    else:
        arg_params = aux_params = None
    checkpoint = mx.callback.do_checkpoint(args.model_prefix, period=args.save_period) if args.model_prefix else None
    lr, lr_scheduler = get_lr_scheduler(args, kv)
    model = mx.mod.Module(context=contexts(args), symbol=network)
    optimizer_params = {"learning_rate": lr, "wd": args.wd, "lr_scheduler": lr_scheduler, "multi_precision": True}
    if args.optimizer in ("sgd", "dcasgd", "nag", "signum", "lbsgd"):
        optimizer_params["momentum"] = args.mom
    initializer = kwargs.get("initializer", mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    eval_metrics = ["accuracy"]
    if args.top_k > 0:
        eval_metrics.append(mx.metric.create("top_k_accuracy", top_k=args.top_k))
    batch_end_callbacks = [mx.callback.Speedometer(args.batch_size, args.disp_batches)]
    extra = kwargs.get("batch_end_callback", [])
    batch_end_callbacks += extra if isinstance(extra, list) else [extra]
    model.fit(train, begin_epoch=args.load_epoch if args.load_epoch else 0, num_epoch=args.num_epochs,
              eval_data=val, eval_metric=eval_metrics, kvstore=kv, optimizer=args.optimizer,
              optimizer_params=optimizer_params, initializer=initializer, arg_params=arg_params,
              aux_params=aux_params, batch_end_callback=batch_end_callbacks, epoch_end_callback=checkpoint,
              eval_end_callback=kwargs.get("eval_end_callback"), allow_missing=True)
    return model, val


def get_network(args):
    """models/resnet.py's network, named as in a fresh process (a NameManager of its own: the automatic names
    such as _plus0 do not depend on what was built before, so a checkpoint's symbol compares equal)."""
    with mx.name.NameManager():
        return resnet.get_symbol(num_classes=args.num_classes, num_layers=args.num_layers,
                                 image_shape=args.image_shape)


# ----- the ONNX step -----

def convert(prefix, epoch, onnx_path, data_shape):
    """`onnxsym convert PREFIX EPOCH -o FILE.onnx --input-shape data:...` in a subprocess; returns its output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "onnxsym.cli", "convert", prefix, str(epoch), "-o", onnx_path,
                           "--input-shape", "data:" + ",".join(str(d) for d in data_shape)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit("train_image_classification.py: onnxsym convert failed:\n%s%s" % (done.stdout, done.stderr))
    return done.stdout


def serve_with_onnxruntime(model, val, args):
    """Converts the last checkpoint with `onnxsym convert`, then runs each validation batch through the Module
    (forward, is_train=False) and through the .onnx in plain ONNX Runtime. Returns (ORT's probabilities, the
    Module's, labels), the padded rows of a last batch left out."""
    import onnxruntime
    onnx_path = args.model_prefix + ".onnx"
    shape = (args.batch_size,) + tuple(int(v) for v in args.image_shape.split(","))
    print(convert(args.model_prefix, args.num_epochs, onnx_path, shape), end="")
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    served, predicted, labels = [], [], []
    val.reset()
    for batch in val:
        keep = batch.data[0].shape[0] - batch.pad
        model.forward(batch, is_train=False)
        predicted.append(model.get_outputs()[0].asnumpy()[:keep])
        served.append(session.run(None, {name: batch.data[0].asnumpy()[:keep]})[0])
        labels.append(batch.label[0].asnumpy()[:keep])
    val.reset()
    return np.concatenate(served), np.concatenate(predicted), np.concatenate(labels)


# ----- command line -----

def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("Data", "the generated images and their .rec files")
    data.add_argument("--data-dir", default="image-classification-data",
                      help="folder for the images, the .lst/.rec/.idx files, checkpoints and the .onnx")
    data.add_argument("--images-per-class", type=int, default=100)
    data.add_argument("--num-classes", type=int, default=len(CLASSES))
    data.add_argument("--image-shape", default="3,28,28", help="the crop the network sees")
    data.add_argument("--rgb-mean", default="123.68,116.779,103.939")
    data.add_argument("--rgb-std", default="58.393,57.12,57.375")
    data.add_argument("--data-nthreads", type=int, default=2)
    data.add_argument("--shuffle", type=int, default=0, help="shuffle the training records each epoch")
    aug = parser.add_argument_group("Image augmentations")
    aug.add_argument("--random-crop", type=int, default=1)
    aug.add_argument("--random-mirror", type=int, default=1)
    aug.add_argument("--pad-size", type=int, default=0)
    aug.add_argument("--fill-value", type=int, default=127)
    train = parser.add_argument_group("Training", "model training (common/fit.py's options)")
    train.add_argument("--network", default="resnet", choices=["resnet"])
    train.add_argument("--num-layers", type=int, default=8)
    train.add_argument("--gpus", default="", help="GPUs to run on, e.g. 0,1 (empty: the --cpus contexts)")
    train.add_argument("--cpus", default="0,1", help="CPU contexts to split each batch over")
    train.add_argument("--kv-store", default="device")
    train.add_argument("--num-epochs", type=int, default=6)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--lr-factor", type=float, default=0.1)
    train.add_argument("--lr-step-epochs", default="4")
    train.add_argument("--optimizer", default="sgd")
    train.add_argument("--mom", type=float, default=0.9)
    train.add_argument("--wd", type=float, default=0.0001)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--disp-batches", type=int, default=5)
    train.add_argument("--model-prefix", default=None, help="checkpoint prefix (default: DATA_DIR/resnet)")
    train.add_argument("--save-period", type=int, default=1)
    train.add_argument("--load-epoch", type=int, default=None, help="resume from this checkpoint epoch")
    train.add_argument("--top-k", type=int, default=2)
    return parser


def prepare(args):
    """Fills the derived arguments (file prefixes, num_examples), making the data set first if it is missing."""
    args.model_prefix = args.model_prefix or os.path.join(args.data_dir, args.network)
    args.data_train = os.path.join(args.data_dir, "shapes_train")
    args.data_val = os.path.join(args.data_dir, "shapes_val")
    if not os.path.exists(args.data_val + ".rec"):
        make_dataset(args.data_dir, args.images_per_class)
    with open(args.data_train + ".lst") as handle:
        args.num_examples = sum(1 for line in handle if line.strip())
    return args


def main(argv=None):
    """Runs the whole flow; returns {"accuracy": Module's validation accuracy, "onnx_accuracy": ONNX Runtime's,
    "served", "predicted", "labels": the arrays serve_with_onnxruntime compared}."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(args.data_dir, exist_ok=True)
    prepare(args)
    model, val = fit(args, get_network(args), get_rec_iter)
    accuracy = dict(model.score(val, ["accuracy"]))["accuracy"]
    print("validation accuracy after epoch %d: %.4f (chance: %.2f)" % (args.num_epochs, accuracy,
                                                                        1.0 / args.num_classes))
    served, predicted, labels = serve_with_onnxruntime(model, val, args)
    onnx_accuracy = float((served.argmax(axis=1) == labels).mean())
    print("ONNX Runtime on %d validation images: accuracy %.4f, largest difference from the Module's outputs %.2e"
          % (len(labels), onnx_accuracy, np.abs(served - predicted).max()))
    return dict(accuracy=accuracy, onnx_accuracy=onnx_accuracy, served=served, predicted=predicted, labels=labels)


if __name__ == "__main__":
    main()
